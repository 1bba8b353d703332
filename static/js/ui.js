/*
 * The room page's shared elements and the few things every part of it says:
 * the connection status, passing notices, screen-reader announcements and
 * the tab title with its unread counts.
 */
import { el } from "./common.js";

const NOTICE_MS = 6000;

const $ = (id) => document.getElementById(id);

export const els = {
  app: $("app"),
  status: $("connection-status"),
  currentUser: $("current-user"),
  announcer: $("status-announcer"),
  notice: $("notice"),
  pane: $("message-pane"),
  list: $("messages"),
  empty: $("empty-note"),
  older: $("load-older"),
  newBelow: $("new-below"),
  form: $("composer"),
  input: $("composer-input"),
  send: $("composer-send"),
  emojiButton: $("composer-emoji"),
  attachButton: $("composer-attach"),
  fileInput: $("composer-file"),
  files: $("composer-files"),
  filesStatus: $("composer-files-status"),
  dropZone: $("drop-zone"),
  main: $("main"),
  viewer: $("viewer-dialog"),
  hintKeys: $("hint-keys"),
  hintTouch: $("hint-touch"),
  outboxBar: $("outbox-bar"),
  outboxText: $("outbox-bar-text"),
  retryAll: $("retry-all"),
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

let noticeTimer = null;
let baseTitle = document.title;

export function announce(text) {
  if (els.announcer) {
    els.announcer.textContent = text;
  }
}

// The dot by the person's own name follows the connection: what the others
// see of them is only true while this page is connected.
const CONNECTION = {
  online: "connected",
  connecting: "reconnecting",
  offline: "reconnecting",
  "no-network": "offline",
  "signed-out": "offline",
  deactivated: "offline",
};
const CONNECTION_WORDS = { connected: "Connected", reconnecting: "Reconnecting", offline: "Offline" };

let statusShown = { state: null, action: null, login: false };

/*
 * The connection status: `state` (data-state, which styles it: online,
 * connecting, offline, no-network, signed-out, deactivated) and its words;
 * `options.login` adds a link to sign in again, `options.action` a button
 * ({label, run}). Called every tick of a countdown: only the words change
 * then, so a focused button stays focused.
 */
export function setStatus(state, text, options = {}) {
  const node = els.status;
  const action = options.action || null;
  const login = !!options.login;
  if (statusShown.state !== state || statusShown.action !== action || statusShown.login !== login || !node.firstChild) {
    const words = el("span", "status-text", text);
    node.replaceChildren(words);
    if (login) {
      const link = el("a", "status-login", "log in again");
      link.href = node.getAttribute("data-login-url") || "/accounts/login/";
      node.append(" — ", link);
    }
    if (action) {
      const button = el("button", "status-action", action.label);
      button.type = "button";
      button.addEventListener("click", action.run);
      node.append(button);
    }
  } else if (node.firstChild.textContent !== text) {
    node.firstChild.textContent = text;
  }
  node.setAttribute("data-state", state);
  const connection = CONNECTION[state] || "reconnecting";
  if (els.currentUser && els.currentUser.dataset.connection !== connection) {
    els.currentUser.dataset.connection = connection;
    els.currentUser.title = CONNECTION_WORDS[connection];
  }
  if (state !== statusShown.state) {
    if (state === "online") {
      announce("Connected.");
    } else if (state === "offline") {
      announce("Connection lost. Reconnecting.");
    } else if (state === "no-network") {
      announce("No network. Reconnecting once it is back.");
    } else if (state === "signed-out") {
      announce("Signed out. Log in again to keep chatting.");
    } else if (state === "deactivated") {
      announce(text);
    }
  }
  statusShown = { state, action, login };
}

export function showNotice(text) {
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

export function setBaseTitle(title) {
  baseTitle = title;
}

/* The tab title: "(unread, @mentions) " before the room's own. */
export function updateTitle({ unread, mentions }) {
  const counts = unread || mentions ? "(" + unread + (mentions ? ", @" + mentions : "") + ") " : "";
  document.title = counts + baseTitle;
}
