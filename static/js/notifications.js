/*
 * Browser notifications: mentions and direct messages while the tab is in
 * the background, and the button that asks for the permission.
 */
import { els, showNotice } from "./ui.js";
import { roomUrl } from "./common.js";

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
    if (store.catchingUp || !allowed() || m.user === me || document.visibilityState !== "hidden") {
      return;
    }
    const room = m.room === store.room ? store.roomInfo : store.rooms.get(m.room);
    if (!room) {
      return;
    }
    const direct = room.kind === "dm";
    const mentioned = Array.isArray(m.mentions) && m.mentions.includes(me);
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
        showNotice("Notifications are on: mentions and direct messages while this tab is in the background.");
      } else if (window.Notification.permission === "denied") {
        showNotice("Notifications are blocked for this site in your browser settings.");
      }
    });
  }

  return { start, maybeNotify };
}
