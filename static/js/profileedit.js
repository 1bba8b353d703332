/*
 * Editing one's own profile: picture, display name, title, time zone and a
 * status (emoji, text, and when it clears). Saved through the profile API;
 * the page (this tab and every other) redraws from the `profile` event the
 * server sends everyone.
 */

import { api, csrfToken } from "./common.js";
import { liveStatus } from "./people.js";
import { avatarClass, firstLetter } from "./render.js";

/* When a status chosen now with this "clear after" choice ends (ISO), or null for never. */
export function statusEnd(choice, now) {
  const at = new Date(now);
  switch (choice) {
    case "30m":
      return new Date(at.getTime() + 30 * 60 * 1000).toISOString();
    case "1h":
      return new Date(at.getTime() + 60 * 60 * 1000).toISOString();
    case "today":
      at.setHours(23, 59, 59, 0);
      return at.toISOString();
    case "week": {
      // The end of Sunday, this device's time.
      const days = (7 - at.getDay()) % 7;
      at.setDate(at.getDate() + days);
      at.setHours(23, 59, 59, 0);
      return at.toISOString();
    }
    default:
      return null;
  }
}

function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch (err) {
    return [];
  }
}

export function setupProfileEdit(ctx) {
  const { store } = ctx;
  const dialog = document.getElementById("profile-edit-dialog");
  const opener = document.getElementById("profile-edit-button");
  if (!dialog || !opener) {
    return null;
  }
  const form = dialog.querySelector("form");
  const preview = dialog.querySelector(".profile-avatar");
  const file = form.elements.namedItem("avatar");
  const remove = dialog.querySelector("#profile-edit-avatar-remove");
  const zone = form.elements.namedItem("time_zone");
  const until = form.elements.namedItem("until");
  const keep = until.querySelector("option[value=keep]");
  const untilAt = form.elements.namedItem("until_at");
  const untilAtField = untilAt.closest("label");
  until.addEventListener("change", () => {
    untilAtField.hidden = until.value !== "custom";
    if (!untilAtField.hidden) {
      untilAt.focus();
    }
  });
  const error = dialog.querySelector(".form-error");
  let removePicture = false;

  const here = Intl.DateTimeFormat().resolvedOptions().timeZone;
  zones().forEach((name) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name === here ? name + " (this device)" : name;
    zone.appendChild(option);
  });

  function showPicture(url) {
    preview.className = "profile-avatar " + avatarClass(store.me);
    if (url) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "";
      img.width = 64;
      img.height = 64;
      preview.replaceChildren(img);
    } else {
      preview.replaceChildren(firstLetter(store.me));
    }
    remove.hidden = !url;
  }

  function fill() {
    const person = store.people.get(store.me) || {};
    const status = liveStatus(person, Date.now());
    form.elements.namedItem("display_name").value = person.display_name || "";
    form.elements.namedItem("title").value = person.title || "";
    zone.value = person.time_zone || "";
    form.elements.namedItem("status_emoji").value = status ? status.emoji : "";
    form.elements.namedItem("status_text").value = status ? status.text : "";
    keep.hidden = !(status && status.expires);
    keep.disabled = keep.hidden;
    if (status && status.expires) {
      keep.textContent = "Keep: until " + new Date(status.expires).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
    }
    until.value = status && status.expires ? "keep" : "never";
    untilAt.value = "";
    untilAtField.hidden = true;
    file.value = "";
    removePicture = false;
    showPicture(person.avatar);
    error.hidden = true;
  }

  opener.addEventListener("click", () => {
    fill();
    dialog.showModal();
    form.elements.namedItem("display_name").focus();
  });

  file.addEventListener("change", () => {
    const chosen = file.files && file.files[0];
    if (chosen) {
      removePicture = false;
      showPicture(URL.createObjectURL(chosen));
    }
  });
  remove.addEventListener("click", () => {
    file.value = "";
    removePicture = true;
    showPicture(null);
    file.focus();
  });

  async function sendPicture(chosen) {
    const body = new FormData();
    body.append("file", chosen);
    const response = await fetch("/api/profile/avatar/", {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    if (!response.ok) {
      let detail = "The picture could not be saved.";
      try {
        detail = (await response.json()).detail || detail;
      } catch (err) {
        // not JSON: keep the general words
      }
      throw new Error(detail);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const current = liveStatus(store.people.get(store.me) || {}, Date.now());
    const emoji = form.elements.namedItem("status_emoji").value.trim();
    const text = form.elements.namedItem("status_text").value.trim();
    let status = null;
    if (emoji || text) {
      let expires = until.value === "keep" && current ? current.expires : statusEnd(until.value, Date.now());
      if (until.value === "custom") {
        // This device's local time, as the person typed it.
        const at = untilAt.value ? new Date(untilAt.value) : null;
        if (!at || Number.isNaN(at.getTime()) || at.getTime() <= Date.now()) {
          error.textContent = "Choose when the status clears: a time still to come.";
          error.hidden = false;
          untilAt.focus();
          return;
        }
        expires = at.toISOString();
      }
      status = { text, emoji, expires };
    }
    const save = form.querySelector("button[type=submit]");
    save.disabled = true;
    error.hidden = true;
    try {
      await api("PATCH", "/api/profile/", {
        display_name: form.elements.namedItem("display_name").value,
        title: form.elements.namedItem("title").value,
        time_zone: zone.value,
        status,
      });
      const chosen = file.files && file.files[0];
      if (chosen) {
        await sendPicture(chosen);
      } else if (removePicture) {
        await api("DELETE", "/api/profile/avatar/");
      }
      dialog.close();
      opener.focus();
    } catch (err) {
      error.textContent = err.detail || err.message || "Your profile could not be saved.";
      error.hidden = false;
    } finally {
      save.disabled = false;
    }
  });
  return { open: () => opener.click() };
}
