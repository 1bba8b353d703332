/*
 * People as the page knows them: the directory (GET /api/people/, kept up to
 * date by `profile` events) and what it shows of a person: the name to show,
 * a status until it ends, an avatar picture or initials.
 */

/* The name to show for `username`: the display name when there is one. */
export function shownName(person, username) {
  const name = person && typeof person.display_name === "string" ? person.display_name.trim() : "";
  return name || username;
}

/* A person's status while it lasts (`now` in milliseconds), else null. */
export function liveStatus(person, now) {
  const status = person && person.status;
  if (!status || typeof status !== "object") {
    return null;
  }
  if (status.expires) {
    const end = Date.parse(status.expires);
    if (!Number.isNaN(end) && end <= now) {
      return null;
    }
  }
  if (!status.text && !status.emoji) {
    return null;
  }
  return { text: status.text || "", emoji: status.emoji || "", expires: status.expires || null };
}

/* Everyone's public profile by username. */
export class Directory {
  constructor(people) {
    this.people = new Map();
    this.load(people || []);
  }

  /* Replace the directory with the server's list. */
  load(people) {
    this.people.clear();
    people.forEach((person) => this.put(person));
  }

  /* Keep one person (a `profile` event or a list entry); returns it, or null when malformed. */
  put(data) {
    if (!data || typeof data.username !== "string" || !data.username) {
      return null;
    }
    const person = {
      username: data.username,
      display_name: typeof data.display_name === "string" ? data.display_name : "",
      bot: data.bot === true,
      title: typeof data.title === "string" ? data.title : "",
      time_zone: typeof data.time_zone === "string" ? data.time_zone : "",
      status: data.status && typeof data.status === "object" ? data.status : null,
      dnd_until: typeof data.dnd_until === "string" ? data.dnd_until : null,
      // Only this server's avatar addresses ("//host/..." would be another site).
      avatar: typeof data.avatar === "string" && data.avatar.startsWith("/avatars/") ? data.avatar : null,
    };
    this.people.set(person.username, person);
    return person;
  }

  get(username) {
    return this.people.get(username) || null;
  }

  /* The person whose status ends next after `now`, and when (ms): {person, at}, or null. */
  nextExpiry(now) {
    let next = null;
    this.people.forEach((person) => {
      const at = person.status && person.status.expires ? Date.parse(person.status.expires) : NaN;
      if (at > now && (!next || at < next.at)) {
        next = { person, at };
      }
    });
    return next;
  }

  /* People whose username or display name starts a word with `prefix` (case-insensitive). */
  matching(prefix) {
    const p = prefix.toLowerCase();
    return Array.from(this.people.values()).filter((person) => {
      if (person.username.toLowerCase().startsWith(p)) {
        return true;
      }
      return person.display_name
        .toLowerCase()
        .split(/\s+/)
        .some((word) => word.startsWith(p));
    });
  }
}

/* The time of day in `timeZone` ("14:05"), or "" when it is not a zone this browser knows. */
export function localTime(timeZone, now) {
  if (!timeZone) {
    return "";
  }
  try {
    return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZone }).format(new Date(now));
  } catch {
    return "";
  }
}
