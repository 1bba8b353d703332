/*
 * The page's keyboard shortcuts: the quick switcher (Ctrl/Cmd+K: rooms from
 * the sidebar's state, people from the users API, a person's conversation
 * opened through the DM API), moving between rooms in sidebar order
 * (Alt+Up/Down, with Shift to unread ones), Esc to mark this room read and
 * ? for the list of shortcuts. Which key is which shortcut and how the
 * switcher ranks are decided in keys.js.
 */
import { api, el, roomUrl } from "./common.js";
import { SHORTCUTS, matchShortcut, rankSwitcher, shortcutLabel, stepRoom } from "./keys.js";
import { roomLabel } from "./store.js";
import { els, showNotice } from "./ui.js";

const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent || "");

function typingInField(target) {
  return (
    target instanceof Element &&
    (target.isContentEditable || target.closest("input, textarea, select, [contenteditable='true']") !== null)
  );
}

export function setupShortcuts(ctx) {
  const { store } = ctx;
  const me = store.me;
  const dialog = document.getElementById("switcher-dialog");
  const input = document.getElementById("switcher-input");
  const list = document.getElementById("switcher-list");
  const status = document.getElementById("switcher-status");
  const helpDialog = document.getElementById("shortcuts-dialog");
  const state = { items: [], active: -1, people: [], request: 0, timer: null };

  // --- the quick switcher -----------------------------------------------------------

  function roomItems() {
    return Array.from(store.rooms.values()).map((entry) => ({
      kind: entry.kind === "dm" ? "dm" : "channel",
      label: roomLabel(entry, me),
      slug: entry.slug,
      unread: entry.unread || 0,
      private: entry.private,
    }));
  }

  function renderSwitcher() {
    const query = input.value;
    const people = state.people.filter((name) => name !== me).map((name) => ({ kind: "person", label: name }));
    state.items = rankSwitcher(query, roomItems().concat(people), 12);
    state.active = state.items.length ? Math.min(Math.max(state.active, 0), state.items.length - 1) : -1;
    list.replaceChildren(
      ...state.items.map((item, i) => {
        const option = el("li", "switcher-option");
        option.id = "switcher-option-" + i;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", i === state.active ? "true" : "false");
        option.dataset.index = String(i);
        const icon = item.kind === "channel" ? (item.private ? "🔒" : "#") : "@";
        option.append(el("span", "switcher-icon", icon), el("span", "switcher-label", item.label));
        option.firstChild.setAttribute("aria-hidden", "true");
        const kind = { channel: "channel", dm: "conversation", person: "person" }[item.kind];
        option.append(el("span", "switcher-kind", kind + (item.unread ? ", " + item.unread + " unread" : "")));
        return option;
      })
    );
    if (state.active >= 0) {
      input.setAttribute("aria-activedescendant", "switcher-option-" + state.active);
      list.children[state.active].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
    status.textContent = state.items.length ? state.items.length + (state.items.length === 1 ? " match" : " matches") : "No matches";
  }

  async function fetchPeople(query) {
    const request = ++state.request;
    if (!query.trim()) {
      state.people = [];
      renderSwitcher();
      return;
    }
    const url = new URL("/api/users/", window.location.href);
    url.searchParams.set("q", query.trim());
    let data;
    try {
      data = await api("GET", url.toString());
    } catch (err) {
      return;
    }
    if (request !== state.request || !dialog.open) {
      return;
    }
    state.people = (data.users || []).map((u) => u.username);
    renderSwitcher();
  }

  function openSwitcher() {
    if (!dialog || dialog.open) {
      return;
    }
    document.querySelectorAll("dialog[open]").forEach((other) => other.close());
    if (ctx.actions) {
      ctx.actions.closeMenus(false);
    }
    input.value = "";
    state.people = [];
    state.active = 0;
    renderSwitcher();
    dialog.showModal();
    input.focus();
  }

  async function go(item) {
    if (!item) {
      return;
    }
    if (item.kind !== "person") {
      dialog.close();
      window.location.assign(roomUrl(item.slug));
      return;
    }
    try {
      const data = await api("POST", "/api/dms/", { users: [item.label] });
      dialog.close();
      window.location.assign(roomUrl(data.room.slug));
    } catch (err) {
      status.textContent = err.detail || "Could not open that conversation.";
    }
  }

  function onSwitcherKey(event) {
    const count = state.items.length;
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && count) {
      event.preventDefault();
      state.active = (state.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      renderSwitcher();
    } else if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      go(state.items[state.active]);
    }
  }

  // --- moving between rooms -----------------------------------------------------------

  function sidebarSlugs(unreadOnly) {
    if (!els.rooms) {
      return [];
    }
    return Array.from(els.rooms.querySelectorAll("a.room-link"))
      .filter((link) => !unreadOnly || link.classList.contains("has-unread") || link.dataset.room === store.room)
      .map((link) => link.dataset.room);
  }

  function stepTo(step, unreadOnly) {
    const slug = stepRoom(sidebarSlugs(unreadOnly), store.room, step);
    if (slug) {
      window.location.assign(roomUrl(slug));
    } else if (unreadOnly) {
      showNotice("No other unread rooms.");
    }
  }

  // --- the shortcuts dialog ------------------------------------------------------------

  function renderHelp() {
    const table = helpDialog.querySelector("#shortcuts-list");
    table.replaceChildren(
      ...SHORTCUTS.map((shortcut) => {
        const row = el("tr");
        const keys = el("td", "shortcut-keys");
        shortcutLabel(shortcut.keys, MAC).forEach((name, i) => {
          if (i) {
            keys.append("+");
          }
          keys.append(el("kbd", null, name));
        });
        row.append(keys, el("td", null, shortcut.text));
        return row;
      })
    );
  }

  function openHelp() {
    if (!helpDialog || helpDialog.open) {
      return;
    }
    renderHelp();
    helpDialog.showModal();
    helpDialog.querySelector("[data-close-dialog]").focus();
  }

  // --- the keys ---------------------------------------------------------------------------

  function onKey(event) {
    if (event.defaultPrevented || event.isComposing) {
      return;
    }
    const inDialog = document.querySelector("dialog[open]") !== null;
    if (matchShortcut(event, "Mod+K", MAC)) {
      event.preventDefault();
      if (dialog && dialog.open) {
        dialog.close();
      } else {
        openSwitcher();
      }
      return;
    }
    if (inDialog) {
      return;
    }
    const moves = [
      ["Alt+ArrowUp", -1, false],
      ["Alt+ArrowDown", 1, false],
      ["Alt+Shift+ArrowUp", -1, true],
      ["Alt+Shift+ArrowDown", 1, true],
    ];
    for (const [keys, step, unreadOnly] of moves) {
      if (matchShortcut(event, keys, MAC)) {
        event.preventDefault();
        stepTo(step, unreadOnly);
        return;
      }
    }
    const menuOpen = document.querySelector(".popup-menu:not([hidden]), .emoji-picker:not([hidden])") !== null;
    if (matchShortcut(event, "Escape", MAC) && !menuOpen) {
      ctx.messages.markAllRead();
      return;
    }
    if (matchShortcut(event, "?", MAC) && !typingInField(event.target)) {
      event.preventDefault();
      openHelp();
    }
  }

  function start() {
    if (dialog) {
      input.addEventListener("input", () => {
        state.active = 0;
        renderSwitcher();
        clearTimeout(state.timer);
        state.timer = setTimeout(() => fetchPeople(input.value), 80);
      });
      input.addEventListener("keydown", onSwitcherKey);
      list.addEventListener("mousedown", (event) => event.preventDefault());
      list.addEventListener("click", (event) => {
        const option = event.target instanceof Element ? event.target.closest("[role=option]") : null;
        if (option) {
          go(state.items[Number(option.dataset.index)]);
        }
      });
    }
    document.querySelectorAll("[data-open-switcher]").forEach((node) => node.addEventListener("click", openSwitcher));
    document.querySelectorAll("[data-open-shortcuts]").forEach((node) => node.addEventListener("click", openHelp));
    document.querySelectorAll("[data-shortcut-label]").forEach((node) => {
      node.textContent = shortcutLabel(node.dataset.shortcutLabel, MAC).join("+");
    });
    // Bubbling, so a menu, an editor or the completion list that took the key stops it first.
    document.addEventListener("keydown", onKey);
  }

  return { start, openSwitcher, openHelp };
}
