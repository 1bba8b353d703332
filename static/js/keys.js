/*
 * Keyboard shortcuts and the quick switcher's ranking, as pure functions:
 * no DOM, no timers, so tests/js can check them without a browser.
 */

/* Every shortcut the room page knows, in the order the shortcuts dialog lists them. */
export const SHORTCUTS = [
  { id: "switcher", keys: "Mod+K", text: "Jump to a room or person" },
  { id: "prev-room", keys: "Alt+ArrowUp", text: "Previous room in the sidebar" },
  { id: "next-room", keys: "Alt+ArrowDown", text: "Next room in the sidebar" },
  { id: "prev-unread", keys: "Alt+Shift+ArrowUp", text: "Previous unread room" },
  { id: "next-unread", keys: "Alt+Shift+ArrowDown", text: "Next unread room" },
  { id: "mark-read", keys: "Escape", text: "Mark this room as read" },
  { id: "help", keys: "?", text: "Show these keyboard shortcuts" },
  { id: "edit-last", keys: "ArrowUp", text: "Edit your last message (in an empty message box)" },
  { id: "send", keys: "Enter", text: "Send the message" },
  { id: "newline", keys: "Shift+Enter", text: "New line in the message" },
];

const MODIFIERS = ["mod", "ctrl", "meta", "alt", "shift"];

/* "Mod+Shift+K" -> {key: "k", mod, ctrl, meta, alt, shift}; Mod is Cmd on a Mac, Ctrl elsewhere. */
export function parseShortcut(text) {
  const parts = text.split("+");
  // "Ctrl++" names the plus key.
  const last = parts[parts.length - 1] === "" && parts.length > 1 ? "+" : parts[parts.length - 1];
  const shortcut = { key: last.toLowerCase(), mod: false, ctrl: false, meta: false, alt: false, shift: false };
  parts.slice(0, last === "+" ? -2 : -1).forEach((part) => {
    const name = part.toLowerCase();
    if (!MODIFIERS.includes(name)) {
      throw new Error("unknown modifier: " + part);
    }
    shortcut[name] = true;
  });
  return shortcut;
}

/*
 * Whether a keydown event is the shortcut. `mac`: Mod means Meta there.
 * A printable key like "?" is matched by the character it types, whatever
 * Shift it took to type it; letters by their key, ignoring Caps Lock.
 */
export function matchShortcut(event, shortcut, mac) {
  const wanted = typeof shortcut === "string" ? parseShortcut(shortcut) : shortcut;
  const ctrl = wanted.ctrl || (wanted.mod && !mac);
  const meta = wanted.meta || (wanted.mod && mac);
  if (!!event.ctrlKey !== ctrl || !!event.metaKey !== meta || !!event.altKey !== wanted.alt) {
    return false;
  }
  const key = String(event.key || "").toLowerCase();
  const printable = key.length === 1 && !/[a-z0-9]/.test(key);
  if (!printable && !!event.shiftKey !== wanted.shift) {
    return false;
  }
  if (key === wanted.key) {
    return true;
  }
  // With Alt (Option on a Mac) a letter types another character; the code still says which key.
  return /^[a-z]$/.test(wanted.key) && event.code === "Key" + wanted.key.toUpperCase();
}

/* The shortcut's keys as a person reads them: ["Ctrl", "K"] or ["⌘", "K"]. */
export function shortcutLabel(text, mac) {
  const names = {
    mod: mac ? "⌘" : "Ctrl",
    ctrl: "Ctrl",
    meta: mac ? "⌘" : "Meta",
    alt: mac ? "⌥" : "Alt",
    shift: "Shift",
    arrowup: "↑",
    arrowdown: "↓",
    escape: "Esc",
  };
  const shortcut = parseShortcut(text);
  const keys = MODIFIERS.filter((name) => shortcut[name]).map((name) => names[name]);
  keys.push(names[shortcut.key] || (shortcut.key.length === 1 ? shortcut.key.toUpperCase() : text.split("+").pop()));
  return keys;
}

/*
 * How well `text` matches what was typed: higher is better, 0 is no match.
 * The whole name beats its start, which beats the start of a word in it,
 * which beats the letters in order anywhere (fuzzy), closer together better.
 */
export function matchScore(query, text) {
  const q = query.trim().toLowerCase();
  const t = text.toLowerCase();
  if (!q) {
    return 1;
  }
  if (t === q) {
    return 1000;
  }
  if (t.startsWith(q)) {
    return 800 - t.length;
  }
  const words = t.split(/[\s\-_.,]+/);
  if (words.some((word) => word.startsWith(q))) {
    return 600 - t.length;
  }
  if (t.includes(q)) {
    return 400 - t.indexOf(q);
  }
  let at = -1;
  let gaps = 0;
  for (const ch of q) {
    const next = t.indexOf(ch, at + 1);
    if (next < 0) {
      return 0;
    }
    if (at >= 0) {
      gaps += next - at - 1;
    }
    at = next;
  }
  return Math.max(1, 200 - gaps * 5 - t.length);
}

/*
 * The quick switcher's list: `items` are {label, kind, unread, ...}; those
 * matching the query, best first. Ties go to unread rooms, then rooms
 * before people, then alphabetical. A person with a conversation already in
 * `items` is the same place twice: only the conversation is kept.
 */
export function rankSwitcher(query, items, limit = 20) {
  const seen = new Set();
  const unique = items.filter((item) => {
    const key = item.kind + ":" + item.label.toLowerCase();
    const dmKey = "dm:" + item.label.toLowerCase();
    if (seen.has(key) || (item.kind === "person" && seen.has(dmKey))) {
      return false;
    }
    seen.add(key);
    return true;
  });
  const rankKind = { channel: 0, dm: 0, person: 1 };
  return unique
    .map((item) => ({ item, score: matchScore(query, item.label) }))
    .filter(({ score }) => score > 0)
    .sort(
      (a, b) =>
        b.score - a.score ||
        (b.item.unread ? 1 : 0) - (a.item.unread ? 1 : 0) ||
        (rankKind[a.item.kind] || 0) - (rankKind[b.item.kind] || 0) ||
        a.item.label.localeCompare(b.item.label)
    )
    .slice(0, limit)
    .map(({ item }) => item);
}

/* The room `step` places from `current` in `slugs` (the sidebar's order), wrapping around; null if none. */
export function stepRoom(slugs, current, step, isCandidate) {
  const wanted = isCandidate || (() => true);
  const at = slugs.indexOf(current);
  const count = slugs.length;
  for (let i = 1; i <= count; i += 1) {
    const slug = slugs[(((at < 0 ? (step > 0 ? -1 : 0) : at) + step * i) % count + count) % count];
    if (slug !== current && wanted(slug)) {
      return slug;
    }
  }
  return null;
}
