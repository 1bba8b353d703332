/*
 * The profile card: a click on a message's author name or picture opens a
 * dialog with the person's picture, names, title, status (until when), the
 * time where they are, and "Message", which opens the conversation with them.
 */

import { api, roomUrl } from "./common.js";
import { liveStatus, localTime, shownName } from "./people.js";
import { avatarClass, firstLetter } from "./render.js";
import { dndActive } from "./notifyrules.js";

function untilText(expires) {
  if (!expires) {
    return "";
  }
  const end = new Date(expires);
  const sameDay = end.toDateString() === new Date().toDateString();
  const time = end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return ", until " + (sameDay ? time : end.toLocaleDateString([], { weekday: "short", month: "short", day: "numeric" }) + " " + time);
}

export function setupProfileCard(ctx) {
  const { store } = ctx;
  const dialog = document.getElementById("profile-dialog");
  const list = document.getElementById("messages");
  if (!dialog || !list) {
    return { open() {} };
  }
  const picture = dialog.querySelector(".profile-avatar");
  const name = dialog.querySelector("#profile-name");
  const handle = dialog.querySelector(".profile-username");
  const title = dialog.querySelector(".profile-title");
  const status = dialog.querySelector(".profile-status");
  const time = dialog.querySelector(".profile-time");
  const error = dialog.querySelector(".form-error");
  const messageButton = dialog.querySelector("#profile-message");
  let shown = null; // the username on the card

  function fill(username) {
    const person = store.people.get(username);
    const now = Date.now();
    picture.className = "profile-avatar " + avatarClass(username);
    if (person && person.avatar) {
      const img = document.createElement("img");
      img.src = person.avatar;
      img.alt = "";
      img.width = 128;
      img.height = 128;
      picture.replaceChildren(img);
    } else {
      picture.replaceChildren(firstLetter(username));
    }
    name.textContent = shownName(person, username);
    handle.textContent = "@" + username + (person && person.bot ? " · bot" : "");
    title.textContent = (person && person.title) || "";
    title.hidden = !title.textContent;
    const live = liveStatus(person, now);
    status.textContent = live ? [live.emoji, live.text].filter(Boolean).join(" ") + untilText(live.expires) : "";
    status.hidden = !live;
    const dnd = dialog.querySelector(".profile-dnd");
    if (dnd) {
      const paused = person && dndActive(person.dnd_until, now);
      dnd.textContent = paused ? "Notifications paused" + untilText(person.dnd_until) : "";
      dnd.hidden = !paused;
    }
    const local = localTime(person && person.time_zone, now);
    time.textContent = local ? local + " local time" : "";
    time.hidden = !local;
    messageButton.hidden = username === store.me;
    error.hidden = true;
  }

  function open(username) {
    shown = username;
    fill(username);
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  list.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest(".message-user, .message-avatar") : null;
    const li = target ? target.closest("li.message") : null;
    if (li && li.dataset.user) {
      open(li.dataset.user);
    }
  });

  store.on("profile", ({ person }) => {
    if (dialog.open && person.username === shown) {
      fill(shown);
    }
  });

  messageButton.addEventListener("click", async () => {
    try {
      const data = await api("POST", "/api/dms/", { users: [shown] });
      window.location.assign(roomUrl(data.room.slug));
    } catch (err) {
      error.textContent = err.detail || "Could not open that conversation.";
      error.hidden = false;
    }
  });

  return { open };
}
