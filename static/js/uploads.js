/*
 * Files attached in the composer, without the page: the queue of uploads
 * (each uploading, done or failed), what a message may be sent with, and the
 * words and kinds shown for files. Pure, so tests/js runs it under node.
 */

export const MAX_FILES = 10; // attachments per message (the server's limit too)

/* The raster images shown inline; every other type is a download card. */
export const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/* 1536 -> "1.5 KB": powers of 1024, one decimal below 10. */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) {
    return n + (n === 1 ? " byte" : " bytes");
  }
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  return shown + " " + units[unit];
}

const ARCHIVES = new Set([
  "application/zip",
  "application/x-zip-compressed",
  "application/gzip",
  "application/x-gzip",
  "application/x-tar",
  "application/x-bzip2",
  "application/x-xz",
  "application/x-7z-compressed",
  "application/x-rar",
  "application/vnd.rar",
  "application/zstd",
]);

/* The icon a file card gets, by its (sniffed) type: pdf, archive, text, audio, video, image or other. */
export function fileKind(contentType) {
  const type = String(contentType || "").toLowerCase();
  if (type === "application/pdf") {
    return "pdf";
  }
  if (ARCHIVES.has(type)) {
    return "archive";
  }
  if (type.startsWith("text/") || type === "application/json") {
    return "text";
  }
  if (type.startsWith("audio/")) {
    return "audio";
  }
  if (type.startsWith("video/")) {
    return "video";
  }
  if (type.startsWith("image/")) {
    return "image";
  }
  return "other";
}

/* Shown as a picture: a raster type with a thumbnail of known size. */
export function isInlineImage(attachment) {
  const thumb = attachment && attachment.thumbnail;
  return Boolean(
    thumb &&
      INLINE_TYPES.has(attachment.content_type) &&
      typeof thumb.url === "string" &&
      thumb.width > 0 &&
      thumb.height > 0
  );
}

/* What a refused upload says on its chip, from the answer's status and error code. */
export function uploadErrorText(status, code, detail) {
  if (status === 0 || code === "network") {
    return "Could not reach the server.";
  }
  if (code === "quota_exceeded") {
    return "Your storage for files is full.";
  }
  if (status === 413 || code === "too_large") {
    return "Too large to upload.";
  }
  if (status === 429 || code === "rate_limited") {
    return "Too many uploads at once; try again in a moment.";
  }
  if (status === 401) {
    return "You are signed out.";
  }
  if (detail) {
    return String(detail);
  }
  return "Could not upload (HTTP " + status + ").";
}

/*
 * The files of the message being written, in the order added. Each item:
 * {key, name, size, state: "uploading"|"done"|"failed", loaded, error, upload}
 * (`upload` the server's attachment once done). Keys are the page's own.
 */
export class UploadQueue {
  constructor(max = MAX_FILES) {
    this.max = max;
    this.items = [];
    this.next = 1;
  }

  /* Files (each {name, size}) to add: {added: [item], refused: text|null} — past the limit none is added. */
  add(files) {
    const list = Array.from(files);
    if (list.length === 0) {
      return { added: [], refused: null };
    }
    const room = this.max - this.counted().length;
    if (list.length > room) {
      const refused =
        "At most " +
        this.max +
        " files per message" +
        (room > 0 ? ": " + room + " more can be added." : ": remove one to add another.");
      return { added: [], refused };
    }
    const added = list.map((file) => ({
      key: "f" + this.next++,
      name: String(file.name || "file"),
      size: Number(file.size) || 0,
      state: "uploading",
      loaded: 0,
      error: null,
      upload: null,
    }));
    this.items.push(...added);
    return { added, refused: null };
  }

  get(key) {
    return this.items.find((item) => item.key === key) || null;
  }

  /* Items that count toward the limit: the failed ones are left out. */
  counted() {
    return this.items.filter((item) => item.state !== "failed");
  }

  progress(key, loaded) {
    const item = this.get(key);
    if (item && item.state === "uploading") {
      item.loaded = Math.min(Number(loaded) || 0, item.size || Infinity);
    }
    return item;
  }

  done(key, upload) {
    const item = this.get(key);
    if (item && item.state === "uploading") {
      item.state = "done";
      item.loaded = item.size;
      item.upload = upload;
      item.name = upload.name || item.name;
      item.size = upload.size || item.size;
    }
    return item;
  }

  fail(key, reason) {
    const item = this.get(key);
    if (item && item.state === "uploading") {
      item.state = "failed";
      item.error = reason;
    }
    return item;
  }

  /* The item taken out (to abort its request or delete its upload), or null. */
  remove(key) {
    const item = this.get(key);
    if (item) {
      this.items = this.items.filter((other) => other !== item);
    }
    return item;
  }

  busy() {
    return this.items.some((item) => item.state === "uploading");
  }

  /* The attachments a message sent now carries, in the order added. */
  uploads() {
    return this.items.filter((item) => item.state === "done").map((item) => item.upload);
  }

  /*
   * May the message go, and how: "empty" (no text, no file), "wait" (uploads
   * still running: it goes when they finish), or "ready".
   */
  sendState(text) {
    if (this.busy()) {
      return "wait";
    }
    if (String(text || "").trim() === "" && this.uploads().length === 0) {
      return "empty";
    }
    return "ready";
  }

  /* The message took the files: every item goes (failed ones too, their error was seen). */
  take() {
    const uploads = this.uploads();
    this.items = [];
    return uploads;
  }
}
