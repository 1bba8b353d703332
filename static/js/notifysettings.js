/*
 * Notification settings on the room page: the room header's "Notifications"
 * choice (this room's level), the sidebar's "Pause notifications" (do not
 * disturb, with its end), and the user groups offered by @-completion.
 * The rules themselves are in notifyrules.js.
 */
import { api } from "./common.js";
import { LEVEL_WORDS, dndActive, effectiveLevel, groupCompletions } from "./notifyrules.js";
import { announce, showNotice } from "./ui.js";

const $ = (id) => document.getElementById(id);
const MINUTE = 60 * 1000;
// setTimeout holds at most about 24.8 days.
const LONGEST_WAIT = 2 ** 31 - 1;

/* "14:30", or "Tue, Jun 2 14:30" when not today. */
export function endText(iso) {
  const end = new Date(iso);
  const time = end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (end.toDateString() === new Date().toDateString()) {
    return time;
  }
  return end.toLocaleDateString([], { weekday: "short", month: "short", day: "numeric" }) + " " + time;
}

/* Tomorrow at 9:00, local time. */
function tomorrowMorning(now) {
  const when = new Date(now);
  when.setDate(when.getDate() + 1);
  when.setHours(9, 0, 0, 0);
  return when;
}

export function setupNotifySettings(ctx) {
  const { store } = ctx;
  const me = store.me;
  const choice = $("notify-choice");
  const select = $("notify-level");
  const dndState = $("dnd-state");
  const dndButton = $("dnd-button");
  const dndMenu = $("dnd-menu");
  const dndResume = $("dnd-resume");
  const dndCustom = $("dnd-custom");
  const dndCustomTime = $("dnd-custom-time");
  let groups = [];
  let dndTimer = null;

  // --- this room's level -----------------------------------------------------------

  function currentEntry() {
    return store.rooms.get(store.room) || null;
  }

  function renderLevel() {
    if (!choice || !select) {
      return;
    }
    const entry = currentEntry();
    choice.hidden = !entry;
    if (!entry) {
      return;
    }
    const level = entry.notify || "default";
    select.value = level;
    // The default option says what the default is for this kind of room.
    const fallback = select.querySelector('option[value="default"]');
    if (fallback) {
      fallback.textContent = "Default (" + LEVEL_WORDS[effectiveLevel({ kind: entry.kind })] + ")";
    }
    choice.dataset.level = effectiveLevel(entry);
  }

  async function changeLevel() {
    const entry = currentEntry();
    if (!entry) {
      return;
    }
    const before = entry.notify || "default";
    const level = select.value;
    store.applyNotify({ room: store.room, notify: level });
    try {
      const data = await api("PUT", "/api/rooms/" + encodeURIComponent(store.room) + "/notify/", { level });
      store.applyNotify(data);
      announce("Notifications for this room: " + LEVEL_WORDS[level] + ".");
    } catch (err) {
      store.applyNotify({ room: store.room, notify: before });
      showNotice(err.detail || "The setting could not be saved.");
    }
  }

  // --- do not disturb ------------------------------------------------------------------

  function dndUntil() {
    const self = store.people.get(me);
    return self ? self.dnd_until : null;
  }

  function setMenu(open) {
    if (!dndMenu || !dndButton) {
      return;
    }
    dndMenu.hidden = !open;
    dndButton.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function renderDnd() {
    if (!dndState) {
      return;
    }
    clearTimeout(dndTimer);
    const until = dndUntil();
    const active = dndActive(until, Date.now());
    dndState.hidden = !active;
    dndState.textContent = active ? "Notifications paused until " + endText(until) : "";
    dndResume.hidden = !active;
    dndButton.textContent = active ? "Change pause" : "Pause notifications";
    document.body.classList.toggle("is-dnd", active);
    if (active) {
      // Shown as ended when it ends, without a server round trip.
      const wait = Math.min(Date.parse(until) - Date.now() + 50, LONGEST_WAIT);
      dndTimer = setTimeout(renderDnd, wait);
    }
  }

  async function setDnd(until) {
    setMenu(false);
    try {
      const data = await api("PATCH", "/api/profile/", { dnd_until: until ? until.toISOString() : null });
      const person = store.people.put(data.profile);
      if (person) {
        store.emit("profile", { person });
      }
      announce(until ? "Notifications paused until " + endText(until.toISOString()) + "." : "Notifications resumed.");
    } catch (err) {
      showNotice(err.detail || "That could not be saved.");
    }
  }

  // --- groups for @-completion -------------------------------------------------------

  async function loadGroups() {
    try {
      const data = await api("GET", "/api/groups/");
      groups = Array.isArray(data.groups) ? data.groups : [];
    } catch (err) {
      groups = [];
    }
  }

  ctx.mentionExtras = (query) => groupCompletions(query, groups);

  function start() {
    renderLevel();
    if (select) {
      select.addEventListener("change", changeLevel);
    }
    store.on("notify", ({ entry }) => {
      if (entry.slug === store.room) {
        renderLevel();
      }
    });
    ["room", "room-removed", "membership"].forEach((name) => store.on(name, renderLevel));
    store.on("profile", ({ person }) => {
      if (person.username === me) {
        renderDnd();
      }
    });
    if (dndButton) {
      dndButton.addEventListener("click", () => setMenu(dndMenu.hidden));
      dndMenu.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-dnd]");
        if (!button) {
          return;
        }
        const now = Date.now();
        const minutes = Number(button.dataset.dnd);
        setDnd(button.dataset.dnd === "tomorrow" ? tomorrowMorning(now) : new Date(now + minutes * MINUTE));
      });
      dndMenu.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          setMenu(false);
          dndButton.focus();
        }
      });
      dndCustom.addEventListener("submit", (event) => {
        event.preventDefault();
        const when = new Date(dndCustomTime.value); // datetime-local: local time
        if (Number.isNaN(when.getTime()) || when.getTime() <= Date.now()) {
          showNotice("Choose a time in the future.");
          return;
        }
        setDnd(when);
      });
      dndResume.addEventListener("click", () => setDnd(null));
    }
    renderDnd();
    loadGroups();
  }

  return { start, renderLevel, renderDnd };
}
