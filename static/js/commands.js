/*
 * Slash commands in the message box: what was typed, and the list to complete from.
 * No DOM: tests/js checks it with Node's runner.
 *
 * "/name args" runs a command (the socket's `command` frame); "//text" sends
 * "/text" as a plain message; anything else is a message.
 */

const COMMAND = /^\/([a-z0-9][a-z0-9_-]{0,31})(?:\s+([\s\S]*))?$/;

/* What submitting `text` means: {kind: "command", name, args}, {kind: "message", body}. */
export function parseTyped(text) {
  if (text.startsWith("//")) {
    return { kind: "message", body: text.slice(1) };
  }
  const found = COMMAND.exec(text.trim());
  if (found && text.startsWith("/")) {
    return { kind: "command", name: found[1], args: (found[2] || "").trim() };
  }
  return { kind: "message", body: text };
}

/* The command name being typed (the box holds only "/" and a name so far), or null. */
export function commandQueryIn(text) {
  const found = /^\/([a-z0-9_-]{0,32})$/.exec(text);
  return found ? { query: found[1], start: 0 } : null;
}

/* The commands whose name starts with `query` (built-ins first, as listed), at most `limit`. */
export function matchCommands(commands, query, limit = 8) {
  const q = query.toLowerCase();
  return commands.filter((c) => c.name.startsWith(q)).slice(0, limit);
}

/* A `/me` message: the text after "/me " (shown as an action), or null for any other. */
export function meAction(body) {
  return typeof body === "string" && body.startsWith("/me ") ? body.slice(4) : null;
}
