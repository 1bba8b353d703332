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
let lastStatusState = null;
let baseTitle = document.title;

export function announce(text) {
  if (els.announcer) {
    els.announcer.textContent = text;
  }
}

export function setStatus(state, text, withLoginLink) {
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
