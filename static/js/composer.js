/*
 * The composer: typing and sending a message (through the store's outbox,
 * resent with the same nonce after a reconnect), completion (completion.js), the
 * typing hint this page sends and the "… is typing" line it shows, and the
 * room's draft (ctx.drafts: drafts.js), kept while typing and cleared once it is sent.
 * Files attached (composerfiles.js) go with the message once uploaded.
 */
import { parseTyped } from "./commands.js";
import { randomKey } from "./common.js";
import { setupComposerFiles } from "./composerfiles.js";
import { createCompletion } from "./completion.js";
import { els, showNotice } from "./ui.js";

const SEND_TIMEOUT_MS = 10000;
const BODY_MAX_CHARS = 10000;
const TYPING_EVERY_MS = 3000;

export function codePoints(text) {
  return Array.from(text).length;
}

export function makeNonce() {
  return "c-" + randomKey();
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
    let text = els.input.value;
    const typed = parseTyped(text);
    if (typed.kind === "command") {
      runCommand(text);
      return;
    }
    text = typed.body;
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

  /*
   * A slash command: sent as a `command` frame; its result (or error) comes
   * back as a notice (store.js), and a message it sends arrives as any other.
   * The box is cleared at once, and given back if the socket is not there.
   */
  function runCommand(text) {
    const frame = { type: "command", room: store.room, text: text.trim(), nonce: makeNonce() };
    if (!ctx.socket.send(frame)) {
      showNotice("Not connected: the command was not sent.");
      return;
    }
    els.input.value = "";
    ctx.drafts.sent(store.room, null, text, frame.nonce);
    closeMentions();
    autosize();
    els.input.focus();
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

  // --- completion: people after "@", emoji after ":" (completion.js) ---------------

  const completion = els.mentionList
    ? createCompletion(ctx, {
        input: els.input,
        list: els.mentionList,
        idPrefix: "mention-option-",
        onPicked: () => {
          keepDraft();
          autosize();
        },
      })
    : null;

  function closeMentions() {
    if (completion) {
      completion.close();
    }
  }

  function onKey(event) {
    if (completion && completion.onKey(event)) {
      return;
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
      completion.update();
    });
    completion.start();
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
