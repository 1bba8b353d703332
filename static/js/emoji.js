/*
 * The emoji catalog's search, `:shortcode:` detection and the "frequently
 * used" list, as pure functions (tests/js checks them without a browser).
 * The catalog is GET /api/emoji/'s list: [{emoji, name, shortcodes}].
 */

const PICKS_KEPT = 60;

/* How well an entry matches `query` (lowercase, no colons): 0 is no match. */
function emojiScore(entry, q) {
  let best = 0;
  for (const code of entry.shortcodes) {
    if (code === q) {
      return 1000;
    }
    if (code.startsWith(q)) {
      best = Math.max(best, 800 - code.length);
    } else if (code.split("_").some((part) => part.startsWith(q))) {
      best = Math.max(best, 500 - code.length);
    }
  }
  const name = entry.name.toLowerCase();
  if (name.startsWith(q)) {
    best = Math.max(best, 700 - name.length);
  } else if (name.split(/[\s\-_]+/).some((word) => word.startsWith(q))) {
    best = Math.max(best, 450 - name.length);
  } else if (name.includes(q)) {
    best = Math.max(best, 200 - name.length);
  }
  return best;
}

/* Entries whose shortcodes or name match, best first (the catalog's order breaks ties). */
export function searchEmoji(catalog, query, limit = 200) {
  const q = query.trim().toLowerCase().replace(/^:|:$/g, "").replace(/\s+/g, " ");
  if (!q) {
    return catalog.slice(0, limit);
  }
  const q2 = q.replace(/ /g, "_");
  return catalog
    .map((entry, index) => ({ entry, index, score: Math.max(emojiScore(entry, q), emojiScore(entry, q2)) }))
    .filter(({ score }) => score > 0)
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, limit)
    .map(({ entry }) => entry);
}

/*
 * A `:shortcode` being typed at the end of `before` (the text before the
 * caret): at least two characters after a colon that starts a word, so
 * "10:30" or a lone ":" is left alone. {query, start} or null.
 */
export function shortcodeQuery(before) {
  const match = /(^|[\s([{"'])(:([a-z0-9_+-]{2,40}))$/i.exec(before);
  if (!match) {
    return null;
  }
  return { query: match[3].toLowerCase(), start: before.length - match[2].length };
}

/* `picks` (newest last) with one more; only the last PICKS_KEPT are kept. */
export function recordPick(picks, emoji) {
  const list = Array.isArray(picks) ? picks.filter((p) => typeof p === "string") : [];
  list.push(emoji);
  return list.slice(-PICKS_KEPT);
}

/* The most often picked emoji, most first; between equals, the most recent first. */
export function frequentEmoji(picks, limit = 16) {
  const counts = new Map();
  const last = new Map();
  (Array.isArray(picks) ? picks : []).forEach((emoji, i) => {
    counts.set(emoji, (counts.get(emoji) || 0) + 1);
    last.set(emoji, i);
  });
  return Array.from(counts.keys())
    .sort((a, b) => counts.get(b) - counts.get(a) || last.get(b) - last.get(a))
    .slice(0, limit);
}
