/*
 * Drafts: what someone has typed in a room's composer and not sent yet,
 * kept per person and room so a reload or a visit to another room does not
 * lose it. Kept in the browser's localStorage for now; everything goes
 * through this module so that server-kept drafts can replace it.
 *
 * A draft is {text, sending}: `sending` is the nonce of the send that took
 * the text away, so the draft is dropped only once the server has stored
 * that message (acknowledged), not when Enter is pressed.
 */

const PREFIX = "teamchat:draft:";
const MAX_CHARS = 12000;

/* `storage`: a Storage (window.localStorage), or null where none can be used. */
export function createDrafts(storage, user) {
  const key = (room) => PREFIX + user + ":" + room;

  function load(room) {
    if (!storage) {
      return null;
    }
    try {
      const draft = JSON.parse(storage.getItem(key(room)) || "null");
      return draft && typeof draft.text === "string" && draft.text ? draft : null;
    } catch (err) {
      return null; // unreadable or refused: as if there were none
    }
  }

  function clear(room) {
    try {
      if (storage) {
        storage.removeItem(key(room));
      }
    } catch (err) {
      /* storage refused: nothing kept, nothing to drop */
    }
  }

  /* Keep `text` (blank: no draft); `sending` names the send that took it, if any. */
  function save(room, text, sending = null) {
    if (!storage) {
      return;
    }
    if (!text || !text.trim()) {
      clear(room);
      return;
    }
    try {
      storage.setItem(key(room), JSON.stringify({ text: text.slice(0, MAX_CHARS), sending }));
    } catch (err) {
      /* storage full or refused: the draft lives only in the box */
    }
  }

  /* A stored message of ours: the draft it came from has been sent. Returns whether it was dropped. */
  function settle(room, message) {
    const draft = load(room);
    if (draft && draft.sending && message && message.nonce === draft.sending && message.user === user) {
      clear(room);
      return true;
    }
    return false;
  }

  return { load, save, clear, settle };
}

/* localStorage when the browser lets this page use it, else null. */
export function browserStorage() {
  try {
    return window.localStorage || null;
  } catch (err) {
    return null;
  }
}
