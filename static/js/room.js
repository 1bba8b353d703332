/*
 * This room: its header (name, topic, archived), what the person may do in
 * it (the composer or the note saying why not, Join, Leave, Invite,
 * Settings), their membership as it changes, and the member panel.
 */
import { api, el, roomUrl } from "./common.js";
import { liveStatus, shownName } from "./people.js";
import { avatarClass, botBadge, button, firstLetter } from "./render.js";
import { PRESENCE_STATES, deletedNote, roomLabel, roomTitle } from "./store.js";
import { announce, els, setBaseTitle, showNotice } from "./ui.js";

const DEFAULT_ROOM = "general";

export function setupRoom(ctx) {
  const { store } = ctx;
  const me = store.me;
  const roomInfo = store.roomInfo;
  const roomApi = (suffix) => "/api/rooms/" + encodeURIComponent(store.room) + "/" + (suffix || "");
  let leftNote = ""; // why this user may no longer post here (removed, left, deleted)
  let members = null; // Set of usernames once the member list was loaded

  function render() {
    const writable = store.canWrite();
    const signedOut = ctx.socket.isSignedOut();
    els.app.classList.toggle("is-member", store.isMember);
    els.app.classList.toggle("can-write", writable);
    els.app.classList.toggle("is-moderator", store.isModerator);
    if (els.roomName && store.isChannel()) {
      els.roomName.textContent = roomInfo.name;
    }
    if (els.topic) {
      els.topic.textContent = roomInfo.topic || "";
      els.topic.title = roomInfo.topic || "";
      els.topic.hidden = !roomInfo.topic;
    }
    if (els.archivedBadge) {
      els.archivedBadge.hidden = !roomInfo.archived;
    }
    if (els.inviteButton) {
      els.inviteButton.hidden = !writable;
    }
    if (els.settingsButton) {
      els.settingsButton.hidden = !store.canManage || store.roomDeleted;
    }
    if (els.membersButton) {
      els.membersButton.hidden = store.roomDeleted;
    }
    if (els.leaveButton) {
      els.leaveButton.hidden = !store.isMember || store.room === DEFAULT_ROOM;
    }
    if (els.archiveButton) {
      els.archiveButton.textContent = roomInfo.archived ? "Unarchive" : "Archive";
    }
    if (els.form) {
      els.form.hidden = !writable;
      els.input.disabled = !writable || signedOut;
      els.send.disabled = !writable || signedOut;
      els.emojiButton.disabled = !writable || signedOut;
      els.attachButton.disabled = !writable || signedOut;
      const where = store.isChannel() ? "#" + roomInfo.name : roomLabel(roomInfo, me);
      els.input.placeholder = "Message " + where;
    }
    if (!writable) {
      ctx.composer.closeMentions();
    }
    if (els.note) {
      els.note.hidden = writable;
      let text = "";
      if (roomInfo.archived) {
        text = "#" + roomInfo.name + " is archived: it is read-only.";
      } else if (!store.isMember) {
        text = leftNote || "You are reading #" + roomInfo.name + ". Join it to post here.";
      }
      els.noteText.textContent = text;
    }
    if (els.join) {
      els.join.hidden = store.isMember || store.roomDeleted || roomInfo.archived || roomInfo.private || !store.isChannel();
      els.join.textContent = "Join #" + roomInfo.name;
    }
  }

  /* The store's "room-info": this room was renamed, its topic changed, or it was (un)archived. */
  function onRoomInfo() {
    if (store.isChannel()) {
      setBaseTitle("#" + roomInfo.name + " · TeamChat");
    }
    render();
    if (els.settingsDialog && !els.settingsDialog.open) {
      els.settingsDialog.querySelector("[name=name]").value = roomInfo.name;
      els.settingsDialog.querySelector("[name=topic]").value = roomInfo.topic || "";
    }
  }

  function becameMember() {
    leftNote = "";
    if (members) {
      members.add(me);
      renderMembers();
    }
    render();
    ctx.messages.scheduleRead();
  }

  function lostMembership({ action, by }) {
    const where = roomTitle(roomInfo, me);
    if (action === "deleted") {
      leftNote = deletedNote(roomInfo, me, by);
    } else if (action === "left") {
      leftNote = "You left " + where + ".";
    } else if (by && by !== me) {
      leftNote = by + " removed you from " + where + ".";
    } else {
      leftNote = "You are no longer a member of " + where + ".";
    }
    showNotice(leftNote);
    announce(leftNote);
    ctx.actions.cancelEdit(false);
    ctx.actions.closeMenus(false);
    store.failPending(store.roomDeleted ? "this room was deleted." : "you are no longer a member of this room.");
    if (store.roomDeleted) {
      // A room that is gone has no members to list.
      members = null;
      els.memberPanel.hidden = true;
      els.membersButton.setAttribute("aria-expanded", "false");
      els.app.classList.remove("members-open");
      ctx.presence.follow();
    } else if (members) {
      members.delete(me);
      renderMembers();
    }
    render();
    if (store.isChannel() && !roomInfo.private && !store.roomDeleted) {
      // Still readable: get a socket that carries it as a watched room.
      // After this event's seq is recorded, so the new socket resumes past it.
      ctx.resubscribe();
    }
  }

  async function join() {
    els.join.disabled = true;
    try {
      await api("POST", roomApi("join/"));
      store.becomeMember();
      if (els.input) {
        els.input.focus();
      }
    } catch (err) {
      showNotice(err.detail || "Could not join.");
    } finally {
      els.join.disabled = false;
    }
  }

  async function leave() {
    const ok = await ctx.dialogs.confirmAction({
      title: "Leave " + roomTitle(roomInfo, me) + "?",
      text: roomInfo.private
        ? "It is private: you will need an invitation to come back."
        : "You can join it again from Browse channels.",
      ok: "Leave",
    });
    if (!ok) {
      return;
    }
    try {
      await api("POST", roomApi("leave/"));
      window.location.assign(roomUrl(DEFAULT_ROOM));
    } catch (err) {
      showNotice(err.detail || "Could not leave.");
    }
  }

  // --- the member panel ------------------------------------------------------------

  function canRemoveMembers() {
    return (store.canManage || store.isModerator) && store.isChannel() && store.room !== DEFAULT_ROOM;
  }

  function paintPresence(row, state) {
    row.dataset.presence = state;
    row.querySelector(".presence-dot").dataset.presence = state;
    row.querySelector(".member-presence").textContent = ", " + state;
  }

  function memberRow(name) {
    const row = el("li", "member");
    row.dataset.user = name;
    const dot = el("span", "presence-dot");
    dot.setAttribute("aria-hidden", "true");
    const person = store.people.get(name);
    const avatar = el("span", "member-avatar " + avatarClass(name));
    avatar.setAttribute("aria-hidden", "true");
    if (person && person.avatar) {
      const img = document.createElement("img");
      img.src = person.avatar;
      img.alt = "";
      img.width = 20;
      img.height = 20;
      avatar.appendChild(img);
    } else {
      avatar.textContent = firstLetter(name);
    }
    const shown = shownName(person, name);
    const label = shown === name ? name : shown + " (@" + name + ")";
    row.append(dot, avatar, el("span", "member-name", name === me ? label + " (you)" : label));
    if (person && person.bot) {
      row.appendChild(botBadge());
    }
    const status = liveStatus(person, Date.now());
    if (status) {
      const note = el("span", "member-status", status.emoji || "💬");
      note.title = status.text || status.emoji;
      note.setAttribute("aria-label", "status: " + (status.text || status.emoji));
      row.appendChild(note);
    }
    row.appendChild(el("span", "visually-hidden member-presence"));
    if (canRemoveMembers() && name !== me) {
      const remove = button("member-remove", "Remove", "Remove " + name + " from " + roomTitle(roomInfo, me));
      remove.dataset.username = name;
      row.appendChild(remove);
    }
    paintPresence(row, store.presence.get(name) || "offline");
    return row;
  }

  function renderMembers() {
    if (!members || !els.memberList) {
      return;
    }
    const names = Array.from(members).sort((a, b) => a.localeCompare(b));
    els.memberHeading.textContent = "Members (" + names.length + ")";
    els.memberList.replaceChildren(...names.map(memberRow));
    ctx.presence.follow();
  }

  function renderPresence(names) {
    if (!els.memberList) {
      return;
    }
    for (const row of els.memberList.children) {
      if (names.has(row.dataset.user)) {
        paintPresence(row, store.presence.get(row.dataset.user));
      }
    }
  }

  async function loadMembers() {
    els.memberStatus.textContent = "Loading…";
    try {
      const data = await api("GET", roomApi("members/"));
      members = new Set();
      (data.members || []).forEach((m) => {
        members.add(m.username);
        // The socket's word is newer for the people it follows already.
        if (!ctx.presence.follows(m.username) && PRESENCE_STATES.has(m.presence)) {
          store.presence.set(m.username, m.presence);
        }
      });
      els.memberStatus.textContent = "";
      renderMembers();
    } catch (err) {
      els.memberStatus.textContent = err.detail || "Could not load the members.";
    }
  }

  function setMemberPanel(open) {
    els.memberPanel.hidden = !open;
    els.membersButton.setAttribute("aria-expanded", open ? "true" : "false");
    els.app.classList.toggle("members-open", open);
    ctx.presence.follow();
    if (open) {
      loadMembers();
      els.memberClose.focus();
    } else {
      els.membersButton.focus();
    }
  }

  /* Escape pressed: close the member panel if the focus is in it. */
  function escapeMemberPanel() {
    if (!els.memberPanel.hidden && els.memberPanel.contains(document.activeElement)) {
      setMemberPanel(false);
    }
  }

  async function removeMember(name) {
    const ok = await ctx.dialogs.confirmAction({
      title: "Remove " + name + "?",
      text: name + " will no longer be a member of " + roomTitle(roomInfo, me) + ".",
      ok: "Remove",
    });
    if (!ok) {
      return;
    }
    try {
      await api("DELETE", roomApi("members/" + encodeURIComponent(name) + "/"));
      if (members) {
        members.delete(name);
        renderMembers();
      }
      announce(name + " was removed.");
    } catch (err) {
      showNotice(err.detail || "Could not remove " + name + ".");
    }
  }

  /* The open member list, in its order (null when closed or not loaded). */
  function shownMembers() {
    if (!members || els.memberPanel.hidden) {
      return null;
    }
    return Array.from(members).sort((a, b) => a.localeCompare(b));
  }

  function start() {
    render();
    if (els.join) {
      els.join.addEventListener("click", join);
    }
    if (els.leaveButton) {
      els.leaveButton.addEventListener("click", leave);
    }
    els.membersButton.addEventListener("click", () => setMemberPanel(els.memberPanel.hidden));
    els.memberClose.addEventListener("click", () => setMemberPanel(false));
    els.memberList.addEventListener("click", (event) => {
      const remove = event.target instanceof Element ? event.target.closest("button.member-remove") : null;
      if (remove) {
        removeMember(remove.dataset.username);
      }
    });
  }

  store.on("room-info", onRoomInfo);
  store.on("membership", (change) => (change.member ? becameMember() : lostMembership(change)));
  store.on("member", ({ user, joined }) => {
    if (members) {
      if (joined) {
        members.add(user);
      } else {
        members.delete(user);
      }
      renderMembers();
    }
  });
  store.on("presence", ({ changed }) => renderPresence(changed));
  store.on("profile", ({ person }) => {
    if (members && members.has(person.username)) {
      renderMembers();
    }
  });

  return { start, render, escapeMemberPanel, shownMembers };
}
