/*
 * The page's one WebSocket: connecting, backing off, resuming.
 *
 * The page is rendered at a log position (`seq`); every socket resumes from
 * the highest `seq` the store has applied, so the server replays everything
 * missed (page load, outages) from its event log before going live, then
 * sends `resumed`. Frames go to the store; this module only adds the
 * bookkeeping of "hints" (frames answered only when refused).
 */
import { setStatus } from "./ui.js";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
const STABLE_AFTER_MS = 10000;
const CLOSE_SESSION_ENDED = 4401;
const CLOSE_RELOAD = 4410; // too far behind to catch up over the socket
const HINT_RETRY_MS = 2000;
const HINTS_KEPT = 64;

/*
 * `hooks`: opened() once a socket is open (the replay follows), dropped() when
 * the socket is gone (whatever follows), signedOut() when the session ended.
 */
export function createSocket({ config, store }, hooks) {
  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let countdownTimer = null;
  let stableTimer = null;
  let reconnectAt = 0;
  let signedOut = false;
  let leaving = false;
  let hintCount = 0;
  const hints = new Map(); // nonce -> what to do again when the server refused it as too many (or null)

  const isOpen = () => !!socket && socket.readyState === WebSocket.OPEN;
  const isReady = () => isOpen() && !store.catchingUp;

  function send(frame) {
    if (!isOpen()) {
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
  function hint(frame, again) {
    hintCount += 1;
    const nonce = "h-" + hintCount;
    if (!send(Object.assign({}, frame, { nonce }))) {
      return false;
    }
    hints.set(nonce, again || null);
    if (hints.size > HINTS_KEPT) {
      hints.delete(hints.keys().next().value); // refusals come at once: the oldest is long settled
    }
    return true;
  }

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
    if (data.type === "error" && typeof data.nonce === "string" && hints.has(data.nonce)) {
      const again = hints.get(data.nonce);
      hints.delete(data.nonce);
      if (data.code === "rate_limited") {
        if (again) {
          setTimeout(again, HINT_RETRY_MS);
        }
        return;
      }
    }
    try {
      store.receive(data);
    } catch (err) {
      window.console.error("could not apply a " + data.type + " event", err);
    }
  }

  function url() {
    const address = new URL(config.socketPath, window.location.href);
    address.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    address.searchParams.set("seq", String(store.seq));
    if (store.isChannel() && !store.roomInfo.private) {
      // Public rooms are readable without joining: the socket carries this one
      // either way (the server ignores it for members), which also covers being
      // removed while disconnected.
      address.searchParams.set("watch", store.room);
    }
    return address.toString();
  }

  function clearReconnectTimers() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    countdownTimer = null;
  }

  function dropped() {
    store.catchingUp = false;
    hooks.dropped();
  }

  function connect() {
    if (signedOut || leaving) {
      return;
    }
    clearReconnectTimers();
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    let sock;
    try {
      sock = new WebSocket(url());
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
      store.catchingUp = true; // until `resumed`
      hooks.opened();
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
      dropped();
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
    dropped();
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
    hooks.signedOut();
  }

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

  return {
    connect,
    reconnectNow,
    goSignedOut,
    send,
    hint,
    isOpen,
    isReady,
    current: () => socket, // which socket a retry was meant for
    isSignedOut: () => signedOut,
  };
}
