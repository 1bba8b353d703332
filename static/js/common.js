/*
 * TeamChat: helpers shared by the chat page and the channel directory.
 *
 * - api(): JSON requests to the HTTP API with the CSRF header.
 * - el(): build an element whose text goes in as text, never as markup.
 * - randomKey(): a random name for a message's nonce or an upload.
 * - UserPicker: type-ahead over GET /api/users/?q= for the DM and invite dialogs.
 * - setupCreateRoomForm(): the "create a channel" form (dialog or page).
 *
 * An ES module, shared by main.js (the room page) and browse.js.
 */

const SEARCH_DELAY_MS = 120;

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  return node;
}

export function csrfToken() {
  const match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie || "");
  if (match) {
    return decodeURIComponent(match[1]);
  }
  // The cookie may be unreadable (HttpOnly); every page has a form with the token.
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

/*
 * 128 random bits as text: a UUID, or 32 hex digits where randomUUID is
 * missing (it needs a secure context, so a plain-http LAN host has none).
 */
export function randomKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => ("0" + b.toString(16)).slice(-2)).join("");
}

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/* A JSON request; resolves with the decoded body ({} for 204), rejects with ApiError. */
export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRFToken"] = csrfToken();
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network", "Could not reach the server. Check your connection.");
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
  }
  if (!response.ok) {
    const code = data && typeof data.error === "string" ? data.error : "http_" + response.status;
    const detail =
      data && typeof data.detail === "string" && data.detail
        ? data.detail
        : "That did not work (HTTP " + response.status + ").";
    throw new ApiError(response.status, code, detail);
  }
  return data || {};
}

/*
 * The one order of room names, in the sidebar and the directory alike:
 * ignoring case ("general" before "Project Plans"), by the reader's language
 * (accents sort with their letters). The server lists rooms case-insensitively
 * too, and the pages put its lists in this order once loaded, so a page looks
 * the same whether a room came with it or was renamed while it was open.
 */
const nameCollator = new Intl.Collator(undefined, { usage: "sort" });

export function compareNames(a, b) {
  return nameCollator.compare(a, b);
}

/* Put `items` (elements of one parent) in order by `key(item)` -> [name, tie], moving only those out of place. */
export function sortByName(parent, items, key) {
  const keyed = items.map((item) => ({ item, key: key(item) }));
  keyed.sort((x, y) => compareNames(x.key[0], y.key[0]) || (x.key[1] < y.key[1] ? -1 : x.key[1] > y.key[1] ? 1 : 0));
  let before = items.length ? items[0] : null;
  keyed.forEach(({ item }) => {
    if (item !== before) {
      parent.insertBefore(item, before);
    } else {
      before = nextOf(items, item);
    }
  });
}

function nextOf(items, item) {
  let next = item.nextElementSibling;
  while (next && !items.includes(next)) {
    next = next.nextElementSibling;
  }
  return next;
}

export function roomUrl(slug) {
  return "/r/" + encodeURIComponent(slug) + "/";
}

/*
 * A people picker: an input with a listbox of matching usernames, and the
 * people picked so far as removable chips.
 *
 * Markup (inside `root`): input.picker-input, ul.picker-options (with an
 * id), div.picker-chosen, p.picker-status.
 */
export class UserPicker {
  constructor(root, options) {
    this.root = root;
    this.max = options.max || 7;
    this.self = options.self || "";
    this.room = options.room || "";
    this.exclude = new Set(options.exclude || []);
    this.onChange = options.onChange || (() => {});
    this.input = root.querySelector(".picker-input");
    this.list = root.querySelector(".picker-options");
    this.chosenBox = root.querySelector(".picker-chosen");
    this.status = root.querySelector(".picker-status");
    this.chosen = [];
    this.options = [];
    this.active = -1;
    this.request = 0;
    this.timer = null;

    this.input.setAttribute("role", "combobox");
    this.input.setAttribute("aria-autocomplete", "list");
    this.input.setAttribute("aria-expanded", "false");
    this.input.setAttribute("aria-controls", this.list.id);
    this.input.setAttribute("autocomplete", "off");
    this.list.setAttribute("role", "listbox");
    this.list.hidden = true;

    this.input.addEventListener("input", () => this.searchSoon());
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.input.addEventListener("blur", () => {
      // Let a click on an option land first.
      setTimeout(() => this.close(), 150);
    });
    this.list.addEventListener("mousedown", (event) => event.preventDefault());
    this.list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) {
        this.choose(option.dataset.username);
      }
    });
  }

  setExcluded(names) {
    this.exclude = new Set(names);
  }

  reset() {
    this.chosen = [];
    this.input.value = "";
    this.renderChosen();
    this.close();
    this.say("");
  }

  say(text) {
    if (this.status) {
      this.status.textContent = text;
    }
  }

  searchSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.search(), SEARCH_DELAY_MS);
  }

  async search() {
    const query = this.input.value.trim().replace(/^@/, "");
    const request = ++this.request;
    if (!query) {
      this.close();
      return;
    }
    const url = new URL("/api/users/", window.location.href);
    url.searchParams.set("q", query);
    if (this.room) {
      url.searchParams.set("room", this.room);
    }
    let data;
    try {
      data = await api("GET", url.toString());
    } catch (err) {
      if (request === this.request) {
        this.say(err.detail);
      }
      return;
    }
    if (request !== this.request) {
      return; // a newer search is under way
    }
    const users = Array.isArray(data.users) ? data.users : [];
    this.options = users
      .map((u) => u.username)
      .filter((name) => name !== this.self && !this.exclude.has(name) && !this.chosen.includes(name));
    this.active = this.options.length ? 0 : -1;
    this.render();
    this.say(this.options.length ? "" : "No one matches “" + query + "”.");
  }

  render() {
    this.list.replaceChildren();
    this.options.forEach((name, i) => {
      const option = el("li", "picker-option", name);
      option.id = this.list.id + "-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", i === this.active ? "true" : "false");
      option.dataset.username = name;
      this.list.appendChild(option);
    });
    const open = this.options.length > 0;
    this.list.hidden = !open;
    this.input.setAttribute("aria-expanded", open ? "true" : "false");
    if (open && this.active >= 0) {
      this.input.setAttribute("aria-activedescendant", this.list.id + "-" + this.active);
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  close() {
    this.options = [];
    this.active = -1;
    this.render();
  }

  onKey(event) {
    const open = this.options.length > 0;
    if (event.key === "ArrowDown" && open) {
      event.preventDefault();
      this.active = (this.active + 1) % this.options.length;
      this.render();
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      this.active = (this.active - 1 + this.options.length) % this.options.length;
      this.render();
    } else if ((event.key === "Enter" || event.key === "Tab") && open && this.active >= 0) {
      event.preventDefault();
      this.choose(this.options[this.active]);
    } else if (event.key === "Escape" && open) {
      // Close the list, not the dialog around it.
      event.preventDefault();
      event.stopPropagation();
      this.close();
    } else if (event.key === "Backspace" && !this.input.value && this.chosen.length) {
      this.unchoose(this.chosen[this.chosen.length - 1]);
    }
  }

  choose(name) {
    if (!name || this.chosen.includes(name)) {
      return;
    }
    if (this.chosen.length >= this.max) {
      this.say("You can pick up to " + this.max + (this.max === 1 ? " person." : " people."));
      return;
    }
    this.chosen.push(name);
    this.input.value = "";
    this.close();
    this.renderChosen();
    this.say("");
    this.input.focus();
    this.onChange(this.chosen.slice());
  }

  unchoose(name) {
    this.chosen = this.chosen.filter((n) => n !== name);
    this.renderChosen();
    this.input.focus();
    this.onChange(this.chosen.slice());
  }

  renderChosen() {
    this.chosenBox.replaceChildren();
    this.chosen.forEach((name) => {
      const chip = el("button", "picked-user");
      chip.type = "button";
      chip.dataset.username = name;
      chip.appendChild(el("span", "picked-name", name));
      const x = el("span", "picked-remove", "×");
      x.setAttribute("aria-hidden", "true");
      chip.appendChild(x);
      chip.setAttribute("aria-label", "Remove " + name);
      chip.addEventListener("click", () => this.unchoose(name));
      this.chosenBox.appendChild(chip);
    });
    this.chosenBox.hidden = this.chosen.length === 0;
  }
}

/*
 * The "create a channel" form: name, topic, private. On success the browser
 * goes to the new channel.
 */
export function setupCreateRoomForm(form) {
  const error = form.querySelector(".form-error");
  const submit = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    if (!name) {
      form.elements.name.focus();
      return;
    }
    submit.disabled = true;
    if (error) {
      error.textContent = "";
      error.hidden = true;
    }
    try {
      const data = await api("POST", "/api/rooms/", {
        name,
        topic: form.elements.topic.value.trim(),
        private: form.elements.private.checked,
      });
      window.location.assign(roomUrl(data.room.slug));
    } catch (err) {
      submit.disabled = false;
      if (error) {
        error.textContent = err.detail || "Could not create the channel.";
        error.hidden = false;
      }
      form.elements.name.focus();
    }
  });
}
