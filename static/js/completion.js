/*
 * Completion in a message box: people (and groups, @channel, @here) after
 * "@", emoji after ":", slash commands after a "/" that starts the box. One per box (the room's composer, the thread's):
 * `input` is its textarea, `list` its listbox (role=listbox, named by the
 * textarea's aria-controls), `idPrefix` makes the options' ids unique on the
 * page, and `onPicked` runs once a completion is in the box (drafts, size).
 */
import { commandQueryIn, matchCommands } from "./commands.js";
import { api, el } from "./common.js";
import { shortcodeQuery } from "./emoji.js";
import { shownName } from "./people.js";
import { avatarClass, firstLetter } from "./render.js";
import { announce } from "./ui.js";

const DELAY_MS = 80;

function mentionQueryIn(text) {
  const match = /(^|[^\w@.+-])@([\w.+-]{0,40})$/u.exec(text);
  return match ? { query: match[2], start: text.length - match[2].length - 1 } : null;
}

export function createCompletion(ctx, { input, list, idPrefix, onPicked }) {
  const { store } = ctx;
  const me = store.me;
  // kind says which: "person" or "emoji".
  const state = { kind: "person", items: [], active: -1, request: 0, timer: null };

  function mentionQuery() {
    if (input.selectionStart !== input.selectionEnd) {
      return null;
    }
    const end = input.selectionStart;
    const found = mentionQueryIn(input.value.slice(0, end));
    return found ? { kind: "person", query: found.query, start: found.start, end } : null;
  }

  function emojiQuery() {
    if (input.selectionStart !== input.selectionEnd || !ctx.emoji) {
      return null;
    }
    const end = input.selectionStart;
    const found = shortcodeQuery(input.value.slice(0, end));
    return found ? { kind: "emoji", query: found.query, start: found.start, end } : null;
  }

  function commandQuery() {
    if (input.selectionStart !== input.selectionEnd) {
      return null;
    }
    const end = input.selectionStart;
    const found = commandQueryIn(input.value.slice(0, end));
    return found && end === input.value.length ? { kind: "command", query: found.query, start: 0, end } : null;
  }

  function query() {
    return commandQuery() || mentionQuery() || emojiQuery();
  }

  // Every command (GET /api/commands/), read once per box when first needed.
  let commandList = null;

  function loadCommands() {
    if (!commandList) {
      commandList = api("GET", "/api/commands/")
        .then((data) => (Array.isArray(data.commands) ? data.commands : []))
        .catch(() => {
          commandList = null;
          return [];
        });
    }
    return commandList;
  }

  async function findCommands(text) {
    const request = ++state.request;
    const all = await loadCommands();
    const now = commandQuery();
    if (request !== state.request || !now || now.query !== text) {
      return;
    }
    state.kind = "command";
    state.items = matchCommands(all, text);
    state.active = state.items.length ? 0 : -1;
    render();
    if (state.items.length) {
      announce(state.items.length + (state.items.length === 1 ? " command." : " commands."));
    }
  }

  function render() {
    list.replaceChildren();
    list.setAttribute("aria-label", state.kind === "emoji" ? "Emoji" : state.kind === "command" ? "Commands" : "People to mention");
    state.items.forEach((item, i) => {
      const option = el("li", "mention-option");
      option.id = idPrefix + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", i === state.active ? "true" : "false");
      option.dataset.index = String(i);
      if (state.kind === "command") {
        option.classList.add("command-option");
        const usage = typeof item.usage === "string" ? item.usage : "/" + item.name;
        option.append(el("span", "mention-name", usage), " ", el("span", "mention-username", item.description || ""));
        if (item.bot) {
          option.append(" ", el("span", "bot-badge", "Bot"));
        }
        option.setAttribute("aria-label", usage + (item.description ? ": " + item.description : ""));
      } else if (state.kind === "emoji") {
        option.append(el("span", "mention-emoji", item.emoji), el("span", "mention-name", ":" + item.shortcodes[0] + ":"));
        option.setAttribute("aria-label", item.emoji + " " + item.name);
      } else if (typeof item === "object") {
        // A user group, or @channel / @here.
        option.dataset.username = item.handle;
        const badge = el("span", "mention-avatar mention-group", "@");
        badge.setAttribute("aria-hidden", "true");
        option.append(badge, el("span", "mention-name", item.label), " ", el("span", "mention-username", "@" + item.handle));
      } else {
        option.dataset.username = item;
        const avatar = el("span", "mention-avatar " + avatarClass(item), firstLetter(item));
        avatar.setAttribute("aria-hidden", "true");
        const shown = shownName(store.people.get(item), item);
        option.append(avatar, el("span", "mention-name", shown));
        if (shown !== item) {
          option.append(" ", el("span", "mention-username", "@" + item));
        }
      }
      list.appendChild(option);
    });
    list.hidden = state.items.length === 0;
    if (state.active >= 0) {
      input.setAttribute("aria-activedescendant", idPrefix + state.active);
      const option = document.getElementById(idPrefix + state.active);
      if (option) {
        option.scrollIntoView({ block: "nearest" });
      }
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    state.request += 1;
    clearTimeout(state.timer);
    if (state.items.length) {
      state.items = [];
      state.active = -1;
      render();
    }
  }

  async function fetchPeople(text) {
    const request = ++state.request;
    const url = new URL("/api/users/", window.location.href);
    url.searchParams.set("q", text);
    url.searchParams.set("room", store.room);
    let data;
    try {
      data = await api("GET", url.toString());
    } catch (err) {
      return;
    }
    const now = mentionQuery();
    if (request !== state.request || !now || now.query !== text) {
      return; // the text moved on meanwhile
    }
    state.kind = "person";
    // The server's matches by username, then people whose display name matches.
    const names = (data.users || []).map((u) => u.username);
    store.people.matching(text).forEach((person) => {
      if (!names.includes(person.username)) {
        names.push(person.username);
      }
    });
    // Then user groups, @channel and @here (notifysettings.js).
    state.items = names.filter((name) => name !== me).concat(ctx.mentionExtras ? ctx.mentionExtras(text) : []);
    state.active = state.items.length ? 0 : -1;
    render();
    if (state.items.length) {
      announce(state.items.length + (state.items.length === 1 ? " person" : " people") + " to mention.");
    }
  }

  async function findEmoji(text) {
    const request = ++state.request;
    let found;
    try {
      found = await ctx.emoji.search(text, 8);
    } catch (err) {
      return;
    }
    const now = emojiQuery();
    if (request !== state.request || !now || now.query !== text) {
      return;
    }
    state.kind = "emoji";
    state.items = found;
    state.active = found.length ? 0 : -1;
    render();
  }

  /* The text before the caret changed: look again (after a short pause). */
  function update() {
    const found = store.canWrite() && !input.disabled ? query() : null;
    if (!found) {
      close();
      return;
    }
    clearTimeout(state.timer);
    const find = { emoji: findEmoji, command: findCommands, person: fetchPeople }[found.kind];
    state.timer = setTimeout(() => find(found.query), DELAY_MS);
  }

  /* Put a completion (a person's name or an emoji entry) in place of what was typed. */
  function pick(item) {
    const found = query();
    if (!found || found.kind !== state.kind) {
      close();
      return;
    }
    if (found.kind === "emoji") {
      ctx.emoji.remember(item.emoji);
    }
    let insert;
    if (found.kind === "command") {
      insert = "/" + item.name + " ";
    } else {
      insert = (found.kind === "emoji" ? item.emoji : "@" + (typeof item === "object" ? item.handle : item)) + " ";
    }
    input.value = input.value.slice(0, found.start) + insert + input.value.slice(found.end);
    const caret = found.start + insert.length;
    input.setSelectionRange(caret, caret);
    if (onPicked) {
      onPicked();
    }
    close();
    input.focus();
  }

  /* A key in the box while the list is open: returns whether it was the list's. */
  function onKey(event) {
    if (!state.items.length) {
      return false;
    }
    const count = state.items.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      state.active = (state.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      render();
      return true;
    }
    if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && state.active >= 0) {
      event.preventDefault();
      pick(state.items[state.active]);
      return true;
    }
    if (event.key === "Escape") {
      // Only the list closes (not a panel around the box).
      event.preventDefault();
      event.stopPropagation();
      close();
      return true;
    }
    return false;
  }

  /* Listeners of the box and the list (typing itself calls update()). */
  function start() {
    input.addEventListener("click", update);
    input.addEventListener("keyup", (event) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) {
        update();
      }
    });
    // Closed a moment after the box loses focus (a click on an option comes
    // first), unless the focus came back meanwhile: closing then would also
    // cancel the completion just typed (the emoji picker hands focus back).
    input.addEventListener("blur", () =>
      setTimeout(() => {
        if (document.activeElement !== input) {
          close();
        }
      }, 150)
    );
    list.addEventListener("mousedown", (event) => event.preventDefault());
    list.addEventListener("click", (event) => {
      const option = event.target instanceof Element ? event.target.closest("[role=option]") : null;
      if (option) {
        pick(state.items[Number(option.dataset.index)]);
      }
    });
  }

  return { start, update, close, onKey, isOpen: () => state.items.length > 0 };
}
