/*
 * The composer: typing and sending a message (through the store's outbox,
 * resent with the same nonce after a reconnect), @mention completion, the
 * typing hint this page sends and the "… is typing" line it shows, and the
 * room's draft (ctx.drafts: drafts.js), kept while typing and cleared once it is sent.
 * Files attached (composerfiles.js) go with the message once uploaded.
 */
import { api, el } from "./common.js";
import { setupComposerFiles } from "./composerfiles.js";
import { shortcodeQuery } from "./emoji.js";
import { shownName } from "./people.js";
import { avatarClass, firstLetter } from "./render.js";
import { announce, els, showNotice } from "./ui.js";

const SEND_TIMEOUT_MS = 10000;
const BODY_MAX_CHARS = 10000;
const TYPING_EVERY_MS = 3000;

export function codePoints(text) {
  return Array.from(text).length;
}

export function makeNonce() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return "c-" + window.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => ("0" + b.toString(16)).slice(-2)).join("");
}

/* Refuse a body over the limit with a notice; `what` starts the sentence. */
export function tooLong(text, what) {
  const length = codePoints(text.trim());
  if (length <= BODY_MAX_CHARS) {
    return false;
  }
  showNotice(what + " (" + length + " characters; the limit is " + BODY_MAX_CHARS + ").");
  return true;
}

/*
 * A phone or tablet: no hover and a coarse pointer (the same query as the CSS
 * that shows the Send button there). Enter then makes a new line.
 */
const touchMedia = window.matchMedia("(hover: none), (pointer: coarse)");

export function touchKeyboard() {
  return touchMedia.matches;
}

export function setupComposer(ctx) {
  const { store } = ctx;
  const me = store.me;
  const timers = new Map(); // nonce -> the send's reply timeout
  // The completion list: people after "@", emoji after ":" (kind says which).
  const mention = { kind: "person", items: [], active: -1, request: 0, timer: null };
  let typingSentAt = 0;
  let typingTimer = null;
  // Enter while files upload: the message goes when they are done.
  let waiting = false;
  const files = setupComposerFiles(ctx, {
    onIdle: () => {
      if (waiting) {
        waiting = false;
        submit();
      }
    },
  });

  // --- the draft ---------------------------------------------------------------

  function keepDraft() {
    ctx.drafts.edit(store.room, null, els.input.value);
  }

  /* A message of ours is stored: the draft it was sent from is no longer kept. */
  function settleDraft(message) {
    ctx.drafts.settle(store.room, null, message);
  }

  function restoreDraft() {
    const text = ctx.drafts.load(store.room, null);
    if (!text || els.input.disabled || els.input.value) {
      return;
    }
    els.input.value = text;
    autosize();
  }

  // --- sending -------------------------------------------------------------------
  //
  // The store's outbox decides what goes next (one at a time, in the order
  // typed, paced under the server's send bucket); pump() sends it, and runs
  // again when a send is stored, when the pace allows the next, on a new
  // socket, and on "Retry all".

  let pumpTimer = null;

  function stopTimer(nonce) {
    clearTimeout(timers.get(nonce));
    timers.delete(nonce);
  }

  function pump() {
    clearTimeout(pumpTimer);
    pumpTimer = null;
    if (!ctx.socket.isReady()) {
      return; // `resumed` pumps again
    }
    const next = store.outboxNext();
    if (!next) {
      return;
    }
    if (!next.entry) {
      pumpTimer = setTimeout(pump, next.wait);
      return;
    }
    const entry = next.entry;
    const frame = { type: "send", room: store.room, body: entry.body, nonce: entry.nonce };
    if (entry.attachments && entry.attachments.length) {
      frame.attachments = entry.attachments.map((a) => a.id); // the same ids on every retry
    }
    if (entry.thread) {
      frame.thread = entry.thread;
      frame.in_channel = entry.inChannel;
    }
    if (!ctx.socket.send(frame)) {
      return;
    }
    store.outboxSent(entry.nonce);
    timers.set(
      entry.nonce,
      setTimeout(() => {
        timers.delete(entry.nonce);
        store.outboxFail(entry.nonce, "No reply from the server.");
      }, SEND_TIMEOUT_MS)
    );
  }

  function submit() {
    if (!els.input || ctx.socket.isSignedOut() || !store.canWrite()) {
      return;
    }
    const text = els.input.value;
    const state = files.sendState(text);
    const wasWaiting = waiting;
    waiting = false;
    if (state === "empty") {
      if (wasWaiting) {
        files.say(""); // the files it waited for were removed
      }
      return;
    }
    if (tooLong(text, "That message is too long")) {
      return;
    }
    if (state === "wait") {
      waiting = true;
      files.say("Sending when the files are uploaded…");
      return;
    }
    const entry = store.queue(text, makeNonce(), new Date().toISOString(), files.take());
    ctx.messages.addPending(entry);
    els.input.value = "";
    ctx.drafts.sent(store.room, null, text, entry.nonce); // the server clears it when it stores it
    closeMentions();
    autosize();
    els.input.focus();
    typingSentAt = 0;
    ctx.messages.resumeAutoRead();
    // A new message goes after the ones that failed: sending it is sending them.
    store.retryAll();
    pump();
  }

  /* "Retry all": every failed message again, in the order typed. */
  function retryAll() {
    if (ctx.socket.isSignedOut()) {
      return;
    }
    store.retryAll();
    pump();
    if (els.input) {
      els.input.focus();
    }
  }

  /* The socket is gone: pending messages wait (timer stopped) for the next one. */
  function suspend() {
    clearTimeout(pumpTimer);
    pumpTimer = null;
    store.outbox.forEach((entry) => {
      if (entry.state === "pending") {
        stopTimer(entry.nonce);
      }
    });
    store.outboxSuspend();
  }

  /* One bar for every message not sent: how many, and one button to send them all again. */
  function renderOutboxBar() {
    if (!els.outboxBar) {
      return;
    }
    const failed = store.failed().length;
    els.outboxBar.hidden = failed === 0 || ctx.socket.isSignedOut(); // (each says why, and nothing can be retried)
    els.outboxText.textContent = failed === 1 ? "1 message was not sent." : failed + " messages were not sent.";
    els.retryAll.textContent = failed > 1 ? "Retry all" : "Retry";
  }

  store.on("outbox", ({ entry }) => {
    if (entry.state === "failed") {
      stopTimer(entry.nonce);
    }
    renderOutboxBar();
  });
  store.on("message", ({ acked }) => {
    if (acked) {
      stopTimer(acked.nonce);
      renderOutboxBar();
      pump(); // the next may go
    }
  });

  // --- typing ------------------------------------------------------------------

  function signalTyping() {
    if (!store.canWrite() || !els.input.value.trim()) {
      return;
    }
    const now = Date.now();
    if (now - typingSentAt >= TYPING_EVERY_MS && ctx.socket.isReady() && ctx.socket.hint({ type: "typing", room: store.room })) {
      typingSentAt = now;
    }
  }

  function renderTyping() {
    if (!els.typing) {
      return;
    }
    const names = Array.from(store.typers.keys());
    let text = "";
    if (names.length === 1) {
      text = names[0] + " is typing…";
    } else if (names.length === 2) {
      text = names[0] + " and " + names[1] + " are typing…";
    } else if (names.length > 2) {
      text = "Several people are typing…";
    }
    if (els.typing.textContent !== text) {
      els.typing.textContent = text;
    }
  }

  function pruneTypers() {
    const next = store.pruneTypers();
    renderTyping();
    clearTimeout(typingTimer);
    if (next !== Infinity) {
      typingTimer = setTimeout(pruneTypers, next - Date.now() + 20);
    }
  }

  store.on("typing", pruneTypers);
  store.on("message", ({ message, here }) => {
    if (here && message.user === me && message.nonce && els.input) {
      settleDraft(message);
    }
  });

  // --- @mentions -------------------------------------------------------------------

  function mentionQuery() {
    const input = els.input;
    if (input.selectionStart !== input.selectionEnd) {
      return null;
    }
    const end = input.selectionStart;
    const match = /(^|[^\w@.+-])@([\w.+-]{0,40})$/u.exec(input.value.slice(0, end));
    if (!match) {
      return null;
    }
    return { kind: "person", query: match[2], start: end - match[2].length - 1, end };
  }

  function emojiQuery() {
    const input = els.input;
    if (input.selectionStart !== input.selectionEnd || !ctx.emoji) {
      return null;
    }
    const end = input.selectionStart;
    const found = shortcodeQuery(input.value.slice(0, end));
    return found ? { kind: "emoji", query: found.query, start: found.start, end } : null;
  }

  function completionQuery() {
    return mentionQuery() || emojiQuery();
  }

  function renderMentions() {
    const list = els.mentionList;
    list.replaceChildren();
    list.setAttribute("aria-label", mention.kind === "emoji" ? "Emoji" : "People to mention");
    mention.items.forEach((item, i) => {
      const option = el("li", "mention-option");
      option.id = "mention-option-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", i === mention.active ? "true" : "false");
      option.dataset.index = String(i);
      if (mention.kind === "emoji") {
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
    list.hidden = mention.items.length === 0;
    if (mention.active >= 0) {
      els.input.setAttribute("aria-activedescendant", "mention-option-" + mention.active);
      const option = document.getElementById("mention-option-" + mention.active);
      if (option) {
        option.scrollIntoView({ block: "nearest" });
      }
    } else {
      els.input.removeAttribute("aria-activedescendant");
    }
  }

  function closeMentions() {
    if (!els.mentionList) {
      return;
    }
    mention.request += 1;
    clearTimeout(mention.timer);
    if (mention.items.length) {
      mention.items = [];
      mention.active = -1;
      renderMentions();
    }
  }

  async function fetchMentions(query) {
    const request = ++mention.request;
    const url = new URL("/api/users/", window.location.href);
    url.searchParams.set("q", query);
    url.searchParams.set("room", store.room);
    let data;
    try {
      data = await api("GET", url.toString());
    } catch (err) {
      return;
    }
    const now = mentionQuery();
    if (request !== mention.request || !now || now.query !== query) {
      return; // the text moved on meanwhile
    }
    mention.kind = "person";
    // The server's matches by username, then people whose display name matches.
    const names = (data.users || []).map((u) => u.username);
    store.people.matching(query).forEach((person) => {
      if (!names.includes(person.username)) {
        names.push(person.username);
      }
    });
    // Then user groups, @channel and @here (notifysettings.js).
    mention.items = names.filter((name) => name !== me).concat(ctx.mentionExtras ? ctx.mentionExtras(query) : []);
    mention.active = mention.items.length ? 0 : -1;
    renderMentions();
    if (mention.items.length) {
      announce(mention.items.length + (mention.items.length === 1 ? " person" : " people") + " to mention.");
    }
  }

  async function findEmoji(query) {
    const request = ++mention.request;
    let found;
    try {
      found = await ctx.emoji.search(query, 8);
    } catch (err) {
      return;
    }
    const now = emojiQuery();
    if (request !== mention.request || !now || now.query !== query) {
      return;
    }
    mention.kind = "emoji";
    mention.items = found;
    mention.active = found.length ? 0 : -1;
    renderMentions();
  }

  function updateMentions() {
    const found = store.canWrite() ? completionQuery() : null;
    if (!found) {
      closeMentions();
      return;
    }
    clearTimeout(mention.timer);
    mention.timer = setTimeout(() => (found.kind === "emoji" ? findEmoji : fetchMentions)(found.query), 80);
  }

  /* Put a completion (a person's name or an emoji entry) in place of what was typed. */
  function pickMention(item) {
    const found = completionQuery();
    if (!found || found.kind !== mention.kind) {
      closeMentions();
      return;
    }
    const input = els.input;
    if (found.kind === "emoji") {
      ctx.emoji.remember(item.emoji);
    }
    const insert = (found.kind === "emoji" ? item.emoji : "@" + (typeof item === "object" ? item.handle : item)) + " ";
    input.value = input.value.slice(0, found.start) + insert + input.value.slice(found.end);
    const caret = found.start + insert.length;
    input.setSelectionRange(caret, caret);
    keepDraft();
    closeMentions();
    autosize();
    input.focus();
  }

  function onKey(event) {
    if (mention.items.length) {
      const count = mention.items.length;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        mention.active = (mention.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
        renderMentions();
        return;
      }
      if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && mention.active >= 0) {
        event.preventDefault();
        pickMention(mention.items[mention.active]);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closeMentions();
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229 && !touchKeyboard()) {
      // On a touch keyboard Enter is a new line, and the Send button sends.
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && !event.altKey && !els.input.value) {
      // Edit your last message, as in other chat apps.
      const own = els.list.querySelectorAll("li.message.is-own[data-id]");
      if (own.length && store.canWrite()) {
        event.preventDefault();
        ctx.actions.startEdit(own[own.length - 1]);
      }
    }
  }

  // --- the box ------------------------------------------------------------------

  /* Text (an emoji from the picker) at the caret, replacing any selection. */
  function insertText(text) {
    const input = els.input;
    if (!input || input.disabled) {
      return;
    }
    input.setRangeText(text, input.selectionStart, input.selectionEnd, "end");
    input.focus();
    keepDraft();
    autosize();
    signalTyping();
  }

  const nativeAutosize = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");

  function autosize() {
    if (!els.input || nativeAutosize) {
      return;
    }
    // CSSOM assignment (not a style attribute in markup): allowed by a strict CSP.
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight, 200) + "px";
  }

  /* Enter on a touch keyboard makes a new line, as in phone chat apps; the keyboard's key says so. */
  function applyKeyboardKind() {
    const touch = touchKeyboard();
    els.input.setAttribute("enterkeyhint", touch ? "enter" : "send");
    if (els.hintKeys && els.hintTouch) {
      els.hintKeys.hidden = touch;
      els.hintTouch.hidden = !touch;
    }
  }

  function start() {
    if (!els.form) {
      return;
    }
    applyKeyboardKind();
    if (touchMedia.addEventListener) {
      touchMedia.addEventListener("change", applyKeyboardKind);
    }
    if (els.retryAll) {
      els.retryAll.addEventListener("click", retryAll);
    }
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    els.input.addEventListener("keydown", onKey);
    els.input.addEventListener("input", () => {
      keepDraft();
      autosize();
      signalTyping();
      updateMentions();
    });
    els.input.addEventListener("click", updateMentions);
    els.input.addEventListener("keyup", (event) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) {
        updateMentions();
      }
    });
    // Closed a moment after the box loses focus (a click on an option comes
    // first), unless the focus came back meanwhile: closing then would also
    // cancel the completion just typed (the emoji picker hands focus back).
    els.input.addEventListener("blur", () =>
      setTimeout(() => {
        if (document.activeElement !== els.input) {
          closeMentions();
        }
      }, 150)
    );
    els.mentionList.addEventListener("mousedown", (event) => event.preventDefault());
    els.mentionList.addEventListener("click", (event) => {
      const option = event.target instanceof Element ? event.target.closest("[role=option]") : null;
      if (option) {
        pickMention(mention.items[Number(option.dataset.index)]);
      }
    });
    const emojiButton = document.getElementById("composer-emoji");
    if (emojiButton && ctx.emoji) {
      emojiButton.addEventListener("click", () => {
        if (ctx.emoji.isOpen()) {
          ctx.emoji.close(true);
          return;
        }
        ctx.emoji.open(emojiButton, insertText, "Insert an emoji");
      });
    }
    // Keep the focus (and a phone's keyboard) in the textarea when Send is tapped.
    els.send.addEventListener("mousedown", (event) => event.preventDefault());
    files.start();
    restoreDraft();
  }

  return {
    start,
    autosize,
    pump,
    suspend,
    closeMentions,
    renderTyping,
  };
}
