/*
 * Browser notifications while the tab is in the background, as each room's
 * level, mentions and do not disturb allow (notifyrules.js), and the button
 * that asks for the permission.
 */
import { els, showNotice } from "./ui.js";
import { roomUrl } from "./common.js";
import { shouldNotify } from "./notifyrules.js";

const NOTIFY_BODY_CHARS = 200;

function truncate(text, max) {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max - 1).join("") + "…";
}

function allowed() {
  return "Notification" in window && window.Notification.permission === "granted";
}

export function setupNotifications(ctx) {
  const { store } = ctx;
  const me = store.me;

  /* A new message by someone else, counted as unread. */
  function maybeNotify(m) {
    if (store.catchingUp || !allowed()) {
      return;
    }
    // The sidebar's entry carries the level; a room read without joining has none.
    const room = store.rooms.get(m.room) || (m.room === store.room ? store.roomInfo : null);
    const self = store.people.get(me);
    const context = {
      me,
      room,
      visible: document.visibilityState !== "hidden",
      dndUntil: self ? self.dnd_until : null,
      now: Date.now(),
      following: typeof ctx.following === "function" ? ctx.following(m.thread) : false,
    };
    if (!shouldNotify(m, context)) {
      return;
    }
    const direct = room.kind === "dm";
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
        if (m.room === store.room) {
          ctx.messages.goToMessage(m.id);
          ctx.messages.scheduleRead(); // not every browser fires "focus" here
        } else {
          window.location.assign(roomUrl(m.room) + "?m=" + m.id + "#m-" + m.id);
        }
      };
    } catch (err) {
      /* notifications unavailable in this context */
    }
  }

  function start() {
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
        showNotice("Notifications are on while this tab is in the background, as each room's Notifications setting says.");
      } else if (window.Notification.permission === "denied") {
        showNotice("Notifications are blocked for this site in your browser settings.");
      }
    });
  }

  return { start, maybeNotify };
}
