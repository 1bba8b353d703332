/*
 * A message's files, the one renderer for them wherever a message shows
 * (live, history, catch-up, pending): raster images as their thumbnail, with
 * the size reserved before it loads, opening the full picture in the viewer;
 * every other file as a card (icon by kind, name, size, Download). File names
 * go in as text, never as markup.
 */
import { el } from "./common.js";
import { fileKind, formatSize, isInlineImage } from "./uploads.js";

const KIND_LABELS = {
  pdf: "PDF",
  archive: "Archive",
  text: "Text",
  audio: "Audio",
  video: "Video",
  image: "Image",
  other: "File",
};

// A short tag in a coloured square (no icon font or emoji font needed).
const KIND_TAGS = {
  pdf: "PDF",
  archive: "ZIP",
  text: "TXT",
  audio: "AUD",
  video: "VID",
  image: "IMG",
  other: "FILE",
};

function imageItem(a) {
  const item = el("li", "attachment attachment-image");
  const open = el("button", "attachment-open");
  open.type = "button";
  open.dataset.url = a.url;
  open.dataset.name = a.name;
  open.dataset.size = String(a.size);
  if (a.width && a.height) {
    open.dataset.width = String(a.width);
    open.dataset.height = String(a.height);
  }
  open.setAttribute("aria-label", "Open " + a.name + " (" + formatSize(a.size) + ")");
  const img = document.createElement("img");
  img.className = "attachment-thumb";
  img.src = a.thumbnail.url;
  img.width = a.thumbnail.width;
  img.height = a.thumbnail.height;
  img.alt = a.name;
  img.loading = "lazy";
  img.decoding = "async";
  open.appendChild(img);
  item.appendChild(open);
  // A picture the server will not show (a public channel read without
  // joining it, a file removed meanwhile) falls back to its card, not a
  // broken image.
  img.addEventListener("error", () => {
    const card = fileItem(a);
    card.dataset.id = item.dataset.id;
    item.replaceWith(card);
  }, { once: true });
  return item;
}

function fileItem(a) {
  const kind = fileKind(a.content_type);
  const item = el("li", "attachment attachment-file");
  item.dataset.kind = kind;
  const icon = el("span", "attachment-icon", KIND_TAGS[kind]);
  icon.setAttribute("aria-hidden", "true");
  const text = el("span", "attachment-text");
  const kindLabel = el("span", "visually-hidden", KIND_LABELS[kind] + ": ");
  text.append(kindLabel, el("span", "attachment-name", a.name), el("span", "attachment-size", formatSize(a.size)));
  const link = el("a", "attachment-download", "Download");
  link.href = a.url;
  link.setAttribute("download", a.name);
  link.setAttribute("aria-label", "Download " + a.name);
  item.append(icon, text, link);
  return item;
}

/* The list of a message's attachments (empty: nothing shown). */
export function renderAttachments(attachments) {
  const list = el("ul", "attachments");
  list.setAttribute("aria-label", "Files");
  attachments.forEach((a) => {
    if (!a || typeof a.url !== "string") {
      return;
    }
    const item = isInlineImage(a) ? imageItem(a) : fileItem(a);
    item.dataset.id = String(a.id);
    list.appendChild(item);
  });
  return list;
}

/* Show (or, with an empty list, take away) a message's attachments under its body. */
export function setAttachments(li, attachments) {
  const old = li.querySelector(":scope > .message-main > .attachments");
  if (old) {
    old.remove();
  }
  if (!attachments.length) {
    return;
  }
  li.querySelector(".message-body").after(renderAttachments(attachments));
}

/*
 * The viewer: a modal dialog with the full picture, its name, size and a
 * Download link. Opened from any thumbnail in `container`; Esc, the Close
 * button and a click on the backdrop close it, and the focus goes back.
 */
export function setupViewer(dialog, container) {
  if (!dialog || !container) {
    return null;
  }
  // Made here: the page's markup holds no <img> of its own.
  const img = document.createElement("img");
  img.className = "viewer-image";
  dialog.querySelector(".viewer-frame").appendChild(img);
  const title = dialog.querySelector(".viewer-title");
  const size = dialog.querySelector(".viewer-size");
  const download = dialog.querySelector(".viewer-download");
  let opener = null;

  function open(button) {
    opener = button;
    img.removeAttribute("src");
    if (button.dataset.width && button.dataset.height) {
      img.width = Number(button.dataset.width);
      img.height = Number(button.dataset.height);
    } else {
      img.removeAttribute("width");
      img.removeAttribute("height");
    }
    img.alt = button.dataset.name;
    img.src = button.dataset.url;
    title.textContent = button.dataset.name;
    size.textContent = formatSize(button.dataset.size);
    download.href = button.dataset.url;
    download.setAttribute("download", button.dataset.name);
    dialog.showModal();
    dialog.querySelector(".viewer-close").focus();
  }

  container.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button.attachment-open") : null;
    if (button && container.contains(button)) {
      open(button);
    }
  });
  dialog.querySelector(".viewer-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) {
      dialog.close(); // the backdrop
    }
  });
  dialog.addEventListener("close", () => {
    img.removeAttribute("src");
    if (opener && opener.isConnected) {
      opener.focus();
    }
    opener = null;
  });
  return { open };
}
