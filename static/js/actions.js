/*
 * What a person does to a message: the reaction palette and the "More
 * actions" menu, editing in place, deleting, reacting, copying a link, and
 * the Retry button of a message that could not be sent.
 */
import { el, roomUrl } from "./common.js";
import { makeNonce, tooLong } from "./composer.js";
import { button } from "./render.js";
import { els, showNotice } from "./ui.js";

const EMOJI = [
  ["👍", "thumbs up"],
  ["❤️", "heart"],
  ["😂", "laughing"],
  ["🎉", "party"],
  ["😮", "surprised"],
  ["😢", "sad"],
  ["👀", "eyes"],
  ["✅", "done"],
];

export function setupActions(ctx) {
  const { store } = ctx;
  const me = store.me;
  let editing = null;
  let openMenu = null;

  // --- menus ---------------------------------------------------------------------

  function popup(id, label) {
    let node = document.getElementById(id);
    if (!node) {
      node = el("div", "popup-menu");
      node.id = id;
      node.setAttribute("role", "menu");
      node.setAttribute("aria-label", label);
      node.hidden = true;
      node.addEventListener("keydown", onMenuKey);
      // Inside the main landmark, so assistive technology finds it in the page's outline.
      (document.getElementById("main") || document.body).appendChild(node);
    }
    return node;
  }

  function menuItem(text, onChoose, className) {
    const item = button("menu-item" + (className ? " " + className : ""), text);
    item.setAttribute("role", "menuitem");
    item.tabIndex = -1;
    item.addEventListener("click", () => {
      closeMenus(true); // back to the message's button; an editor or dialog then takes over
      onChoose();
    });
    return item;
  }

  function showMenu(node, trigger, items) {
    closeMenus(false);
    node.replaceChildren(...items);
    node.hidden = false;
    // CSSOM positioning (not a style attribute): fine under a strict CSP.
    const rect = trigger.getBoundingClientRect();
    const width = node.offsetWidth;
    const height = node.offsetHeight;
    let top = rect.bottom + 4;
    if (top + height > window.innerHeight - 8) {
      top = Math.max(8, rect.top - height - 4);
    }
    const left = Math.max(8, Math.min(window.innerWidth - width - 8, rect.right - width));
    node.style.top = top + "px";
    node.style.left = left + "px";
    trigger.setAttribute("aria-expanded", "true");
    trigger.closest("li.message").classList.add("has-menu");
    openMenu = { node, trigger };
    if (items[0]) {
      items[0].focus();
    }
  }

  function closeMenus(refocus) {
    if (!openMenu) {
      return;
    }
    const { node, trigger } = openMenu;
    openMenu = null;
    node.hidden = true;
    trigger.setAttribute("aria-expanded", "false");
    const li = trigger.closest("li.message");
    if (li) {
      li.classList.remove("has-menu");
    }
    if (refocus && trigger.isConnected) {
      trigger.focus();
    }
  }

  function onMenuKey(event) {
    if (!openMenu) {
      return;
    }
    const items = Array.from(openMenu.node.querySelectorAll("[role=menuitem]"));
    const at = items.indexOf(document.activeElement);
    let next = null;
    if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      next = items[(at + 1) % items.length];
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      next = items[(at - 1 + items.length) % items.length];
    } else if (event.key === "Home") {
      next = items[0];
    } else if (event.key === "End") {
      next = items[items.length - 1];
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenus(true);
      return;
    } else if (event.key === "Tab") {
      closeMenus(false);
      return;
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }

  function showPalette(li, trigger) {
    const items = EMOJI.map(([emoji, name]) => {
      const item = menuItem(emoji, () => toggleReaction(li, emoji), "emoji-item");
      item.setAttribute("aria-label", name);
      item.title = name;
      item.dataset.emoji = emoji;
      return item;
    });
    // Every other emoji, searchable, the frequently used first.
    const more = menuItem("…", () => ctx.emoji.open(trigger, (emoji) => toggleReaction(li, emoji), "Add reaction"), "emoji-item emoji-more");
    more.setAttribute("aria-label", "More emoji");
    more.title = "More emoji";
    more.setAttribute("aria-haspopup", "dialog");
    items.push(more);
    showMenu(popup("emoji-palette", "Add reaction"), trigger, items);
  }

  function showMore(li, trigger) {
    const own = li.dataset.user === me;
    const items = [];
    if (own && store.canWrite()) {
      items.push(menuItem("Edit message", () => startEdit(li)));
    }
    if ((own && store.canWrite()) || store.isModerator) {
      items.push(menuItem("Delete message", () => deleteMessage(li), "is-danger"));
    }
    if (ctx.threads.canReplyTo(li)) {
      items.push(menuItem("Reply in thread", () => ctx.threads.open(Number(li.dataset.id), { from: trigger })));
    }
    if (store.isMember && !ctx.threads.inPanel(li)) {
      items.push(menuItem("Mark unread from here", () => ctx.messages.markUnreadFrom(li)));
    }
    items.push(menuItem("Copy link", () => copyLink(li)));
    showMenu(popup("message-menu", "Message actions"), trigger, items);
  }

  // --- the actions -----------------------------------------------------------------

  function copyLink(li) {
    const id = li.dataset.id;
    // A reply in its thread: the link opens the thread on it.
    const thread = li.dataset.thread ? "thread=" + li.dataset.thread + "&" : "";
    const url = new URL(roomUrl(store.room) + "?" + thread + "m=" + id + "#m-" + id, window.location.href).toString();
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(
        () => showNotice("Link copied."),
        () => showNotice(url)
      );
    } else {
      showNotice(url);
    }
  }

  function toggleReaction(li, emoji) {
    if (!store.canWrite()) {
      return;
    }
    const id = Number(li.dataset.id);
    const nonce = makeNonce();
    if (!ctx.socket.send({ type: "react", id, emoji, nonce })) {
      showNotice("Not connected. Try again when the connection is back.");
      return;
    }
    store.expect(nonce, "react", id);
  }

  async function deleteMessage(li) {
    const ok = await ctx.dialogs.confirmAction({
      title: "Delete this message?",
      text: "It will be removed for everyone. This cannot be undone.",
      ok: "Delete",
    });
    if (!ok || !li.isConnected) {
      return;
    }
    const id = Number(li.dataset.id);
    const nonce = makeNonce();
    if (!ctx.socket.send({ type: "delete", id, nonce })) {
      showNotice("Not connected. Try again when the connection is back.");
      return;
    }
    li.classList.add("is-deleting");
    store.expect(nonce, "delete", id, () => li.classList.remove("is-deleting"));
  }

  // --- editing ---------------------------------------------------------------------

  async function startEdit(li) {
    cancelEdit(false);
    const id = Number(li.dataset.id);
    const held = store.messages.get(id) || store.threads.get(id);
    let body = held && typeof held.body === "string" ? held.body : undefined;
    if (body === undefined) {
      try {
        const m = await ctx.messages.fetchOne(id);
        body = m ? m.body : undefined;
      } catch (err) {
        body = undefined;
      }
      if (body === undefined) {
        showNotice("Could not load that message for editing.");
        return;
      }
    }
    if (!li.isConnected || !store.canWrite()) {
      return;
    }
    cancelEdit(false);
    const bodyEl = li.querySelector(".message-body");
    const editor = el("div", "message-editor");
    const textarea = el("textarea", "message-edit-input");
    textarea.id = "edit-" + id;
    textarea.value = body;
    textarea.rows = Math.min(8, body.split("\n").length + 1);
    const label = el("label", "visually-hidden", "Edit message");
    label.htmlFor = textarea.id;
    const save = button("edit-save", "Save");
    const cancel = button("edit-cancel", "Cancel");
    const hint = el("span", "message-edit-hint", "Enter to save · Escape to cancel");
    const row = el("div", "message-edit-row");
    row.append(save, cancel, hint);
    editor.append(label, textarea, row);
    bodyEl.hidden = true;
    bodyEl.after(editor);
    li.classList.add("is-editing");
    editing = { li, id, editor, textarea, bodyEl, original: body };
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        saveEdit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        cancelEdit(true);
      }
    });
    save.addEventListener("click", saveEdit);
    cancel.addEventListener("click", () => cancelEdit(true));
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  function cancelEdit(refocus) {
    if (!editing) {
      return;
    }
    const { li, editor, bodyEl } = editing;
    editing = null;
    editor.remove();
    bodyEl.hidden = false;
    li.classList.remove("is-editing");
    if (refocus) {
      const box = ctx.threads.inPanel(li) ? ctx.threads.input : els.input;
      if (box && !box.disabled) {
        box.focus();
      } else {
        const more = li.querySelector(".action-more");
        if (more) {
          more.focus();
        }
      }
    }
  }

  function saveEdit() {
    if (!editing) {
      return;
    }
    const { li, id, textarea, original, bodyEl } = editing;
    const text = textarea.value;
    if (!text.trim()) {
      showNotice("A message cannot be empty. To remove it, use Delete.");
      return;
    }
    if (tooLong(text, "That is too long")) {
      return;
    }
    if (text === original) {
      cancelEdit(true);
      return;
    }
    const nonce = makeNonce();
    if (!ctx.socket.send({ type: "edit", id, body: text, nonce })) {
      showNotice("Not connected: the edit was not saved. Try again when the connection is back.");
      return;
    }
    cancelEdit(true);
    // The new text at once, as plain text; the server's rendering replaces it.
    const previous = Array.from(bodyEl.childNodes);
    const wasPlain = bodyEl.classList.contains("is-plain");
    bodyEl.textContent = text;
    bodyEl.classList.add("is-plain");
    li.classList.add("is-saving");
    store.expect(nonce, "edit", id, () => {
      bodyEl.replaceChildren(...previous);
      bodyEl.classList.toggle("is-plain", wasPlain);
      li.classList.remove("is-saving");
    });
  }

  /* A message is about to go from the page: no editor or menu stays open on it. */
  function forget(li) {
    if (editing && editing.li === li) {
      cancelEdit(false);
    }
    if (openMenu && li.contains(openMenu.trigger)) {
      closeMenus(false);
    }
  }

  /* Edited elsewhere while open here, untouched: show the new text. */
  function editedElsewhere(li) {
    if (editing && editing.li === li && editing.textarea.value === editing.original) {
      cancelEdit(false);
    }
  }

  /* Reactions, the palette and the "More actions" menu of the messages in `node`. */
  function bind(node) {
    node.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const li = target ? target.closest("li.message") : null;
      if (!li) {
        return;
      }
      const chip = target.closest("button.reaction");
      if (chip) {
        toggleReaction(li, chip.dataset.emoji);
        return;
      }
      const react = target.closest("button.action-react");
      if (react) {
        if (openMenu && openMenu.trigger === react) {
          closeMenus(true);
        } else {
          showPalette(li, react);
        }
        return;
      }
      const more = target.closest("button.action-more");
      if (more) {
        if (openMenu && openMenu.trigger === more) {
          closeMenus(true);
        } else {
          showMore(li, more);
        }
      }
    });
  }

  function start() {
    bind(els.list);
    document.addEventListener("mousedown", (event) => {
      if (openMenu && !openMenu.node.contains(event.target) && !openMenu.trigger.contains(event.target)) {
        closeMenus(false);
      }
    });
    window.addEventListener("resize", () => closeMenus(false));
  }

  return { start, bind, startEdit, cancelEdit, closeMenus, forget, editedElsewhere };
}
