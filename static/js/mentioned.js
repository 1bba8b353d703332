/*
 * Who a message body names with @name, as the server reads it
 * (chat.formatting.mentions): not inside code or link text, a trailing "."
 * is punctuation, a name stops at the next "@". The server's `mentions`
 * lists only the members among them; the others may be people to invite.
 */

const MENTION = /(?<![\p{L}\p{N}_])@([\p{L}\p{N}_.+-]+)/gu;
const USERNAME = /^[a-z0-9](?:[a-z0-9_.-]*[a-z0-9])?$/;

/* Text with code blocks, code spans and link text left out (where @name mentions nobody). */
function mentionableText(body) {
  return String(body || "")
    .replace(/^ {0,3}(`{3,}|~{3,})[^\n]*\n[\s\S]*?(?:^ {0,3}\1[^\n]*$|(?![\s\S]))/gm, " ")
    .replace(/(`+)[\s\S]*?\1/g, " ")
    .replace(/\[[^\]]*\]\([^)]*\)/g, " ")
    .replace(/\b(?:https?|mailto):\S*/gi, " ");
}

/* The lowercase usernames a body mentions, in the order they first appear. */
export function mentionedNames(body) {
  const names = [];
  for (const match of mentionableText(body).matchAll(MENTION)) {
    const name = match[1].replace(/\.+$/, "").toLowerCase();
    if (USERNAME.test(name) && !names.includes(name)) {
      names.push(name);
    }
  }
  return names;
}

/* Names a body mentions that the server did not count as members (`mentions`), other than `me`. */
export function mentionedOutsiders(body, mentions, me) {
  const members = new Set((mentions || []).map((name) => String(name).toLowerCase()));
  const self = String(me || "").toLowerCase();
  return mentionedNames(body).filter((name) => !members.has(name) && name !== self);
}
