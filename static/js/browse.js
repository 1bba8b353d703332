/*
 * TeamChat: the channel directory. Join buttons, the filter box, and the
 * "create a channel" form (shared with the chat page, see common.js).
 */
import { api, roomUrl, setupCreateRoomForm, sortByName } from "./common.js";

const directory = document.getElementById("channel-directory");
if (directory) {
  const status = document.getElementById("browse-status");

  // Open channels, then archived ones, each in the sidebar's name order.
  ["li.channel-row:not(.is-archived)", "li.channel-row.is-archived"].forEach((selector) => {
    const rows = Array.from(directory.querySelectorAll(selector));
    sortByName(directory, rows, (row) => [row.dataset.name || "", row.dataset.room]);
  });

  directory.addEventListener("click", async (event) => {
    const join = event.target instanceof Element ? event.target.closest("button.channel-join") : null;
    if (!join) {
      return;
    }
    const slug = join.dataset.room;
    join.disabled = true;
    join.textContent = "Joining…";
    try {
      await api("POST", "/api/rooms/" + encodeURIComponent(slug) + "/join/");
      window.location.assign(roomUrl(slug));
    } catch (err) {
      join.disabled = false;
      join.textContent = "Join";
      status.textContent = err.detail || "Could not join.";
    }
  });

  const filter = document.getElementById("channel-filter");
  const none = document.getElementById("channel-none");
  filter.addEventListener("input", () => {
    const words = filter.value.trim().toLowerCase();
    let shown = 0;
    directory.querySelectorAll("li.channel-row").forEach((row) => {
      const match = !words || row.querySelector(".channel-info").textContent.toLowerCase().includes(words);
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    none.hidden = shown > 0 || !words;
  });

  const form = document.getElementById("create-room-form");
  if (form) {
    setupCreateRoomForm(form);
  }
}
