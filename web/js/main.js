// @ts-check
// Entry point: the routes of the single page and the header.
//
//   #/                 the lobby (my rooms, schedule, invitations, upcoming, history)
//   #/settings         time zone, reminder lead, notification switches
//   #/rooms/<roomId>   a room's join screen, then the meeting
//   /?room=<roomId>    the same, as a plain link (rewritten to the hash form)
//
// Everything needs a session; without one the sign-in form shows, and the page
// asked for opens once signed in.

import * as api from "./api.js";
import { renderAuth } from "./auth-view.js";
import { Bell } from "./bell.js";
import { describe } from "./errors.js";
import { renderLobby } from "./lobby-view.js";
import { Meeting, displayName } from "./meeting.js";
import { disablePush } from "./push.js";
import { forgetSettings, renderSettings } from "./settings-view.js";
import { el, replace, toast } from "./ui.js";

// Both are in index.html, which loads this module.
const root = /** @type {HTMLElement} */ (document.getElementById("app"));
const userBox = /** @type {HTMLElement} */ (document.getElementById("user-box"));
let meeting = null;
/** The header's bell, with its lobby socket: one per signed-in tab. @type {Bell | null} */
let bell = null;
const bellBox = document.createElement("span");

// For the end-to-end test and for debugging from the console.
/** @type {any} */ (window).rapat = {
  get meeting() {
    return meeting;
  },
  /** The current RTCPeerConnection to the SFU, or null. */
  get pc() {
    return meeting?.peer?.pc ?? null;
  },
  /** Simulates a network drop of the signaling socket. */
  dropSocket() {
    meeting?.signaling?.drop();
  },
};

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function roomFromLocation() {
  const match = location.hash.match(/^#\/rooms\/([0-9a-fA-F-]{36})$/);
  return match ? match[1].toLowerCase() : null;
}

function renderHeader(session) {
  if (!session) {
    bell?.stop();
    bell = null;
    forgetSettings();
    return replace(userBox);
  }
  bell ??= new Bell(bellBox, (id) => go(`#/rooms/${id}`));
  replace(
    userBox,
    bellBox,
    el("a", { href: "#/settings", id: "settings-link" }, "Settings"),
    el("span", { id: "signed-in-as" }, displayName(session.user)),
    el(
      "button",
      {
        type: "button",
        class: "link",
        id: "sign-out",
        onclick: async () => {
          if (meeting?.view && !meeting.finished) await meeting.leave({ navigate: false });
          // This browser stops receiving the user's notifications: the next
          // person to sign in here must not see them.
          await disablePush().catch(() => {});
          api.logout().catch(() => {});
        },
      },
      "Sign out",
    ),
  );
}

function route() {
  // Leaving a meeting's page by navigation (back button, link) leaves the room.
  if (meeting?.view && !meeting.finished) meeting.leave({ navigate: false });
  else meeting?.teardown();
  meeting = null;

  const session = api.currentSession();
  renderHeader(session);
  if (!session) {
    const roomId = roomFromLocation();
    renderAuth(root, {
      note: roomId ? "Sign in to join the meeting." : null,
      onSignedIn: () => route(),
    });
    return;
  }
  const roomId = roomFromLocation();
  if (location.hash === "#/settings") {
    renderSettings(root);
  } else if (roomId) {
    meeting = new Meeting({ root, roomId, user: session.user, onExit: () => go("#/") });
    meeting.open();
  } else {
    renderLobby(root, { user: session.user, openRoom: (id) => go(`#/rooms/${id}`) });
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("rapat:signed-out", (event) => {
  const reason = /** @type {CustomEvent<{reason: string | null}>} */ (event).detail?.reason;
  if (reason && reason !== "logout") toast(describe({ code: reason }), "error");
  if (meeting) meeting.teardown();
  meeting = null;
  route();
});

// `/?room=<id>` links become `/#/rooms/<id>`, so that there is one form to route.
const linked = new URLSearchParams(location.search).get("room");
if (linked) {
  history.replaceState(null, "", `/#/rooms/${encodeURIComponent(linked)}`);
}
route();
