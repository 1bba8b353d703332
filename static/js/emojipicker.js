/*
 * The emoji picker: a searchable grid of every emoji the server accepts
 * (GET /api/emoji/, fetched once per page), with your frequently used ones
 * first (your picks, kept in localStorage). Used to react to a message and
 * to put an emoji in the composer; `search` serves :shortcode: completion.
 */
import { api, el } from "./common.js";
import { frequentEmoji, recordPick, searchEmoji } from "./emoji.js";

const PICKS_KEY = "teamchat.emoji.picks";
const COLUMNS = 8;

let catalogPromise = null;

/* The catalog, fetched the first time it is needed. */
export function loadCatalog() {
  if (!catalogPromise) {
    catalogPromise = api("GET", "/api/emoji/").then(
      (data) => data.emoji || [],
      (err) => {
        catalogPromise = null; // try again next time
        throw err;
      }
    );
  }
  return catalogPromise;
}

function readPicks() {
  try {
    return JSON.parse(window.localStorage.getItem(PICKS_KEY) || "[]");
  } catch (err) {
    return [];
  }
}

export function setupEmojiPicker() {
  let node = null;
  let input = null;
  let grid = null;
  let status = null;
  let options = []; // the emoji entries in the grid, in order
  let active = -1;
  let current = null; // {trigger, onPick}

  function remember(emoji) {
    try {
      window.localStorage.setItem(PICKS_KEY, JSON.stringify(recordPick(readPicks(), emoji)));
    } catch (err) {
      /* private mode: nothing is remembered */
    }
  }

  function build() {
    node = el("div", "emoji-picker");
    node.id = "emoji-picker";
    node.setAttribute("role", "dialog");
    node.setAttribute("aria-label", "Choose an emoji");
    node.hidden = true;
    input = el("input", "emoji-search");
    input.type = "search";
    input.placeholder = "Search emoji";
    input.setAttribute("aria-label", "Search emoji");
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-controls", "emoji-grid");
    input.setAttribute("aria-autocomplete", "list");
    input.autocomplete = "off";
    grid = el("div", "emoji-grid");
    grid.id = "emoji-grid";
    grid.setAttribute("role", "listbox");
    grid.setAttribute("aria-label", "Emoji");
    status = el("p", "emoji-picker-status");
    status.setAttribute("role", "status");
    node.append(input, grid, status);
    document.body.appendChild(node);
    input.addEventListener("input", () => render());
    input.addEventListener("keydown", onKey);
    grid.addEventListener("mousedown", (event) => event.preventDefault());
    grid.addEventListener("click", (event) => {
      const option = event.target instanceof Element ? event.target.closest("[role=option]") : null;
      if (option) {
        pick(options[Number(option.dataset.index)]);
      }
    });
    document.addEventListener("mousedown", (event) => {
      if (current && !node.contains(event.target) && !current.trigger.contains(event.target)) {
        close(false);
      }
    });
    node.addEventListener("focusout", (event) => {
      if (current && !node.contains(event.relatedTarget) && event.relatedTarget) {
        close(false);
      }
    });
    window.addEventListener("resize", () => close(false));
  }

  function section(label, entries) {
    const group = el("div", "emoji-group");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", label);
    const heading = el("div", "emoji-group-label", label);
    heading.setAttribute("aria-hidden", "true");
    group.appendChild(heading);
    entries.forEach((entry) => {
      const index = options.length;
      options.push(entry);
      const option = el("div", "emoji-option", entry.emoji);
      option.id = "emoji-option-" + index;
      option.dataset.index = String(index);
      option.dataset.emoji = entry.emoji;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.setAttribute("aria-label", entry.name);
      option.title = entry.name + " :" + entry.shortcodes[0] + ":";
      group.appendChild(option);
    });
    return group;
  }

  async function render() {
    let catalog;
    try {
      catalog = await loadCatalog();
    } catch (err) {
      status.textContent = "Could not load the emoji. Try again later.";
      return;
    }
    const query = input.value;
    options = [];
    const groups = [];
    if (!query.trim()) {
      const byEmoji = new Map(catalog.map((entry) => [entry.emoji, entry]));
      const frequent = frequentEmoji(readPicks(), COLUMNS * 2)
        .map((emoji) => byEmoji.get(emoji))
        .filter(Boolean);
      if (frequent.length) {
        groups.push(section("Frequently used", frequent));
      }
      groups.push(section("All emoji", catalog));
      status.textContent = "";
    } else {
      const found = searchEmoji(catalog, query, 400);
      if (found.length) {
        groups.push(section("Results", found));
      }
      status.textContent = found.length ? found.length + (found.length === 1 ? " emoji" : " emoji") : "No emoji found";
    }
    grid.replaceChildren(...groups);
    setActive(options.length ? 0 : -1);
  }

  function setActive(index) {
    const old = grid.querySelector("[aria-selected=true]");
    if (old) {
      old.setAttribute("aria-selected", "false");
    }
    active = index;
    if (index < 0) {
      input.removeAttribute("aria-activedescendant");
      return;
    }
    const option = document.getElementById("emoji-option-" + index);
    option.setAttribute("aria-selected", "true");
    input.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }

  function onKey(event) {
    const count = options.length;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS };
    if (event.key in moves && count) {
      // Left and right stay in the search text while there is some to move through.
      if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && input.value) {
        return;
      }
      event.preventDefault();
      setActive(Math.min(count - 1, Math.max(0, active + moves[event.key])));
    } else if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      if (active >= 0) {
        pick(options[active]);
      }
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close(true);
    }
  }

  function pick(entry) {
    if (!entry || !current) {
      return;
    }
    const { onPick } = current;
    remember(entry.emoji);
    close(true);
    onPick(entry.emoji);
  }

  /* Open next to `trigger`; `onPick(emoji)` is called with the chosen one. */
  function open(trigger, onPick, label) {
    if (!node) {
      build();
    }
    close(false);
    current = { trigger, onPick };
    node.setAttribute("aria-label", label || "Choose an emoji");
    input.value = "";
    grid.replaceChildren();
    node.hidden = false;
    trigger.setAttribute("aria-expanded", "true");
    // CSSOM positioning (not a style attribute): fine under a strict CSP.
    const rect = trigger.getBoundingClientRect();
    const width = node.offsetWidth;
    const height = node.offsetHeight;
    let top = rect.top - height - 4;
    if (top < 8) {
      top = Math.min(window.innerHeight - height - 8, rect.bottom + 4);
    }
    node.style.top = Math.max(8, top) + "px";
    node.style.left = Math.max(8, Math.min(window.innerWidth - width - 8, rect.right - width)) + "px";
    input.focus();
    render();
  }

  function close(refocus) {
    if (!current) {
      return;
    }
    const { trigger } = current;
    current = null;
    node.hidden = true;
    trigger.setAttribute("aria-expanded", "false");
    if (refocus && trigger.isConnected) {
      trigger.focus();
    }
  }

  /* Completion: the best few for a `:code` typed in the composer. */
  async function search(query, limit) {
    return searchEmoji(await loadCatalog(), query, limit);
  }

  return { open, close, search, remember, isOpen: () => current !== null };
}
