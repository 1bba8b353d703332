/*
 * TeamChat browser client: the room page's wiring.
 *
 * The page's chat-config (a json_script) carries the room, the person, the
 * log position the page was rendered at and the first page of messages as
 * data. The store (store.js) holds the state and applies every server
 * event; the views below draw from it and listen to its changes; the socket
 * (socket.js) feeds it. Views reach each other through `ctx` at call time,
 * never through module imports of one another, so the module graph stays a
 * tree (which hashed static names need: see docs/architecture.md).
 */
import { setupActions } from "./actions.js";
import { setupViewer } from "./attachments.js";
import { setupComposer } from "./composer.js";
import { setupDialogs } from "./dialogs.js";
import { setupDrafts } from "./draftsview.js";
import { setupMentionInvite } from "./mentioninvite.js";
import { setupEmojiPicker } from "./emojipicker.js";
import { roomVisible, setupMessages } from "./messages.js";
import { setupNotifications } from "./notifications.js";
import { setupNotifySettings } from "./notifysettings.js";
import { setupPresence } from "./presence.js";
import { setupProfileCard } from "./profilecard.js";
import { setupProfileEdit } from "./profileedit.js";
import { setupRoom } from "./room.js";
import { setupShortcuts } from "./shortcuts.js";
import { setupSidebar } from "./sidebar.js";
import { createSocket } from "./socket.js";
import { firstLetter } from "./render.js";
import { Store } from "./store.js";
import { refreshReplierFaces, setPictureSource } from "./threadmarks.js";
import { setupThreads } from "./threads.js";
import { els, setStatus, showNotice, updateTitle } from "./ui.js";

function start(config) {
  const store = new Store(config, { visible: roomVisible });
  const ctx = { config, store };
  setPictureSource((name) => {
    const person = store.people.get(name);
    return person && person.avatar ? person.avatar : null;
  });
  store.on("profile", ({ person }) => refreshReplierFaces(document, person.username, firstLetter));
  let refreshAfterResume = false;

  ctx.socket = createSocket(ctx, {
    opened: () => ctx.presence.socketOpened(),
    dropped: () => {
      ctx.composer.suspend();
      store.revertActions();
      store.clearTypers();
      ctx.composer.renderTyping();
    },
    signedOut: (reason) => {
      store.failPending(reason);
      if (els.input) {
        els.input.disabled = true;
        els.send.disabled = true;
        els.emojiButton.disabled = true;
        els.attachButton.disabled = true;
      }
    },
  });
  /* A socket that carries this room as watched, once this event's seq is recorded. */
  ctx.resubscribe = () => {
    if (store.catchingUp) {
      refreshAfterResume = true;
    } else if (ctx.socket.current()) {
      setTimeout(ctx.socket.reconnectNow, 0);
    }
  };
  ctx.dialogs = setupDialogs(ctx);
  ctx.emoji = setupEmojiPicker();
  ctx.notifications = setupNotifications(ctx);
  ctx.notifySettings = setupNotifySettings(ctx);
  ctx.messages = setupMessages(ctx);
  ctx.viewer = setupViewer(els.viewer, els.list);
  const draftsView = setupDrafts(ctx); // sets ctx.drafts
  ctx.composer = setupComposer(ctx);
  ctx.mentionInvite = setupMentionInvite(ctx);
  ctx.actions = setupActions(ctx);
  ctx.sidebar = setupSidebar(ctx);
  ctx.room = setupRoom(ctx);
  ctx.presence = setupPresence(ctx);
  ctx.shortcuts = setupShortcuts(ctx);
  ctx.profileCard = setupProfileCard(ctx);
  ctx.profileEdit = setupProfileEdit(ctx);
  ctx.threads = setupThreads(ctx);
  /* Whether the person follows the thread of root `root` (a reply there may notify them). */
  ctx.following = (root) => {
    const item = typeof root === "number" ? store.threads.counts(root) : null;
    return !!(item && item.following);
  };

  // A status disappears when it ends, everywhere it shows: that person is
  // redrawn as if their profile had changed. One timer, for the next to end.
  let expiryTimer = null;
  function expireNext() {
    clearTimeout(expiryTimer);
    const next = store.people.nextExpiry(Date.now());
    if (next) {
      // setTimeout holds at most about 24.8 days; a later end is looked at again then.
      const wait = Math.min(next.at - Date.now() + 50, 2 ** 31 - 1);
      expiryTimer = setTimeout(() => {
        if (Date.now() >= next.at) {
          store.emit("profile", { person: next.person });
        }
        expireNext();
      }, wait);
    }
  }
  store.on("profile", ({ person }) => {
    if (!person.status || !person.status.expires || Date.parse(person.status.expires) > Date.now()) {
      expireNext();
    }
  });
  expireNext();

  const title = () => updateTitle(store.totals());
  ["counts", "room", "room-removed", "room-info"].forEach((name) => store.on(name, title));
  store.on("notice", ({ text }) => showNotice(text));
  // Too much was missed to replay: a fresh page load is the catch-up.
  store.on("reload", () => window.location.reload());
  store.on("resumed", () => {
    ctx.messages.forgetReadSent();
    setStatus("online", "Connected");
    ctx.composer.pump();
    ctx.presence.resumed();
    if (refreshAfterResume) {
      refreshAfterResume = false;
      setTimeout(ctx.socket.reconnectNow, 0);
      return;
    }
    ctx.messages.scheduleRead();
  });

  ctx.sidebar.start();
  ctx.room.start();
  title();
  ctx.composer.start();
  draftsView.start();
  ctx.actions.start();
  ctx.dialogs.start();
  ctx.notifications.start();
  ctx.notifySettings.start();
  ctx.composer.autosize();
  ctx.presence.start();
  ctx.shortcuts.start();
  const target = ctx.messages.start();
  ctx.threads.start();
  if (!target && els.input && !els.input.disabled && window.matchMedia("(min-width: 700px)").matches) {
    els.input.focus();
  }
  ctx.socket.connect();
}

const configEl = document.getElementById("chat-config");
if (configEl) {
  start(JSON.parse(configEl.textContent));
}
