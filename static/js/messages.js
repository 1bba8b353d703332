/*
 * The message list: shows the store's messages (through render.js) in id
 * order with this page's unsent ones below them, the "New messages" divider
 * and the read marker, older pages from the history API, jumping to a
 * message (?m=<id>, #m-<id>) and keeping the newest message in view (or
 * offering to: the "New messages" pill). It also lays the list out for
 * reading: date dividers, author runs (timeline.js decides both) and long
 * messages folded behind "Show more".
 *
 * Every child of the list is a message's `li`: the dividers live inside the
 * `li` of the message they stand above, so the list stays a valid list.
 */
import { ApiError, el } from "./common.js";
import { button, clearFailure, markSent, renderMessage, setFailure, showPerson, setReaction, updateMessage } from "./render.js";
import { continues, dayLabel, startsDay } from "./timeline.js";
import { announce, els, showNotice } from "./ui.js";

const JUMP_PAGE = 200;
const JUMP_MAX_PAGES = 50;
const NEAR_BOTTOM_PX = 80;
const READ_EVERY_MS = 1000;
const LONG_MESSAGE_PX = 300; // a body taller than this is folded (Show more)

class HttpError extends Error {
  constructor(status) {
    super("HTTP " + status);
    this.status = status;
  }
}

export function isAuthError(err) {
  return (err instanceof HttpError || err instanceof ApiError) && (err.status === 401 || err.status === 403);
}

export function roomVisible() {
  return document.visibilityState === "visible" && document.hasFocus();
}

export function setupMessages(ctx) {
  const { config, store } = ctx;
  const me = store.me;
  const pageSize = config.pageSize || 50;
  const byId = new Map(); // message id -> li
  const pending = new Map(); // nonce -> li of a message typed here, not stored yet
  let divider = null;
  let loadingOlder = false;
  let stickToBottom = true;
  let readSentId = 0;
  let readSentAt = 0;
  let readTimer = null;
  let autoReadPaused = false; // after "mark unread from here"

  // --- people --------------------------------------------------------------------

  /* A message's item, its author shown as the directory knows them. */
  function drawMessage(m, state) {
    const li = renderMessage(m, state, me);
    showPerson(li, store.people.get(m.user));
    return li;
  }

  // A changed profile shows at once on every message of that person.
  store.on("profile", ({ person }) => {
    els.list.querySelectorAll("li.message").forEach((li) => {
      if (li.dataset.user === person.username) {
        showPerson(li, person);
      }
    });
  });

  // --- scrolling ---------------------------------------------------------------

  function isNearBottom() {
    const pane = els.pane;
    return pane.scrollHeight - pane.scrollTop - pane.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    els.pane.scrollTop = els.pane.scrollHeight;
    stickToBottom = true;
    showNewBelow(false);
  }

  /* The "New messages" pill: news arrived below while the person reads further up. */
  function showNewBelow(shown) {
    if (els.newBelow && els.newBelow.hidden === shown) {
      els.newBelow.hidden = !shown;
    }
  }

  // --- reading layout: date dividers, author runs, long messages ------------------

  function messageItem(node, step) {
    let next = node ? node[step] : null;
    while (next && !next.matches("li.message")) {
      next = next[step];
    }
    return next;
  }

  function facts(li) {
    const time = li.querySelector(".message-time");
    return { user: li.dataset.user, created: time ? time.getAttribute("datetime") : null };
  }

  /* A message's date divider and whether it continues the run above, from its neighbour above. */
  function layoutOne(li) {
    if (!li) {
      return;
    }
    const above = messageItem(li, "previousElementSibling");
    const previous = above ? facts(above) : null;
    const here = facts(li);
    let day = li.querySelector(":scope > .day-divider");
    if (startsDay(previous, here)) {
      if (!day) {
        day = el("div", "day-divider");
        day.appendChild(el("span", "day-divider-label"));
        li.prepend(day);
      }
      day.firstChild.textContent = dayLabel(here.created);
    } else if (day) {
      day.remove();
    }
    const newRun = li.querySelector(":scope > .unread-divider") || !continues(previous, here);
    li.classList.toggle("is-continuation", !newRun);
  }

  /* Lay out `li` and the message below it (whose neighbour above it is). */
  function layoutAround(li) {
    layoutOne(li);
    layoutOne(messageItem(li, "nextElementSibling"));
  }

  function relabelDays() {
    els.list.querySelectorAll("li.message > .day-divider").forEach((day) => {
      day.firstChild.textContent = dayLabel(facts(day.parentElement).created);
    });
  }

  /* Fold the bodies of `items` taller than LONG_MESSAGE_PX (measured all first, then changed). */
  function foldLong(items) {
    const tall = items.filter((li) => {
      const body = li.querySelector(".message-body");
      return li.dataset.id && body && !body.hidden && body.scrollHeight > LONG_MESSAGE_PX;
    });
    items.forEach((li) => {
      const toggle = li.querySelector(".message-fold");
      if (toggle && !tall.includes(li)) {
        toggle.remove();
        li.classList.remove("is-folded");
      }
    });
    tall.forEach((li) => {
      if (li.querySelector(".message-fold")) {
        return;
      }
      const body = li.querySelector(".message-body");
      body.id = "m-" + li.dataset.id + "-body";
      const toggle = button("message-fold", "Show more");
      toggle.setAttribute("aria-expanded", "false");
      toggle.setAttribute("aria-controls", body.id);
      body.after(toggle);
      li.classList.add("is-folded");
    });
  }

  function toggleFold(toggle) {
    const li = toggle.closest("li.message");
    const folded = !li.classList.toggle("is-folded");
    toggle.textContent = folded ? "Show less" : "Show more";
    toggle.setAttribute("aria-expanded", folded ? "true" : "false");
    if (!folded) {
      li.scrollIntoView({ block: "nearest" });
    }
  }

  // --- the list ------------------------------------------------------------------

  // Sent messages stay in id order; unsent (pending/failed) ones stay below them.
  function insertSent(li, id) {
    let node = els.list.lastElementChild;
    while (node) {
      const nodeId = node.getAttribute("data-id");
      if (nodeId !== null && Number(nodeId) < id) {
        break;
      }
      node = node.previousElementSibling;
    }
    if (node) {
      node.after(li);
    } else {
      els.list.prepend(li);
    }
  }

  function updateEmpty() {
    if (els.empty) {
      els.empty.hidden = !!els.list.querySelector("li.message");
    }
  }

  /* Show (or refresh) a message of this room held by the store. */
  function place(message, acked) {
    if (typeof message.id !== "number") {
      return;
    }
    const existing = byId.get(message.id);
    if (existing) {
      updateMessage(existing, message, me);
      return;
    }
    let li = acked ? pending.get(acked.nonce) : undefined;
    let below = null; // where a pending message was: the one below it has a new neighbour
    if (li) {
      below = messageItem(li, "nextElementSibling");
      pending.delete(acked.nonce);
      li.remove();
      markSent(li, message, me);
    } else {
      li = drawMessage(message, "sent");
    }
    insertSent(li, message.id);
    byId.set(message.id, li);
    layoutOne(below);
    layoutAround(li);
    foldLong([li]);
  }

  /* The store's "message" event. */
  function onMessage({ message, here, isNew, acked, unseen, typingChanged }) {
    if (!here) {
      if (unseen) {
        ctx.notifications.maybeNotify(message);
      }
      return;
    }
    const stick = isNearBottom() || stickToBottom;
    place(message, acked);
    updateEmpty();
    if (stick) {
      scrollToBottom();
    } else if (isNew && message.user !== me) {
      showNewBelow(true);
    }
    if (typingChanged) {
      ctx.composer.renderTyping();
    }
    if (message.user === me) {
      return;
    }
    if (unseen) {
      if (!divider) {
        placeDividerBefore(byId.get(message.id));
      }
      ctx.notifications.maybeNotify(message);
    }
    scheduleRead();
  }

  function onEdited({ message, changes }) {
    const li = byId.get(message.id);
    if (!li) {
      return;
    }
    li.classList.remove("is-saving");
    ctx.actions.editedElsewhere(li);
    updateMessage(li, changes, me);
    foldLong([li]);
  }

  function onReaction({ id, emoji, users }) {
    const li = byId.get(id);
    if (li) {
      setReaction(li, emoji, users, me);
    }
  }

  function onRemoved({ id }) {
    const li = byId.get(id);
    if (!li) {
      return;
    }
    ctx.actions.forget(li);
    const hadFocus = li.contains(document.activeElement);
    const below = messageItem(li, "nextElementSibling");
    const hadDivider = divider && li.contains(divider);
    li.remove();
    byId.delete(id);
    if (hadDivider) {
      divider = null;
      // The divider stays above the next message, as it did above this one.
      const next = below && below.matches("li.message[data-id]") ? below : null;
      if (next) {
        placeDividerBefore(next);
      }
    }
    layoutOne(below);
    updateEmpty();
    if (hadFocus && els.input && !els.input.disabled) {
      els.input.focus();
    }
  }

  /* A message typed here, below the stored ones until the server stores it. */
  function addPending(entry) {
    const li = drawMessage(entry, "pending");
    els.list.appendChild(li);
    layoutOne(li);
    pending.set(entry.nonce, li);
    updateEmpty();
    scrollToBottom();
  }

  /* An outbox entry changed: pending again, or failed with its reason and a Retry button. */
  function paintOutbox({ entry }) {
    const li = pending.get(entry.nonce);
    if (!li) {
      return;
    }
    if (entry.state === "failed") {
      li.dataset.state = "failed";
      setFailure(li, entry.reason);
    } else {
      clearFailure(li);
      li.dataset.state = "pending";
    }
  }

  // --- the "New messages" divider ---------------------------------------------

  function removeDivider() {
    if (divider) {
      const li = divider.parentElement;
      divider.remove();
      divider = null;
      layoutOne(li);
    }
  }

  /* The divider goes inside the message's item (after its date divider, if any), above its text. */
  function placeDividerBefore(li) {
    removeDivider();
    divider = el("div", "unread-divider");
    divider.appendChild(el("span", "unread-divider-label", "New messages"));
    const day = li.querySelector(":scope > .day-divider");
    if (day) {
      day.after(divider);
    } else {
      li.prepend(divider);
    }
    layoutOne(li);
  }

  /* Put the divider at the first message by someone else after `marker`. */
  function placeDivider(marker) {
    removeDivider();
    for (const li of els.list.querySelectorAll("li.message[data-id]")) {
      if (Number(li.dataset.id) > marker && li.dataset.user !== me) {
        placeDividerBefore(li);
        return;
      }
    }
  }

  // --- reading -------------------------------------------------------------------

  /* Move the read marker to the newest message while the room is in view (at most once a second). */
  function scheduleRead() {
    if (!store.isMember || autoReadPaused || ctx.socket.isSignedOut() || !roomVisible()) {
      return;
    }
    const target = store.lastId;
    if (!target || target <= store.marker || target === readSentId) {
      return;
    }
    const wait = readSentAt + READ_EVERY_MS - Date.now();
    if (wait > 0) {
      if (!readTimer) {
        readTimer = setTimeout(() => {
          readTimer = null;
          scheduleRead();
        }, wait);
      }
      return;
    }
    const again = () => {
      if (readSentId === target) {
        readSentId = 0;
        scheduleRead();
      }
    };
    if (ctx.socket.hint({ type: "read", room: store.room, id: target }, again)) {
      readSentId = target;
      readSentAt = Date.now();
    }
  }

  /* The server moved this room's marker (a `read` event), or a new socket starts over. */
  function forgetReadSent() {
    readSentId = 0;
  }

  /* Move the marker back; refused as too many, again a little later unless the page read on since. */
  function sendUnreadMarker(marker) {
    return ctx.socket.hint({ type: "read", room: store.room, id: marker }, () => {
      if (autoReadPaused) {
        sendUnreadMarker(marker);
      }
    });
  }

  function markUnreadFrom(li) {
    const id = Number(li.dataset.id);
    if (!sendUnreadMarker(id - 1)) {
      showNotice("Not connected. Try again when the connection is back.");
      return;
    }
    // Stay unread while here; posting or coming back later reads it again.
    autoReadPaused = true;
    readSentId = 0;
    placeDivider(id - 1);
    announce("Marked as unread from this message.");
  }

  function resumeAutoRead() {
    autoReadPaused = false;
  }

  /* Escape: everything here is read now, even after "mark unread from here". */
  function markAllRead() {
    if (!store.isMember) {
      return;
    }
    autoReadPaused = false;
    readSentId = 0;
    readSentAt = 0;
    removeDivider();
    scheduleRead();
  }

  // --- history API ---------------------------------------------------------

  async function fetchHistory(params) {
    const url = new URL(config.historyUrl, window.location.href);
    Object.keys(params).forEach((key) => url.searchParams.set(key, String(params[key])));
    const response = await fetch(url.toString(), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      throw new HttpError(response.status);
    }
    const data = await response.json();
    if (!data || !Array.isArray(data.messages)) {
      throw new Error("unexpected history response");
    }
    return data.messages;
  }

  /* One message as stored now (for editing one whose text this page does not hold). */
  async function fetchOne(id) {
    const page = await fetchHistory({ after: id - 1, before: id + 1, limit: 1 });
    return page.find((item) => item.id === id) || null;
  }

  /* Older messages above the ones shown; keeps what the user is looking at in place. */
  function prependPage(page) {
    const pane = els.pane;
    const fromBottom = pane.scrollHeight - pane.scrollTop;
    const fragment = document.createDocumentFragment();
    const added = store.addOlder(page).map((m) => {
      const li = drawMessage(m, "sent");
      fragment.appendChild(li);
      byId.set(m.id, li);
      return li;
    });
    const formerFirst = els.list.firstElementChild;
    els.list.prepend(fragment);
    added.forEach(layoutOne);
    layoutOne(formerFirst);
    foldLong(added);
    pane.scrollTop = pane.scrollHeight - fromBottom;
    updateEmpty();
  }

  async function loadOlder() {
    const trigger = els.older;
    if (!trigger || trigger.hidden || loadingOlder) {
      return;
    }
    if (store.oldestId === null) {
      trigger.hidden = true;
      return;
    }
    loadingOlder = true;
    trigger.disabled = true;
    trigger.textContent = "Loading…";
    try {
      const page = await fetchHistory({ before: store.oldestId, limit: pageSize, in_room: 1 });
      prependPage(page);
      if (page.length < pageSize) {
        trigger.hidden = true;
      }
    } catch (err) {
      if (isAuthError(err)) {
        ctx.socket.sessionEnded();
      } else {
        showNotice("Could not load older messages. Try again.");
      }
    } finally {
      loadingOlder = false;
      trigger.disabled = false;
      trigger.textContent = "Load older messages";
    }
  }

  // --- jumping to a message (?m=<id>, #m-<id>) ---------------------------------

  function highlight(li) {
    els.list.querySelectorAll("li.is-target").forEach((node) => node.classList.remove("is-target"));
    li.classList.add("is-target");
    stickToBottom = false;
    li.scrollIntoView({ block: "center" });
    li.tabIndex = -1;
    li.focus({ preventScroll: true });
  }

  async function goToMessage(id) {
    if (!Number.isSafeInteger(id) || id <= 0) {
      return;
    }
    let li = byId.get(id);
    if (!li && store.oldestId !== null && id < store.oldestId) {
      // Everything from the message up to what is shown, so no gap opens.
      try {
        const found = [];
        let after = id - 1;
        for (let i = 0; i < JUMP_MAX_PAGES; i++) {
          const page = await fetchHistory({ after, before: store.oldestId, limit: JUMP_PAGE, in_room: 1 });
          found.push(...page);
          if (page.length < JUMP_PAGE) {
            break;
          }
          after = page[page.length - 1].id;
        }
        prependPage(found);
      } catch (err) {
        if (isAuthError(err)) {
          ctx.socket.sessionEnded();
        } else {
          showNotice("Could not load that message. Try again.");
        }
        return;
      }
      li = byId.get(id);
    }
    if (!li) {
      // Not in the room's list: a reply in its thread opens there.
      if (!(await ctx.threads.goToReply(id))) {
        showNotice("That message is not available: it may have been deleted.");
      }
      return;
    }
    highlight(li);
  }

  function targetFromLocation() {
    const hash = /^#m-(\d{1,18})$/.exec(window.location.hash);
    if (hash) {
      return Number(hash[1]);
    }
    const param = new URLSearchParams(window.location.search).get("m");
    return param && /^\d{1,18}$/.test(param) ? Number(param) : null;
  }

  // --- start ---------------------------------------------------------------------

  /* The first page (sent as data with the page), then where the person starts reading. */
  function start() {
    const fragment = document.createDocumentFragment();
    const items = store.messageList().map((m) => {
      const li = drawMessage(m, "sent");
      fragment.appendChild(li);
      byId.set(m.id, li);
      return li;
    });
    els.list.replaceChildren(fragment);
    items.forEach(layoutOne);
    foldLong(items);
    updateEmpty();
    if (store.isMember && config.lastReadId !== null && config.lastReadId !== undefined) {
      placeDivider(config.lastReadId);
    }

    if (els.older) {
      els.older.addEventListener("click", loadOlder);
    }
    els.pane.addEventListener(
      "scroll",
      () => {
        stickToBottom = isNearBottom();
        if (stickToBottom) {
          showNewBelow(false);
        }
        ctx.actions.closeMenus(false);
        if (els.pane.scrollTop < 40 && els.older && !els.older.hidden) {
          loadOlder();
        }
      },
      { passive: true }
    );
    if (window.ResizeObserver) {
      // Keep the newest message in view when the pane shrinks (composer grows,
      // phone keyboard opens) or the list grows while the user was at the bottom.
      const resizer = new ResizeObserver(() => {
        if (stickToBottom) {
          els.pane.scrollTop = els.pane.scrollHeight;
        }
      });
      resizer.observe(els.pane);
      resizer.observe(els.list);
    }
    window.addEventListener("hashchange", () => {
      const target = targetFromLocation();
      if (target) {
        goToMessage(target);
      }
    });
    document.addEventListener("visibilitychange", scheduleRead);
    window.addEventListener("focus", scheduleRead);
    // "Today" becomes "Yesterday" overnight: say it right when the person comes back.
    window.addEventListener("focus", relabelDays);
    els.list.addEventListener("click", (event) => {
      const toggle = event.target instanceof Element ? event.target.closest("button.message-fold") : null;
      if (toggle) {
        toggleFold(toggle);
      }
    });
    if (els.newBelow) {
      els.newBelow.addEventListener("click", () => {
        scrollToBottom();
        els.pane.focus({ preventScroll: true });
      });
    }

    scrollToBottom();
    const target = targetFromLocation();
    if (target) {
      goToMessage(target);
    } else if (divider) {
      // Start at the first unread message when it would be out of view.
      const offset = divider.getBoundingClientRect().top - els.pane.getBoundingClientRect().top;
      if (offset < 0) {
        els.pane.scrollTop += offset - 48;
        stickToBottom = isNearBottom();
      }
    }
    window.addEventListener("load", () => {
      if (stickToBottom) {
        scrollToBottom();
      }
    });
    return target;
  }

  store.on("message", onMessage);
  store.on("message-edited", onEdited);
  store.on("reaction", onReaction);
  store.on("message-removed", onRemoved);
  store.on("outbox", paintOutbox);
  store.on("read", ({ room }) => {
    if (room === store.room) {
      forgetReadSent();
    }
  });

  return {
    start,
    addPending,
    fetchOne,
    goToMessage,
    markUnreadFrom,
    markAllRead,
    resumeAutoRead,
    forgetReadSent,
    scheduleRead,
    li: (id) => byId.get(id),
  };
}
