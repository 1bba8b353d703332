/*
 * Files in the composer: the Attach button (a file input behind it), files
 * dropped on the room or pasted into the box, each uploaded at once to
 * POST /api/uploads/ under a random X-Upload-Key and shown as a chip with its
 * progress and a button that cancels the upload or, once done, removes it.
 * Cancelling aborts the request and tells the server to drop the upload by
 * that key (it may have the whole file already and store it, the browser
 * telling the page so late or never); removing deletes it by id. Both are
 * best effort: an upload no message carries is deleted after a day anyway.
 * The queue itself is uploads.js; the composer asks it whether a message may
 * go and takes its uploads when it does.
 *
 * XMLHttpRequest, not fetch: only it reports upload progress.
 */
import { api, csrfToken, el, randomKey } from "./common.js";
import { formatSize, uploadErrorText, UploadQueue } from "./uploads.js";
import { announce, els } from "./ui.js";

const UPLOAD_URL = "/api/uploads/";
const PENDING_URL = "/api/uploads/pending/";

export function setupComposerFiles(ctx, { onIdle }) {
  const { store } = ctx;
  const queue = new UploadQueue();
  const requests = new Map(); // key -> {xhr, uploadKey} while uploading
  const chips = new Map(); // key -> its <li>

  function say(text) {
    if (els.filesStatus) {
      els.filesStatus.textContent = text || "";
    }
  }

  // --- chips -------------------------------------------------------------------

  function renderChip(item) {
    let chip = chips.get(item.key);
    if (!chip) {
      chip = el("li", "file-chip");
      chip.dataset.key = item.key;
      const name = el("span", "file-chip-name");
      const size = el("span", "file-chip-size");
      const bar = document.createElement("progress");
      bar.className = "file-chip-progress";
      bar.max = 1;
      const error = el("span", "file-chip-error");
      const remove = el("button", "file-chip-remove", "×");
      remove.type = "button";
      remove.addEventListener("click", () => removeFile(item.key));
      chip.append(name, size, bar, error, remove);
      chips.set(item.key, chip);
      els.files.appendChild(chip);
    }
    chip.dataset.state = item.state;
    chip.querySelector(".file-chip-name").textContent = item.name;
    chip.querySelector(".file-chip-size").textContent = formatSize(item.size);
    const bar = chip.querySelector(".file-chip-progress");
    bar.hidden = item.state !== "uploading";
    bar.value = item.size ? item.loaded / item.size : 0;
    bar.setAttribute("aria-label", "Uploading " + item.name);
    const error = chip.querySelector(".file-chip-error");
    error.textContent = item.error || "";
    error.hidden = !item.error;
    const remove = chip.querySelector(".file-chip-remove");
    const verb = item.state === "uploading" ? "Cancel the upload of " : "Remove ";
    remove.setAttribute("aria-label", verb + item.name);
    remove.title = verb + item.name;
    els.files.hidden = queue.items.length === 0;
  }

  function dropChip(key) {
    const chip = chips.get(key);
    if (chip) {
      chip.remove();
      chips.delete(key);
    }
    els.files.hidden = queue.items.length === 0;
  }

  // --- uploading ---------------------------------------------------------------

  function finish(item) {
    requests.delete(item.key);
    renderChip(item);
    if (!queue.busy()) {
      onIdle();
    }
  }

  // The answer to a request cancelled since is no one's: its chip is gone.
  function current(item, xhr) {
    const request = requests.get(item.key);
    return Boolean(request) && request.xhr === xhr;
  }

  function upload(item, file) {
    const xhr = new XMLHttpRequest();
    const uploadKey = randomKey();
    requests.set(item.key, { xhr, uploadKey });
    xhr.open("POST", UPLOAD_URL);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-Upload-Key", uploadKey);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0 && queue.progress(item.key, (event.loaded / event.total) * item.size)) {
        renderChip(item);
      }
    });
    xhr.addEventListener("load", () => {
      if (!current(item, xhr)) {
        return;
      }
      const data = xhr.response && typeof xhr.response === "object" ? xhr.response : {};
      if (xhr.status === 201 && data.upload && typeof data.upload.id === "number") {
        queue.done(item.key, data.upload);
        announce(item.name + " uploaded.");
      } else {
        queue.fail(item.key, uploadErrorText(xhr.status, data.error, data.detail));
        announce(item.name + ": " + item.error);
      }
      finish(item);
    });
    xhr.addEventListener("error", () => {
      if (!current(item, xhr)) {
        return;
      }
      queue.fail(item.key, uploadErrorText(0, "network"));
      finish(item);
    });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  }

  /* Files chosen, dropped or pasted: all of them, or none with the reason. */
  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length || !store.canWrite() || ctx.socket.isSignedOut()) {
      return;
    }
    const { added, refused } = queue.add(files);
    if (refused) {
      say(refused);
      announce(refused);
      return;
    }
    say("");
    added.forEach((item, i) => {
      const file = files[i];
      renderChip(item);
      if (file.size > store.uploadMaxBytes) {
        queue.fail(item.key, "Too large to upload: the limit is " + formatSize(store.uploadMaxBytes) + ".");
        finish(item);
      } else if (file.size === 0) {
        queue.fail(item.key, "The file is empty.");
        finish(item);
      } else {
        upload(item, file);
      }
    });
  }

  function removeFile(key) {
    const item = queue.remove(key);
    if (!item) {
      return;
    }
    const request = requests.get(key);
    requests.delete(key);
    if (request) {
      // The server may have the whole file already, and store it: aborting
      // is not enough, so it is also told to drop (or refuse) it by its key.
      request.xhr.abort();
      api("DELETE", PENDING_URL + request.uploadKey + "/").catch(() => {});
    } else if (item.state === "done" && item.upload) {
      api("DELETE", UPLOAD_URL + item.upload.id + "/").catch(() => {});
    }
    dropChip(key);
    announce(item.name + " removed.");
    if (els.input) {
      els.input.focus();
    }
    if (!queue.busy()) {
      onIdle();
    }
  }

  /* The message is going: it takes the finished uploads, and the chips go. */
  function take() {
    const uploads = queue.take();
    chips.forEach((chip) => chip.remove());
    chips.clear();
    els.files.hidden = true;
    say("");
    return uploads;
  }

  // --- where files come from -------------------------------------------------------

  function hasFiles(event) {
    const types = event.dataTransfer ? Array.from(event.dataTransfer.types || []) : [];
    return types.includes("Files");
  }

  function showDropZone(show) {
    if (els.dropZone) {
      els.dropZone.hidden = !show;
    }
  }

  function start() {
    if (!els.form || !els.attachButton || !els.fileInput) {
      return;
    }
    els.attachButton.addEventListener("click", () => els.fileInput.click());
    els.fileInput.addEventListener("change", () => {
      addFiles(els.fileInput.files);
      els.fileInput.value = ""; // the same file may be chosen again
    });
    // Pasting a file (a screenshot, a copied file) attaches it; text still pastes as text.
    els.input.addEventListener("paste", (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files || []) : [];
      if (files.length) {
        event.preventDefault();
        addFiles(files);
      }
    });
    const area = els.main || document.body;
    let depth = 0; // dragenter/dragleave pairs over the children
    area.addEventListener("dragenter", (event) => {
      if (hasFiles(event) && store.canWrite()) {
        event.preventDefault();
        depth += 1;
        showDropZone(true);
      }
    });
    area.addEventListener("dragover", (event) => {
      if (hasFiles(event) && store.canWrite()) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
      }
    });
    area.addEventListener("dragleave", (event) => {
      if (hasFiles(event)) {
        depth = Math.max(0, depth - 1);
        if (depth === 0) {
          showDropZone(false);
        }
      }
    });
    area.addEventListener("drop", (event) => {
      depth = 0;
      showDropZone(false);
      if (hasFiles(event) && store.canWrite()) {
        event.preventDefault();
        addFiles(event.dataTransfer.files);
        if (els.input) {
          els.input.focus();
        }
      }
    });
  }

  return {
    start,
    addFiles,
    take,
    say,
    sendState: (text) => queue.sendState(text),
  };
}
