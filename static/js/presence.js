/*
 * Presence: whom this socket follows (the other person of each 1:1
 * conversation in the sidebar, then the open member list), and this tab's
 * own state (active while visible and used, else away).
 */
import { dmPartner } from "./store.js";

const PRESENCE_FOLLOW_MAX = 1000; // the most people one socket may follow
const IDLE_AFTER_MS = 5 * 60 * 1000;

export function setupPresence(ctx) {
  const { store } = ctx;
  let following = new Set(); // the usernames this socket follows, as last sent
  let followingKey = null; // the same as sent (null: to be sent again, whatever it is)
  let followTimer = null;
  let presenceSent = "active";
  let idle = false;
  let idleTimer = null;
  let lastActivity = 0;

  function followedNames() {
    const names = new Set();
    store.rooms.forEach((entry) => {
      const partner = dmPartner(entry, store.me);
      if (partner && names.size < PRESENCE_FOLLOW_MAX) {
        names.add(partner);
      }
    });
    for (const name of ctx.room.shownMembers() || []) {
      if (names.size >= PRESENCE_FOLLOW_MAX) {
        break;
      }
      names.add(name);
    }
    return names;
  }

  /* Tell the server whom to follow once the current changes are made (and the socket is caught up). */
  function follow() {
    if (followTimer === null) {
      followTimer = setTimeout(sendFollowing, 0);
    }
  }

  function sendFollowing() {
    followTimer = null;
    if (!ctx.socket.isReady()) {
      return; // `resumed` comes back here
    }
    const names = followedNames();
    const users = Array.from(names).sort();
    const key = users.join(" ");
    if (key === followingKey) {
      return;
    }
    const sock = ctx.socket.current();
    const again = () => {
      if (ctx.socket.current() === sock) {
        followingKey = null;
        follow();
      }
    };
    if (ctx.socket.hint({ type: "presence_sub", users }, again)) {
      following = names;
      followingKey = key;
    }
  }

  /* A new socket follows nobody yet: a subscription belongs to its socket. */
  function socketOpened() {
    following = new Set();
    followingKey = "";
  }

  function wanted() {
    return document.visibilityState === "visible" && !idle ? "active" : "away";
  }

  function sync() {
    const state = wanted();
    if (state === presenceSent) {
      return;
    }
    const sock = ctx.socket.current();
    const again = () => {
      // Refused as too many: the server kept the state before. Say what is true now.
      if (ctx.socket.current() === sock && presenceSent === state) {
        presenceSent = null;
        sync();
      }
    };
    if (ctx.socket.hint({ type: "presence", state }, again)) {
      presenceSent = state;
    }
  }

  /* Caught up on a new socket: each starts out "active" on the server. */
  function resumed() {
    presenceSent = "active";
    sync();
    follow();
  }

  function onActivity() {
    const now = Date.now();
    if (idle) {
      idle = false;
      sync();
    }
    if (now - lastActivity > 1000) {
      lastActivity = now;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        sync();
      }, IDLE_AFTER_MS);
    }
  }

  function start() {
    document.addEventListener("visibilitychange", sync);
    ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"].forEach((name) => {
      window.addEventListener(name, onActivity, { passive: true, capture: true });
    });
    onActivity();
  }

  store.on("live", () => {
    // Changes announced while the server's live path was down never came:
    // ask again for the states of everyone followed (after `resumed`).
    followingKey = null;
  });
  store.on("room", follow);
  store.on("room-removed", follow);

  return { start, follow, follows: (name) => following.has(name), socketOpened, resumed };
}
