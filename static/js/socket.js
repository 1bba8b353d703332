/*
 * The page's one WebSocket: connecting, backing off, resuming.
 *
 * The page is rendered at a log position (`seq`); every socket resumes from
 * the highest `seq` the store has applied, so the server replays everything
 * missed (page load, outages) from its event log before going live, then
 * sends `resumed`. Frames go to the store; this module only adds the
 * bookkeeping of "hints" (frames answered only when refused).
 *
 * When the socket is lost, the retries follow backoff.js (the first almost
 * at once, then about a second apart while the outage is young), and the
 * page tries at once when the browser is back online, when the tab is shown
 * again, or when the person presses "Reconnect now". When the session ends
 * (4401, or a refused handshake), GET /api/session/ says why: signed out, or
 * the account was deactivated; neither reconnects.
 */
import { CLOSE_SERVICE_RESTART, reconnectDelay, restartDelay } from "./backoff.js";
import { setStatus } from "./ui.js";

const STABLE_AFTER_MS = 10000;
const COUNTDOWN_FROM_MS = 3000; // shorter waits just say "Reconnecting…"
const CLOSE_SESSION_ENDED = 4401;
const CLOSE_RELOAD = 4410; // too far behind to catch up over the socket
const HINT_RETRY_MS = 2000;
const HINTS_KEPT = 64;
const SESSION_URL = "/api/session/";
const DEACTIVATED = "account_deactivated";

/*
 * `hooks`: opened() once a socket is open (the replay follows), dropped() when
 * the socket is gone (whatever follows), signedOut(reason) when the session
 * ended (`reason`: what unsent messages say, "you are signed out.").
 */
export function createSocket({ config, store }, hooks) {
  let socket = null;
  let attempt = 0; // retries since the connection was lost
  let downSince = 0; // when it was lost (0: connected, or connecting for the first time)
  let reconnectTimer = null;
  let countdownTimer = null;
  let stableTimer = null;
  let reconnectAt = 0;
  let signedOut = false; // the session ended (signed out or deactivated): no more sockets
  let checkingSession = false;
  let leaving = false;
  let hintCount = 0;
  const hints = new Map(); // nonce -> what to do again when the server refused it as too many (or null)
  const reconnectAction = { label: "Reconnect now", run: () => retryNow() };

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

  function lost() {
    if (!downSince) {
      downSince = Date.now();
    }
  }

  function connect() {
    if (signedOut || leaving || checkingSession) {
      return;
    }
    clearReconnectTimers();
    if (downSince) {
      // The button stays through each try, so it does not blink (or lose focus) every second.
      setStatus("connecting", "Reconnecting…", { action: reconnectAction });
    } else {
      setStatus("connecting", "Connecting…");
    }
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
        // Up long enough to count as back: the next outage starts afresh.
        attempt = 0;
        downSince = 0;
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
      lost();
      if (event.code === CLOSE_RELOAD) {
        window.location.reload();
      } else if (event.code === CLOSE_SESSION_ENDED) {
        // The session ended: only its own answer (200) brings a socket back.
        checkSession(() => goSignedOut());
      } else if (!opened) {
        connectFailed();
      } else if (event.code === CLOSE_SERVICE_RESTART) {
        // A server restarting: back soon, with ?seq= as after any drop.
        scheduleReconnect(restartDelay());
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

  /* Waiting to try again: try now (the network is back, the tab is shown, the person asked). */
  function retryNow() {
    if (!socket && !signedOut && !leaving && !checkingSession) {
      connect();
    }
  }

  function connectFailed() {
    // The handshake failed: the server is down, or the session is gone.
    checkSession(scheduleReconnect);
  }

  /*
   * Ask the server whether this page's session still holds (GET /api/session/):
   * 200 reconnects; 401 `account_deactivated` says so and stops; any other
   * 401 or 403 is a sign-out; anything else (no answer, a server error) is
   * left to `otherwise`.
   */
  function checkSession(otherwise) {
    if (signedOut || checkingSession) {
      return;
    }
    checkingSession = true;
    const settle = (then) => {
      checkingSession = false;
      if (!signedOut && !leaving) {
        then();
      }
    };
    fetch(config.sessionUrl || SESSION_URL, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    })
      .then(async (response) => {
        if (response.ok) {
          settle(scheduleReconnect);
          return;
        }
        let body = null;
        try {
          body = await response.json();
        } catch (err) {
          /* not JSON: a proxy's error page */
        }
        if (response.status === 401 && body && body.error === DEACTIVATED) {
          const detail = typeof body.detail === "string" && body.detail ? body.detail : "Your account has been deactivated.";
          settle(() => endSession("deactivated", detail, "your account was deactivated."));
        } else if (response.status === 401 || response.status === 403) {
          settle(() => goSignedOut());
        } else {
          settle(otherwise);
        }
      })
      .catch(() => settle(otherwise));
  }

  function scheduleReconnect(after) {
    if (signedOut || leaving || socket) {
      return; // (a socket: the check was about a request, and this socket still stands)
    }
    clearReconnectTimers();
    lost();
    const delay = after ?? reconnectDelay(attempt, Date.now() - downSince);
    attempt += 1;
    reconnectAt = Date.now() + delay;
    const tick = () => {
      if (navigator.onLine === false) {
        setStatus("no-network", "No network. Waiting to reconnect…", { action: reconnectAction });
        return;
      }
      const left = reconnectAt - Date.now();
      const text = delay < COUNTDOWN_FROM_MS ? "Reconnecting…" : "Reconnecting in " + Math.max(1, Math.ceil(left / 1000)) + "s…";
      setStatus("offline", text, { action: reconnectAction });
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    reconnectTimer = setTimeout(connect, delay);
  }

  /* The session ended: no more sockets on this page. */
  function endSession(state, text, reason) {
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
    setStatus(state, text, { login: state === "signed-out" });
    hooks.signedOut(reason);
  }

  function goSignedOut() {
    endSession("signed-out", "Signed out", "you are signed out.");
  }

  /* The server refused a request as not signed in: find out why, and end the page's session. */
  function sessionEnded() {
    checkSession(() => goSignedOut());
  }

  window.addEventListener("online", retryNow);
  window.addEventListener("offline", () => {
    if (reconnectTimer) {
      setStatus("no-network", "No network. Waiting to reconnect…", { action: reconnectAction });
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && reconnectTimer) {
      retryNow();
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
      retryNow();
    }
  });

  return {
    connect,
    reconnectNow,
    sessionEnded,
    send,
    hint,
    isOpen,
    isReady,
    current: () => socket, // which socket a retry was meant for
    isSignedOut: () => signedOut,
  };
}
