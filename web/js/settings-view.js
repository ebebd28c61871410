// @ts-check
// The user's settings (SPEC §6): time zone, reminder lead and, per kind of
// notification, which channels carry it. Also the one place the other views
// ask for the user's time zone.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { busy, el, formError, replace, toast } from "./ui.js";

export const KINDS = [
  ["room_invitation", "Invitations to a meeting"],
  ["invitation_accepted", "Someone accepted my invitation"],
  ["invitation_declined", "Someone declined my invitation"],
  ["meeting_reminder", "Reminders before a meeting"],
  ["meeting_started", "A meeting I am invited to started"],
  ["meeting_rescheduled", "A meeting moved"],
  ["meeting_cancelled", "A meeting was cancelled"],
  ["contact_added", "Someone added me as a contact"],
  ["removed_from_room", "I was removed from a room"],
];
const CHANNELS = [
  ["inApp", "In the app"],
  ["email", "Email"],
  ["push", "Push"],
];

/** @type {Promise<any> | null} */
let loaded = null;

/** The signed-in user's settings, asked once per page (and again after a change or a failure). */
export function userSettings() {
  loaded ??= api.settings().catch((error) => {
    loaded = null;
    throw error;
  });
  return loaded;
}

/** The user's time zone; the browser's until the settings are known. @returns {Promise<string>} */
export async function userZone() {
  try {
    return (await userSettings()).timezone ?? "UTC";
  } catch {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }
}

/** Forgets the cached settings (after signing out). */
export function forgetSettings() {
  loaded = null;
}

/** Renders the settings page into `root`. */
export async function renderSettings(root) {
  replace(root, el("section", { class: "card wide" }, el("p", { class: "muted" }, "Loading…")));
  let current;
  try {
    current = await userSettings();
  } catch (error) {
    replace(root, el("section", { class: "card wide" }, el("p", { class: "form-error" }, describe(error))));
    return;
  }
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  if (!zones.includes("UTC")) zones.unshift("UTC");
  if (!zones.includes(current.timezone)) zones.unshift(current.timezone);
  const timezone = el(
    "select",
    { name: "timezone", id: "settings-timezone" },
    zones.map((zone) => el("option", { value: zone, selected: zone === current.timezone }, zone)),
  );
  const reminder = el("input", {
    name: "reminderMinutes",
    id: "settings-reminder",
    type: "number",
    min: 0,
    max: 1440,
    value: String(current.reminderMinutes),
    required: true,
  });
  const switches = el(
    "table",
    { class: "switches" },
    el("tr", {}, el("th", {}, "Notify me when"), CHANNELS.map(([, label]) => el("th", {}, label))),
    KINDS.map(([kind, label]) =>
      el(
        "tr",
        {},
        el("td", {}, label),
        CHANNELS.map(([channel, name]) =>
          el(
            "td",
            {},
            el("input", {
              type: "checkbox",
              name: `${kind}.${channel}`,
              "aria-label": `${label}: ${name}`,
              checked: Boolean(current.notifications?.[kind]?.[channel]),
            }),
          ),
        ),
      ),
    ),
  );
  const form = el(
    "form",
    { id: "settings-form" },
    el("label", {}, "Time zone", timezone),
    el("label", {}, "Remind me this many minutes before a meeting", reminder),
    switches,
    el("button", { type: "submit", class: "primary" }, "Save settings"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError(form, null);
    /** @type {Record<string, Record<string, boolean>>} */
    const notifications = {};
    for (const [kind] of KINDS) {
      notifications[kind] = {};
      for (const [channel] of CHANNELS) {
        const box = /** @type {HTMLInputElement} */ (form.elements.namedItem(`${kind}.${channel}`));
        notifications[kind][channel] = box.checked;
      }
    }
    await busy(form, async () => {
      try {
        const saved = await api.updateSettings({
          timezone: timezone.value,
          reminderMinutes: Number(reminder.value),
          notifications,
        });
        loaded = Promise.resolve(saved);
        toast("Settings saved");
      } catch (error) {
        formError(form, describe(error));
      }
    });
  });
  replace(root, el("section", { class: "card wide" }, el("h2", {}, "Settings"), form));
}
