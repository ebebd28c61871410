// @ts-check
// The user's settings (SPEC §6): time zone, reminder lead and, per kind of
// notification, which channels carry it. Also the one place the other views
// ask for the user's time zone.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { currentSubscription, disablePush, enablePush, pushSupported } from "./push.js";
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
  replace(root, el("section", { class: "card wide" }, el("h2", {}, "Settings"), pushSwitch(form), form));
}

/**
 * The "enable notifications" switch: subscribes this browser to web push (asking
 * permission first) or unsubscribes it. Turning it on when no kind goes by push
 * yet switches push on for every kind, so that something arrives.
 * @param {HTMLFormElement} form the settings form, whose Push column it may fill
 */
function pushSwitch(form) {
  const box = /** @type {HTMLInputElement} */ (
    el("input", { type: "checkbox", id: "push-enabled", name: "pushEnabled", disabled: true })
  );
  const status = el("span", { class: "muted", id: "push-status" });
  const row = el("div", { class: "row push-switch" }, el("label", {}, box, " Enable notifications in this browser"), status);
  if (!pushSupported()) {
    status.textContent = "This browser cannot receive push notifications here (it needs HTTPS or localhost).";
    return row;
  }
  currentSubscription()
    .then((subscription) => {
      box.checked = Boolean(subscription);
      box.disabled = false;
    })
    .catch(() => {
      box.disabled = false;
    });
  box.addEventListener("change", async () => {
    box.disabled = true;
    status.textContent = "";
    try {
      if (box.checked) {
        await enablePush();
        await pushEveryKindIfNone(form);
        toast("Notifications are on in this browser");
      } else {
        await disablePush();
        toast("Notifications are off in this browser");
      }
    } catch (error) {
      box.checked = !box.checked;
      status.textContent = error instanceof api.ApiError ? describe(error) : String(error?.message ?? error);
    } finally {
      box.disabled = false;
    }
  });
  return row;
}

/** @param {HTMLFormElement} form */
async function pushEveryKindIfNone(form) {
  const current = await userSettings();
  if (KINDS.some(([kind]) => current.notifications?.[kind]?.push)) return;
  /** @type {Record<string, {inApp: boolean, email: boolean, push: boolean}>} */
  const notifications = {};
  for (const [kind] of KINDS) {
    const channels = current.notifications?.[kind] ?? { inApp: true, email: true };
    notifications[kind] = { inApp: Boolean(channels.inApp), email: Boolean(channels.email), push: true };
    const box = /** @type {HTMLInputElement | null} */ (form.elements.namedItem(`${kind}.push`));
    if (box) box.checked = true;
  }
  loaded = Promise.resolve(await api.updateSettings({ notifications }));
}
