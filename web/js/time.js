// @ts-check
// Times in the user's own time zone (their settings' `timezone`, an IANA name),
// whatever zone the browser runs in. Pure: unit-tested in e2e/unit/time.test.mjs.

/**
 * The offset of `zone` from UTC at the instant `utcMillis`, in milliseconds
 * (positive east of Greenwich).
 * @param {number} utcMillis @param {string} zone
 */
export function zoneOffset(utcMillis, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(utcMillis));
  /** @type {Record<string, number>} */
  const field = {};
  for (const part of parts) if (part.type !== "literal") field[part.type] = Number(part.value);
  const asUtc = Date.UTC(field.year, field.month - 1, field.day, field.hour, field.minute, field.second);
  return asUtc - Math.floor(utcMillis / 1000) * 1000;
}

/**
 * The instant a wall-clock date and time in `zone` names: `"2026-03-29"`,
 * `"09:30"`, `"Europe/Berlin"` → a Date. A time skipped by a daylight-saving
 * change moves forward by the change, as calendars do.
 * @param {string} date YYYY-MM-DD @param {string} time HH:MM @param {string} zone
 * @returns {Date | null} null when the date or time does not parse
 */
export function zonedToUtc(date, time, zone) {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const t = /^(\d{2}):(\d{2})$/.exec(time);
  if (!d || !t) return null;
  const [year, month, day, hour, minute] = [d[1], d[2], d[3], t[1], t[2]].map(Number);
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  // Date.UTC rolls 31 February over into March; a form should not.
  const check = new Date(wall);
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 || minute > 59) return null;
  // The offset at the wall time read as UTC is close; a second look at the
  // instant found settles the hours around a daylight-saving change.
  const first = wall - zoneOffset(wall, zone);
  return new Date(wall - zoneOffset(first, zone));
}

/**
 * A moment as the user reads it in `zone`, e.g. "27 Nov 2026, 09:30".
 * @param {string | number | Date} when @param {string} zone @param {string} [locale]
 */
export function formatInZone(when, zone, locale = "en") {
  const date = new Date(when);
  if (Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(locale, { timeZone: zone, dateStyle: "medium", timeStyle: "short" }).format(date);
}

/**
 * Today's date and the next whole quarter hour in `zone`, for a form's defaults.
 * @param {string} zone @param {number} [now]
 * @returns {{date: string, time: string}}
 */
export function nextQuarterHour(zone, now = Date.now()) {
  const quarter = 15 * 60 * 1000;
  const next = Math.ceil((now + 60 * 1000) / quarter) * quarter;
  const wall = new Date(next + zoneOffset(next, zone));
  const pad = (n) => String(n).padStart(2, "0");
  return {
    date: `${wall.getUTCFullYear()}-${pad(wall.getUTCMonth() + 1)}-${pad(wall.getUTCDate())}`,
    time: `${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}`,
  };
}
