// @ts-check
// The lobby: create a room, schedule one (schedule-view.js), the rooms I host or
// am in, and past meetings.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { calendarSections } from "./schedule-view.js";
import { copyText, el, fillList, formError, formValues, formatDate, replace, roomLink, submitForm } from "./ui.js";

const HISTORY_PAGE = 10;

/** Renders the lobby into `root`; `openRoom(id)` goes to a room's page. */
export function renderLobby(root, { user, openRoom }) {
  const active = el("div", { id: "my-rooms" }, el("p", { class: "muted" }, "Loading…"));
  const history = el("div", { id: "room-history" }, el("p", { class: "muted" }, "Loading…"));
  replace(
    root,
    el(
      "div",
      { class: "lobby" },
      el("section", { class: "card" }, el("h2", {}, "New meeting"), createForm(openRoom)),
      el("section", { class: "card" }, el("h2", {}, "Join by link"), joinForm(openRoom)),
      calendarSections({ user, openRoom }),
      el("section", { class: "card wide" }, el("h2", {}, "My rooms"), active),
      el("section", { class: "card wide" }, el("h2", {}, "Past meetings"), history),
    ),
  );
  loadActive(active, user, openRoom);
  loadHistory(history, user, 1);
}

function createForm(openRoom) {
  // Its upper bound is the server's (`api.roomLimits`); until it is known the
  // server's own check is the only one.
  const maxUsers = el("input", { name: "maxUsers", type: "number", min: 1, value: "10", required: true });
  api.roomLimits().then(
    (limits) => maxUsers.setAttribute("max", String(limits.maxUsers)),
    () => {},
  );
  const form = el(
    "form",
    { id: "create-room-form" },
    el("label", {}, "Name", el("input", { name: "name", required: true, maxlength: 100, placeholder: "Weekly standup" })),
    el("label", {}, "Description (optional)", el("input", { name: "description", maxlength: 1000 })),
    el(
      "div",
      { class: "row" },
      el("label", {}, "Password (optional)", el("input", { name: "password", type: "password", minlength: 4, maxlength: 128, autocomplete: "new-password" })),
      el("label", {}, "Max people", maxUsers),
    ),
    el("button", { type: "submit", class: "primary" }, "Create room"),
  );
  submitForm(form, async (values) => {
    const room = await api.createRoom({ ...values, maxUsers: Number(values.maxUsers) });
    // The room's password was just typed by its host, who never needs it.
    openRoom(room.id);
  });
  return form;
}

/** Accepts a full link (…/#/rooms/<id>, …?room=<id>) or a bare room id. */
export function roomIdFrom(text) {
  const match = String(text).match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i);
  return match ? match[0].toLowerCase() : null;
}

function joinForm(openRoom) {
  const form = el(
    "form",
    { id: "join-link-form" },
    el("label", {}, "Room link or id", el("input", { name: "link", required: true, placeholder: roomLink("…") })),
    el("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = roomIdFrom(formValues(form).link);
    if (id) openRoom(id);
    else formError(form, "That is not a room link.");
  });
  return form;
}

async function loadActive(box, user, openRoom) {
  await fillList(box, api.listRooms, {
    empty: "No open rooms. Create one above.",
    item: (room) =>
      el(
        "li",
        { "data-room-id": room.id },
        el(
          "div",
          { class: "room-info" },
          el("strong", {}, room.name),
          el(
            "span",
            { class: "muted" },
            `${room.participantCount}/${room.maxUsers} in the room`,
            room.hostId === user.id ? " · you host" : "",
            room.hasPassword ? " · password" : "",
          ),
        ),
        el("button", { type: "button", onclick: () => copyText(roomLink(room.id)) }, "Copy link"),
        el("button", { type: "button", class: "primary", onclick: () => openRoom(room.id) }, "Join"),
      ),
  });
}

async function loadHistory(box, user, page) {
  try {
    const answer = await api.roomHistory(page, HISTORY_PAGE);
    const rooms = answer.data ?? [];
    const total = answer.pagination?.total ?? rooms.length;
    if (rooms.length === 0) {
      replace(box, el("p", { class: "muted" }, "No past meetings yet."));
      return;
    }
    const pages = Math.max(1, Math.ceil(total / HISTORY_PAGE));
    replace(
      box,
      el(
        "ul",
        { class: "rooms history" },
        rooms.map((room) =>
          el(
            "li",
            {},
            el(
              "div",
              { class: "room-info" },
              el("strong", {}, room.name),
              el("span", { class: "muted" }, `ended ${formatDate(room.endedAt)}`, room.hostId === user.id ? " · you hosted" : ""),
            ),
          ),
        ),
      ),
      pages > 1
        ? el(
            "div",
            { class: "pager" },
            el("button", { type: "button", disabled: page <= 1, onclick: () => loadHistory(box, user, page - 1) }, "Newer"),
            el("span", { class: "muted" }, `page ${page} of ${pages}`),
            el("button", { type: "button", disabled: page >= pages, onclick: () => loadHistory(box, user, page + 1) }, "Older"),
          )
        : null,
    );
  } catch (error) {
    replace(box, el("p", { class: "form-error" }, describe(error)));
  }
}
