/*
 * The sidebar: the links of the rooms the store holds, in name order
 * (compareNames: case-insensitive, the same live and after a reload), with
 * their unread and mention badges and (1:1 conversations) the other
 * person's presence; and its drawer on phone-sized screens.
 */
import { el, roomUrl, sortByName } from "./common.js";
import { firstLetter } from "./render.js";
import { shownName } from "./people.js";
import { dmOthers, dmPartner, roomLabel } from "./store.js";
import { isMuted } from "./notifyrules.js";
import { els } from "./ui.js";

export function setupSidebar(ctx) {
  const { store } = ctx;
  const me = store.me;

  function roomLink(slug) {
    if (!els.rooms) {
      return null;
    }
    for (const link of els.rooms.querySelectorAll("a.room-link")) {
      if (link.dataset.room === slug) {
        return link;
      }
    }
    return null;
  }

  function setBadge(link, className, count, text, title) {
    let badge = link.querySelector("." + className);
    if (!count) {
      if (badge) {
        badge.remove();
      }
      return;
    }
    if (!badge) {
      badge = el("span", className);
      badge.setAttribute("aria-hidden", "true"); // .room-status says it in words
      link.insertBefore(badge, link.querySelector(".room-status"));
    }
    badge.textContent = text;
    badge.title = title;
  }

  function renderCounts(entry) {
    const link = roomLink(entry.slug);
    if (!link) {
      return;
    }
    const unread = entry.unread || 0;
    const mentions = entry.mentions || 0;
    setBadge(link, "mention-count", mentions, "@" + mentions, mentions + (mentions === 1 ? " mention" : " mentions"));
    setBadge(
      link,
      "unread-count",
      unread,
      unread > 999 ? "999+" : String(unread),
      unread + (unread === 1 ? " unread message" : " unread messages")
    );
    // Mentions first, then the unread count (insertBefore keeps that order).
    const mention = link.querySelector(".mention-count");
    const count = link.querySelector(".unread-count");
    if (mention && count && mention.nextElementSibling !== count) {
      link.insertBefore(mention, count);
    }
    link.classList.toggle("has-unread", unread > 0);
    const muted = isMuted(entry); // dimmed, and left out of the title's count
    link.classList.toggle("is-muted", muted);
    const status = link.querySelector(".room-status");
    if (status) {
      status.textContent =
        (muted ? ", muted" : "") +
        (unread ? ", " + unread + " unread" : "") +
        (mentions ? ", " + mentions + (mentions === 1 ? " mention" : " mentions") : "");
    }
  }

  /*
   * A 1:1 conversation's link shows the other person's state: a dot on its
   * icon (full online, half away, empty offline; none while not known) and
   * the same in words for screen readers, part of the link's name like its
   * unread count (not announced as it changes).
   */
  function renderDmPresence(link, entry) {
    const partner = dmPartner(entry, me);
    const icon = link.querySelector(".room-hash");
    let dot = icon.querySelector(".room-presence");
    let words = link.querySelector(".room-presence-text");
    if (!partner) {
      if (dot) {
        dot.remove();
      }
      if (words) {
        words.remove();
      }
      return;
    }
    if (!dot) {
      dot = el("span", "room-presence");
      icon.appendChild(dot);
    }
    if (!words) {
      words = el("span", "visually-hidden room-presence-text");
      link.querySelector(".room-name").after(words);
    }
    const state = store.presence.get(partner);
    dot.dataset.presence = state || "unknown";
    words.textContent = state ? ", " + state : "";
  }

  /* The conversations whose partner's state changed. */
  function renderPresence(names) {
    if (!els.dmList) {
      return;
    }
    for (const link of els.dmList.querySelectorAll("a.room-link")) {
      const entry = store.rooms.get(link.dataset.room);
      if (entry && names.has(dmPartner(entry, me))) {
        renderDmPresence(link, entry);
      }
    }
  }

  /* A conversation by its people's display names (usernames where they have none). */
  function dmLabel(entry) {
    if (entry.kind !== "dm") {
      return roomLabel(entry, me);
    }
    const others = dmOthers(entry, me);
    return others.length ? others.map((name) => shownName(store.people.get(name), name)).join(", ") : entry.name;
  }

  function renderRoomLink(entry) {
    const link = roomLink(entry.slug);
    if (!link) {
      return;
    }
    const icon = link.querySelector(".room-hash");
    icon.replaceChildren();
    icon.classList.toggle("dm-icon", entry.kind === "dm");
    if (entry.kind === "dm") {
      const partner = dmPartner(entry, me);
      const person = partner ? store.people.get(partner) : null;
      if (person && person.avatar) {
        const img = document.createElement("img");
        img.src = person.avatar;
        img.alt = "";
        img.width = 18;
        img.height = 18;
        icon.appendChild(img);
      } else {
        icon.textContent = firstLetter(dmLabel(entry));
      }
      renderDmPresence(link, entry);
    } else if (entry.private) {
      icon.appendChild(el("span", "lock-icon"));
    } else {
      icon.textContent = "#";
    }
    link.querySelector(".room-name").textContent = dmLabel(entry);
    let privacy = link.querySelector(".room-private");
    if (entry.kind !== "dm" && entry.private) {
      if (!privacy) {
        privacy = el("span", "visually-hidden room-private", "(private)");
        link.querySelector(".room-name").after(privacy);
      }
    } else if (privacy) {
      privacy.remove();
    }
    renderCounts(entry);
  }

  function emptyNote(list) {
    return el("li", "room-empty", list === els.dmList ? "No conversations yet." : "You have not joined any channel yet.");
  }

  function insertRoomLink(entry) {
    const list = entry.kind === "dm" ? els.dmList : els.channelList;
    if (!list) {
      return;
    }
    const empty = list.querySelector(".room-empty");
    if (empty) {
      empty.remove();
    }
    const link = el("a", "room-link");
    link.href = roomUrl(entry.slug);
    link.dataset.room = entry.slug;
    link.dataset.kind = entry.kind;
    if (entry.slug === store.room) {
      link.classList.add("is-current");
      link.setAttribute("aria-current", "page");
    }
    const icon = el("span", "room-hash");
    icon.setAttribute("aria-hidden", "true");
    link.append(icon, el("span", "room-name"), el("span", "visually-hidden room-status"));
    const item = el("li", "room-item");
    item.appendChild(link);
    list.appendChild(item); // put in its place by sortList()
  }

  /* A list's rooms in name order (compareNames), rooms of the same name by slug. */
  function sortList(list) {
    if (!list) {
      return;
    }
    const items = Array.from(list.querySelectorAll("li.room-item"));
    sortByName(list, items, (item) => {
      const link = item.querySelector("a.room-link");
      const entry = store.rooms.get(link.dataset.room);
      return [entry ? roomLabel(entry, me) : link.querySelector(".room-name").textContent, link.dataset.room];
    });
  }

  /* A room added or changed in the store: shown, and (added or renamed) in its place. */
  function placeRoomLink({ entry, oldLabel }) {
    const link = roomLink(entry.slug);
    if (!link) {
      insertRoomLink(entry);
    }
    renderRoomLink(entry);
    if (!link || oldLabel !== roomLabel(entry, me)) {
      sortList(entry.kind === "dm" ? els.dmList : els.channelList);
    }
  }

  function removeRoomLink({ slug }) {
    const link = roomLink(slug);
    if (link) {
      const list = link.closest("ul");
      link.closest("li").remove();
      if (!list.querySelector("li.room-item")) {
        list.appendChild(emptyNote(list));
      }
    }
  }

  // --- the drawer (phones) ------------------------------------------------------------

  function setOpen(open, focusToggle) {
    if (!els.toggle) {
      return;
    }
    els.app.classList.toggle("sidebar-open", open);
    els.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (els.backdrop) {
      els.backdrop.hidden = !open;
    }
    if (open) {
      const target = els.sidebar.querySelector("a[aria-current='page']") || els.sidebar.querySelector("a");
      if (target) {
        target.focus();
      }
    } else if (focusToggle) {
      els.toggle.focus();
    }
  }

  function start() {
    sortList(els.channelList);
    sortList(els.dmList);
    if (els.dmList) {
      // The server renders the dots as not known yet, whoever it is: the socket will say.
      els.dmList.querySelectorAll("a.room-link").forEach((link) => {
        const entry = store.rooms.get(link.dataset.room);
        if (entry) {
          renderDmPresence(link, entry);
        }
      });
    }
    if (!els.toggle) {
      return;
    }
    els.toggle.addEventListener("click", () => {
      setOpen(!els.app.classList.contains("sidebar-open"), false);
    });
    if (els.backdrop) {
      els.backdrop.addEventListener("click", () => setOpen(false, true));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented) {
        return;
      }
      if (els.app.classList.contains("sidebar-open")) {
        setOpen(false, true);
      } else {
        ctx.room.escapeMemberPanel();
      }
    });
    const wide = window.matchMedia("(min-width: 700px)");
    if (wide.addEventListener) {
      wide.addEventListener("change", () => {
        if (wide.matches) {
          setOpen(false, false);
        }
      });
    }
  }

  store.on("counts", ({ entry }) => renderCounts(entry));
  store.on("room", placeRoomLink);
  store.on("room-removed", removeRoomLink);
  store.on("presence", ({ changed }) => renderPresence(changed));
  // A new name or picture shows in the conversations with that person.
  store.on("profile", ({ person }) => {
    store.rooms.forEach((entry) => {
      if (entry.kind === "dm" && dmOthers(entry, me).includes(person.username)) {
        renderRoomLink(entry);
      }
    });
  });

  return { start };
}
