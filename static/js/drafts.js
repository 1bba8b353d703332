/*
 * Drafts: what someone has typed in a room's (or a thread's) composer and
 * not sent, kept on the server so that every tab and device shows it, with a
 * copy in this browser for when the server cannot be reached.
 *
 * No DOM here: createDrafts() takes its storage, its way to the server and
 * its clock, so Node's test runner checks it (tests/js/drafts.test.mjs).
 * draftsview.js wires it to the page. Drafts are keyed by room and thread
 * (null for the room's own composer), so a thread's composer uses the same
 * calls with its root's id.
 *
 * Each server draft has a version; a change names the version it was made on
 * and the server refuses it (409, with the stored draft) when that is no
 * longer current. So an older text never overwrites a newer one: when both
 * sides changed, the person is shown both and chooses (resolve()). A clear
 * never conflicts (it loses nothing), and neither does the same text.
 *
 * Per draft: `text` is what the composer holds; `version` and `saved` are the
 * server's version and body that text was based on; `inflight` a save on its
 * way; `conflict` the server's draft while the person chooses; `sending` the
 * nonce (and text) of a send that took the text away: the server clears the
 * draft when it stores that message, so the composer's empty box is not saved
 * meanwhile, and a reload before then still has the text.
 */

const PREFIX = "teamchat:draft2:";
const LEGACY_PREFIX = "teamchat:draft:";
const MAX_CHARS = 12000;
const DEBOUNCE_MS = 1000;
const RETRY_MS = 5000;

/* What the server keeps for a text: a blank one is no text. */
export function normal(text) {
  return typeof text === "string" && text.trim() ? text.slice(0, MAX_CHARS) : "";
}

export function draftKey(room, thread) {
  return room + "#" + (thread || "");
}

/*
 * `storage`: a Storage (window.localStorage) or null. `user`: whose drafts.
 * `request(body, {keepalive})`: PUT /api/drafts/, resolving {status, data}
 * and rejecting when the server cannot be reached. `typing(room, thread)`:
 * whether the person is typing in that draft's composer right now (a change
 * from elsewhere is then not put in the box under their fingers).
 */
export function createDrafts({
  storage = null,
  user,
  request = null,
  typing = () => false,
  now = () => Date.now(),
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (id) => clearTimeout(id),
  debounceMs = DEBOUNCE_MS,
  retryMs = RETRY_MS,
} = {}) {
  const entries = new Map(); // key -> entry
  const listeners = [];
  const storeKey = (key) => PREFIX + user + ":" + key;

  function entryFor(room, thread) {
    const key = draftKey(room, thread);
    let entry = entries.get(key);
    if (!entry) {
      entry = {
        key,
        room,
        thread: thread || null,
        text: "",
        version: 0,
        saved: "",
        updated: null,
        touched: 0,
        inflight: null,
        conflict: null,
        sending: null,
        refused: false,
        timer: null,
      };
      entries.set(key, entry);
    }
    return entry;
  }

  function emit(entry, reason) {
    listeners.forEach((listener) => listener(entry, reason));
  }

  // --- the browser's copy ----------------------------------------------------

  function persist(entry) {
    if (!storage) {
      return;
    }
    const unstored = entry.sending && !entry.sending.stored ? entry.sending : null;
    const text = unstored && !normal(entry.text) ? unstored.text : entry.text;
    try {
      if (!normal(text) && !entry.conflict && !unstored) {
        storage.removeItem(storeKey(entry.key));
        return;
      }
      const copy = {
        room: entry.room,
        thread: entry.thread,
        text: text.slice(0, MAX_CHARS),
        version: entry.version,
        saved: entry.saved,
        sending: unstored ? unstored.nonce : null,
        inflight: entry.inflight ? entry.inflight.body : null,
        touched: entry.touched,
      };
      storage.setItem(storeKey(entry.key), JSON.stringify(copy));
    } catch (err) {
      /* storage full or refused: the draft lives on the server and in the box */
    }
  }

  function localCopies() {
    const found = [];
    if (!storage || typeof storage.length !== "number") {
      return found;
    }
    const keys = [];
    try {
      for (let i = 0; i < storage.length; i += 1) {
        keys.push(storage.key(i));
      }
    } catch (err) {
      return found;
    }
    keys.forEach((name) => {
      if (typeof name !== "string") {
        return;
      }
      try {
        if (name.startsWith(PREFIX + user + ":")) {
          const copy = JSON.parse(storage.getItem(name));
          if (copy && typeof copy.room === "string" && typeof copy.text === "string") {
            found.push(copy);
          }
        } else if (name.startsWith(LEGACY_PREFIX + user + ":")) {
          // Kept only in this browser before drafts were on the server: they go there now.
          const old = JSON.parse(storage.getItem(name));
          storage.removeItem(name);
          if (old && typeof old.text === "string") {
            const room = name.slice((LEGACY_PREFIX + user + ":").length);
            found.push({ room, thread: null, text: old.text, version: 0, saved: "", sending: null, touched: 0 });
          }
        }
      } catch (err) {
        /* unreadable: as if there were none */
      }
    });
    return found;
  }

  // --- saving -----------------------------------------------------------------

  function needsSave(entry) {
    if (entry.sending && !normal(entry.text)) {
      return false; // the server clears it when the message is stored
    }
    return normal(entry.text) !== entry.saved;
  }

  function schedule(entry, ms = debounceMs) {
    clearTimer(entry.timer);
    entry.timer = setTimer(() => {
      entry.timer = null;
      flush(entry.room, entry.thread);
    }, ms);
  }

  function adopt(entry, draft) {
    entry.version = draft.version;
    entry.saved = normal(draft.body);
    entry.updated = draft.updated || null;
  }

  /* Send the text to the server now, if it has changed and nothing stands in the way. */
  function flush(room, thread, { keepalive = false } = {}) {
    const entry = entries.get(draftKey(room, thread));
    if (!entry || !request || entry.inflight || entry.conflict || entry.refused || !needsSave(entry)) {
      return Promise.resolve(false);
    }
    clearTimer(entry.timer);
    entry.timer = null;
    const sent = { body: normal(entry.text), version: entry.version };
    entry.inflight = sent;
    persist(entry); // a page left meanwhile knows its save went out
    const body = { room: entry.room, body: sent.body, version: sent.version };
    if (entry.thread) {
      body.thread = entry.thread;
    }
    return Promise.resolve()
      .then(() => request(body, { keepalive }))
      .then(
        ({ status, data }) => {
          entry.inflight = null;
          answered(entry, status, data || {});
          return true;
        },
        () => {
          // Offline: the copy here is kept; tried again later and when back online.
          entry.inflight = null;
          schedule(entry, retryMs);
          return false;
        }
      );
  }

  function answered(entry, status, data) {
    if (status === 200 && data.draft) {
      if (data.draft.version > entry.version) {
        adopt(entry, data.draft);
      }
      persist(entry);
      emit(entry, "saved");
      if (needsSave(entry)) {
        schedule(entry); // typed on while it was on its way
      }
    } else if (status === 409 && data.draft) {
      foreign(entry, data.draft, true);
    } else if (status === 429 || status >= 500) {
      schedule(entry, retryMs);
    } else {
      // The room is gone or no longer writable: the copy here stays, nothing is retried.
      entry.refused = true;
    }
  }

  function flushAll(options) {
    return Promise.all(Array.from(entries.values(), (entry) => flush(entry.room, entry.thread, options)));
  }

  // --- changes from elsewhere ---------------------------------------------------

  /*
   * A newer server draft than the one this text is based on: taken into the
   * box when nothing of the person's would be lost, else held as a conflict.
   */
  function foreign(entry, draft, refused = false) {
    const theirs = normal(draft.body);
    const mine = normal(entry.text);
    // Typed here and not yet on the server (or just refused by it).
    const unsaved = refused || needsSave(entry);
    adopt(entry, draft);
    if (entry.sending && !theirs) {
      // Our message was stored and its draft cleared: what was typed since stays.
      entry.sending = null;
      if (needsSave(entry)) {
        schedule(entry);
      }
      persist(entry);
      emit(entry, "changed");
      return;
    }
    if (entry.sending && entry.sending.stored) {
      entry.sending = null;
    }
    if (entry.conflict) {
      entry.conflict = theirs && theirs !== mine ? draft : null;
    } else if (theirs !== mine) {
      if (!mine || (!unsaved && !typing(entry.room, entry.thread))) {
        entry.text = draft.body;
        entry.sending = null;
        entry.touched = now();
        persist(entry);
        emit(entry, "replaced");
        return;
      }
      if (theirs) {
        entry.conflict = draft;
      }
    }
    if (!entry.conflict && needsSave(entry)) {
      // Cleared elsewhere while typing here: nothing of theirs is lost, the text here is kept.
      schedule(entry, refused ? 0 : debounceMs);
    }
    persist(entry);
    emit(entry, entry.conflict ? "conflict" : "changed");
  }

  /* A `draft` event (or a draft from the list): applied once, by version. */
  function receive(draft) {
    if (!draft || typeof draft.room !== "string" || typeof draft.version !== "number") {
      return;
    }
    const entry = entryFor(draft.room, draft.thread);
    if (draft.version <= entry.version) {
      return; // seen already (a replay, our own save's answer, the list)
    }
    const sent = entry.inflight;
    if (sent && draft.version === sent.version + 1 && normal(draft.body) === sent.body) {
      adopt(entry, draft); // our own save, told to every tab before its answer came
      persist(entry);
      emit(entry, "saved");
      return;
    }
    foreign(entry, draft);
  }

  // --- the composer's side ----------------------------------------------------

  /* The text to show in a composer. */
  function load(room, thread = null) {
    const entry = entries.get(draftKey(room, thread));
    return entry ? entry.text : "";
  }

  /* The person typed: kept here at once, on the server after a pause. */
  function edit(room, thread, text) {
    const entry = entryFor(room, thread);
    entry.text = String(text).slice(0, MAX_CHARS);
    entry.touched = now();
    entry.refused = false;
    persist(entry);
    emit(entry, "changed");
    if (!entry.conflict && needsSave(entry)) {
      schedule(entry);
    }
  }

  /* The composer's text went out as a message (`nonce`): the box is empty, the server clears it. */
  function sent(room, thread, text, nonce) {
    const entry = entryFor(room, thread);
    clearTimer(entry.timer);
    entry.timer = null;
    entry.text = "";
    entry.sending = { nonce, text, stored: false };
    entry.conflict = null;
    entry.touched = now();
    persist(entry);
    emit(entry, "changed");
  }

  /* A message of ours was stored: the text it took away is no longer kept here. */
  function settle(room, thread, message) {
    const entry = entries.get(draftKey(room, thread));
    if (!entry || !entry.sending || !message || message.nonce !== entry.sending.nonce || message.user !== user) {
      return false;
    }
    // Kept until the server's clear arrives (it follows the message): that clear is ours.
    entry.sending.stored = true;
    persist(entry);
    return true;
  }

  /* The person chose, in a conflict: "theirs" takes the other text, "mine" keeps this one. */
  function resolve(room, thread, choice) {
    const entry = entries.get(draftKey(room, thread));
    if (!entry || !entry.conflict) {
      return;
    }
    const theirs = entry.conflict;
    entry.conflict = null;
    entry.touched = now();
    if (choice === "theirs") {
      entry.text = theirs.body;
      persist(entry);
      emit(entry, "replaced");
      return;
    }
    persist(entry);
    emit(entry, "changed");
    flush(room, thread);
  }

  function conflictOf(room, thread = null) {
    const entry = entries.get(draftKey(room, thread));
    return entry && entry.conflict ? { mine: entry.text, theirs: entry.conflict.body } : null;
  }

  /* Every draft with text, newest first: {room, thread, text, updated}. */
  function list() {
    return Array.from(entries.values())
      .filter((entry) => normal(entry.text) || entry.conflict)
      .map((entry) => ({
        room: entry.room,
        thread: entry.thread,
        text: normal(entry.text) || normal(entry.conflict.body),
        updated: Math.max(entry.touched, entry.updated ? Date.parse(entry.updated) || 0 : 0),
        unsaved: needsSave(entry) || !!entry.conflict,
      }))
      .sort((a, b) => b.updated - a.updated);
  }

  /*
   * The page's start: the server's drafts (`server`), this browser's copies
   * and the nonces of our own messages already stored (`stored`, a Set): a
   * copy typed offline and never saved is saved now (or shown as a conflict
   * with a newer server draft); a copy the server has moved past is dropped.
   */
  function start(server = [], stored = new Set()) {
    server.forEach((draft) => {
      if (draft && typeof draft.room === "string" && typeof draft.version === "number") {
        const entry = entryFor(draft.room, draft.thread);
        adopt(entry, draft);
        entry.text = draft.body;
      }
    });
    localCopies().forEach((copy) => {
      const entry = entryFor(copy.room, copy.thread);
      const version = typeof copy.version === "number" ? copy.version : 0;
      const saved = typeof copy.saved === "string" ? copy.saved : "";
      if (copy.sending && stored.has(copy.sending)) {
        persist(entry); // sent and stored: the server's draft is the one
        return;
      }
      const mine = normal(copy.text);
      const unsaved = !!copy.sending || mine !== saved;
      if (!unsaved || !mine) {
        persist(entry);
        return;
      }
      entry.touched = copy.touched || 0;
      if (entry.version === version + 1 && typeof copy.inflight === "string" && entry.saved === copy.inflight) {
        // The save this copy had on its way (as the page was left) arrived: not a conflict.
        entry.text = copy.text;
        persist(entry);
        if (needsSave(entry)) {
          schedule(entry, 0);
        }
        return;
      }
      if (entry.version > version) {
        // The server moved on while this copy was not saved: both are shown if they differ.
        const server = { room: entry.room, thread: entry.thread, body: entry.saved, version: entry.version, updated: entry.updated };
        entry.text = copy.text;
        entry.version = version;
        entry.saved = saved;
        foreign(entry, server, true);
        return;
      }
      entry.text = copy.text;
      if (entry.version === 0 && version > 0) {
        entry.version = version; // a draft the server may have cleared since: it says so if so
        entry.saved = saved;
      }
      persist(entry);
      if (needsSave(entry)) {
        schedule(entry, 0);
      }
    });
  }

  return {
    start,
    load,
    edit,
    sent,
    settle,
    receive,
    flush,
    flushAll,
    resolve,
    conflict: conflictOf,
    list,
    on: (listener) => listeners.push(listener),
    /* After being offline: every draft not yet saved goes now. */
    online: () => {
      entries.forEach((entry) => {
        entry.refused = false;
      });
      return flushAll();
    },
  };
}

/* localStorage when the browser lets this page use it, else null. */
export function browserStorage() {
  try {
    return window.localStorage || null;
  } catch (err) {
    return null;
  }
}
