/*
 * TeamChat browser client.
 *
 * One WebSocket per tab (it carries every room of the user), catch-up from the
 * history API after every (re)connect, optimistic sending with nonces, unread
 * badges for the other rooms. See /work/shared/PROTOCOL.md for the wire format.
 *
 * Every piece of user text reaches the DOM through textContent or
 * createTextNode only: never as markup.
 */
(function () {
  "use strict";

  var configEl = document.getElementById("chat-config");
  if (!configEl) {
    return;
  }
  var config = JSON.parse(configEl.textContent);

  var ROOM = config.room;
  var ME = config.user;
  var PAGE_SIZE = config.pageSize || 50;
  var CATCH_UP_LIMIT = 200;
  var SEND_TIMEOUT_MS = 10000;
  var BACKOFF_FIRST_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var STABLE_AFTER_MS = 10000;
  var NEAR_BOTTOM_PX = 80;
  var NOTICE_MS = 6000;
  var BODY_MAX_CHARS = 10000;
  var READ_ONLY_POLL_MS = 20000;
  var CLOSE_SESSION_ENDED = 4401;

  var els = {
    app: document.getElementById("app"),
    status: document.getElementById("connection-status"),
    announcer: document.getElementById("status-announcer"),
    notice: document.getElementById("notice"),
    pane: document.getElementById("message-pane"),
    list: document.getElementById("messages"),
    empty: document.getElementById("empty-note"),
    older: document.getElementById("load-older"),
    form: document.getElementById("composer"),
    input: document.getElementById("composer-input"),
    send: document.getElementById("composer-send"),
    rooms: document.getElementById("rooms"),
    toggle: document.getElementById("sidebar-toggle"),
    sidebar: document.getElementById("sidebar"),
    backdrop: document.getElementById("sidebar-backdrop"),
  };
  var isMember = !!els.form;

  // --- state ---------------------------------------------------------------

  var byId = new Map(); // server id -> li (current room only)
  var outbox = new Map(); // nonce -> {nonce, body, li, timer, sentOn}
  var lastId = 0; // highest id seen for the current room
  var oldestId = null; // smallest id shown
  var socket = null;
  var attempt = 0; // reconnect attempts since the last stable connection
  var reconnectTimer = null;
  var countdownTimer = null;
  var stableTimer = null;
  var pollTimer = null;
  var reconnectAt = 0;
  var catchingUp = false;
  var liveBuffer = [];
  var signedOut = false;
  var leaving = false;
  var loadingOlder = false;
  var unseen = 0;
  var stickToBottom = true;
  var baseTitle = document.title;
  var noticeTimer = null;
  var lastStatusState = null;

  // --- small helpers -------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function pad2(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function codePoints(text) {
    return Array.from(text).length;
  }

  function makeNonce() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return "c-" + window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) {
        bytes[i] = Math.floor(Math.random() * 256);
      }
    }
    return (
      "c-" +
      Array.prototype.map
        .call(bytes, function (b) {
          return ("0" + b.toString(16)).slice(-2);
        })
        .join("")
    );
  }

  function hashString(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) {
      h = (h * 31 + text.charCodeAt(i)) | 0;
    }
    return Math.abs(h);
  }

  function firstLetter(name) {
    var first = Array.from(name || "?")[0] || "?";
    return first.toUpperCase();
  }

  function formatTime(timeEl, iso) {
    var date = new Date(iso);
    timeEl.setAttribute("datetime", iso);
    if (isNaN(date.getTime())) {
      return;
    }
    timeEl.textContent = pad2(date.getHours()) + ":" + pad2(date.getMinutes());
    var full;
    try {
      full = date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
    } catch (err) {
      full = date.toLocaleString();
    }
    timeEl.title = full;
  }

  // --- status, notices, title ---------------------------------------------

  function announce(text) {
    if (els.announcer) {
      els.announcer.textContent = text;
    }
  }

  function setStatus(state, text, withLoginLink) {
    var node = els.status;
    node.setAttribute("data-state", state);
    node.replaceChildren();
    node.appendChild(document.createTextNode(text));
    if (withLoginLink) {
      var link = el("a", "status-login", "log in again");
      link.href = node.getAttribute("data-login-url") || "/accounts/login/";
      node.appendChild(document.createTextNode(" — "));
      node.appendChild(link);
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
    noticeTimer = setTimeout(function () {
      els.notice.hidden = true;
      els.notice.textContent = "";
    }, NOTICE_MS);
  }

  function updateTitle() {
    document.title = unseen > 0 ? "(" + unseen + ") " + baseTitle : baseTitle;
  }

  // --- scrolling -----------------------------------------------------------

  function isNearBottom() {
    var pane = els.pane;
    return pane.scrollHeight - pane.scrollTop - pane.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    els.pane.scrollTop = els.pane.scrollHeight;
    stickToBottom = true;
  }

  // --- rendering messages --------------------------------------------------

  function decorate(li, user) {
    var avatar = li.querySelector(".message-avatar");
    if (avatar) {
      avatar.classList.add("avatar-c" + (hashString(user) % 8));
    }
    if (user === ME) {
      li.classList.add("is-own");
    }
  }

  function buildMessage(m, state) {
    var li = el("li", "message");
    if (typeof m.id === "number") {
      li.setAttribute("data-id", String(m.id));
    }
    if (m.nonce) {
      li.setAttribute("data-nonce", m.nonce);
    }
    li.setAttribute("data-state", state);

    var avatar = el("span", "message-avatar", firstLetter(m.user));
    avatar.setAttribute("aria-hidden", "true");
    var main = el("div", "message-main");
    var meta = el("div", "message-meta");
    meta.appendChild(el("span", "message-user", m.user));
    meta.appendChild(document.createTextNode(" "));
    var time = el("time", "message-time");
    formatTime(time, m.created);
    meta.appendChild(time);
    main.appendChild(meta);
    main.appendChild(el("div", "message-body", m.body));
    li.appendChild(avatar);
    li.appendChild(main);
    decorate(li, m.user);
    return li;
  }

  function clearFailure(li) {
    var failure = li.querySelector(".message-failure");
    if (failure) {
      failure.remove();
    }
  }

  function setFailure(li, reason) {
    clearFailure(li);
    var box = el("div", "message-failure");
    box.appendChild(el("span", "message-error", reason));
    box.appendChild(document.createTextNode(" "));
    var retry = el("button", "message-retry", "Retry");
    retry.type = "button";
    box.appendChild(retry);
    li.querySelector(".message-main").appendChild(box);
  }

  // Sent messages stay in id order; unsent (pending/failed) ones stay below them.
  function insertSent(li, id) {
    var list = els.list;
    var node = list.lastElementChild;
    while (node) {
      var nodeId = node.getAttribute("data-id");
      if (nodeId !== null && Number(nodeId) < id) {
        break;
      }
      node = node.previousElementSibling;
    }
    if (node) {
      node.after(li);
    } else {
      list.prepend(li);
    }
  }

  function updateEmpty() {
    if (els.empty) {
      els.empty.hidden = els.list.children.length > 0;
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

  /* Show one message of the current room (from history or the socket).
     Returns true when it was new. */
  function acceptMessage(m) {
    if (!m || typeof m.id !== "number" || m.room !== ROOM) {
      return false;
    }
    if (byId.has(m.id)) {
      return false;
    }
    var li;
    var entry = m.nonce && m.user === ME ? outbox.get(m.nonce) : undefined;
    if (entry) {
      outbox.delete(m.nonce);
      clearTimeout(entry.timer);
      li = entry.li;
      li.remove();
      clearFailure(li);
      li.setAttribute("data-id", String(m.id));
      li.setAttribute("data-state", "sent");
      formatTime(li.querySelector(".message-time"), m.created);
    } else {
      li = buildMessage(m, "sent");
    }
    insertSent(li, m.id);
    byId.set(m.id, li);
    noteId(m.id);
    return !entry;
  }

  function applyMessages(messages) {
    if (!messages.length) {
      return;
    }
    var stick = isNearBottom() || stickToBottom;
    var fresh = 0;
    messages.forEach(function (m) {
      if (acceptMessage(m) && m.user !== ME) {
        fresh += 1;
      }
    });
    updateEmpty();
    if (stick) {
      scrollToBottom();
    }
    if (fresh && document.hidden) {
      unseen += fresh;
      updateTitle();
    }
  }

  // --- history API ---------------------------------------------------------

  function HttpError(status) {
    this.status = status;
    this.message = "HTTP " + status;
  }

  function fetchHistory(params) {
    var url = new URL(config.historyUrl, window.location.href);
    Object.keys(params).forEach(function (key) {
      url.searchParams.set(key, String(params[key]));
    });
    return fetch(url.toString(), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) {
        throw new HttpError(response.status);
      }
      return response.json().then(function (data) {
        if (!data || !Array.isArray(data.messages)) {
          throw new Error("unexpected history response");
        }
        return data.messages;
      });
    });
  }

  function isAuthError(err) {
    return err instanceof HttpError && (err.status === 401 || err.status === 403);
  }

  // --- sending -------------------------------------------------------------

  function socketReady() {
    return socket && socket.readyState === WebSocket.OPEN && !catchingUp;
  }

  function transmit(entry) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.sentOn = null;
    clearFailure(entry.li);
    entry.li.setAttribute("data-state", "pending");
    if (!socketReady()) {
      return; // sent after the next (re)connect and catch-up
    }
    try {
      socket.send(
        JSON.stringify({ type: "send", room: ROOM, body: entry.body, nonce: entry.nonce })
      );
    } catch (err) {
      return;
    }
    entry.sentOn = socket;
    entry.timer = setTimeout(function () {
      markFailed(entry, "No reply from the server.");
    }, SEND_TIMEOUT_MS);
  }

  function markFailed(entry, reason) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.sentOn = null;
    if (!outbox.has(entry.nonce)) {
      return;
    }
    entry.li.setAttribute("data-state", "failed");
    setFailure(entry.li, reason);
  }

  function resendPending() {
    outbox.forEach(function (entry) {
      if (entry.li.getAttribute("data-state") === "pending" && !entry.sentOn) {
        transmit(entry);
      }
    });
  }

  function suspendOutbox() {
    // The socket is gone: pending messages wait (timer stopped) and are resent
    // with the same nonce after the next catch-up.
    outbox.forEach(function (entry) {
      if (entry.li.getAttribute("data-state") === "pending") {
        clearTimeout(entry.timer);
        entry.timer = null;
        entry.sentOn = null;
      }
    });
  }

  function submitComposer() {
    if (!els.input || signedOut) {
      return;
    }
    var text = els.input.value;
    var trimmed = text.trim();
    if (trimmed === "") {
      return;
    }
    var length = codePoints(trimmed);
    if (length > BODY_MAX_CHARS) {
      showNotice(
        "That message is too long (" + length + " characters; the limit is " + BODY_MAX_CHARS + ")."
      );
      return;
    }
    var nonce = makeNonce();
    var li = buildMessage(
      { user: ME, body: text, created: new Date().toISOString(), nonce: nonce },
      "pending"
    );
    els.list.appendChild(li);
    var entry = { nonce: nonce, body: text, li: li, timer: null, sentOn: null };
    outbox.set(nonce, entry);
    els.input.value = "";
    autosize();
    els.input.focus();
    updateEmpty();
    scrollToBottom();
    transmit(entry);
  }

  // --- socket events -------------------------------------------------------

  function onFrame(event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (!data || typeof data !== "object") {
      return;
    }
    if (data.type === "message") {
      if (data.room !== ROOM) {
        if (data.user !== ME) {
          bumpUnread(data.room);
        }
        return;
      }
      if (catchingUp) {
        liveBuffer.push(data);
      } else {
        applyMessages([data]);
      }
    } else if (data.type === "error") {
      var detail = typeof data.detail === "string" && data.detail ? data.detail : String(data.code);
      var entry = typeof data.nonce === "string" ? outbox.get(data.nonce) : undefined;
      if (entry) {
        markFailed(entry, detail);
      } else {
        showNotice(detail);
      }
    }
  }

  function clearReconnectTimers() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    countdownTimer = null;
  }

  function connect() {
    if (signedOut || leaving) {
      return;
    }
    clearReconnectTimers();
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var sock;
    try {
      sock = new WebSocket(scheme + "//" + window.location.host + config.socketPath);
    } catch (err) {
      connectFailed();
      return;
    }
    socket = sock;
    var opened = false;
    sock.addEventListener("open", function () {
      if (socket !== sock) {
        return;
      }
      opened = true;
      clearTimeout(stableTimer);
      stableTimer = setTimeout(function () {
        attempt = 0;
      }, STABLE_AFTER_MS);
      catchUp(sock);
    });
    sock.addEventListener("message", function (event) {
      if (socket === sock) {
        onFrame(event);
      }
    });
    sock.addEventListener("close", function (event) {
      if (socket !== sock) {
        return;
      }
      socket = null;
      clearTimeout(stableTimer);
      catchingUp = false;
      liveBuffer = []; // the next catch-up fetches them from history
      suspendOutbox();
      stopPolling();
      if (leaving || signedOut) {
        return;
      }
      if (event.code === CLOSE_SESSION_ENDED) {
        goSignedOut();
      } else if (!opened) {
        connectFailed();
      } else {
        scheduleReconnect();
      }
    });
  }

  function connectFailed() {
    // The handshake failed: find out whether the session is gone.
    fetch(config.historyUrl + "?limit=1", {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    }).then(
      function (response) {
        if (response.status === 401 || response.status === 403) {
          goSignedOut();
        } else {
          scheduleReconnect();
        }
      },
      function () {
        scheduleReconnect();
      }
    );
  }

  function scheduleReconnect() {
    if (signedOut || leaving) {
      return;
    }
    clearReconnectTimers();
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, attempt));
    var delay = Math.min(BACKOFF_MAX_MS, base * (0.75 + Math.random() * 0.5));
    attempt += 1;
    reconnectAt = Date.now() + delay;
    var tick = function () {
      var seconds = Math.max(1, Math.ceil((reconnectAt - Date.now()) / 1000));
      setStatus("offline", "Reconnecting in " + seconds + "s…");
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    reconnectTimer = setTimeout(connect, delay);
  }

  function catchUp(sock) {
    catchingUp = true;
    liveBuffer = [];
    setStatus("connecting", "Syncing…");
    var step = function () {
      return fetchHistory({ after: lastId, limit: CATCH_UP_LIMIT }).then(function (page) {
        if (socket !== sock) {
          return false;
        }
        applyMessages(page);
        return page.length < CATCH_UP_LIMIT ? true : step();
      });
    };
    step().then(
      function (done) {
        if (!done || socket !== sock) {
          return;
        }
        catchingUp = false;
        var buffered = liveBuffer;
        liveBuffer = [];
        applyMessages(buffered);
        setStatus("online", "Connected");
        resendPending();
        startPolling();
      },
      function (err) {
        if (socket !== sock) {
          return;
        }
        if (isAuthError(err)) {
          goSignedOut();
          return;
        }
        // Could not catch up: drop this socket and try again later.
        try {
          sock.close(4000, "catch-up failed");
        } catch (closeErr) {
          /* already closing */
        }
      }
    );
  }

  // A public room the user has not joined is not carried by the socket: poll it.
  function startPolling() {
    if (isMember || pollTimer) {
      return;
    }
    pollTimer = setInterval(function () {
      if (!socketReady()) {
        return;
      }
      fetchHistory({ after: lastId, limit: CATCH_UP_LIMIT }).then(applyMessages, function (err) {
        if (isAuthError(err)) {
          goSignedOut();
        }
      });
    }, READ_ONLY_POLL_MS);
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  function goSignedOut() {
    if (signedOut) {
      return;
    }
    signedOut = true;
    clearReconnectTimers();
    clearTimeout(stableTimer);
    stopPolling();
    if (socket) {
      var sock = socket;
      socket = null;
      try {
        sock.close();
      } catch (err) {
        /* ignore */
      }
    }
    setStatus("signed-out", "Signed out", true);
    outbox.forEach(function (entry) {
      if (entry.li.getAttribute("data-state") === "pending") {
        markFailed(entry, "you are signed out.");
      }
    });
    if (els.input) {
      els.input.disabled = true;
      els.send.disabled = true;
    }
  }

  // --- unread badges for the other rooms -----------------------------------

  var UNREAD_KEY = "teamchat.unread." + ME;
  var unread = {};

  function loadUnread() {
    try {
      var stored = JSON.parse(window.sessionStorage.getItem(UNREAD_KEY) || "{}");
      if (stored && typeof stored === "object") {
        unread = stored;
      }
    } catch (err) {
      unread = {};
    }
    delete unread[ROOM];
    saveUnread();
  }

  function saveUnread() {
    try {
      window.sessionStorage.setItem(UNREAD_KEY, JSON.stringify(unread));
    } catch (err) {
      /* storage unavailable: counts live in this page only */
    }
  }

  function roomLink(slug) {
    if (!els.rooms) {
      return null;
    }
    var links = els.rooms.querySelectorAll("a.room-link");
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute("data-room") === slug) {
        return links[i];
      }
    }
    return null;
  }

  function renderUnread(slug) {
    var link = roomLink(slug);
    if (!link) {
      return;
    }
    var count = unread[slug] || 0;
    var badge = link.querySelector(".unread-count");
    if (count <= 0) {
      if (badge) {
        badge.remove();
      }
      link.classList.remove("has-unread");
      return;
    }
    if (!badge) {
      badge = el("span", "unread-count");
      link.appendChild(badge);
    }
    badge.textContent = count > 999 ? "999+" : String(count);
    badge.title = count + (count === 1 ? " unread message" : " unread messages");
    link.classList.add("has-unread");
  }

  function bumpUnread(slug) {
    if (typeof slug !== "string" || slug === ROOM || !roomLink(slug)) {
      return;
    }
    unread[slug] = (unread[slug] || 0) + 1;
    saveUnread();
    renderUnread(slug);
  }

  // --- older messages ------------------------------------------------------

  function loadOlder() {
    var button = els.older;
    if (!button || button.hidden || loadingOlder) {
      return;
    }
    if (oldestId === null) {
      button.hidden = true;
      return;
    }
    loadingOlder = true;
    button.disabled = true;
    button.textContent = "Loading…";
    fetchHistory({ before: oldestId, limit: PAGE_SIZE })
      .then(function (page) {
        var pane = els.pane;
        var fromBottom = pane.scrollHeight - pane.scrollTop;
        var fragment = document.createDocumentFragment();
        page.forEach(function (m) {
          if (typeof m.id !== "number" || byId.has(m.id) || m.id >= oldestId) {
            return;
          }
          var li = buildMessage(m, "sent");
          fragment.appendChild(li);
          byId.set(m.id, li);
        });
        page.forEach(function (m) {
          if (typeof m.id === "number" && byId.has(m.id)) {
            noteId(m.id);
          }
        });
        els.list.prepend(fragment);
        pane.scrollTop = pane.scrollHeight - fromBottom;
        updateEmpty();
        if (page.length < PAGE_SIZE) {
          button.hidden = true;
        }
      })
      .catch(function (err) {
        if (isAuthError(err)) {
          goSignedOut();
        } else {
          showNotice("Could not load older messages. Try again.");
        }
      })
      .then(function () {
        loadingOlder = false;
        button.disabled = false;
        button.textContent = "Load older messages";
      });
  }

  // --- composer ------------------------------------------------------------

  var nativeAutosize = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");

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
    els.form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitComposer();
    });
    els.input.addEventListener("keydown", function (event) {
      if (
        event.key === "Enter" &&
        !event.shiftKey &&
        !event.isComposing &&
        event.keyCode !== 229
      ) {
        event.preventDefault();
        submitComposer();
      }
    });
    els.input.addEventListener("input", autosize);
    // Keep the focus (and a phone's keyboard) in the textarea when Send is tapped.
    els.send.addEventListener("mousedown", function (event) {
      event.preventDefault();
    });
  }

  function setupRetry() {
    els.list.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button.message-retry") : null;
      if (!button) {
        return;
      }
      var li = button.closest("li.message");
      var nonce = li && li.getAttribute("data-nonce");
      var entry = nonce ? outbox.get(nonce) : undefined;
      if (entry && !signedOut) {
        transmit(entry);
        if (els.input) {
          els.input.focus();
        }
      }
    });
  }

  // --- sidebar (phones) ----------------------------------------------------

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
      var target = els.sidebar.querySelector("a[aria-current='page']") || els.sidebar.querySelector("a");
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
    els.toggle.addEventListener("click", function () {
      setSidebar(!els.app.classList.contains("sidebar-open"), false);
    });
    if (els.backdrop) {
      els.backdrop.addEventListener("click", function () {
        setSidebar(false, true);
      });
    }
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && els.app.classList.contains("sidebar-open")) {
        setSidebar(false, true);
      }
    });
    var wide = window.matchMedia("(min-width: 700px)");
    var onWide = function () {
      if (wide.matches) {
        setSidebar(false, false);
      }
    };
    if (wide.addEventListener) {
      wide.addEventListener("change", onWide);
    }
  }

  // --- start ---------------------------------------------------------------

  function init() {
    Array.prototype.forEach.call(els.list.querySelectorAll("li.message"), function (li) {
      var id = Number(li.getAttribute("data-id"));
      if (Number.isFinite(id)) {
        byId.set(id, li);
        noteId(id);
      }
      var user = li.querySelector(".message-user");
      decorate(li, user ? user.textContent : "");
      var time = li.querySelector("time.message-time");
      if (time) {
        formatTime(time, time.getAttribute("datetime"));
      }
    });
    updateEmpty();
    loadUnread();
    Object.keys(unread).forEach(renderUnread);

    setupComposer();
    setupRetry();
    setupSidebar();
    autosize();

    if (els.older) {
      els.older.addEventListener("click", loadOlder);
    }
    els.pane.addEventListener(
      "scroll",
      function () {
        stickToBottom = isNearBottom();
        if (els.pane.scrollTop < 40 && els.older && !els.older.hidden) {
          loadOlder();
        }
      },
      { passive: true }
    );
    if (window.ResizeObserver) {
      // Keep the newest message in view when the pane shrinks (composer grows,
      // phone keyboard opens) or the list grows (a failure note appears)
      // while the user was at the bottom.
      var resizer = new ResizeObserver(function () {
        if (stickToBottom) {
          els.pane.scrollTop = els.pane.scrollHeight;
        }
      });
      resizer.observe(els.pane);
      resizer.observe(els.list);
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && unseen) {
        unseen = 0;
        updateTitle();
      }
    });
    window.addEventListener("online", function () {
      if (!socket && reconnectTimer && !signedOut) {
        connect();
      }
    });
    window.addEventListener("pagehide", function (event) {
      if (!event.persisted) {
        leaving = true;
      }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        leaving = false;
        if (!socket && !signedOut) {
          connect();
        }
      }
    });

    scrollToBottom();
    window.addEventListener("load", function () {
      if (stickToBottom) {
        scrollToBottom();
      }
    });
    if (els.input && window.matchMedia("(min-width: 700px)").matches) {
      els.input.focus();
    }
    connect();
  }

  init();
})();
