/*
 * What threads add to a message's item, drawn by render.js with the rest of
 * it: the root's "N replies" bar (latest repliers, last reply time) that
 * opens its thread, the "replied to a thread" link of a reply sent also to
 * the room, and the placeholder of a deleted root that keeps its replies.
 * Text only (textContent); clicks are handled by threads.js.
 */
import { el } from "./common.js";

const REPLIERS_SHOWN = 5;
export const DELETED_TEXT = "This message was deleted.";

// username -> their picture's URL (or null): the page's people directory.
let pictureOf = () => null;

export function setPictureSource(source) {
  pictureOf = source;
}

/* A replier's face: their picture when they have one, else their initial. */
function drawFace(face, name, letter) {
  const url = pictureOf(name);
  if (url) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = "";
    img.width = 20;
    img.height = 20;
    face.replaceChildren(img);
  } else {
    face.textContent = letter(name);
  }
}

/* Someone's picture changed: redraw their faces on the thread bars under `container`. */
export function refreshReplierFaces(container, name, letter) {
  container.querySelectorAll(".thread-replier").forEach((face) => {
    if (face.dataset.user === name) {
      drawFace(face, name, letter);
    }
  });
}

/* "3 replies", "1 reply". */
export function repliesText(n) {
  return n + (n === 1 ? " reply" : " replies");
}

/* When the last reply came: "14:05" today, else the date and time. */
export function replyTime(iso, now = new Date()) {
  const date = new Date(iso);
  if (!iso || isNaN(date.getTime())) {
    return "";
  }
  const hm = String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0");
  if (date.toDateString() === now.toDateString()) {
    return "today at " + hm;
  }
  try {
    return date.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " at " + hm;
  } catch (err) {
    return date.toDateString() + " at " + hm;
  }
}

function setSummary(li, m, faceClass, letter) {
  const main = li.querySelector(".message-main");
  let bar = li.querySelector(".thread-summary");
  const count = typeof m.replies === "number" ? m.replies : 0;
  if (!main || count <= 0) {
    if (bar) {
      bar.remove();
    }
    return;
  }
  if (!bar) {
    bar = el("button", "thread-summary");
    bar.type = "button";
    main.appendChild(bar);
  }
  bar.dataset.root = li.dataset.id || "";
  const faces = el("span", "thread-repliers");
  faces.setAttribute("aria-hidden", "true");
  const repliers = Array.isArray(m.repliers) ? m.repliers.slice(0, REPLIERS_SHOWN) : [];
  repliers.forEach((name) => {
    const face = el("span", "thread-replier " + faceClass(name));
    drawFace(face, name, letter);
    face.dataset.user = name;
    face.title = name;
    faces.appendChild(face);
  });
  const when = replyTime(m.last_reply);
  const last = el("span", "thread-last", when ? "Last reply " + when : "");
  bar.replaceChildren(faces, el("span", "thread-replies-count", repliesText(count)), last);
  bar.setAttribute(
    "aria-label",
    repliesText(count) + (repliers.length ? " from " + repliers.join(", ") : "") + (when ? ", last reply " + when : "") + ". Open the thread"
  );
}

function setThreadLink(li, m) {
  let link = li.querySelector(".thread-link");
  if (typeof m.thread !== "number" || !m.in_channel) {
    if (link) {
      link.remove();
    }
    return;
  }
  if (!link) {
    link = el("button", "thread-link", "replied to a thread");
    link.type = "button";
    const meta = li.querySelector(".message-meta");
    if (meta) {
      meta.append(" ", link);
    }
  }
  link.dataset.root = String(m.thread);
  link.setAttribute("aria-label", "Replied to a thread: open it");
}

function setDeleted(li, deleted) {
  li.classList.toggle("is-deleted", !!deleted);
  if (!deleted) {
    return;
  }
  const body = li.querySelector(".message-body");
  if (body) {
    body.textContent = DELETED_TEXT;
    body.classList.add("is-plain");
  }
  ["reactions", "message-actions", "attachments", "message-edited"].forEach((name) => {
    const node = li.querySelector("." + name);
    if (node) {
      node.remove();
    }
  });
}

/*
 * Bring a message's thread parts up to date with (some of) its fields;
 * `faces` draws the repliers as render.js draws authors ({avatarClass, firstLetter}).
 */
export function setThreadParts(li, m, faces) {
  if (typeof m.thread === "number") {
    li.dataset.thread = String(m.thread);
  }
  if ("thread" in m || "in_channel" in m) {
    setThreadLink(li, m);
  }
  if ("replies" in m) {
    setSummary(li, m, faces.avatarClass, faces.firstLetter);
  }
  if ("deleted" in m) {
    setDeleted(li, m.deleted);
  }
}
