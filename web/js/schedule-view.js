// @ts-check
// The calendar part of the lobby (SPEC §6): schedule a meeting and invite people
// (contacts or email addresses), my pending invitations with accept and decline,
// and my upcoming meetings. Times are shown and entered in the user's time zone.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { userZone } from "./settings-view.js";
import { formatInZone, nextQuarterHour, zonedToUtc } from "./time.js";
import { busy, el, fillList, formError, formValues, replace, toast } from "./ui.js";

/** The sections this module adds to the lobby. */
export function calendarSections({ user, openRoom }) {
  const upcoming = el("div", { id: "upcoming" }, el("p", { class: "muted" }, "Loading…"));
  const invitations = el("div", { id: "my-invitations" }, el("p", { class: "muted" }, "Loading…"));
  const refresh = () => {
    loadUpcoming(upcoming, user, openRoom);
    loadInvitations(invitations, refresh);
  };
  refresh();
  return [
    el("section", { class: "card" }, el("h2", {}, "Schedule a meeting"), scheduleForm(refresh)),
    el("section", { class: "card" }, el("h2", {}, "Invitations"), invitations),
    el("section", { class: "card wide" }, el("h2", {}, "Upcoming meetings"), upcoming),
  ];
}

function scheduleForm(refresh) {
  const date = el("input", { name: "date", type: "date", required: true });
  const time = el("input", { name: "time", type: "time", required: true });
  const zoneNote = el("span", { class: "muted" });
  userZone().then((zone) => {
    const next = nextQuarterHour(zone);
    date.value ||= next.date;
    time.value ||= next.time;
    zoneNote.textContent = `Times in ${zone}`;
  });
  const contactList = el("div", { id: "schedule-contacts", class: "checks" }, el("span", { class: "muted" }, "Loading contacts…"));
  api.contacts().then(
    (contacts) =>
      replace(
        contactList,
        contacts.length
          ? contacts.map((contact) =>
              el(
                "label",
                { class: "check" },
                el("input", { type: "checkbox", name: "invitee", value: contact.id }),
                [contact.firstName, contact.lastName].filter(Boolean).join(" ") || contact.email || contact.id,
              ),
            )
          : el("span", { class: "muted" }, "No contacts yet: invite by email below."),
      ),
    (error) => replace(contactList, el("span", { class: "form-error" }, describe(error))),
  );
  const form = el(
    "form",
    { id: "schedule-form" },
    el("label", {}, "Title", el("input", { name: "name", required: true, maxlength: 100, placeholder: "Planning" })),
    el(
      "div",
      { class: "row" },
      el("label", {}, "Date", date),
      el("label", {}, "Time", time),
      el("label", {}, "Minutes", el("input", { name: "durationMinutes", type: "number", min: 1, max: 1440, value: "30", required: true })),
    ),
    zoneNote,
    el("fieldset", {}, el("legend", {}, "Invite contacts"), contactList),
    el("label", {}, "Invite by email (comma-separated)", el("input", { name: "emails", id: "schedule-emails", placeholder: "ana@example.com" })),
    el("button", { type: "submit", class: "primary" }, "Schedule"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError(form, null);
    const values = formValues(form);
    const zone = await userZone();
    const start = zonedToUtc(values.date, values.time, zone);
    if (!start) return formError(form, "Pick a date and a time.");
    const userIds = [...form.querySelectorAll('input[name="invitee"]:checked')].map(
      (box) => /** @type {HTMLInputElement} */ (box).value,
    );
    const emails = (values.emails ?? "")
      .split(/[,;\s]+/)
      .map((email) => email.trim())
      .filter(Boolean);
    await busy(form, async () => {
      try {
        const room = await api.createRoom({
          name: values.name,
          maxUsers: Math.min(500, Math.max(10, userIds.length + emails.length + 1)),
          scheduledAt: start.toISOString(),
          durationMinutes: Number(values.durationMinutes),
        });
        if (userIds.length || emails.length) await api.invite(room.id, { userIds, emails });
        toast(`Scheduled for ${formatInZone(start, zone)}`);
        form.reset();
        refresh();
      } catch (error) {
        formError(form, describe(error));
      }
    });
  });
  return form;
}

async function loadInvitations(box, refresh) {
  const zone = await userZone();
  await fillList(box, api.myInvitations, {
    empty: "No pending invitations.",
    item: (invitation) => {
      const answer = (accept) => async () => {
        try {
          await (accept ? api.acceptInvitation(invitation.id) : api.declineInvitation(invitation.id));
          toast(accept ? `Accepted: ${invitation.roomName}` : `Declined: ${invitation.roomName}`);
          refresh();
        } catch (error) {
          toast(describe(error), "error");
        }
      };
      return el(
        "li",
        { "data-invitation-id": invitation.id },
        el(
          "div",
          { class: "room-info" },
          el("strong", {}, invitation.roomName),
          el("span", { class: "muted" }, [
            invitation.scheduledAt ? formatInZone(invitation.scheduledAt, zone) : "no time set",
            invitation.host?.name ? ` · from ${invitation.host.name}` : "",
          ]),
        ),
        el("button", { type: "button", class: "decline", onclick: answer(false) }, "Decline"),
        el("button", { type: "button", class: "primary accept", onclick: answer(true) }, "Accept"),
      );
    },
  });
}

async function loadUpcoming(box, user, openRoom) {
  const zone = await userZone();
  await fillList(box, api.upcomingRooms, {
    empty: "Nothing scheduled.",
    item: (room) =>
      el(
        "li",
        { "data-room-id": room.id },
        el(
          "div",
          { class: "room-info" },
          el("strong", {}, room.name),
          el("span", { class: "muted" }, [
            room.scheduledAt ? formatInZone(room.scheduledAt, zone) : "any time",
            room.durationMinutes ? ` · ${room.durationMinutes} min` : "",
            room.hostId === user.id ? " · you host" : "",
          ]),
        ),
        el("button", { type: "button", class: "primary", onclick: () => openRoom(room.id) }, "Join"),
      ),
  });
}
