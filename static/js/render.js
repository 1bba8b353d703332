/*
 * The one message renderer: every message on the page (the first page, which
 * the server sends as data, older pages, live and replayed events, this
 * page's own pending sends) is built and updated here, from message data
 * shaped like the history API's (docs/protocol.md).
 *
 * User text reaches the DOM through textContent only. The one exception is
 * a message's `html`, which the server renders from Markdown and sanitizes
 * (chat.formatting): it goes in through setSanitizedHtml() and nowhere else.
 */
import { setAttachments } from "./attachments.js";
import { meAction } from "./commands.js";
import { el } from "./common.js";
import { shownName } from "./people.js";
import { setThreadParts } from "./threadmarks.js";

function pad2(n) {
  return n < 10 ? "0" + n : String(n);
}

export function hashString(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) {
    h = (h * 31 + text.charCodeAt(i)) | 0;
  }
  return Math.abs(h);
}

export function firstLetter(name) {
  return (Array.from(name || "?")[0] || "?").toUpperCase();
}

/* One of eight avatar colours, always the same for a name. */
export function avatarClass(name) {
  return "avatar-c" + (hashString(name) % 8);
}

export function fullTime(iso) {
  const date = new Date(iso);
  if (isNaN(date.getTime())) {
    return iso;
  }
  try {
    return date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
  } catch (err) {
    return date.toLocaleString();
  }
}

export function formatTime(timeEl, iso) {
  const date = new Date(iso);
  timeEl.setAttribute("datetime", iso);
  if (isNaN(date.getTime())) {
    return;
  }
  timeEl.textContent = pad2(date.getHours()) + ":" + pad2(date.getMinutes());
  timeEl.title = fullTime(iso);
}

export function button(className, text, label) {
  const node = el("button", className, text);
  node.type = "button";
  if (label) {
    node.setAttribute("aria-label", label);
  }
  return node;
}

/*
 * The one way markup enters this page: `html` is a message as the server
 * rendered it from Markdown and sanitized it (chat.formatting, an nh3
 * allowlist). Never pass anything else here; user text goes in as text.
 */
function setSanitizedHtml(node, html) {
  node.innerHTML = String(html).replace(/\s+$/, "");
}

function setBody(li, m) {
  const body = li.querySelector(".message-body");
  if (typeof m.body === "string") {
    li.classList.toggle("is-me", meAction(m.body) !== null); // "/me waves": an action
  }
  if (typeof m.html === "string") {
    setSanitizedHtml(body, m.html);
    body.classList.remove("is-plain");
  } else if (typeof m.body === "string") {
    body.textContent = m.body;
    body.classList.add("is-plain");
  }
}

function setEdited(li, edited) {
  let marker = li.querySelector(".message-edited");
  if (!edited) {
    if (marker) {
      marker.remove();
    }
    delete li.dataset.edited;
    return;
  }
  li.dataset.edited = edited;
  if (!marker) {
    marker = el("span", "message-edited", "(edited)");
    li.querySelector(".message-meta").append(" ", marker);
  }
  marker.title = "Edited " + fullTime(edited);
}

function reactionChip(li, emoji) {
  for (const chip of li.querySelectorAll("button.reaction")) {
    if (chip.dataset.emoji === emoji) {
      return chip;
    }
  }
  return null;
}

/* One emoji's chip: `users` is everyone who reacted with it (empty: the chip goes). */
export function setReaction(li, emoji, users, me) {
  let chip = reactionChip(li, emoji);
  let box = li.querySelector(".reactions");
  if (!Array.isArray(users) || users.length === 0) {
    if (chip) {
      chip.remove();
    }
    if (box && !box.children.length) {
      box.remove();
    }
    return;
  }
  if (!box) {
    box = el("div", "reactions");
    const main = li.querySelector(".message-main");
    main.insertBefore(box, main.querySelector(".message-failure"));
  }
  if (!chip) {
    chip = button("reaction");
    chip.dataset.emoji = emoji;
    const face = el("span", "reaction-emoji", emoji);
    const count = el("span", "reaction-count");
    face.setAttribute("aria-hidden", "true");
    count.setAttribute("aria-hidden", "true");
    chip.append(face, count);
    box.appendChild(chip);
  }
  chip.querySelector(".reaction-count").textContent = String(users.length);
  chip.setAttribute("aria-pressed", users.includes(me) ? "true" : "false");
  chip.title = users.join(", ");
  chip.setAttribute("aria-label", emoji + " " + users.length + ": " + users.join(", "));
}

function setReactions(li, reactions, me) {
  const wanted = new Set(Object.keys(reactions));
  li.querySelectorAll("button.reaction").forEach((chip) => {
    if (!wanted.has(chip.dataset.emoji)) {
      setReaction(li, chip.dataset.emoji, [], me);
    }
  });
  wanted.forEach((emoji) => setReaction(li, emoji, reactions[emoji], me));
}

/* Bring a shown message up to date with (some of) its fields. */
export function updateMessage(li, m, me) {
  if (typeof m.html === "string" || typeof m.body === "string") {
    setBody(li, m);
  }
  if ("edited" in m) {
    setEdited(li, m.edited);
  }
  if (Array.isArray(m.mentions)) {
    li.classList.toggle("is-mention", m.mentions.includes(me));
  }
  if (m.reactions && typeof m.reactions === "object") {
    setReactions(li, m.reactions, me);
  }
  if (Array.isArray(m.attachments)) {
    setAttachments(li, m.attachments);
  }
  setThreadParts(li, m, { avatarClass, firstLetter });
}

function addActions(li) {
  if (li.querySelector(".message-actions") || li.classList.contains("is-deleted")) {
    return;
  }
  const bar = el("div", "message-actions");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Message actions");
  const react = button("action-button action-react", null, "Add reaction");
  react.title = "Add reaction";
  react.setAttribute("aria-haspopup", "menu");
  react.setAttribute("aria-expanded", "false");
  const face = el("span", "action-icon", "☺+");
  face.setAttribute("aria-hidden", "true");
  react.appendChild(face);
  const more = button("action-button action-more", null, "More actions");
  more.title = "More actions";
  more.setAttribute("aria-haspopup", "menu");
  more.setAttribute("aria-expanded", "false");
  const dots = el("span", "action-icon", "⋯");
  dots.setAttribute("aria-hidden", "true");
  more.appendChild(dots);
  bar.append(react, more);
  li.appendChild(bar);
}

function decorate(li, me) {
  const user = li.dataset.user || "";
  const avatar = li.querySelector(".message-avatar");
  if (avatar) {
    avatar.classList.add(avatarClass(user));
  }
  li.classList.toggle("is-own", user === me);
  if (li.dataset.id) {
    addActions(li);
  }
}

/*
 * Show `person` (their directory entry, or null) on a message's author line:
 * the display name, the username for hover and screen readers, and their
 * picture instead of the initial when they have one.
 */
export function showPerson(li, person) {
  const user = li.dataset.user || "";
  const name = li.querySelector(".message-user");
  if (name) {
    const shown = shownName(person, user);
    name.textContent = shown;
    name.title = "@" + user;
    if (shown !== user) {
      name.setAttribute("aria-label", shown + " (@" + user + ")");
    } else {
      name.removeAttribute("aria-label");
    }
    const badge = name.nextElementSibling && name.nextElementSibling.classList.contains("bot-badge") ? name.nextElementSibling : null;
    if (person && person.bot && !badge) {
      name.after(botBadge());
    } else if (!(person && person.bot) && badge) {
      badge.remove();
    }
  }
  const avatar = li.querySelector(".message-avatar");
  if (!avatar) {
    return;
  }
  const url = person && person.avatar;
  const img = avatar.querySelector("img");
  if (url) {
    if (!img || img.getAttribute("src") !== url) {
      const picture = document.createElement("img");
      picture.src = url;
      picture.alt = "";
      picture.width = 36;
      picture.height = 36;
      avatar.replaceChildren(picture);
    }
    avatar.classList.add("has-picture");
  } else if (img || avatar.classList.contains("has-picture")) {
    avatar.replaceChildren(firstLetter(user));
    avatar.classList.remove("has-picture");
  }
}

/* The "BOT" mark beside a bot's name. */
export function botBadge() {
  const badge = el("span", "bot-badge", "Bot");
  badge.title = "A bot: an account for a program";
  return badge;
}

/* A message's list item; `state` is "sent" (stored), or "pending" for one typed here. */
export function renderMessage(m, state, me) {
  const li = el("li", "message");
  if (typeof m.id === "number") {
    li.dataset.id = String(m.id);
    li.id = "m-" + m.id;
  }
  if (m.nonce) {
    li.dataset.nonce = m.nonce;
  }
  li.dataset.state = state;
  li.dataset.user = m.user;

  const avatar = el("span", "message-avatar", firstLetter(m.user));
  avatar.setAttribute("aria-hidden", "true");
  const main = el("div", "message-main");
  const meta = el("div", "message-meta");
  const time = el("time", "message-time");
  formatTime(time, m.created);
  const author = el("button", "message-user", m.user);
  author.type = "button";
  meta.append(author, " ", time);
  main.append(meta, el("div", "message-body"));
  li.append(avatar, main);
  updateMessage(li, m, me);
  decorate(li, me);
  return li;
}

/* A pending message of this page, now stored as `m`: it keeps its item, which becomes a sent one. */
export function markSent(li, m, me) {
  clearFailure(li);
  li.dataset.id = String(m.id);
  li.id = "m-" + m.id;
  li.dataset.state = "sent";
  formatTime(li.querySelector(".message-time"), m.created);
  updateMessage(li, m, me);
  decorate(li, me);
}

export function clearFailure(li) {
  const failure = li.querySelector(".message-failure");
  if (failure) {
    failure.remove();
  }
}

export function setFailure(li, reason) {
  clearFailure(li);
  const box = el("div", "message-failure");
  // One "Retry all" below the list sends every failed message again, in order.
  box.append(el("span", "message-error", reason));
  li.querySelector(".message-main").appendChild(box);
}
