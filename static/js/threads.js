/*
 * Threads on the room page: the thread panel beside the room (a root, its
 * replies from the history API's ?thread= and live, its own composer with
 * "Also send to", Follow/Unfollow, the thread's read marker), the roots'
 * "N replies" bars and "replied to a thread" links in the room that open
 * it, the "Threads" view of followed threads (GET /api/threads/), and the
 * sidebar's signs of thread activity. State lives in store.threads
 * (threadstore.js); messages are drawn by render.js.
 *
 * A thread opens from the room, from the Threads view, or from the address
 * (/r/<slug>/?thread=<root>, which the Threads view uses for other rooms).
 */
import { api, el, roomUrl } from "./common.js";
import { createCompletion } from "./completion.js";
import { parseTyped } from "./commands.js";
import { makeNonce, tooLong, touchKeyboard } from "./composer.js";
import { roomVisible } from "./messages.js";
import { clearFailure, markSent, renderMessage, setFailure, setReaction, showPerson, updateMessage } from "./render.js";
import { roomTitle } from "./store.js";
import { DELETED_TEXT, repliesText, replyTime } from "./threadmarks.js";
import { announce, els, showNotice } from "./ui.js";

const PAGE = 50;
const READ_EVERY_MS = 1000;
const NEAR_BOTTOM_PX = 80;
const LIST_PAGES_MAX = 20; // followed threads loaded for the Threads view: at most this many pages
const SNIPPET_CHARS = 140;

const $ = (id) => document.getElementById(id);

function snippet(text) {
  const chars = Array.from(String(text || "").replace(/\s+/g, " ").trim());
  return chars.length <= SNIPPET_CHARS ? chars.join("") : chars.slice(0, SNIPPET_CHARS - 1).join("") + "…";
}

function threadUrl(slug, root) {
  return roomUrl(slug) + "?thread=" + encodeURIComponent(String(root));
}

export function setupThreads(ctx) {
  const { config, store } = ctx;
  const me = store.me;
  const threads = store.threads;
  const panel = $("thread-panel");
  const view = $("threads-view");
  const ui = {
    where: $("thread-where"),
    follow: $("thread-follow"),
    close: $("thread-close"),
    status: $("thread-status"),
    scroll: $("thread-scroll"),
    root: $("thread-root"),
    count: $("thread-count"),
    older: $("thread-older"),
    replies: $("thread-replies"),
    form: $("thread-composer"),
    input: $("thread-input"),
    mentionList: $("thread-mention-list"),
    inChannel: $("thread-in-channel"),
    alsoWhere: $("thread-also-where"),
    send: $("thread-send"),
    failed: $("thread-failed"),
    failedText: $("thread-failed-text"),
    retry: $("thread-retry"),
    note: $("thread-note"),
    conflict: $("thread-draft-conflict"),
    useTheirs: $("thread-draft-use-theirs"),
    keepMine: $("thread-draft-keep-mine"),
    viewButton: $("threads-button"),
    viewTotal: $("threads-total"),
    viewTotalText: $("threads-total-text"),
    viewClose: $("threads-view-close"),
    viewStatus: $("threads-view-status"),
    list: $("threads-list"),
  };
  if (!panel || !view) {
    return { start() {}, open() {}, close() {}, canReplyTo: () => false, goToReply: async () => false, inPanel: () => false, input: null };
  }
  // "@" and ":" completion, as in the room's composer.
  const completion = ui.mentionList ? createCompletion(ctx, { input: ui.input, list: ui.mentionList, idPrefix: "thread-mention-option-", onPicked: keepDraft }) : null;
  const byId = new Map(); // id -> li of the open thread (the root too)
  const pending = new Map(); // nonce -> li of a reply typed here, not stored yet
  let opener = null; // what had the focus before the panel opened: it gets it back
  let highlightId = null; // a reply to show once loaded (?m=, a notification)
  let loading = null; // the root being loaded
  let readSentId = 0;
  let readSentAt = 0;
  let readTimer = null;
  let listLoading = null; // the promise of a /api/threads/ load under way
  let listStale = false;

  // --- drawing ---------------------------------------------------------------------

  function draw(m, state) {
    const li = renderMessage(m, state, me);
    showPerson(li, store.people.get(m.user));
    ownId(li);
    return li;
  }

  /* The room's list has its own item of the root (and of replies sent also to the room): ids stay unique. */
  function ownId(li) {
    if (li.dataset.id) {
      li.id = "thread-m-" + li.dataset.id;
    }
  }

  function nearBottom() {
    return ui.scroll.scrollHeight - ui.scroll.scrollTop - ui.scroll.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    ui.scroll.scrollTop = ui.scroll.scrollHeight;
  }

  /* Sent replies in id order; unsent ones below them. */
  function insertSent(li, id) {
    let node = ui.replies.lastElementChild;
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
      ui.replies.prepend(li);
    }
  }

  function renderCount() {
    const root = threads.rootMessage();
    const n = root && typeof root.replies === "number" ? root.replies : ui.replies.querySelectorAll("li.message[data-id]").length;
    ui.count.textContent = n ? repliesText(n) : "No replies yet";
  }

  function renderRoot() {
    const root = threads.rootMessage();
    if (!root) {
      ui.root.replaceChildren();
      return;
    }
    const li = draw(root, "sent");
    byId.set(root.id, li);
    ui.root.replaceChildren(li);
    renderCount();
  }

  /* The composer, or why there is none (not a member, archived, a deleted root). */
  function renderComposer() {
    const root = threads.rootMessage();
    const deleted = !!(root && root.deleted);
    const writable = store.canWrite() && !ctx.socket.isSignedOut() && !deleted;
    ui.form.hidden = !writable;
    ui.input.disabled = !writable;
    ui.send.disabled = !writable;
    const where = store.isChannel() ? "#" + store.roomInfo.name : "the conversation";
    ui.alsoWhere.textContent = where;
    ui.where.textContent = roomTitle(store.roomInfo, me);
    let note = "";
    if (deleted) {
      note = DELETED_TEXT + " Its thread takes no new replies.";
    } else if (store.roomDeleted) {
      note = "This room was deleted.";
    } else if (!store.canWrite()) {
      note = store.roomInfo.archived ? "This room is archived: it is read-only." : "Join the room to reply.";
    }
    ui.note.textContent = note;
    ui.note.hidden = !note || !threads.open;
  }

  function renderFollow() {
    const open = threads.open;
    const item = open ? threads.counts(open.root) : null;
    const following = !!(item && item.following);
    ui.follow.textContent = following ? "Unfollow" : "Follow";
    ui.follow.setAttribute("aria-pressed", following ? "true" : "false");
    ui.follow.title = following ? "Stop following: its replies no longer count as unread" : "Follow: count its new replies as unread";
    // Known from the Threads list, or from the thread page's own state.
    ui.follow.disabled = !store.isMember || !(threads.listed || (open && item));
  }

  function renderFailed() {
    const open = threads.open;
    const failed = open ? store.failed().filter((entry) => entry.thread === open.root).length : 0;
    ui.failed.hidden = failed === 0;
    ui.failedText.textContent = failed === 1 ? "1 reply was not sent." : failed + " replies were not sent.";
  }

  // --- the thread's draft (ctx.drafts, kept on the server like the room's) --------------

  const drafts = () => ctx.drafts || null;

  /* The open thread's draft in the box (not while the person types there: drafts.js decides). */
  function restoreDraft() {
    const open = threads.open;
    if (!open || !drafts() || ui.input.disabled) {
      return;
    }
    ui.input.value = drafts().load(store.room, open.root);
    renderConflict();
  }

  function keepDraft() {
    const open = threads.open;
    if (open && drafts()) {
      drafts().edit(store.room, open.root, ui.input.value);
    }
  }

  function flushDraft(root) {
    if (root && drafts()) {
      drafts().flush(store.room, root);
    }
  }

  function renderConflict() {
    const open = threads.open;
    const conflict = open && drafts() ? drafts().conflict(store.room, open.root) : null;
    ui.conflict.hidden = !conflict;
    if (conflict) {
      ui.conflict.querySelector(".draft-conflict-theirs").textContent = conflict.theirs;
    }
  }

  function resolveConflict(choice) {
    const open = threads.open;
    if (open && drafts()) {
      drafts().resolve(store.room, open.root, choice);
    }
    ui.input.focus();
  }

  /* A draft changed (here, in another tab, on another device): the open thread's shows. */
  function onDraft(entry, reason) {
    const open = threads.open;
    if (!open || entry.room !== store.room || Number(entry.thread) !== open.root) {
      return;
    }
    if (reason === "replaced" && ui.input.value !== entry.text && !ui.input.disabled) {
      ui.input.value = entry.text;
    }
    renderConflict();
  }

  // --- opening and closing -----------------------------------------------------------

  function setAddress(root) {
    const url = new URL(window.location.href);
    if (root) {
      url.searchParams.set("thread", String(root));
    } else {
      url.searchParams.delete("thread");
    }
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }

  async function fetchThread(root, params) {
    const url = new URL(config.historyUrl, window.location.href);
    url.searchParams.set("thread", String(root));
    url.searchParams.set("limit", String(PAGE));
    Object.keys(params || {}).forEach((key) => url.searchParams.set(key, String(params[key])));
    return api("GET", url.toString());
  }

  /*
   * Open thread `root` in the panel. `from`: the element it was opened from
   * (focus goes back to it on close); `highlight`: a reply to show.
   */
  async function open(root, { from = null, highlight = null, focus = true } = {}) {
    if (!Number.isSafeInteger(root) || root <= 0) {
      return;
    }
    highlightId = highlight;
    if (threads.isOpen(root) && !panel.hidden) {
      if (threads.open.loaded) {
        showHighlight();
      }
      if (focus) {
        focusPanel();
      }
      return;
    }
    setView(false, false);
    if (threads.open) {
      flushDraft(threads.open.root);
    }
    if (from || !panel.contains(document.activeElement)) {
      opener = from || document.activeElement;
    }
    threads.openThread(root);
    byId.clear();
    pending.clear();
    readSentId = 0;
    ui.root.replaceChildren();
    ui.replies.replaceChildren();
    ui.count.textContent = "";
    ui.older.hidden = true;
    ui.status.textContent = "Loading…";
    ui.inChannel.checked = false;
    panel.hidden = false;
    els.app.classList.add("thread-open");
    panel.dataset.root = String(root);
    // Which thread this box writes to: drafts.js keeps changes from elsewhere out of it while typing.
    ui.input.dataset.draftThread = String(root);
    setAddress(root);
    renderComposer();
    restoreDraft();
    renderFollow();
    renderFailed();
    if (focus) {
      focusPanel();
    }
    ensureListed().then(
      () => {
        renderFollow();
        scheduleRead();
      },
      () => {}
    );
    loading = root;
    let data;
    try {
      data = await fetchThread(root);
    } catch (err) {
      if (threads.isOpen(root)) {
        ui.status.textContent =
          err.status === 404 ? "This thread is not available: its message may have been deleted." : err.detail || "Could not load the thread.";
        if (err.status === 401 || err.status === 403) {
          ctx.socket.sessionEnded();
        }
      }
      return;
    } finally {
      if (loading === root) {
        loading = null;
      }
    }
    if (!threads.isOpen(root)) {
      return; // closed, or another opened meanwhile
    }
    ui.status.textContent = "";
    threads.knowState(data && data.state);
    threads.load(root, data, { pageSize: PAGE });
    renderFollow();
  }

  function focusPanel() {
    if (!ui.input.disabled && !ui.form.hidden) {
      ui.input.focus();
    } else {
      ui.close.focus();
    }
  }

  function close(refocus) {
    if (panel.hidden) {
      return;
    }
    const hadFocus = panel.contains(document.activeElement);
    ctx.actions.closeMenus(false);
    panel.querySelectorAll("li.message").forEach((li) => ctx.actions.forget(li));
    if (threads.open) {
      flushDraft(threads.open.root);
    }
    threads.closeThread();
    if (completion) {
      completion.close();
    }
    delete ui.input.dataset.draftThread;
    ui.input.value = "";
    ui.conflict.hidden = true;
    panel.hidden = true;
    delete panel.dataset.root;
    els.app.classList.remove("thread-open");
    byId.clear();
    pending.clear();
    ui.root.replaceChildren();
    ui.replies.replaceChildren();
    ui.note.hidden = true;
    clearTimeout(readTimer);
    readTimer = null;
    setAddress(null);
    if (refocus || hadFocus) {
      const back = opener && opener.isConnected ? opener : els.input && !els.input.disabled ? els.input : els.pane;
      if (back) {
        back.focus();
      }
    }
    opener = null;
  }

  // --- the thread's messages --------------------------------------------------------

  function onLoaded({ root, added, older }) {
    if (!threads.isOpen(root)) {
      return;
    }
    if (older) {
      const fromBottom = ui.scroll.scrollHeight - ui.scroll.scrollTop;
      const fragment = document.createDocumentFragment();
      added.forEach((m) => {
        const li = draw(threads.get(m.id), "sent");
        byId.set(m.id, li);
        fragment.appendChild(li);
      });
      ui.replies.prepend(fragment);
      ui.scroll.scrollTop = ui.scroll.scrollHeight - fromBottom;
    } else {
      renderRoot();
      const unsent = Array.from(pending.values());
      const items = threads.replies().map((m) => {
        const li = draw(m, "sent");
        byId.set(m.id, li);
        return li;
      });
      ui.replies.replaceChildren(...items, ...unsent);
      renderComposer();
      scrollToBottom();
      showHighlight();
    }
    ui.older.hidden = threads.open.complete;
    renderCount();
    scheduleRead();
  }

  function showHighlight() {
    if (!highlightId) {
      return;
    }
    const li = byId.get(highlightId);
    highlightId = null;
    if (!li) {
      showNotice("That reply is not available: it may have been deleted.");
      return;
    }
    panel.querySelectorAll("li.is-target").forEach((node) => node.classList.remove("is-target"));
    li.classList.add("is-target");
    li.scrollIntoView({ block: "center" });
    li.tabIndex = -1;
    li.focus({ preventScroll: true });
  }

  async function loadOlder() {
    const open = threads.open;
    if (!open || !open.loaded || open.complete || open.oldestId === null || ui.older.disabled) {
      return;
    }
    const root = open.root;
    ui.older.disabled = true;
    try {
      const data = await fetchThread(root, { before: open.oldestId });
      threads.load(root, data, { older: true, pageSize: PAGE });
    } catch (err) {
      showNotice(err.detail || "Could not load older replies. Try again.");
    } finally {
      ui.older.disabled = false;
    }
  }

  /* A reply of the open thread, live: new, ours acknowledged, or again. */
  function onThreadMessage({ message, acked }) {
    if (message.id === threads.open.root) {
      return;
    }
    const stick = nearBottom();
    const existing = byId.get(message.id);
    if (existing) {
      updateMessage(existing, message, me);
    } else {
      let li = acked ? pending.get(acked.nonce) : undefined;
      if (li) {
        pending.delete(acked.nonce);
        li.remove();
        markSent(li, message, me);
        ownId(li);
      } else {
        li = draw(message, "sent");
      }
      insertSent(li, message.id);
      byId.set(message.id, li);
    }
    renderCount();
    renderFailed();
    if (stick || message.user === me) {
      scrollToBottom();
    }
    scheduleRead();
  }

  function onThreadEdited({ message, changes }) {
    const li = byId.get(message.id);
    if (!li) {
      return;
    }
    li.classList.remove("is-saving");
    ctx.actions.editedElsewhere(li);
    updateMessage(li, changes, me);
    if (message.id === threads.open.root) {
      renderComposer();
      if (message.deleted && panel.contains(document.activeElement) && ui.form.hidden) {
        ui.close.focus();
      }
    }
  }

  function onThreadReaction({ id, emoji, users }) {
    const li = byId.get(id);
    if (li) {
      setReaction(li, emoji, users, me);
    }
  }

  function onThreadRemoved({ id }) {
    const li = byId.get(id);
    if (!li) {
      return;
    }
    const hadFocus = li.contains(document.activeElement);
    ctx.actions.forget(li);
    li.remove();
    byId.delete(id);
    renderCount();
    if (hadFocus) {
      focusPanel();
    }
  }

  /* A root's summary changed: its bar in the room, and the count in the panel. */
  function onSummary({ root, changes }) {
    const li = ctx.messages.li(root);
    if (li) {
      updateMessage(li, changes, me);
    }
    if (threads.isOpen(root)) {
      const shown = byId.get(root);
      if (shown) {
        updateMessage(shown, changes, me);
      }
      renderCount();
    }
  }

  // --- replying ----------------------------------------------------------------------

  function submit() {
    const open = threads.open;
    const root = threads.rootMessage();
    // (Sent even before the root has loaded: the server checks that it may be replied to.)
    if (!open || (root && root.deleted) || ctx.socket.isSignedOut() || !store.canWrite()) {
      return;
    }
    const typed = parseTyped(ui.input.value);
    if (typed.kind === "command") {
      // A slash command in the thread: run there (a /me or /shrug becomes a reply).
      const frame = { type: "command", room: store.room, text: ui.input.value.trim(), thread: open.root, nonce: makeNonce() };
      if (ctx.socket.send(frame)) {
        ui.input.value = "";
        if (completion) {
          completion.close();
        }
        ui.input.focus();
      } else {
        showNotice("Not connected: the command was not sent.");
      }
      return;
    }
    const text = typed.body;
    if (!text.trim()) {
      return;
    }
    if (tooLong(text, "That reply is too long")) {
      return;
    }
    const entry = store.queue(text, makeNonce(), new Date().toISOString(), [], { root: open.root, inChannel: ui.inChannel.checked });
    const li = draw(entry, "pending");
    ui.replies.appendChild(li);
    pending.set(entry.nonce, li);
    ui.input.value = "";
    if (completion) {
      completion.close();
    }
    if (drafts()) {
      drafts().sent(store.room, open.root, text, entry.nonce); // the server clears it when it stores the reply
    }
    ui.inChannel.checked = false;
    ui.input.focus();
    scrollToBottom();
    // After the ones that failed, in the order typed: sending it is sending them.
    store.retryAll();
    ctx.composer.pump();
  }

  function retry() {
    if (ctx.socket.isSignedOut()) {
      return;
    }
    store.retryAll();
    ctx.composer.pump();
    ui.input.focus();
  }

  /* A send of this thread changed: pending again, or failed with its reason (its text kept). */
  function onOutbox({ entry }) {
    const li = pending.get(entry.nonce);
    if (li) {
      if (entry.state === "failed") {
        li.dataset.state = "failed";
        setFailure(li, entry.reason);
      } else {
        clearFailure(li);
        li.dataset.state = "pending";
      }
    }
    renderFailed();
  }

  function onKey(event) {
    if (completion && completion.onKey(event)) {
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229 && !touchKeyboard()) {
      event.preventDefault();
      submit();
    }
  }

  // --- following and reading --------------------------------------------------------------

  async function toggleFollow() {
    const open = threads.open;
    if (!open) {
      return;
    }
    const root = open.root;
    const item = threads.counts(root);
    const following = !!(item && item.following);
    ui.follow.disabled = true;
    try {
      const data = await api(following ? "DELETE" : "POST", "/api/threads/" + root + "/follow/");
      threads.applyThreadRead(Object.assign({ room: store.room, root }, data));
      announce(following ? "You no longer follow this thread." : "You follow this thread.");
    } catch (err) {
      showNotice(err.detail || "Could not change following.");
    } finally {
      renderFollow();
      if (panel.contains(document.activeElement) || document.activeElement === document.body) {
        ui.follow.focus();
      }
    }
  }

  /* Move the thread's read marker to its newest reply while the panel is in view (at most once a second). */
  function scheduleRead() {
    const open = threads.open;
    if (!open || !open.loaded || panel.hidden || !roomVisible() || !ctx.socket.isReady()) {
      return;
    }
    const item = threads.counts(open.root);
    const target = threads.newestReplyId();
    if (!item || !item.following || !target || target <= (item.last_read_id || 0) || target === readSentId) {
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
    if (ctx.socket.hint({ type: "read_thread", root: open.root, id: target }, again)) {
      readSentId = target;
      readSentAt = Date.now();
    }
  }

  // --- the Threads view ----------------------------------------------------------------

  /* Every followed thread (GET /api/threads/, page after page), once; again when asked. */
  function loadList() {
    if (listLoading) {
      return listLoading;
    }
    listLoading = (async () => {
      let cursor = null;
      for (let page = 0; page < LIST_PAGES_MAX; page++) {
        const url = new URL("/api/threads/", window.location.href);
        if (cursor) {
          url.searchParams.set("cursor", cursor);
        }
        const data = await api("GET", url.toString());
        cursor = data && typeof data.next === "string" && data.next ? data.next : null;
        threads.applyList(data, { first: page === 0, complete: !cursor });
        if (!cursor) {
          break;
        }
      }
      listStale = false;
    })().finally(() => {
      listLoading = null;
    });
    return listLoading;
  }

  function ensureListed() {
    return threads.listed ? Promise.resolve() : loadList();
  }

  function threadItem(item) {
    const root = item.root;
    const entry = store.rooms.get(item.room);
    const li = el("li", "threads-item");
    const link = el("a", "thread-item");
    link.href = threadUrl(item.room, item.rootId);
    link.dataset.root = String(item.rootId);
    link.dataset.room = item.room;
    if (item.unread > 0) {
      link.classList.add("has-unread");
    }
    const where = entry ? roomTitle(entry, me) : "#" + item.room;
    const head = el("span", "thread-item-head");
    head.append(el("span", "thread-item-room", where));
    if (item.mentions > 0) {
      const badge = el("span", "mention-count", "@" + item.mentions);
      badge.setAttribute("aria-hidden", "true");
      head.append(badge);
    }
    if (item.unread > 0) {
      const badge = el("span", "unread-count", item.unread > 999 ? "999+" : String(item.unread));
      badge.setAttribute("aria-hidden", "true");
      head.append(badge);
    }
    const text = root.deleted ? DELETED_TEXT : snippet(root.body);
    const body = el("span", "thread-item-body");
    body.append(el("span", "thread-item-user", root.user), " ", el("span", "thread-item-text", text));
    const replies = typeof root.replies === "number" ? root.replies : 0;
    const when = replyTime(root.last_reply);
    const meta = el("span", "thread-item-meta", repliesText(replies) + (when ? " · last reply " + when : ""));
    const counts =
      (item.unread ? ", " + item.unread + " unread" : "") +
      (item.mentions ? ", " + item.mentions + (item.mentions === 1 ? " mention" : " mentions") : "");
    link.append(head, body, meta, el("span", "visually-hidden", counts));
    li.appendChild(link);
    return li;
  }

  function renderList() {
    if (view.hidden) {
      return;
    }
    const list = threads.list();
    const focused = document.activeElement && ui.list.contains(document.activeElement) ? document.activeElement.dataset.root : null;
    ui.list.replaceChildren(...list.map(threadItem));
    if (focused) {
      const again = ui.list.querySelector("a.thread-item[data-root='" + focused + "']");
      if (again) {
        again.focus();
      }
    }
    if (!listLoading) {
      ui.viewStatus.textContent = list.length ? "" : "No followed threads yet. Reply in a thread, or follow one, to see it here.";
    }
  }

  async function refreshList() {
    ui.viewStatus.textContent = "Loading…";
    try {
      await loadList();
      ui.viewStatus.textContent = "";
    } catch (err) {
      ui.viewStatus.textContent = err.detail || "Could not load the threads.";
      return;
    }
    renderList();
  }

  function setView(openIt, refocus) {
    if (openIt === !view.hidden) {
      return;
    }
    view.hidden = !openIt;
    ui.viewButton.setAttribute("aria-expanded", openIt ? "true" : "false");
    els.app.classList.toggle("threads-view-open", openIt);
    if (openIt) {
      close(false);
      ui.list.replaceChildren();
      refreshList();
      ui.viewClose.focus();
      if (els.app.classList.contains("sidebar-open") && els.toggle) {
        els.toggle.click(); // on a phone the drawer gives way to the list
      }
    } else if (refocus) {
      ui.viewButton.focus();
    }
  }

  function openFromList(link) {
    const root = Number(link.dataset.root);
    if (link.dataset.room === store.room) {
      setView(false, false);
      open(root, { from: ui.viewButton });
    } else {
      window.location.assign(threadUrl(link.dataset.room, root));
    }
  }

  /* The sidebar's Threads entry: the unread replies of every followed thread. */
  function renderTotals() {
    const { unread, mentions } = threads.totals();
    ui.viewTotal.hidden = unread === 0;
    ui.viewTotal.textContent = unread > 999 ? "999+" : String(unread);
    ui.viewButton.classList.toggle("has-unread", unread > 0);
    ui.viewTotalText.textContent =
      (unread ? ", " + unread + " unread" : "") + (mentions ? ", " + mentions + (mentions === 1 ? " mention" : " mentions") : "");
  }

  /* A room's link in the sidebar shows that its threads have unread replies. */
  function renderRoomActivity(entry) {
    if (!entry || !els.rooms) {
      return;
    }
    const link = els.rooms.querySelector("a.room-link[data-room='" + CSS.escape(entry.slug) + "']");
    if (!link) {
      return;
    }
    const unread = entry.thread_unread || 0;
    const mentions = entry.thread_mentions || 0;
    let mark = link.querySelector(".thread-activity");
    let words = link.querySelector(".room-thread-status");
    if (!unread) {
      if (mark) {
        mark.remove();
      }
      if (words) {
        words.remove();
      }
      return;
    }
    if (!mark) {
      mark = el("span", "thread-activity");
      mark.setAttribute("aria-hidden", "true");
      link.insertBefore(mark, link.querySelector(".mention-count, .unread-count, .room-status"));
      words = el("span", "visually-hidden room-thread-status");
      link.appendChild(words);
    }
    mark.classList.toggle("has-mention", mentions > 0);
    mark.textContent = (mentions ? "@" : "") + "↳" + (unread > 99 ? "99+" : unread);
    mark.title = unread + (unread === 1 ? " unread reply" : " unread replies") + " in threads" + (mentions ? ", " + mentions + " mentioning you" : "");
    words.textContent = ", " + unread + " unread in threads" + (mentions ? ", " + mentions + (mentions === 1 ? " mention" : " mentions") + " in threads" : "");
  }

  // --- clicks and keys -------------------------------------------------------------------

  /* The room's list: a root's "N replies" bar or a reply's "replied to a thread" link. */
  function onRoomClick(event) {
    const target = event.target instanceof Element ? event.target.closest("button.thread-summary, button.thread-link") : null;
    if (target && target.dataset.root) {
      open(Number(target.dataset.root), { from: target });
    }
  }

  /* The panel's messages: the author (profile card) and files (viewer); actions.js does the rest. */
  function onPanelClick(event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    const person = target.closest(".message-user, .message-avatar");
    const li = person ? person.closest("li.message") : null;
    if (li && li.dataset.user && ctx.profileCard) {
      ctx.profileCard.open(li.dataset.user);
      return;
    }
    const file = target.closest("button.attachment-open");
    if (file && ctx.viewer) {
      ctx.viewer.open(file);
    }
  }

  function onPanelKey(event) {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      event.stopPropagation();
      close(true);
    }
  }

  function onViewKey(event) {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      event.stopPropagation();
      setView(false, true);
    }
  }

  /* A top-level message (not a placeholder) of this room, in the room's list. */
  function canReplyTo(li) {
    return !!li && !!li.dataset.id && !li.dataset.thread && !li.classList.contains("is-deleted") && !panel.contains(li);
  }

  function inPanel(node) {
    return !!node && panel.contains(node);
  }

  /*
   * A message not in the room's list (?m=<id>, a notification): if it is a
   * reply, its thread opens on it. Returns whether it was.
   */
  async function goToReply(id) {
    let page;
    try {
      page = await api("GET", new URL(config.historyUrl + "?after=" + (id - 1) + "&before=" + (id + 1) + "&limit=1", window.location.href).toString());
    } catch (err) {
      return false;
    }
    const found = (page.messages || []).find((m) => m.id === id);
    if (!found || typeof found.thread !== "number") {
      return false;
    }
    open(found.thread, { highlight: id });
    return true;
  }

  function start() {
    els.list.addEventListener("click", onRoomClick);
    ctx.actions.bind(panel);
    panel.addEventListener("click", onPanelClick);
    panel.addEventListener("keydown", onPanelKey);
    view.addEventListener("keydown", onViewKey);
    ui.close.addEventListener("click", () => close(true));
    ui.follow.addEventListener("click", toggleFollow);
    ui.older.addEventListener("click", loadOlder);
    ui.retry.addEventListener("click", retry);
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    ui.input.addEventListener("keydown", onKey);
    ui.input.addEventListener("input", () => {
      keepDraft();
      if (completion) {
        completion.update();
      }
    });
    if (completion) {
      completion.start();
    }
    // Leaving the box: saved now rather than after the pause.
    ui.input.addEventListener("blur", () => flushDraft(threads.open ? threads.open.root : null));
    ui.useTheirs.addEventListener("click", () => resolveConflict("theirs"));
    ui.keepMine.addEventListener("click", () => resolveConflict("mine"));
    if (drafts()) {
      drafts().on(onDraft);
    }
    ui.send.addEventListener("mousedown", (event) => event.preventDefault());
    ui.viewButton.addEventListener("click", () => setView(view.hidden, true));
    ui.viewClose.addEventListener("click", () => setView(false, true));
    ui.list.addEventListener("click", (event) => {
      const link = event.target instanceof Element ? event.target.closest("a.thread-item") : null;
      if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
        event.preventDefault();
        openFromList(link);
      }
    });
    document.addEventListener("visibilitychange", scheduleRead);
    window.addEventListener("focus", scheduleRead);
    store.rooms.forEach(renderRoomActivity);
    renderTotals();
    const param = new URLSearchParams(window.location.search).get("thread");
    if (param && /^\d{1,18}$/.test(param)) {
      const m = new URLSearchParams(window.location.search).get("m");
      open(Number(param), { highlight: m && /^\d{1,18}$/.test(m) ? Number(m) : null });
    }
  }

  store.on("thread-loaded", onLoaded);
  store.on("thread-message", onThreadMessage);
  store.on("thread-edited", onThreadEdited);
  store.on("thread-reaction", onThreadReaction);
  store.on("thread-removed", onThreadRemoved);
  store.on("thread-summary", onSummary);
  store.on("outbox", onOutbox);
  // Our reply stored: the draft it was sent from is settled (the server's clear follows).
  store.on("message", ({ message }) => {
    if (drafts() && message.user === me && message.nonce && typeof message.thread === "number" && message.room === store.room) {
      drafts().settle(store.room, message.thread, message);
    }
  });
  store.on("thread-counts", ({ root, item }) => {
    if (threads.isOpen(root)) {
      readSentId = 0;
      renderFollow();
      scheduleRead();
    }
    if (item.following && !item.root) {
      listStale = true;
    }
  });
  store.on("threads-list", () => {
    if (!view.hidden && listStale && !listLoading && threads.missingRoots()) {
      refreshList();
      return;
    }
    renderList();
  });
  store.on("counts", ({ entry }) => {
    renderRoomActivity(entry);
    renderTotals();
  });
  store.on("room", ({ entry }) => renderRoomActivity(entry));
  store.on("room-removed", renderTotals);
  store.on("membership", () => {
    renderComposer();
    renderFollow();
  });
  store.on("room-info", renderComposer);
  store.on("resumed", () => {
    readSentId = 0;
    scheduleRead();
  });
  store.on("profile", ({ person }) => {
    panel.querySelectorAll("li.message").forEach((li) => {
      if (li.dataset.user === person.username) {
        showPerson(li, person);
      }
    });
  });
  // Labels of rooms in the list follow renames.
  store.on("room", () => renderList());

  return { start, open, close, canReplyTo, inPanel, goToReply, input: ui.input };
}
