/*
 * The page's dialogs: create a channel, start a conversation, invite people,
 * channel settings (name, topic, archive), and the confirmation asked before
 * deleting, leaving or removing someone.
 */
import { api, roomUrl, setupCreateRoomForm, UserPicker } from "./common.js";
import { roomTitle } from "./store.js";
import { els, showNotice } from "./ui.js";

export function setupDialogs(ctx) {
  const { store } = ctx;
  const me = store.me;
  const roomInfo = store.roomInfo;
  const roomApi = (suffix) => "/api/rooms/" + encodeURIComponent(store.room) + "/" + (suffix || "");

  function openDialog(dialog, focus) {
    const error = dialog.querySelector(".form-error");
    if (error) {
      error.textContent = "";
      error.hidden = true;
    }
    dialog.showModal();
    if (focus) {
      focus.focus();
    }
  }

  function dialogError(dialog, text) {
    const error = dialog.querySelector(".form-error");
    error.textContent = text;
    error.hidden = false;
  }

  /* Resolves true when the person chose OK. */
  function confirmAction(options) {
    const dialog = els.confirmDialog;
    dialog.querySelector("#confirm-title").textContent = options.title;
    dialog.querySelector("#confirm-text").textContent = options.text || "";
    dialog.querySelector("#confirm-ok").textContent = options.ok || "OK";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      dialog.querySelector("#confirm-cancel").focus();
    });
  }

  function start() {
    document.querySelectorAll("dialog").forEach((dialog) => {
      dialog.addEventListener("click", (event) => {
        if (event.target === dialog) {
          dialog.close(); // a click on the backdrop
        }
      });
    });
    document.querySelectorAll("[data-close-dialog]").forEach((node) => {
      node.addEventListener("click", () => node.closest("dialog").close());
    });

    // Create a channel.
    const createForm = document.getElementById("create-room-form");
    if (createForm && els.createDialog) {
      setupCreateRoomForm(createForm);
      document.getElementById("create-room-button").addEventListener("click", () => {
        createForm.reset();
        openDialog(els.createDialog, createForm.elements.name);
      });
    }

    // Start a direct conversation.
    if (els.dmDialog) {
      const begin = document.getElementById("dm-start");
      const picker = new UserPicker(document.getElementById("dm-picker"), {
        max: 7,
        self: me,
        onChange: (chosen) => {
          begin.disabled = chosen.length === 0;
        },
      });
      const open = () => {
        picker.reset();
        begin.disabled = true;
        openDialog(els.dmDialog, picker.input);
      };
      document.getElementById("new-dm-button").addEventListener("click", open);
      document.getElementById("new-dm-link").addEventListener("click", open);
      document.getElementById("dm-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!picker.chosen.length) {
          return;
        }
        begin.disabled = true;
        try {
          const data = await api("POST", "/api/dms/", { users: picker.chosen });
          window.location.assign(roomUrl(data.room.slug));
        } catch (err) {
          begin.disabled = false;
          dialogError(els.dmDialog, err.detail);
        }
      });
    }

    // Invite people to this channel.
    if (els.inviteDialog && els.inviteButton) {
      const submit = document.getElementById("invite-submit");
      const picker = new UserPicker(document.getElementById("invite-picker"), {
        max: 20,
        self: me,
        onChange: (chosen) => {
          submit.disabled = chosen.length === 0;
        },
      });
      els.inviteButton.addEventListener("click", async () => {
        picker.reset();
        submit.disabled = true;
        document.getElementById("invite-room-name").textContent = roomInfo.name;
        openDialog(els.inviteDialog, picker.input);
        try {
          const data = await api("GET", roomApi("members/"));
          picker.setExcluded((data.members || []).map((m) => m.username));
        } catch (err) {
          /* the server answers an invitation of a member gracefully anyway */
        }
      });
      document.getElementById("invite-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        const names = picker.chosen.slice();
        if (!names.length) {
          return;
        }
        submit.disabled = true;
        const invited = [];
        try {
          for (const name of names) {
            await api("POST", roomApi("members/"), { username: name });
            invited.push(name);
          }
        } catch (err) {
          submit.disabled = false;
          dialogError(els.inviteDialog, (invited.length ? "Invited " + invited.join(", ") + ". " : "") + err.detail);
          return;
        }
        els.inviteDialog.close();
        showNotice("Invited " + invited.join(", ") + " to " + roomTitle(roomInfo, me) + ".");
      });
    }

    // Channel settings: name, topic, archive.
    if (els.settingsDialog && els.settingsButton) {
      const form = document.getElementById("room-settings-form");
      els.settingsButton.addEventListener("click", () => {
        form.elements.name.value = roomInfo.name;
        form.elements.topic.value = roomInfo.topic || "";
        openDialog(els.settingsDialog, form.elements.name);
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const data = await api("PATCH", roomApi(), {
            name: form.elements.name.value,
            topic: form.elements.topic.value,
          });
          els.settingsDialog.close();
          store.applyRoom(data.room);
        } catch (err) {
          dialogError(els.settingsDialog, err.detail);
        }
      });
      els.archiveButton.addEventListener("click", async () => {
        const archiving = !roomInfo.archived;
        // Archiving takes the channel out of everyone's sidebar and stops all
        // posting: asked first, like deleting or leaving. Unarchiving undoes it.
        if (
          archiving &&
          !(await confirmAction({
            title: "Archive " + roomTitle(roomInfo, me) + "?",
            text:
              "It becomes read-only for everyone and leaves every member's sidebar. " +
              "Its messages stay readable, and it can be unarchived from its settings.",
            ok: "Archive",
          }))
        ) {
          return;
        }
        try {
          const data = await api("PATCH", roomApi(), { archived: archiving });
          els.settingsDialog.close();
          store.applyRoom(data.room);
          showNotice(data.room.archived ? "Archived: the channel is read-only now." : "Unarchived.");
        } catch (err) {
          dialogError(els.settingsDialog, err.detail);
        }
      });
    }
  }

  return { start, confirmAction };
}
