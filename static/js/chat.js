/*
 * TeamChat browser client: the room page.
 *
 * One WebSocket per tab carries every room of the user. The page is rendered
 * at a log position (`seq`); the socket resumes from the highest `seq` this
 * page has applied, so the server replays everything missed (page load,
 * outages) from its event log before going live, then sends `resumed` with
 * its own unread counts. Every event is applied idempotently: by message id,
 * by reaction (id, emoji), by room slug. See docs/protocol.md.
 *
 * User text reaches the DOM through textContent only. The one exception is
 * a message's `html`, which the server renders from Markdown and sanitizes
 * (chat.formatting): it goes in through setSanitizedHtml() and nowhere else.
 */
(() => {
  "use strict";

  const TC = window.TeamChat;
  const configEl = document.getElementById("chat-config");
  if (!configEl || !TC) {
    return;
  }
  const config = JSON.parse(configEl.textContent);
  const { el, api, roomUrl } = TC;

  const ROOM = config.room;
  const ME = config.user;
  const DEFAULT_ROOM = "general";
  const PAGE_SIZE = config.pageSize || 50;
  const JUMP_PAGE = 200;
  const JUMP_MAX_PAGES = 50;
  const SEND_TIMEOUT_MS = 10000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const STABLE_AFTER_MS = 10000;
  const NEAR_BOTTOM_PX = 80;
  const NOTICE_MS = 6000;
  const BODY_MAX_CHARS = 10000;
  const CLOSE_SESSION_ENDED = 4401;
  const CLOSE_RELOAD = 4410; // too far behind to catch up over the socket
  const READ_EVERY_MS = 1000;
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 5000;
  const IDLE_AFTER_MS = 5 * 60 * 1000;
  const HINT_RETRY_MS = 2000;
  const HINTS_KEPT = 64;
  const PRESENCE_STATES = new Set(["online", "away", "offline"]);
  const PRESENCE_FOLLOW_MAX = 1000; // the most people one socket may follow
  const NOTIFY_BODY_CHARS = 200;
  const EMOJI = [
    ["👍", "thumbs up"],
    ["❤️", "heart"],
    ["😂", "laughing"],
    ["🎉", "party"],
    ["😮", "surprised"],
    ["😢", "sad"],
    ["👀", "eyes"],
    ["✅", "done"],
  ];

  const $ = (id) => document.getElementById(id);
  const els = {
    app: $("app"),
    status: $("connection-status"),
    announcer: $("status-announcer"),
    notice: $("notice"),
    pane: $("message-pane"),
    list: $("messages"),
    empty: $("empty-note"),
    older: $("load-older"),
    form: $("composer"),
    input: $("composer-input"),
    send: $("composer-send"),
    mentionList: $("mention-list"),
    note: $("composer-note"),
    noteText: $("composer-note-text"),
    join: $("join-button"),
    typing: $("typing-indicator"),
    rooms: $("rooms"),
    channelList: $("channel-list"),
    dmList: $("dm-list"),
    toggle: $("sidebar-toggle"),
    sidebar: $("sidebar"),
    backdrop: $("sidebar-backdrop"),
    roomName: $("room-name"),
    topic: $("room-topic"),
    archivedBadge: $("archived-badge"),
    membersButton: $("members-button"),
    inviteButton: $("invite-button"),
    settingsButton: $("room-settings-button"),
    leaveButton: $("leave-button"),
    memberPanel: $("member-panel"),
    memberHeading: $("member-panel-heading"),
    memberStatus: $("member-panel-status"),
    memberList: $("member-list"),
    memberClose: $("member-panel-close"),
    notifyButton: $("notifications-button"),
    createDialog: $("create-room-dialog"),
    dmDialog: $("dm-dialog"),
    inviteDialog: $("invite-dialog"),
    settingsDialog: $("room-settings-dialog"),
    archiveButton: $("archive-button"),
    confirmDialog: $("confirm-dialog"),
  };

  // --- state ---------------------------------------------------------------

  const roomInfo = Object.assign(
    { slug: ROOM, name: config.roomName, topic: "", kind: config.roomKind, private: false, archived: false },
    config.roomData || {}
  );
  const canManage = !!config.canManage;
  const isModerator = !!config.isModerator;
  let isMember = !!config.isMember;
  let leftNote = ""; // why this user may no longer post here (removed, left)
  let currentMarker = config.lastReadId || 0; // the server's read marker for this room
  let lastSeq = typeof config.seq === "number" ? config.seq : 0;

  const sidebar = new Map(); // slug -> {slug, name, topic, kind, private, archived, unread, mentions, last_read_id, members}
  const byId = new Map(); // message id -> li (this room)
  const rawBodies = new Map(); // message id -> body text, for editing
  const outbox = new Map(); // nonce -> {nonce, body, li, timer, sentOn}
  const pendingActions = new Map(); // nonce -> {kind, id, revert}
  const hints = new Map(); // nonce -> what to do again when the server refused it as too many (or null)
  const typers = new Map(); // username -> time their indicator expires
  const presenceOf = new Map(); // username -> online | away | offline (absent: not known)
  let following = new Set(); // the usernames this socket follows, as last sent
  let followingKey = null; // the same as sent (null: to be sent again, whatever it is)
  let followTimer = null;
  let members = null; // Set of usernames once the member list was loaded
  let lastId = 0; // highest message id shown
  let oldestId = null; // smallest message id shown
  let divider = null;

  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let countdownTimer = null;
  let stableTimer = null;
  let reconnectAt = 0;
  let catchingUp = false; // between open and `resumed`: the server is replaying
  let refreshAfterResume = false;
  let signedOut = false;
  let leaving = false;
  let loadingOlder = false;
  let stickToBottom = true;
  let baseTitle = document.title;
  let noticeTimer = null;
  let lastStatusState = null;

  let readSentId = 0;
  let readSentAt = 0;
  let readTimer = null;
  let autoReadPaused = false; // after "mark unread from here"
  let typingSentAt = 0;
  let hintCount = 0;
  let typingTimer = null;
  let presenceSent = "active";
  let idle = false;
  let idleTimer = null;
  let lastActivity = 0;
  let editing = null;
  let openMenu = null;

  const canWrite = () => isMember && !roomInfo.archived;
  const isChannel = () => roomInfo.kind !== "dm";
  const roomApi = (suffix) => "/api/rooms/" + encodeURIComponent(ROOM) + "/" + (suffix || "");

  // --- small helpers -------------------------------------------------------

  function pad2(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function codePoints(text) {
    return Array.from(text).length;
  }

  function truncate(text, max) {
    const chars = Array.from(text);
    return chars.length <= max ? text : chars.slice(0, max - 1).join("") + "…";
  }

  function makeNonce() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return "c-" + window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "c-" + Array.from(bytes, (b) => ("0" + b.toString(16)).slice(-2)).join("");
  }

  function hashString(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) {
      h = (h * 31 + text.charCodeAt(i)) | 0;
    }
    return Math.abs(h);
  }

  function firstLetter(name) {
    return (Array.from(name || "?")[0] || "?").toUpperCase();
  }

  function fullTime(iso) {
    const date = new Date(iso);
    if (isNaN(date.getTime())) {
      return iso;
    }
    try {
      return date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
    } catch (err) {
      return date.toLocaleString();
    }
  }

  function formatTime(timeEl, iso) {
    const date = new Date(iso);
    timeEl.setAttribute("datetime", iso);
    if (isNaN(date.getTime())) {
      return;
    }
    timeEl.textContent = pad2(date.getHours()) + ":" + pad2(date.getMinutes());
    timeEl.title = fullTime(iso);
  }

  function button(className, text, label) {
    const node = el("button", className, text);
    node.type = "button";
    if (label) {
      node.setAttribute("aria-label", label);
    }
    return node;
  }

  /*
   * The one way markup enters this page: `html` is a message as the server
   * rendered it from Markdown and sanitized it (chat.formatting, an nh3
   * allowlist). Never pass anything else here; user text goes in as text.
   */
  function setSanitizedHtml(node, html) {
    node.innerHTML = String(html).replace(/\s+$/, "");
  }

  /* The other people in a conversation: as the server listed them, else as its name lists them. */
  function dmOthers(room) {
    if (Array.isArray(room.members)) {
      return room.members;
    }
    return String(room.name || "")
      .split(", ")
      .filter((name) => name && name !== ME);
  }

  /* The other person of a 1:1 conversation (null for a group, or one left alone). */
  function dmPartner(room) {
    const others = room.kind === "dm" ? dmOthers(room) : [];
    return others.length === 1 ? others[0] : null;
  }

  function dmLabel(room) {
    const others = dmOthers(room);
    return others.length ? others.join(", ") : room.name;
  }

  function roomLabel(room) {
    return room.kind === "dm" ? dmLabel(room) : room.name;
  }

  function roomTitle(room) {
    return room.kind === "dm" ? dmLabel(room) : "#" + room.name;
  }

  // --- status, notices, title ---------------------------------------------

  function announce(text) {
    if (els.announcer) {
      els.announcer.textContent = text;
    }
  }

  function setStatus(state, text, withLoginLink) {
    const node = els.status;
    node.setAttribute("data-state", state);
    node.replaceChildren(document.createTextNode(text));
    if (withLoginLink) {
      const link = el("a", "status-login", "log in again");
      link.href = node.getAttribute("data-login-url") || "/accounts/login/";
      node.append(" — ", link);
    }
    if (state !== lastStatusState) {
      lastStatusState = state;
      if (state === "online") {
        announce("Connected.");
      } else if (state === "offline") {
        announce("Connection lost. Reconnecting.");
      } else if (state === "signed-out") {
        announce("Signed out. Log in again to keep chatting.");
      }
    }
  }

  function showNotice(text) {
    if (!els.notice) {
      return;
    }
    els.notice.textContent = text;
    els.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      els.notice.hidden = true;
      els.notice.textContent = "";
    }, NOTICE_MS);
  }

  function updateTitle() {
    let unread = 0;
    let mentions = 0;
    sidebar.forEach((entry) => {
      unread += entry.unread || 0;
      mentions += entry.mentions || 0;
    });
    const counts = unread || mentions ? "(" + unread + (mentions ? ", @" + mentions : "") + ") " : "";
    document.title = counts + baseTitle;
  }

  // --- scrolling -----------------------------------------------------------

  function isNearBottom() {
    const pane = els.pane;
    return pane.scrollHeight - pane.scrollTop - pane.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    els.pane.scrollTop = els.pane.scrollHeight;
    stickToBottom = true;
  }

  // --- rendering messages --------------------------------------------------

  function setBody(li, m) {
    const body = li.querySelector(".message-body");
    if (typeof m.html === "string") {
      setSanitizedHtml(body, m.html);
      body.classList.remove("is-plain");
    } else if (typeof m.body === "string") {
      body.textContent = m.body;
      body.classList.add("is-plain");
    }
    if (typeof m.body === "string" && typeof m.id === "number") {
      rawBodies.set(m.id, m.body);
    }
  }

  function setEdited(li, edited) {
    let marker = li.querySelector(".message-edited");
    if (!edited) {
      if (marker) {
        marker.remove();
      }
      delete li.dataset.edited;
      return;
    }
    li.dataset.edited = edited;
    if (!marker) {
      marker = el("span", "message-edited", "(edited)");
      li.querySelector(".message-meta").append(" ", marker);
    }
    marker.title = "Edited " + fullTime(edited);
  }

  function reactionChip(li, emoji) {
    for (const chip of li.querySelectorAll("button.reaction")) {
      if (chip.dataset.emoji === emoji) {
        return chip;
      }
    }
    return null;
  }

  function setReaction(li, emoji, users) {
    let chip = reactionChip(li, emoji);
    let box = li.querySelector(".reactions");
    if (!Array.isArray(users) || users.length === 0) {
      if (chip) {
        chip.remove();
      }
      if (box && !box.children.length) {
        box.remove();
      }
      return;
    }
    if (!box) {
      box = el("div", "reactions");
      const main = li.querySelector(".message-main");
      main.insertBefore(box, main.querySelector(".message-failure"));
    }
    if (!chip) {
      chip = button("reaction");
      chip.dataset.emoji = emoji;
      const face = el("span", "reaction-emoji", emoji);
      const count = el("span", "reaction-count");
      face.setAttribute("aria-hidden", "true");
      count.setAttribute("aria-hidden", "true");
      chip.append(face, count);
      box.appendChild(chip);
    }
    chip.querySelector(".reaction-count").textContent = String(users.length);
    chip.setAttribute("aria-pressed", users.includes(ME) ? "true" : "false");
    chip.title = users.join(", ");
    chip.setAttribute("aria-label", emoji + " " + users.length + ": " + users.join(", "));
  }

  function setReactions(li, reactions) {
    const wanted = new Set(Object.keys(reactions));
    li.querySelectorAll("button.reaction").forEach((chip) => {
      if (!wanted.has(chip.dataset.emoji)) {
        setReaction(li, chip.dataset.emoji, []);
      }
    });
    wanted.forEach((emoji) => setReaction(li, emoji, reactions[emoji]));
  }

  function applyMessageData(li, m) {
    if (typeof m.html === "string" || typeof m.body === "string") {
      setBody(li, m);
    }
    if ("edited" in m) {
      setEdited(li, m.edited);
    }
    if (Array.isArray(m.mentions)) {
      li.classList.toggle("is-mention", m.mentions.includes(ME));
    }
    if (m.reactions && typeof m.reactions === "object") {
      setReactions(li, m.reactions);
    }
  }

  function addActions(li) {
    if (li.querySelector(".message-actions")) {
      return;
    }
    const bar = el("div", "message-actions");
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Message actions");
    const react = button("action-button action-react", null, "Add reaction");
    react.title = "Add reaction";
    react.setAttribute("aria-haspopup", "menu");
    react.setAttribute("aria-expanded", "false");
    const face = el("span", "action-icon", "☺+");
    face.setAttribute("aria-hidden", "true");
    react.appendChild(face);
    const more = button("action-button action-more", null, "More actions");
    more.title = "More actions";
    more.setAttribute("aria-haspopup", "menu");
    more.setAttribute("aria-expanded", "false");
    const dots = el("span", "action-icon", "⋯");
    dots.setAttribute("aria-hidden", "true");
    more.appendChild(dots);
    bar.append(react, more);
    li.appendChild(bar);
  }

  function decorate(li) {
    const user = li.dataset.user || "";
    const avatar = li.querySelector(".message-avatar");
    if (avatar) {
      avatar.classList.add("avatar-c" + (hashString(user) % 8));
    }
    li.classList.toggle("is-own", user === ME);
    if (li.dataset.id) {
      addActions(li);
    }
  }

  function buildMessage(m, state) {
    const li = el("li", "message");
    if (typeof m.id === "number") {
      li.dataset.id = String(m.id);
      li.id = "m-" + m.id;
    }
    if (m.nonce) {
      li.dataset.nonce = m.nonce;
    }
    li.dataset.state = state;
    li.dataset.user = m.user;

    const avatar = el("span", "message-avatar", firstLetter(m.user));
    avatar.setAttribute("aria-hidden", "true");
    const main = el("div", "message-main");
    const meta = el("div", "message-meta");
    const time = el("time", "message-time");
    formatTime(time, m.created);
    meta.append(el("span", "message-user", m.user), " ", time);
    main.append(meta, el("div", "message-body"));
    li.append(avatar, main);
    applyMessageData(li, m);
    decorate(li);
    return li;
  }

  function clearFailure(li) {
    const failure = li.querySelector(".message-failure");
    if (failure) {
      failure.remove();
    }
  }

  function setFailure(li, reason) {
    clearFailure(li);
    const box = el("div", "message-failure");
    box.append(el("span", "message-error", reason), " ", button("message-retry", "Retry"));
    li.querySelector(".message-main").appendChild(box);
  }

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

  function noteId(id) {
    if (id > lastId) {
      lastId = id;
    }
    if (oldestId === null || id < oldestId) {
      oldestId = id;
    }
  }

  /* Show (or refresh) one message of this room. Returns true when it is new here. */
  function acceptMessage(m) {
    if (!m || typeof m.id !== "number" || m.room !== ROOM) {
      return false;
    }
    const existing = byId.get(m.id);
    if (existing) {
      applyMessageData(existing, m);
      return false;
    }
    let li;
    const entry = m.nonce && m.user === ME ? outbox.get(m.nonce) : undefined;
    if (entry) {
      outbox.delete(m.nonce);
      clearTimeout(entry.timer);
      li = entry.li;
      li.remove();
      clearFailure(li);
      li.dataset.id = String(m.id);
      li.id = "m-" + m.id;
      li.dataset.state = "sent";
      formatTime(li.querySelector(".message-time"), m.created);
      applyMessageData(li, m);
      decorate(li);
    } else {
      li = buildMessage(m, "sent");
    }
    insertSent(li, m.id);
    byId.set(m.id, li);
    noteId(m.id);
    return !entry;
  }

  function removeMessage(id) {
    const li = byId.get(id);
    if (!li) {
      return;
    }
    if (editing && editing.li === li) {
      cancelEdit(false);
    }
    if (openMenu && li.contains(openMenu.trigger)) {
      closeMenus(false);
    }
    const hadFocus = li.contains(document.activeElement);
    li.remove();
    byId.delete(id);
    rawBodies.delete(id);
    if (divider && !nextMessage(divider)) {
      removeDivider();
    }
    updateEmpty();
    if (hadFocus && els.input && !els.input.disabled) {
      els.input.focus();
    }
  }

  function nextMessage(node) {
    let next = node.nextElementSibling;
    while (next && !next.matches("li.message[data-id]")) {
      next = next.nextElementSibling;
    }
    return next;
  }

  // --- the "New messages" divider ---------------------------------------------

  function removeDivider() {
    if (divider) {
      divider.remove();
      divider = null;
    }
  }

  function placeDividerBefore(li) {
    removeDivider();
    divider = el("li", "unread-divider");
    divider.setAttribute("role", "separator");
    divider.appendChild(el("span", "unread-divider-label", "New messages"));
    li.before(divider);
  }

  /* Put the divider at the first message by someone else after `marker`. */
  function placeDivider(marker) {
    removeDivider();
    for (const li of els.list.querySelectorAll("li.message[data-id]")) {
      if (Number(li.dataset.id) > marker && li.dataset.user !== ME) {
        placeDividerBefore(li);
        return;
      }
    }
  }

  // --- history API ---------------------------------------------------------

  class HttpError extends Error {
    constructor(status) {
      super("HTTP " + status);
      this.status = status;
    }
  }

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

  function isAuthError(err) {
    return (
      (err instanceof HttpError || err instanceof TC.ApiError) && (err.status === 401 || err.status === 403)
    );
  }

  async function fetchOne(id) {
    const page = await fetchHistory({ after: id - 1, before: id + 1, limit: 1 });
    const m = page.find((item) => item.id === id);
    if (m && typeof m.body === "string") {
      rawBodies.set(id, m.body);
    }
    return m || null;
  }

  /* Older messages above the ones shown; keeps what the user is looking at in place. */
  function prependPage(page) {
    const pane = els.pane;
    const fromBottom = pane.scrollHeight - pane.scrollTop;
    const fragment = document.createDocumentFragment();
    page.forEach((m) => {
      if (typeof m.id !== "number" || byId.has(m.id) || (oldestId !== null && m.id >= oldestId)) {
        return;
      }
      const li = buildMessage(m, "sent");
      fragment.appendChild(li);
      byId.set(m.id, li);
    });
    page.forEach((m) => {
      if (typeof m.id === "number" && byId.has(m.id)) {
        noteId(m.id);
      }
    });
    els.list.prepend(fragment);
    pane.scrollTop = pane.scrollHeight - fromBottom;
    updateEmpty();
  }

  async function loadOlder() {
    const trigger = els.older;
    if (!trigger || trigger.hidden || loadingOlder) {
      return;
    }
    if (oldestId === null) {
      trigger.hidden = true;
      return;
    }
    loadingOlder = true;
    trigger.disabled = true;
    trigger.textContent = "Loading…";
    try {
      const page = await fetchHistory({ before: oldestId, limit: PAGE_SIZE });
      prependPage(page);
      if (page.length < PAGE_SIZE) {
        trigger.hidden = true;
      }
    } catch (err) {
      if (isAuthError(err)) {
        goSignedOut();
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
    if (!li && oldestId !== null && id < oldestId) {
      // Everything from the message up to what is shown, so no gap opens.
      try {
        const found = [];
        let after = id - 1;
        for (let i = 0; i < JUMP_MAX_PAGES; i++) {
          const page = await fetchHistory({ after, before: oldestId, limit: JUMP_PAGE });
          found.push(...page);
          if (page.length < JUMP_PAGE) {
            break;
          }
          after = page[page.length - 1].id;
        }
        prependPage(found);
      } catch (err) {
        if (isAuthError(err)) {
          goSignedOut();
        } else {
          showNotice("Could not load that message. Try again.");
        }
        return;
      }
      li = byId.get(id);
    }
    if (!li) {
      showNotice("That message is not available: it may have been deleted.");
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

  // --- the socket: sending -------------------------------------------------

  function socketOpen() {
    return !!socket && socket.readyState === WebSocket.OPEN;
  }

  function socketReady() {
    return socketOpen() && !catchingUp;
  }

  function sendFrame(frame) {
    if (!socketOpen()) {
      return false;
    }
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      return false;
    }
  }

  /*
   * Frames the server answers only when it refuses them (typing, read markers,
   * this tab's presence, presence subscriptions) carry a nonce of their own,
   * so that a refusal is recognized. One refused for its rate (`rate_limited`)
   * is no news to the person: `again` (if any) sends what is still wanted a
   * little later.
   */
  function sendHint(frame, again) {
    hintCount += 1;
    const nonce = "h-" + hintCount;
    if (!sendFrame(Object.assign({}, frame, { nonce }))) {
      return false;
    }
    hints.set(nonce, again || null);
    if (hints.size > HINTS_KEPT) {
      hints.delete(hints.keys().next().value); // refusals come at once: the oldest is long settled
    }
    return true;
  }

  function transmit(entry) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.sentOn = null;
    clearFailure(entry.li);
    entry.li.dataset.state = "pending";
    if (!socketReady()) {
      return; // sent once the socket has caught up
    }
    if (!sendFrame({ type: "send", room: ROOM, body: entry.body, nonce: entry.nonce })) {
      return;
    }
    entry.sentOn = socket;
    entry.timer = setTimeout(() => markFailed(entry, "No reply from the server."), SEND_TIMEOUT_MS);
  }

  function markFailed(entry, reason) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.sentOn = null;
    if (!outbox.has(entry.nonce)) {
      return;
    }
    entry.li.dataset.state = "failed";
    setFailure(entry.li, reason);
  }

  function resendPending() {
    outbox.forEach((entry) => {
      if (entry.li.dataset.state === "pending" && !entry.sentOn) {
        transmit(entry);
      }
    });
  }

  function suspendOutbox() {
    // The socket is gone: pending messages wait (timer stopped) and are resent
    // with the same nonce once the next socket has caught up.
    outbox.forEach((entry) => {
      if (entry.li.dataset.state === "pending") {
        clearTimeout(entry.timer);
        entry.timer = null;
        entry.sentOn = null;
      }
    });
  }

  function failPending(reason) {
    outbox.forEach((entry) => {
      if (entry.li.dataset.state === "pending") {
        markFailed(entry, reason);
      }
    });
  }

  /* Edits and deletions shown ahead of the server's answer go back on a lost socket;
     the replay after the reconnect re-applies those that were stored. */
  function revertPendingActions() {
    pendingActions.forEach((action) => {
      if (action.revert) {
        action.revert();
      }
    });
    pendingActions.clear();
  }

  function settleActions(kind, id) {
    pendingActions.forEach((action, nonce) => {
      if (action.kind === kind && action.id === id) {
        pendingActions.delete(nonce);
      }
    });
  }

  function submitComposer() {
    if (!els.input || signedOut || !canWrite()) {
      return;
    }
    const text = els.input.value;
    const trimmed = text.trim();
    if (trimmed === "") {
      return;
    }
    const length = codePoints(trimmed);
    if (length > BODY_MAX_CHARS) {
      showNotice(
        "That message is too long (" + length + " characters; the limit is " + BODY_MAX_CHARS + ")."
      );
      return;
    }
    const nonce = makeNonce();
    const li = buildMessage({ user: ME, body: text, created: new Date().toISOString(), nonce }, "pending");
    els.list.appendChild(li);
    const entry = { nonce, body: text, li, timer: null, sentOn: null };
    outbox.set(nonce, entry);
    els.input.value = "";
    closeMentions();
    autosize();
    els.input.focus();
    updateEmpty();
    scrollToBottom();
    typingSentAt = 0;
    autoReadPaused = false;
    transmit(entry);
  }

  // --- the socket: events ----------------------------------------------------

  function onFrame(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (!data || typeof data !== "object" || typeof data.type !== "string") {
      return;
    }
    const seq = typeof data.seq === "number" ? data.seq : null;
    // A stored event this page has not applied yet (replays never repeat one,
    // but counting twice would be visible, so the counters check).
    const fresh = seq === null || seq > lastSeq;
    try {
      handleEvent(data, fresh);
    } catch (err) {
      window.console.error("could not apply a " + data.type + " event", err);
    }
    if (seq !== null && seq > lastSeq) {
      lastSeq = seq;
    }
  }

  function handleEvent(data, fresh) {
    switch (data.type) {
      case "message":
        onMessage(data, fresh);
        break;
      case "message_edited":
        onMessageEdited(data);
        break;
      case "message_deleted":
        if (data.room === ROOM && typeof data.id === "number") {
          settleActions("delete", data.id);
          removeMessage(data.id);
        }
        break;
      case "reaction":
        if (data.room === ROOM && typeof data.id === "number" && typeof data.emoji === "string") {
          settleActions("react", data.id);
          const li = byId.get(data.id);
          if (li) {
            setReaction(li, data.emoji, data.users);
          }
        }
        break;
      case "read":
        onRead(data);
        break;
      case "room":
        onRoom(data);
        break;
      case "member":
        onMember(data, fresh);
        break;
      case "typing":
        onTyping(data);
        break;
      case "presence":
        onPresence(data);
        break;
      case "status":
        if (data.live === true) {
          // Changes announced while the server's live path was down never came:
          // ask again for the states of everyone followed (after `resumed`).
          followingKey = null;
        }
        break;
      case "reload":
        // Too much was missed to replay: a fresh page load is the catch-up.
        window.location.reload();
        break;
      case "resumed":
        onResumed(data);
        break;
      case "error":
        onError(data);
        break;
      default:
        break; // an event type this page does not know: ignore it
    }
  }

  function onMessage(m, fresh) {
    if (m.room === ROOM) {
      const stick = isNearBottom() || stickToBottom;
      const isNew = acceptMessage(m);
      updateEmpty();
      if (stick) {
        scrollToBottom();
      }
      if (typers.delete(m.user)) {
        renderTyping();
      }
      if (m.user === ME) {
        return;
      }
      if (isNew && fresh && isMember && m.id > currentMarker && !roomVisible()) {
        bumpRoom(ROOM, m);
        if (!divider) {
          placeDividerBefore(byId.get(m.id));
        }
        maybeNotify(m);
      }
      scheduleRead();
    } else if (fresh && m.user !== ME) {
      if (bumpRoom(m.room, m)) {
        maybeNotify(m);
      }
    }
  }

  function onMessageEdited(data) {
    if (data.room !== ROOM || typeof data.id !== "number") {
      return;
    }
    settleActions("edit", data.id);
    const li = byId.get(data.id);
    if (!li) {
      return; // not loaded here; it shows as edited when loaded
    }
    li.classList.remove("is-saving");
    if (editing && editing.li === li && editing.textarea.value === editing.original) {
      cancelEdit(false); // edited elsewhere while open here, untouched: show the new text
    }
    applyMessageData(li, data);
  }

  function onError(data) {
    const detail = typeof data.detail === "string" && data.detail ? data.detail : String(data.code);
    const nonce = typeof data.nonce === "string" ? data.nonce : null;
    if (nonce && hints.has(nonce)) {
      const again = hints.get(nonce);
      hints.delete(nonce);
      if (data.code === "rate_limited") {
        if (again) {
          setTimeout(again, HINT_RETRY_MS);
        }
        return;
      }
    }
    const entry = nonce ? outbox.get(nonce) : undefined;
    if (entry) {
      markFailed(entry, detail);
      return;
    }
    const action = nonce ? pendingActions.get(nonce) : undefined;
    if (action) {
      pendingActions.delete(nonce);
      if (action.revert) {
        action.revert();
      }
    }
    showNotice(detail);
  }

  function onResumed(data) {
    if (Array.isArray(data.rooms)) {
      const joined = new Set();
      data.rooms.forEach((counts) => {
        if (counts && typeof counts.room === "string") {
          joined.add(counts.room);
          setCounts(counts.room, counts);
        }
      });
      Array.from(sidebar.keys()).forEach((slug) => {
        if (!joined.has(slug)) {
          removeRoom(slug);
        }
      });
      if (isMember && !joined.has(ROOM)) {
        loseMembership({ action: "removed" });
      }
    }
    catchingUp = false;
    readSentId = 0;
    setStatus("online", "Connected");
    resendPending();
    // Each new socket starts out "active" on the server.
    presenceSent = "active";
    syncPresence();
    followPresence();
    if (refreshAfterResume) {
      refreshAfterResume = false;
      setTimeout(reconnectNow, 0);
      return;
    }
    scheduleRead();
  }

  // --- the socket: connection ----------------------------------------------

  function socketUrl() {
    const url = new URL(config.socketPath, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("seq", String(lastSeq));
    if (isChannel() && !roomInfo.private) {
      // Public rooms are readable without joining: the socket carries this one
      // either way (the server ignores it for members), which also covers being
      // removed while disconnected.
      url.searchParams.set("watch", ROOM);
    }
    return url.toString();
  }

  function clearReconnectTimers() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    countdownTimer = null;
  }

  function dropSocketState() {
    catchingUp = false;
    suspendOutbox();
    revertPendingActions();
    typers.clear();
    renderTyping();
  }

  function connect() {
    if (signedOut || leaving) {
      return;
    }
    clearReconnectTimers();
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    let sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (err) {
      connectFailed();
      return;
    }
    socket = sock;
    let opened = false;
    sock.addEventListener("open", () => {
      if (socket !== sock) {
        return;
      }
      opened = true;
      clearTimeout(stableTimer);
      stableTimer = setTimeout(() => {
        attempt = 0;
      }, STABLE_AFTER_MS);
      catchingUp = true; // until `resumed`
      following = new Set(); // a subscription belongs to its socket: this one follows nobody yet
      followingKey = "";
      setStatus("connecting", "Syncing…");
    });
    sock.addEventListener("message", (event) => {
      if (socket === sock) {
        onFrame(event);
      }
    });
    sock.addEventListener("close", (event) => {
      if (socket !== sock) {
        return;
      }
      socket = null;
      clearTimeout(stableTimer);
      dropSocketState();
      if (leaving || signedOut) {
        return;
      }
      if (event.code === CLOSE_RELOAD) {
        window.location.reload();
      } else if (event.code === CLOSE_SESSION_ENDED) {
        goSignedOut();
      } else if (!opened) {
        connectFailed();
      } else {
        scheduleReconnect();
      }
    });
  }

  /* A new socket now (its rooms changed), resuming from where this one was. */
  function reconnectNow() {
    const old = socket;
    socket = null;
    clearTimeout(stableTimer);
    dropSocketState();
    if (old) {
      try {
        old.close(4000, "resubscribe");
      } catch (err) {
        /* already closing */
      }
    }
    connect();
  }

  function connectFailed() {
    // The handshake failed: find out whether the session is gone.
    fetch(config.historyUrl + "?limit=1", {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    }).then(
      (response) => {
        if (response.status === 401 || response.status === 403) {
          goSignedOut();
        } else {
          scheduleReconnect();
        }
      },
      () => scheduleReconnect()
    );
  }

  function scheduleReconnect() {
    if (signedOut || leaving) {
      return;
    }
    clearReconnectTimers();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, attempt));
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.75 + Math.random() * 0.5));
    attempt += 1;
    reconnectAt = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((reconnectAt - Date.now()) / 1000));
      setStatus("offline", "Reconnecting in " + seconds + "s…");
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    reconnectTimer = setTimeout(connect, delay);
  }

  function goSignedOut() {
    if (signedOut) {
      return;
    }
    signedOut = true;
    clearReconnectTimers();
    clearTimeout(stableTimer);
    if (socket) {
      const sock = socket;
      socket = null;
      try {
        sock.close();
      } catch (err) {
        /* ignore */
      }
    }
    setStatus("signed-out", "Signed out", true);
    failPending("you are signed out.");
    if (els.input) {
      els.input.disabled = true;
      els.send.disabled = true;
    }
  }

  // --- sidebar: rooms and counts --------------------------------------------

  function roomLink(slug) {
    if (!els.rooms) {
      return null;
    }
    for (const link of els.rooms.querySelectorAll("a.room-link")) {
      if (link.dataset.room === slug) {
        return link;
      }
    }
    return null;
  }

  function setBadge(link, className, count, text, title) {
    let badge = link.querySelector("." + className);
    if (!count) {
      if (badge) {
        badge.remove();
      }
      return;
    }
    if (!badge) {
      badge = el("span", className);
      badge.setAttribute("aria-hidden", "true"); // .room-status says it in words
      link.insertBefore(badge, link.querySelector(".room-status"));
    }
    badge.textContent = text;
    badge.title = title;
  }

  function renderCounts(entry) {
    const link = roomLink(entry.slug);
    if (!link) {
      return;
    }
    const unread = entry.unread || 0;
    const mentions = entry.mentions || 0;
    setBadge(link, "mention-count", mentions, "@" + mentions, mentions + (mentions === 1 ? " mention" : " mentions"));
    setBadge(
      link,
      "unread-count",
      unread,
      unread > 999 ? "999+" : String(unread),
      unread + (unread === 1 ? " unread message" : " unread messages")
    );
    // Mentions first, then the unread count (insertBefore keeps that order).
    const mention = link.querySelector(".mention-count");
    const count = link.querySelector(".unread-count");
    if (mention && count && mention.nextElementSibling !== count) {
      link.insertBefore(mention, count);
    }
    link.classList.toggle("has-unread", unread > 0);
    const status = link.querySelector(".room-status");
    if (status) {
      status.textContent =
        (unread ? ", " + unread + " unread" : "") +
        (mentions ? ", " + mentions + (mentions === 1 ? " mention" : " mentions") : "");
    }
  }

  function renderRoomLink(entry) {
    const link = roomLink(entry.slug);
    if (!link) {
      return;
    }
    const icon = link.querySelector(".room-hash");
    icon.replaceChildren();
    icon.classList.toggle("dm-icon", entry.kind === "dm");
    if (entry.kind === "dm") {
      icon.textContent = firstLetter(dmLabel(entry));
      renderDmPresence(link, entry);
    } else if (entry.private) {
      icon.appendChild(el("span", "lock-icon"));
    } else {
      icon.textContent = "#";
    }
    link.querySelector(".room-name").textContent = roomLabel(entry);
    let privacy = link.querySelector(".room-private");
    if (entry.kind !== "dm" && entry.private) {
      if (!privacy) {
        privacy = el("span", "visually-hidden room-private", "(private)");
        link.querySelector(".room-name").after(privacy);
      }
    } else if (privacy) {
      privacy.remove();
    }
    renderCounts(entry);
  }

  function emptyNote(list) {
    return el(
      "li",
      "room-empty",
      list === els.dmList ? "No conversations yet." : "You have not joined any channel yet."
    );
  }

  function insertRoomLink(entry) {
    const list = entry.kind === "dm" ? els.dmList : els.channelList;
    if (!list) {
      return;
    }
    const empty = list.querySelector(".room-empty");
    if (empty) {
      empty.remove();
    }
    const link = el("a", "room-link");
    link.href = roomUrl(entry.slug);
    link.dataset.room = entry.slug;
    link.dataset.kind = entry.kind;
    if (entry.slug === ROOM) {
      link.classList.add("is-current");
      link.setAttribute("aria-current", "page");
    }
    const icon = el("span", "room-hash");
    icon.setAttribute("aria-hidden", "true");
    link.append(icon, el("span", "room-name"), el("span", "visually-hidden room-status"));
    const item = el("li", "room-item");
    item.appendChild(link);
    const label = roomLabel(entry).toLowerCase();
    const before = Array.from(list.querySelectorAll("li.room-item")).find((other) => {
      const name = other.querySelector(".room-name");
      return name && name.textContent.toLowerCase().localeCompare(label) > 0;
    });
    list.insertBefore(item, before || null);
  }

  function upsertRoom(data) {
    if (!data || typeof data.slug !== "string") {
      return;
    }
    if (data.archived) {
      removeRoom(data.slug);
      return;
    }
    let entry = sidebar.get(data.slug);
    if (!entry) {
      entry = { unread: 0, mentions: 0, last_read_id: 0 }; // a conversation's people: from its name
      sidebar.set(data.slug, entry);
    }
    const oldLabel = entry.slug ? roomLabel(entry) : null;
    ["slug", "name", "topic", "kind", "private", "archived"].forEach((key) => {
      if (key in data) {
        entry[key] = data[key];
      }
    });
    placeRoomLink(entry, oldLabel);
    updateTitle();
  }

  function placeRoomLink(entry, oldLabel) {
    const link = roomLink(entry.slug);
    if (link && oldLabel !== roomLabel(entry)) {
      link.closest("li").remove(); // renamed: back in at its place in the order
    }
    if (!roomLink(entry.slug)) {
      insertRoomLink(entry);
    }
    renderRoomLink(entry);
    followPresence();
  }

  /* Someone else joined or left a conversation in the sidebar: its label, and whom it shows. */
  function updateDmMembers(slug, user, joined) {
    const entry = sidebar.get(slug);
    if (!entry || entry.kind !== "dm") {
      return;
    }
    const oldLabel = roomLabel(entry);
    const others = new Set(dmOthers(entry));
    if (joined) {
      others.add(user);
    } else {
      others.delete(user);
    }
    entry.members = Array.from(others).sort();
    placeRoomLink(entry, oldLabel);
  }

  function removeRoom(slug) {
    sidebar.delete(slug);
    followPresence();
    const link = roomLink(slug);
    if (link) {
      const list = link.closest("ul");
      link.closest("li").remove();
      if (!list.querySelector("li.room-item")) {
        list.appendChild(emptyNote(list));
      }
    }
    updateTitle();
  }

  /* The server's read marker and counts for a room (a `read` event, `resumed`). */
  function setCounts(slug, counts) {
    if (slug === ROOM && typeof counts.last_read_id === "number") {
      currentMarker = counts.last_read_id;
    }
    const entry = sidebar.get(slug);
    if (!entry) {
      return;
    }
    if (typeof counts.unread === "number") {
      entry.unread = counts.unread;
    }
    if (typeof counts.mentions === "number") {
      entry.mentions = counts.mentions;
    }
    if (typeof counts.last_read_id === "number") {
      entry.last_read_id = counts.last_read_id;
    }
    renderCounts(entry);
    updateTitle();
  }

  /* A new message by someone else in a room not being read: count it until the server says otherwise. */
  function bumpRoom(slug, m) {
    const entry = sidebar.get(slug);
    if (!entry || m.id <= (entry.last_read_id || 0)) {
      return false;
    }
    entry.unread = (entry.unread || 0) + 1;
    if (Array.isArray(m.mentions) && m.mentions.includes(ME)) {
      entry.mentions = (entry.mentions || 0) + 1;
    }
    renderCounts(entry);
    updateTitle();
    return true;
  }

  // --- reading ---------------------------------------------------------------

  function roomVisible() {
    return document.visibilityState === "visible" && document.hasFocus();
  }

  /* Move the read marker to the newest message while the room is in view (at most once a second). */
  function scheduleRead() {
    if (!isMember || autoReadPaused || signedOut || !roomVisible()) {
      return;
    }
    const target = lastId;
    if (!target || target <= currentMarker || target === readSentId) {
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
    if (sendHint({ type: "read", room: ROOM, id: target }, again)) {
      readSentId = target;
      readSentAt = Date.now();
    }
  }

  function onRead(data) {
    if (typeof data.room !== "string") {
      return;
    }
    setCounts(data.room, data);
    if (data.room === ROOM) {
      readSentId = 0;
    }
  }

  /* Move the marker back; refused as too many, again a little later unless the page read on since. */
  function sendUnreadMarker(marker) {
    return sendHint({ type: "read", room: ROOM, id: marker }, () => {
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

  // --- rooms, members, the header ---------------------------------------------

  function renderRoomState() {
    const writable = canWrite();
    els.app.classList.toggle("is-member", isMember);
    els.app.classList.toggle("can-write", writable);
    els.app.classList.toggle("is-moderator", isModerator);
    if (els.roomName && isChannel()) {
      els.roomName.textContent = roomInfo.name;
    }
    if (els.topic) {
      els.topic.textContent = roomInfo.topic || "";
      els.topic.title = roomInfo.topic || "";
      els.topic.hidden = !roomInfo.topic;
    }
    if (els.archivedBadge) {
      els.archivedBadge.hidden = !roomInfo.archived;
    }
    if (els.inviteButton) {
      els.inviteButton.hidden = !writable;
    }
    if (els.settingsButton) {
      els.settingsButton.hidden = !canManage;
    }
    if (els.leaveButton) {
      els.leaveButton.hidden = !isMember || ROOM === DEFAULT_ROOM;
    }
    if (els.archiveButton) {
      els.archiveButton.textContent = roomInfo.archived ? "Unarchive" : "Archive";
    }
    if (els.form) {
      els.form.hidden = !writable;
      els.input.disabled = !writable || signedOut;
      els.send.disabled = !writable || signedOut;
      const where = isChannel() ? "#" + roomInfo.name : roomLabel(roomInfo);
      els.input.placeholder = "Message " + where;
    }
    if (!writable) {
      closeMentions();
    }
    if (els.note) {
      els.note.hidden = writable;
      let text = "";
      if (roomInfo.archived) {
        text = "#" + roomInfo.name + " is archived: it is read-only.";
      } else if (!isMember) {
        text = leftNote || "You are reading #" + roomInfo.name + ". Join it to post here.";
      }
      els.noteText.textContent = text;
    }
    if (els.join) {
      els.join.hidden = isMember || roomInfo.archived || roomInfo.private || !isChannel();
      els.join.textContent = "Join #" + roomInfo.name;
    }
  }

  function becomeMember() {
    if (isMember) {
      return;
    }
    isMember = true;
    leftNote = "";
    upsertRoom(roomInfo);
    if (members) {
      members.add(ME);
      renderMembers();
    }
    renderRoomState();
    scheduleRead();
  }

  function loseMembership(data) {
    if (!isMember) {
      return;
    }
    isMember = false;
    const where = roomTitle(roomInfo);
    if (data.action === "left") {
      leftNote = "You left " + where + ".";
    } else if (data.by && data.by !== ME) {
      leftNote = data.by + " removed you from " + where + ".";
    } else {
      leftNote = "You are no longer a member of " + where + ".";
    }
    showNotice(leftNote);
    announce(leftNote);
    cancelEdit(false);
    closeMenus(false);
    failPending("you are no longer a member of this room.");
    if (members) {
      members.delete(ME);
      renderMembers();
    }
    renderRoomState();
    removeRoom(ROOM);
    if (isChannel() && !roomInfo.private) {
      // Still readable: get a socket that carries it as a watched room.
      // After this event's seq is recorded, so the new socket resumes past it.
      if (catchingUp) {
        refreshAfterResume = true;
      } else if (socket) {
        setTimeout(reconnectNow, 0);
      }
    }
  }

  function onRoom(data) {
    const room = data.room;
    if (!room || typeof room.slug !== "string") {
      return;
    }
    if (room.slug === ROOM) {
      Object.assign(roomInfo, room);
      if (isChannel()) {
        baseTitle = "#" + roomInfo.name + " · TeamChat";
      }
      renderRoomState();
      if (els.settingsDialog && !els.settingsDialog.open) {
        els.settingsDialog.querySelector("[name=name]").value = roomInfo.name;
        els.settingsDialog.querySelector("[name=topic]").value = roomInfo.topic || "";
      }
    }
    if (room.archived) {
      removeRoom(room.slug);
    } else if (room.slug !== ROOM || isMember) {
      upsertRoom(room);
    }
    updateTitle();
  }

  function onMember(data, fresh) {
    const room = data.room || {};
    const slug = room.slug;
    if (typeof slug !== "string") {
      return;
    }
    const joined = data.action === "joined" || data.action === "invited";
    if (data.user === ME) {
      if (joined) {
        if (!room.archived) {
          upsertRoom(room);
        }
        if (slug === ROOM) {
          becomeMember();
        } else if (fresh && !catchingUp && data.action === "invited" && data.by && data.by !== ME) {
          showNotice(data.by + " added you to " + roomTitle(room) + ".");
        }
      } else {
        removeRoom(slug);
        if (slug === ROOM) {
          loseMembership(data);
        }
      }
    } else if (typeof data.user === "string") {
      updateDmMembers(slug, data.user, joined);
      if (slug === ROOM && members) {
        if (joined) {
          members.add(data.user);
        } else {
          members.delete(data.user);
        }
        renderMembers();
      }
    }
  }

  async function joinRoom() {
    els.join.disabled = true;
    try {
      await api("POST", roomApi("join/"));
      becomeMember();
      if (els.input) {
        els.input.focus();
      }
    } catch (err) {
      showNotice(err.detail || "Could not join.");
    } finally {
      els.join.disabled = false;
    }
  }

  async function leaveRoom() {
    const ok = await confirmAction({
      title: "Leave " + roomTitle(roomInfo) + "?",
      text: roomInfo.private
        ? "It is private: you will need an invitation to come back."
        : "You can join it again from Browse channels.",
      ok: "Leave",
    });
    if (!ok) {
      return;
    }
    try {
      await api("POST", roomApi("leave/"));
      window.location.assign(roomUrl(DEFAULT_ROOM));
    } catch (err) {
      showNotice(err.detail || "Could not leave.");
    }
  }

  // --- member list and presence ------------------------------------------------

  function canRemoveMembers() {
    return (canManage || isModerator) && isChannel() && ROOM !== DEFAULT_ROOM;
  }

  function paintPresence(row, state) {
    row.dataset.presence = state;
    row.querySelector(".presence-dot").dataset.presence = state;
    row.querySelector(".member-presence").textContent = ", " + state;
  }

  function memberRow(name) {
    const row = el("li", "member");
    row.dataset.user = name;
    const dot = el("span", "presence-dot");
    dot.setAttribute("aria-hidden", "true");
    row.append(dot, el("span", "member-name", name === ME ? name + " (you)" : name));
    row.appendChild(el("span", "visually-hidden member-presence"));
    if (canRemoveMembers() && name !== ME) {
      const remove = button("member-remove", "Remove", "Remove " + name + " from " + roomTitle(roomInfo));
      remove.dataset.username = name;
      row.appendChild(remove);
    }
    paintPresence(row, presenceOf.get(name) || "offline");
    return row;
  }

  function renderMembers() {
    if (!members || !els.memberList) {
      return;
    }
    const names = Array.from(members).sort((a, b) => a.localeCompare(b));
    els.memberHeading.textContent = "Members (" + names.length + ")";
    els.memberList.replaceChildren(...names.map(memberRow));
    followPresence();
  }

  async function loadMembers() {
    els.memberStatus.textContent = "Loading…";
    try {
      const data = await api("GET", roomApi("members/"));
      members = new Set();
      (data.members || []).forEach((m) => {
        members.add(m.username);
        // The socket's word is newer for the people it follows already.
        if (!following.has(m.username) && PRESENCE_STATES.has(m.presence)) {
          presenceOf.set(m.username, m.presence);
        }
      });
      els.memberStatus.textContent = "";
      renderMembers();
    } catch (err) {
      els.memberStatus.textContent = err.detail || "Could not load the members.";
    }
  }

  function setMemberPanel(open) {
    els.memberPanel.hidden = !open;
    els.membersButton.setAttribute("aria-expanded", open ? "true" : "false");
    els.app.classList.toggle("members-open", open);
    followPresence();
    if (open) {
      loadMembers();
      els.memberClose.focus();
    } else {
      els.membersButton.focus();
    }
  }

  async function removeMember(name) {
    const ok = await confirmAction({
      title: "Remove " + name + "?",
      text: name + " will no longer be a member of " + roomTitle(roomInfo) + ".",
      ok: "Remove",
    });
    if (!ok) {
      return;
    }
    try {
      await api("DELETE", roomApi("members/" + encodeURIComponent(name) + "/"));
      if (members) {
        members.delete(name);
        renderMembers();
      }
      announce(name + " was removed.");
    } catch (err) {
      showNotice(err.detail || "Could not remove " + name + ".");
    }
  }

  /* The people whose presence the page shows: the other person of each 1:1
     conversation in the sidebar, then the open member list in its order, up to the cap. */
  function followedNames() {
    const names = new Set();
    sidebar.forEach((entry) => {
      const partner = dmPartner(entry);
      if (partner && names.size < PRESENCE_FOLLOW_MAX) {
        names.add(partner);
      }
    });
    if (members && !els.memberPanel.hidden) {
      for (const name of Array.from(members).sort((a, b) => a.localeCompare(b))) {
        if (names.size >= PRESENCE_FOLLOW_MAX) {
          break;
        }
        names.add(name);
      }
    }
    return names;
  }

  /* Tell the server whom to follow once the current changes are made (and the socket is caught up). */
  function followPresence() {
    if (followTimer === null) {
      followTimer = setTimeout(sendFollowing, 0);
    }
  }

  function sendFollowing() {
    followTimer = null;
    if (!socketReady()) {
      return; // `resumed` comes back here
    }
    const names = followedNames();
    const users = Array.from(names).sort();
    const key = users.join(" ");
    if (key === followingKey) {
      return;
    }
    const sock = socket;
    const again = () => {
      if (socket === sock) {
        followingKey = null;
        followPresence();
      }
    };
    if (sendHint({ type: "presence_sub", users }, again)) {
      following = names;
      followingKey = key;
    }
  }

  /* `users`: the states of people this socket follows, all of them (the answer to presence_sub) or the changes. */
  function onPresence(data) {
    const users = data.users;
    if (!users || typeof users !== "object") {
      return;
    }
    const changed = new Set();
    Object.keys(users).forEach((name) => {
      if (PRESENCE_STATES.has(users[name])) {
        presenceOf.set(name, users[name]);
        changed.add(name);
      }
    });
    if (changed.size) {
      renderPresence(changed);
    }
  }

  function renderPresence(names) {
    if (els.memberList) {
      for (const row of els.memberList.children) {
        if (names.has(row.dataset.user)) {
          paintPresence(row, presenceOf.get(row.dataset.user));
        }
      }
    }
    if (els.dmList) {
      for (const link of els.dmList.querySelectorAll("a.room-link")) {
        const entry = sidebar.get(link.dataset.room);
        if (entry && names.has(dmPartner(entry))) {
          renderDmPresence(link, entry);
        }
      }
    }
  }

  /*
   * A 1:1 conversation's link shows the other person's state: a dot on its
   * icon (full online, half away, empty offline; none while not known) and
   * the same in words for screen readers, part of the link's name like its
   * unread count (not announced as it changes).
   */
  function renderDmPresence(link, entry) {
    const partner = dmPartner(entry);
    const icon = link.querySelector(".room-hash");
    let dot = icon.querySelector(".room-presence");
    let words = link.querySelector(".room-presence-text");
    if (!partner) {
      if (dot) {
        dot.remove();
      }
      if (words) {
        words.remove();
      }
      return;
    }
    if (!dot) {
      dot = el("span", "room-presence");
      icon.appendChild(dot);
    }
    if (!words) {
      words = el("span", "visually-hidden room-presence-text");
      link.querySelector(".room-name").after(words);
    }
    const state = presenceOf.get(partner);
    dot.dataset.presence = state || "unknown";
    words.textContent = state ? ", " + state : "";
  }

  function wantedPresence() {
    return document.visibilityState === "visible" && !idle ? "active" : "away";
  }

  function syncPresence() {
    const state = wantedPresence();
    if (state === presenceSent) {
      return;
    }
    const sock = socket;
    const again = () => {
      // Refused as too many: the server kept the state before. Say what is true now.
      if (socket === sock && presenceSent === state) {
        presenceSent = null;
        syncPresence();
      }
    };
    if (sendHint({ type: "presence", state }, again)) {
      presenceSent = state;
    }
  }

  function onActivity() {
    const now = Date.now();
    if (idle) {
      idle = false;
      syncPresence();
    }
    if (now - lastActivity > 1000) {
      lastActivity = now;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        syncPresence();
      }, IDLE_AFTER_MS);
    }
  }

  // --- typing ------------------------------------------------------------------

  function signalTyping() {
    if (!canWrite() || !els.input.value.trim()) {
      return;
    }
    const now = Date.now();
    if (now - typingSentAt >= TYPING_EVERY_MS && socketReady() && sendHint({ type: "typing", room: ROOM })) {
      typingSentAt = now;
    }
  }

  function renderTyping() {
    if (!els.typing) {
      return;
    }
    const names = Array.from(typers.keys());
    let text = "";
    if (names.length === 1) {
      text = names[0] + " is typing…";
    } else if (names.length === 2) {
      text = names[0] + " and " + names[1] + " are typing…";
    } else if (names.length > 2) {
      text = "Several people are typing…";
    }
    if (els.typing.textContent !== text) {
      els.typing.textContent = text;
    }
  }

  function pruneTypers() {
    const now = Date.now();
    let next = Infinity;
    typers.forEach((until, name) => {
      if (until <= now) {
        typers.delete(name);
      } else {
        next = Math.min(next, until);
      }
    });
    renderTyping();
    clearTimeout(typingTimer);
    if (next !== Infinity) {
      typingTimer = setTimeout(pruneTypers, next - now + 20);
    }
  }

  function onTyping(data) {
    if (data.room !== ROOM || data.user === ME || typeof data.user !== "string") {
      return;
    }
    typers.set(data.user, Date.now() + TYPING_SHOWN_MS);
    pruneTypers();
  }

  // --- notifications -------------------------------------------------------------

  function notificationsAllowed() {
    return "Notification" in window && window.Notification.permission === "granted";
  }

  function maybeNotify(m) {
    if (catchingUp || !notificationsAllowed() || m.user === ME || document.visibilityState !== "hidden") {
      return;
    }
    const room = m.room === ROOM ? roomInfo : sidebar.get(m.room);
    if (!room) {
      return;
    }
    const direct = room.kind === "dm";
    const mentioned = Array.isArray(m.mentions) && m.mentions.includes(ME);
    if (!direct && !mentioned) {
      return;
    }
    const title = direct ? m.user + " (direct message)" : m.user + " in #" + room.name;
    try {
      // Plain text only: the raw body, never the rendered html.
      const note = new window.Notification(title, {
        body: truncate(String(m.body || ""), NOTIFY_BODY_CHARS),
        tag: "teamchat-" + m.id,
      });
      note.onclick = () => {
        window.focus();
        note.close();
        if (m.room === ROOM) {
          goToMessage(m.id);
          scheduleRead(); // not every browser fires "focus" here
        } else {
          window.location.assign(roomUrl(m.room) + "?m=" + m.id + "#m-" + m.id);
        }
      };
    } catch (err) {
      /* notifications unavailable in this context */
    }
  }

  function setupNotifications() {
    const trigger = els.notifyButton;
    if (!trigger || !("Notification" in window)) {
      return;
    }
    const render = () => {
      trigger.hidden = window.Notification.permission !== "default";
    };
    render();
    trigger.addEventListener("click", async () => {
      try {
        await window.Notification.requestPermission();
      } catch (err) {
        /* older browsers: callback form only */
      }
      render();
      if (window.Notification.permission === "granted") {
        showNotice("Notifications are on: mentions and direct messages while this tab is in the background.");
      } else if (window.Notification.permission === "denied") {
        showNotice("Notifications are blocked for this site in your browser settings.");
      }
    });
  }

  // --- dialogs -------------------------------------------------------------------

  function openDialog(dialog, focus) {
    const error = dialog.querySelector(".form-error");
    if (error) {
      error.textContent = "";
      error.hidden = true;
    }
    dialog.showModal();
    if (focus) {
      focus.focus();
    }
  }

  function dialogError(dialog, text) {
    const error = dialog.querySelector(".form-error");
    error.textContent = text;
    error.hidden = false;
  }

  function confirmAction(options) {
    const dialog = els.confirmDialog;
    dialog.querySelector("#confirm-title").textContent = options.title;
    dialog.querySelector("#confirm-text").textContent = options.text || "";
    dialog.querySelector("#confirm-ok").textContent = options.ok || "OK";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      dialog.querySelector("#confirm-cancel").focus();
    });
  }

  function setupDialogs() {
    document.querySelectorAll("dialog").forEach((dialog) => {
      dialog.addEventListener("click", (event) => {
        if (event.target === dialog) {
          dialog.close(); // a click on the backdrop
        }
      });
    });
    document.querySelectorAll("[data-close-dialog]").forEach((node) => {
      node.addEventListener("click", () => node.closest("dialog").close());
    });

    // Create a channel.
    const createForm = document.getElementById("create-room-form");
    if (createForm && els.createDialog) {
      TC.setupCreateRoomForm(createForm);
      document.getElementById("create-room-button").addEventListener("click", () => {
        createForm.reset();
        openDialog(els.createDialog, createForm.elements.name);
      });
    }

    // Start a direct conversation.
    if (els.dmDialog) {
      const start = document.getElementById("dm-start");
      const picker = new TC.UserPicker(document.getElementById("dm-picker"), {
        max: 7,
        self: ME,
        onChange: (chosen) => {
          start.disabled = chosen.length === 0;
        },
      });
      const open = () => {
        picker.reset();
        start.disabled = true;
        openDialog(els.dmDialog, picker.input);
      };
      document.getElementById("new-dm-button").addEventListener("click", open);
      document.getElementById("new-dm-link").addEventListener("click", open);
      document.getElementById("dm-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!picker.chosen.length) {
          return;
        }
        start.disabled = true;
        try {
          const data = await api("POST", "/api/dms/", { users: picker.chosen });
          window.location.assign(roomUrl(data.room.slug));
        } catch (err) {
          start.disabled = false;
          dialogError(els.dmDialog, err.detail);
        }
      });
    }

    // Invite people to this channel.
    if (els.inviteDialog && els.inviteButton) {
      const submit = document.getElementById("invite-submit");
      const picker = new TC.UserPicker(document.getElementById("invite-picker"), {
        max: 20,
        self: ME,
        onChange: (chosen) => {
          submit.disabled = chosen.length === 0;
        },
      });
      els.inviteButton.addEventListener("click", async () => {
        picker.reset();
        submit.disabled = true;
        document.getElementById("invite-room-name").textContent = roomInfo.name;
        openDialog(els.inviteDialog, picker.input);
        try {
          const data = await api("GET", roomApi("members/"));
          picker.setExcluded((data.members || []).map((m) => m.username));
        } catch (err) {
          /* the server answers an invitation of a member gracefully anyway */
        }
      });
      document.getElementById("invite-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        const names = picker.chosen.slice();
        if (!names.length) {
          return;
        }
        submit.disabled = true;
        const invited = [];
        try {
          for (const name of names) {
            await api("POST", roomApi("members/"), { username: name });
            invited.push(name);
          }
        } catch (err) {
          submit.disabled = false;
          dialogError(els.inviteDialog, (invited.length ? "Invited " + invited.join(", ") + ". " : "") + err.detail);
          return;
        }
        els.inviteDialog.close();
        showNotice("Invited " + invited.join(", ") + " to " + roomTitle(roomInfo) + ".");
      });
    }

    // Channel settings: name, topic, archive.
    if (els.settingsDialog && els.settingsButton) {
      const form = document.getElementById("room-settings-form");
      els.settingsButton.addEventListener("click", () => {
        form.elements.name.value = roomInfo.name;
        form.elements.topic.value = roomInfo.topic || "";
        openDialog(els.settingsDialog, form.elements.name);
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const data = await api("PATCH", roomApi(), {
            name: form.elements.name.value,
            topic: form.elements.topic.value,
          });
          els.settingsDialog.close();
          onRoom({ room: data.room });
        } catch (err) {
          dialogError(els.settingsDialog, err.detail);
        }
      });
      els.archiveButton.addEventListener("click", async () => {
        try {
          const data = await api("PATCH", roomApi(), { archived: !roomInfo.archived });
          els.settingsDialog.close();
          onRoom({ room: data.room });
          showNotice(data.room.archived ? "Archived: the channel is read-only now." : "Unarchived.");
        } catch (err) {
          dialogError(els.settingsDialog, err.detail);
        }
      });
    }
  }

  // --- message actions: menus, edit, delete, react ------------------------------

  function popup(id, label) {
    let node = document.getElementById(id);
    if (!node) {
      node = el("div", "popup-menu");
      node.id = id;
      node.setAttribute("role", "menu");
      node.setAttribute("aria-label", label);
      node.hidden = true;
      node.addEventListener("keydown", onMenuKey);
      document.body.appendChild(node);
    }
    return node;
  }

  function menuItem(text, onChoose, className) {
    const item = button("menu-item" + (className ? " " + className : ""), text);
    item.setAttribute("role", "menuitem");
    item.tabIndex = -1;
    item.addEventListener("click", () => {
      closeMenus(true); // back to the message's button; an editor or dialog then takes over
      onChoose();
    });
    return item;
  }

  function showMenu(node, trigger, items) {
    closeMenus(false);
    node.replaceChildren(...items);
    node.hidden = false;
    // CSSOM positioning (not a style attribute): fine under a strict CSP.
    const rect = trigger.getBoundingClientRect();
    const width = node.offsetWidth;
    const height = node.offsetHeight;
    let top = rect.bottom + 4;
    if (top + height > window.innerHeight - 8) {
      top = Math.max(8, rect.top - height - 4);
    }
    const left = Math.max(8, Math.min(window.innerWidth - width - 8, rect.right - width));
    node.style.top = top + "px";
    node.style.left = left + "px";
    trigger.setAttribute("aria-expanded", "true");
    trigger.closest("li.message").classList.add("has-menu");
    openMenu = { node, trigger };
    if (items[0]) {
      items[0].focus();
    }
  }

  function closeMenus(refocus) {
    if (!openMenu) {
      return;
    }
    const { node, trigger } = openMenu;
    openMenu = null;
    node.hidden = true;
    trigger.setAttribute("aria-expanded", "false");
    const li = trigger.closest("li.message");
    if (li) {
      li.classList.remove("has-menu");
    }
    if (refocus && trigger.isConnected) {
      trigger.focus();
    }
  }

  function onMenuKey(event) {
    if (!openMenu) {
      return;
    }
    const items = Array.from(openMenu.node.querySelectorAll("[role=menuitem]"));
    const at = items.indexOf(document.activeElement);
    let next = null;
    if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      next = items[(at + 1) % items.length];
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      next = items[(at - 1 + items.length) % items.length];
    } else if (event.key === "Home") {
      next = items[0];
    } else if (event.key === "End") {
      next = items[items.length - 1];
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenus(true);
      return;
    } else if (event.key === "Tab") {
      closeMenus(false);
      return;
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }

  function showPalette(li, trigger) {
    const items = EMOJI.map(([emoji, name]) => {
      const item = menuItem(emoji, () => toggleReaction(li, emoji), "emoji-item");
      item.setAttribute("aria-label", name);
      item.title = name;
      item.dataset.emoji = emoji;
      return item;
    });
    showMenu(popup("emoji-palette", "Add reaction"), trigger, items);
  }

  function showMore(li, trigger) {
    const own = li.dataset.user === ME;
    const items = [];
    if (own && canWrite()) {
      items.push(menuItem("Edit message", () => startEdit(li)));
    }
    if ((own && canWrite()) || isModerator) {
      items.push(menuItem("Delete message", () => deleteMessage(li), "is-danger"));
    }
    if (isMember) {
      items.push(menuItem("Mark unread from here", () => markUnreadFrom(li)));
    }
    items.push(menuItem("Copy link", () => copyLink(li)));
    showMenu(popup("message-menu", "Message actions"), trigger, items);
  }

  function copyLink(li) {
    const id = li.dataset.id;
    const url = new URL(roomUrl(ROOM) + "?m=" + id + "#m-" + id, window.location.href).toString();
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(
        () => showNotice("Link copied."),
        () => showNotice(url)
      );
    } else {
      showNotice(url);
    }
  }

  function toggleReaction(li, emoji) {
    if (!canWrite()) {
      return;
    }
    const id = Number(li.dataset.id);
    const nonce = makeNonce();
    if (!sendFrame({ type: "react", id, emoji, nonce })) {
      showNotice("Not connected. Try again when the connection is back.");
      return;
    }
    pendingActions.set(nonce, { kind: "react", id });
  }

  async function deleteMessage(li) {
    const ok = await confirmAction({
      title: "Delete this message?",
      text: "It will be removed for everyone. This cannot be undone.",
      ok: "Delete",
    });
    if (!ok || !li.isConnected) {
      return;
    }
    const id = Number(li.dataset.id);
    const nonce = makeNonce();
    if (!sendFrame({ type: "delete", id, nonce })) {
      showNotice("Not connected. Try again when the connection is back.");
      return;
    }
    li.classList.add("is-deleting");
    pendingActions.set(nonce, { kind: "delete", id, revert: () => li.classList.remove("is-deleting") });
  }

  async function startEdit(li) {
    cancelEdit(false);
    const id = Number(li.dataset.id);
    let body = rawBodies.get(id);
    if (body === undefined) {
      try {
        const m = await fetchOne(id);
        body = m ? m.body : undefined;
      } catch (err) {
        body = undefined;
      }
      if (body === undefined) {
        showNotice("Could not load that message for editing.");
        return;
      }
    }
    if (!li.isConnected || !canWrite()) {
      return;
    }
    cancelEdit(false);
    const bodyEl = li.querySelector(".message-body");
    const editor = el("div", "message-editor");
    const textarea = el("textarea", "message-edit-input");
    textarea.id = "edit-" + id;
    textarea.value = body;
    textarea.rows = Math.min(8, body.split("\n").length + 1);
    const label = el("label", "visually-hidden", "Edit message");
    label.htmlFor = textarea.id;
    const save = button("edit-save", "Save");
    const cancel = button("edit-cancel", "Cancel");
    const hint = el("span", "message-edit-hint", "Enter to save · Escape to cancel");
    const row = el("div", "message-edit-row");
    row.append(save, cancel, hint);
    editor.append(label, textarea, row);
    bodyEl.hidden = true;
    bodyEl.after(editor);
    li.classList.add("is-editing");
    editing = { li, id, editor, textarea, bodyEl, original: body };
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        saveEdit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        cancelEdit(true);
      }
    });
    save.addEventListener("click", saveEdit);
    cancel.addEventListener("click", () => cancelEdit(true));
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  function cancelEdit(refocus) {
    if (!editing) {
      return;
    }
    const { li, editor, bodyEl } = editing;
    editing = null;
    editor.remove();
    bodyEl.hidden = false;
    li.classList.remove("is-editing");
    if (refocus) {
      if (els.input && !els.input.disabled) {
        els.input.focus();
      } else {
        const more = li.querySelector(".action-more");
        if (more) {
          more.focus();
        }
      }
    }
  }

  function saveEdit() {
    if (!editing) {
      return;
    }
    const { li, id, textarea, original, bodyEl } = editing;
    const text = textarea.value;
    if (!text.trim()) {
      showNotice("A message cannot be empty. To remove it, use Delete.");
      return;
    }
    const length = codePoints(text.trim());
    if (length > BODY_MAX_CHARS) {
      showNotice("That is too long (" + length + " characters; the limit is " + BODY_MAX_CHARS + ").");
      return;
    }
    if (text === original) {
      cancelEdit(true);
      return;
    }
    const nonce = makeNonce();
    if (!sendFrame({ type: "edit", id, body: text, nonce })) {
      showNotice("Not connected: the edit was not saved. Try again when the connection is back.");
      return;
    }
    cancelEdit(true);
    // The new text at once, as plain text; the server's rendering replaces it.
    const previous = Array.from(bodyEl.childNodes);
    const wasPlain = bodyEl.classList.contains("is-plain");
    bodyEl.textContent = text;
    bodyEl.classList.add("is-plain");
    li.classList.add("is-saving");
    pendingActions.set(nonce, {
      kind: "edit",
      id,
      revert: () => {
        bodyEl.replaceChildren(...previous);
        bodyEl.classList.toggle("is-plain", wasPlain);
        li.classList.remove("is-saving");
      },
    });
  }

  function setupMessageActions() {
    els.list.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const li = target ? target.closest("li.message") : null;
      if (!li) {
        return;
      }
      const retry = target.closest("button.message-retry");
      if (retry) {
        const entry = outbox.get(li.dataset.nonce);
        if (entry && !signedOut) {
          transmit(entry);
          if (els.input) {
            els.input.focus();
          }
        }
        return;
      }
      const chip = target.closest("button.reaction");
      if (chip) {
        toggleReaction(li, chip.dataset.emoji);
        return;
      }
      const react = target.closest("button.action-react");
      if (react) {
        if (openMenu && openMenu.trigger === react) {
          closeMenus(true);
        } else {
          showPalette(li, react);
        }
        return;
      }
      const more = target.closest("button.action-more");
      if (more) {
        if (openMenu && openMenu.trigger === more) {
          closeMenus(true);
        } else {
          showMore(li, more);
        }
      }
    });
    document.addEventListener("mousedown", (event) => {
      if (openMenu && !openMenu.node.contains(event.target) && !openMenu.trigger.contains(event.target)) {
        closeMenus(false);
      }
    });
    window.addEventListener("resize", () => closeMenus(false));
  }

  // --- composer: @mentions, typing --------------------------------------------------

  const mention = { items: [], active: -1, request: 0, timer: null };

  function mentionQuery() {
    const input = els.input;
    if (input.selectionStart !== input.selectionEnd) {
      return null;
    }
    const end = input.selectionStart;
    const match = /(^|[^\w@.+-])@([\w.+-]{0,40})$/u.exec(input.value.slice(0, end));
    if (!match) {
      return null;
    }
    return { query: match[2], start: end - match[2].length - 1, end };
  }

  function renderMentions() {
    const list = els.mentionList;
    list.replaceChildren();
    mention.items.forEach((name, i) => {
      const option = el("li", "mention-option");
      option.id = "mention-option-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", i === mention.active ? "true" : "false");
      option.dataset.username = name;
      const avatar = el("span", "mention-avatar avatar-c" + (hashString(name) % 8), firstLetter(name));
      avatar.setAttribute("aria-hidden", "true");
      option.append(avatar, el("span", "mention-name", name));
      list.appendChild(option);
    });
    list.hidden = mention.items.length === 0;
    if (mention.active >= 0) {
      els.input.setAttribute("aria-activedescendant", "mention-option-" + mention.active);
      const option = document.getElementById("mention-option-" + mention.active);
      if (option) {
        option.scrollIntoView({ block: "nearest" });
      }
    } else {
      els.input.removeAttribute("aria-activedescendant");
    }
  }

  function closeMentions() {
    if (!els.mentionList) {
      return;
    }
    mention.request += 1;
    clearTimeout(mention.timer);
    if (mention.items.length) {
      mention.items = [];
      mention.active = -1;
      renderMentions();
    }
  }

  async function fetchMentions(query) {
    const request = ++mention.request;
    const url = new URL("/api/users/", window.location.href);
    url.searchParams.set("q", query);
    url.searchParams.set("room", ROOM);
    let data;
    try {
      data = await api("GET", url.toString());
    } catch (err) {
      return;
    }
    const now = mentionQuery();
    if (request !== mention.request || !now || now.query !== query) {
      return; // the text moved on meanwhile
    }
    mention.items = (data.users || []).map((u) => u.username).filter((name) => name !== ME);
    mention.active = mention.items.length ? 0 : -1;
    renderMentions();
    if (mention.items.length) {
      announce(mention.items.length + (mention.items.length === 1 ? " person" : " people") + " to mention.");
    }
  }

  function updateMentions() {
    const found = canWrite() ? mentionQuery() : null;
    if (!found) {
      closeMentions();
      return;
    }
    clearTimeout(mention.timer);
    mention.timer = setTimeout(() => fetchMentions(found.query), 80);
  }

  function pickMention(name) {
    const found = mentionQuery();
    if (!found) {
      closeMentions();
      return;
    }
    const input = els.input;
    const insert = "@" + name + " ";
    input.value = input.value.slice(0, found.start) + insert + input.value.slice(found.end);
    const caret = found.start + insert.length;
    input.setSelectionRange(caret, caret);
    closeMentions();
    autosize();
    input.focus();
  }

  function onComposerKey(event) {
    if (mention.items.length) {
      const count = mention.items.length;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        mention.active = (mention.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
        renderMentions();
        return;
      }
      if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && mention.active >= 0) {
        event.preventDefault();
        pickMention(mention.items[mention.active]);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closeMentions();
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === "ArrowUp" && !els.input.value) {
      // Edit your last message, as in other chat apps.
      const own = els.list.querySelectorAll("li.message.is-own[data-id]");
      if (own.length && canWrite()) {
        event.preventDefault();
        startEdit(own[own.length - 1]);
      }
    }
  }

  // --- composer ------------------------------------------------------------------

  const nativeAutosize = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");

  function autosize() {
    if (!els.input || nativeAutosize) {
      return;
    }
    // CSSOM assignment (not a style attribute in markup): allowed by a strict CSP.
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight, 200) + "px";
  }

  function setupComposer() {
    if (!els.form) {
      return;
    }
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitComposer();
    });
    els.input.addEventListener("keydown", onComposerKey);
    els.input.addEventListener("input", () => {
      autosize();
      signalTyping();
      updateMentions();
    });
    els.input.addEventListener("click", updateMentions);
    els.input.addEventListener("keyup", (event) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) {
        updateMentions();
      }
    });
    els.input.addEventListener("blur", () => setTimeout(closeMentions, 150));
    els.mentionList.addEventListener("mousedown", (event) => event.preventDefault());
    els.mentionList.addEventListener("click", (event) => {
      const option = event.target instanceof Element ? event.target.closest("[role=option]") : null;
      if (option) {
        pickMention(option.dataset.username);
      }
    });
    // Keep the focus (and a phone's keyboard) in the textarea when Send is tapped.
    els.send.addEventListener("mousedown", (event) => event.preventDefault());
  }

  // --- sidebar (phones) ------------------------------------------------------------

  function setSidebar(open, focusToggle) {
    if (!els.toggle) {
      return;
    }
    els.app.classList.toggle("sidebar-open", open);
    els.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (els.backdrop) {
      els.backdrop.hidden = !open;
    }
    if (open) {
      const target = els.sidebar.querySelector("a[aria-current='page']") || els.sidebar.querySelector("a");
      if (target) {
        target.focus();
      }
    } else if (focusToggle) {
      els.toggle.focus();
    }
  }

  function setupSidebar() {
    if (!els.toggle) {
      return;
    }
    els.toggle.addEventListener("click", () => {
      setSidebar(!els.app.classList.contains("sidebar-open"), false);
    });
    if (els.backdrop) {
      els.backdrop.addEventListener("click", () => setSidebar(false, true));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented) {
        return;
      }
      if (els.app.classList.contains("sidebar-open")) {
        setSidebar(false, true);
      } else if (!els.memberPanel.hidden && els.memberPanel.contains(document.activeElement)) {
        setMemberPanel(false);
      }
    });
    const wide = window.matchMedia("(min-width: 700px)");
    if (wide.addEventListener) {
      wide.addEventListener("change", () => {
        if (wide.matches) {
          setSidebar(false, false);
        }
      });
    }
  }

  // --- start ---------------------------------------------------------------------

  function adoptRenderedMessages() {
    els.list.querySelectorAll("li.message").forEach((li) => {
      const id = Number(li.dataset.id);
      if (Number.isFinite(id)) {
        byId.set(id, li);
        noteId(id);
      }
      const body = li.querySelector(".message-body");
      if (body && body.lastChild && body.lastChild.nodeType === Node.TEXT_NODE && !body.lastChild.data.trim()) {
        body.lastChild.remove(); // the newline after the rendered markup
      }
      const time = li.querySelector("time.message-time");
      if (time) {
        formatTime(time, time.getAttribute("datetime"));
      }
      if (li.dataset.edited) {
        setEdited(li, li.dataset.edited);
      }
      decorate(li);
      if (li.hasAttribute("data-reactions-pending")) {
        li.removeAttribute("data-reactions-pending");
        fetchOne(id).then(
          (m) => m && setReactions(li, m.reactions || {}),
          () => {}
        );
      }
    });
  }

  function init() {
    (config.rooms || []).forEach((room) => sidebar.set(room.slug, Object.assign({}, room)));
    if (els.dmList) {
      // The server renders the dots as not known yet, whoever it is: the socket will say.
      els.dmList.querySelectorAll("a.room-link").forEach((link) => {
        const entry = sidebar.get(link.dataset.room);
        if (entry) {
          renderDmPresence(link, entry);
        }
      });
    }
    adoptRenderedMessages();
    updateEmpty();
    if (isMember && config.lastReadId !== null && config.lastReadId !== undefined) {
      placeDivider(config.lastReadId);
    }
    renderRoomState();
    updateTitle();

    setupComposer();
    setupMessageActions();
    setupSidebar();
    setupDialogs();
    setupNotifications();
    autosize();

    if (els.join) {
      els.join.addEventListener("click", joinRoom);
    }
    if (els.leaveButton) {
      els.leaveButton.addEventListener("click", leaveRoom);
    }
    els.membersButton.addEventListener("click", () => setMemberPanel(els.memberPanel.hidden));
    els.memberClose.addEventListener("click", () => setMemberPanel(false));
    els.memberList.addEventListener("click", (event) => {
      const remove = event.target instanceof Element ? event.target.closest("button.member-remove") : null;
      if (remove) {
        removeMember(remove.dataset.username);
      }
    });
    if (els.older) {
      els.older.addEventListener("click", loadOlder);
    }
    els.pane.addEventListener(
      "scroll",
      () => {
        stickToBottom = isNearBottom();
        closeMenus(false);
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

    document.addEventListener("visibilitychange", () => {
      syncPresence();
      scheduleRead();
    });
    window.addEventListener("focus", scheduleRead);
    ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"].forEach((name) => {
      window.addEventListener(name, onActivity, { passive: true, capture: true });
    });
    onActivity();
    window.addEventListener("hashchange", () => {
      const target = targetFromLocation();
      if (target) {
        goToMessage(target);
      }
    });
    window.addEventListener("online", () => {
      if (!socket && reconnectTimer && !signedOut) {
        connect();
      }
    });
    window.addEventListener("pagehide", (event) => {
      if (!event.persisted) {
        leaving = true;
      }
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) {
        leaving = false;
        if (!socket && !signedOut) {
          connect();
        }
      }
    });

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
    if (!target && els.input && !els.input.disabled && window.matchMedia("(min-width: 700px)").matches) {
      els.input.focus();
    }
    connect();
  }

  init();
})();
