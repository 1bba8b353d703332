/*
 * After a send that @mentions people who are not in the room, a note under
 * the composer says so: in a channel the person may invite to, with "Invite
 * them" and "Don't invite" (as Slack offers); in a conversation, or where
 * they may not invite, that those people will not be notified. Only names
 * of existing users are offered (GET /api/users/?q=); never anything else.
 */
import { api, el } from "./common.js";
import { mentionedOutsiders } from "./mentioned.js";
import { roomTitle } from "./store.js";
import { els, showNotice } from "./ui.js";

const MAX_NAMES = 10;

function listNames(names) {
  if (names.length <= 2) {
    return names.join(" and ");
  }
  return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

export function setupMentionInvite(ctx) {
  const { store } = ctx;
  const box = document.getElementById("mention-invite");
  let offered = []; // the names the note speaks of
  let asked = 0; // the latest look-up; an older one that answers late is ignored

  function canInvite() {
    return store.isChannel() && store.canWrite();
  }

  function hide(refocus) {
    offered = [];
    if (box) {
      box.hidden = true;
      box.replaceChildren();
    }
    if (refocus && els.input && !els.input.disabled) {
      els.input.focus();
    }
  }

  function actionButton(className, text, onClick) {
    const node = el("button", className, text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function show(names) {
    offered = names;
    const where = roomTitle(store.roomInfo, store.me);
    const who = listNames(names);
    const plural = names.length > 1;
    const text = el("span", "mention-invite-text");
    const buttons = el("span", "mention-invite-buttons");
    if (canInvite()) {
      text.textContent = who + (plural ? " are" : " is") + " not in " + where + ".";
      buttons.append(
        actionButton("button-primary mention-invite-yes", plural ? "Invite them" : "Invite " + names[0], invite),
        actionButton("button-secondary mention-invite-no", "Don't invite", () => hide(true))
      );
    } else {
      const place = store.isChannel() ? where : "this conversation";
      text.textContent = who + (plural ? " are" : " is") + " not in " + place + ", so " + (plural ? "they" : names[0]) + " won't be notified.";
      buttons.append(actionButton("button-secondary mention-invite-no", "OK", () => hide(true)));
    }
    box.replaceChildren(text, " ", buttons);
    box.hidden = false;
  }

  async function invite() {
    const names = offered.slice();
    const where = roomTitle(store.roomInfo, store.me);
    box.querySelectorAll("button").forEach((node) => (node.disabled = true));
    const invited = [];
    try {
      for (const name of names) {
        await api("POST", "/api/rooms/" + encodeURIComponent(store.room) + "/members/", { username: name });
        invited.push(name);
      }
    } catch (err) {
      box.querySelectorAll("button").forEach((node) => (node.disabled = false));
      offered = names.filter((name) => !invited.includes(name));
      showNotice((invited.length ? "Invited " + listNames(invited) + ". " : "") + err.detail);
      return;
    }
    hide(true);
    showNotice("Invited " + listNames(invited) + " to " + where + ".");
  }

  /* Which of `names` are people here (the user look-up matches by prefix: keep exact names). */
  async function existing(names) {
    const found = [];
    for (const name of names.slice(0, MAX_NAMES)) {
      const url = new URL("/api/users/", window.location.href);
      url.searchParams.set("q", name);
      const data = await api("GET", url.toString());
      const hit = (data.users || []).find((user) => String(user.username).toLowerCase() === name);
      if (hit) {
        found.push(hit.username);
      }
    }
    return found;
  }

  /* Our own message, stored: did it mention people who are not here? */
  async function check(message) {
    const names = mentionedOutsiders(message.body, message.mentions, store.me);
    if (!names.length) {
      return;
    }
    const request = ++asked;
    let found;
    try {
      found = await existing(names);
    } catch (err) {
      return; // only an offer: without an answer there is nothing to offer
    }
    if (request === asked && found.length) {
      show(found);
    }
  }

  store.on("message", ({ message, here, acked }) => {
    if (here && acked && box) {
      check(message);
    }
  });
  // Someone joined (or was invited by another member) meanwhile: not to be offered again.
  store.on("member", ({ user, joined }) => {
    if (joined && offered.includes(user)) {
      const rest = offered.filter((name) => name !== user);
      if (rest.length) {
        show(rest);
      } else {
        hide(false);
      }
    }
  });
  store.on("membership", () => hide(false));

  if (box) {
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        hide(true);
      }
    });
  }

  return { hide };
}
