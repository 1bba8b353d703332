/*
 * Drafts on the page: the room composer's draft kept on the server as one
 * types (drafts.js), changes from other tabs and devices put in the box, the
 * bar that shows both texts when they conflict, the "Drafts" list of every
 * unsent draft, and the pencil on sidebar rooms that have one.
 *
 * It sets ctx.drafts, the drafts.js object (load/edit/sent/settle/flush/
 * conflict/resolve/on, by room and thread): a thread's composer uses it with
 * its root's id, and marks its textarea with data-draft-thread="<root id>" so
 * that a change from elsewhere is not put in it while the person types.
 */
import { api, csrfToken, el, roomUrl } from "./common.js";
import { browserStorage, createDrafts } from "./drafts.js";
import { roomTitle } from "./store.js";
import { els } from "./ui.js";

// Keys pressed within this long mean the person is typing: a change from
// elsewhere is then shown as a conflict rather than replacing their text.
const TYPING_MS = 2500;
const SNIPPET_CHARS = 140;

async function putDraft(body) {
  const response = await fetch("/api/drafts/", {
    method: "PUT",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    credentials: "same-origin",
    cache: "no-store",
    body: JSON.stringify(body),
    keepalive: true, // a save on its way as the page goes away (or to another room) still arrives
  });
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  return { status: response.status, data };
}

export function setupDrafts(ctx) {
  const { store, config } = ctx;
  const me = store.me;
  let lastInput = 0;
  const bar = document.getElementById("draft-conflict");
  const dialog = document.getElementById("drafts-dialog");
  const openButton = document.getElementById("drafts-button");

  const drafts = createDrafts({
    storage: browserStorage(),
    user: me,
    request: putDraft,
    typing: (room, thread) => {
      const active = document.activeElement;
      if (!active || Date.now() - lastInput >= TYPING_MS || room !== store.room) {
        return false;
      }
      // A thread's composer says which thread it writes to (data-draft-thread).
      return thread ? active.dataset.draftThread === String(thread) : active === els.input;
    },
  });
  // Our messages already stored: a draft sent just before a reload is not brought back.
  const stored = new Set((config.messages || []).filter((m) => m.user === me && m.nonce).map((m) => m.nonce));
  drafts.start(config.drafts || [], stored);

  const isHere = (entry) => entry.room === store.room && !entry.thread;

  // --- the composer -----------------------------------------------------------

  function showInBox(text) {
    if (!els.input || els.input.disabled || els.input.value === text) {
      return;
    }
    els.input.value = text;
    ctx.composer.autosize();
  }

  function renderConflict() {
    if (!bar) {
      return;
    }
    const conflict = drafts.conflict(store.room);
    bar.hidden = !conflict || !els.input || els.input.disabled;
    if (conflict) {
      bar.querySelector(".draft-conflict-theirs").textContent = conflict.theirs;
    }
  }

  // --- the list and the sidebar ---------------------------------------------------

  function roomName(slug) {
    const room = store.rooms.get(slug);
    return room ? roomTitle(room, me) : "#" + slug;
  }

  function draftUrl(item) {
    return roomUrl(item.room) + (item.thread ? "?thread=" + encodeURIComponent(item.thread) : "");
  }

  function renderList() {
    if (!dialog || !dialog.open) {
      return;
    }
    const items = drafts.list();
    const list = dialog.querySelector(".drafts-list");
    list.replaceChildren(
      ...items.map((item) => {
        const link = el("a", "drafts-link");
        link.href = draftUrl(item);
        link.dataset.room = item.room;
        if (item.thread) {
          link.dataset.thread = String(item.thread);
        }
        const where = el("span", "drafts-room", roomName(item.room));
        if (item.thread) {
          where.append(el("span", "drafts-thread", " · in a thread"));
        }
        const text = item.text.length > SNIPPET_CHARS ? item.text.slice(0, SNIPPET_CHARS) + "…" : item.text;
        link.append(where, el("span", "drafts-snippet", text));
        if (item.unsaved) {
          link.append(el("span", "drafts-unsaved", "Not saved yet"));
        }
        const li = el("li", "drafts-item");
        li.append(link);
        return li;
      })
    );
    dialog.querySelector(".drafts-empty").hidden = items.length > 0;
  }

  function renderMarks() {
    const rooms = new Set(drafts.list().map((item) => item.room));
    if (openButton) {
      const count = openButton.querySelector(".drafts-count");
      count.textContent = rooms.size ? String(drafts.list().length) : "";
      count.hidden = rooms.size === 0;
    }
    if (!els.rooms) {
      return;
    }
    els.rooms.querySelectorAll("a.room-link").forEach((link) => {
      let mark = link.querySelector(".draft-mark");
      const has = rooms.has(link.dataset.room) && link.dataset.room !== store.room;
      if (!has) {
        if (mark) {
          mark.remove();
        }
        return;
      }
      if (!mark) {
        mark = el("span", "draft-mark");
        mark.title = "Draft";
        const icon = el("span", "draft-icon", "✎");
        icon.setAttribute("aria-hidden", "true");
        mark.append(icon, el("span", "visually-hidden", ", draft"));
        link.insertBefore(mark, link.querySelector(".room-status"));
      }
    });
  }

  async function openList() {
    if (!dialog) {
      return;
    }
    renderList();
    dialog.showModal();
    renderList();
    try {
      const data = await api("GET", "/api/drafts/");
      (data.drafts || []).forEach((draft) => drafts.receive(draft));
    } catch (err) {
      /* the list shows what this page knows */
    }
    renderList();
  }

  drafts.on((entry, reason) => {
    if (isHere(entry)) {
      if (reason === "replaced") {
        showInBox(entry.text);
      }
      renderConflict();
    }
    renderMarks();
    renderList();
  });

  store.on("draft", ({ draft }) => drafts.receive(draft));
  store.on("room", renderMarks);
  store.on("resumed", () => drafts.online());

  function start() {
    document.addEventListener(
      "input",
      () => {
        lastInput = Date.now();
      },
      true
    );
    if (els.input) {
      // Leaving the box: saved now rather than after the pause.
      els.input.addEventListener("blur", () => drafts.flush(store.room, null));
    }
    const leaving = () => drafts.flushAll({ keepalive: true });
    window.addEventListener("pagehide", leaving);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        leaving();
      }
    });
    window.addEventListener("online", () => drafts.online());
    if (bar) {
      bar.querySelector("#draft-use-theirs").addEventListener("click", () => {
        drafts.resolve(store.room, null, "theirs");
        els.input.focus();
      });
      bar.querySelector("#draft-keep-mine").addEventListener("click", () => {
        drafts.resolve(store.room, null, "mine");
        els.input.focus();
      });
    }
    if (openButton) {
      openButton.addEventListener("click", openList);
    }
    if (dialog) {
      dialog.querySelector(".drafts-list").addEventListener("click", (event) => {
        const link = event.target instanceof Element ? event.target.closest("a.drafts-link") : null;
        if (link && link.dataset.room === store.room && !link.dataset.thread) {
          event.preventDefault(); // this room's draft is already in the box
          dialog.close();
          els.input.focus();
        } else if (link) {
          drafts.flushAll({ keepalive: true });
        }
      });
    }
    renderConflict();
    renderMarks();
  }

  ctx.drafts = drafts;
  return { start };
}
