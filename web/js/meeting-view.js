// @ts-check
// The meeting's DOM: the join screen, the meeting itself (video grid, controls,
// participants, chat) and the screen shown when it is over. What the buttons do
// is decided in meeting.js; this file only draws and forwards clicks.

import { ChatPanel } from "./chat.js";
import { RecordingPanel } from "./recording.js";
import { VideoGrid } from "./tiles.js";
import { copyText, el, replace, roomLink, submitForm, toast } from "./ui.js";

/** A room that cannot be entered (unknown, ended, no access). */
export function renderRoomProblem(root, text, onBack) {
  replace(
    root,
    el(
      "section",
      { class: "card notice-card", id: "room-problem" },
      el("h1", {}, "Cannot open this room"),
      el("p", { class: "message" }, text),
      el("button", { type: "button", class: "primary", onclick: onBack }, "Back to my rooms"),
    ),
  );
}

/**
 * Shown while a room is looked up, so that the previous page's buttons (another
 * room's join form) cannot be clicked in the meantime.
 */
export function renderRoomLoading(root) {
  replace(root, el("section", { class: "card notice-card", id: "room-loading" }, el("p", { class: "muted" }, "Opening the room…")));
}

/**
 * The screen before joining: the room's name and, when it has one and the caller
 * is not its host, the password. `onJoin(password)` throws an ApiError to show.
 */
export function renderPreJoin(root, { room, needsPassword, onJoin, onCancel }) {
  const form = el(
    "form",
    { id: "join-form" },
    needsPassword
      ? el("label", {}, "Room password", el("input", { name: "password", type: "password", required: true, autocomplete: "off" }))
      : null,
    el(
      "div",
      { class: "row actions" },
      el("button", { type: "button", onclick: onCancel }, "Cancel"),
      el("button", { type: "submit", class: "primary", id: "join-button" }, "Join meeting"),
    ),
  );
  submitForm(
    form,
    ({ password }) => onJoin(password || null),
    () => /** @type {HTMLInputElement | null} */ (form.querySelector("input[name=password]"))?.select(),
  );
  replace(
    root,
    el(
      "section",
      { class: "card prejoin" },
      el("h1", {}, room.name),
      room.description ? el("p", { class: "muted" }, room.description) : null,
      el("p", { class: "muted" }, `${room.participantCount} of ${room.maxUsers} people are in the room.`),
      el("p", { class: "hint" }, "Your camera and microphone are asked for when you join."),
      form,
    ),
  );
  form.querySelector("input, #join-button")?.focus();
}

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
};

export class MeetingView {
  /** `actions` is the Meeting: toggleMute, toggleCamera, toggleScreen, leave, end, sendChat… */
  constructor(root, { room, user, isHost, actions }) {
    this.actions = actions;
    this.isHost = isHost;
    this.selfId = user.id;
    /** The active speakers, for the participant list. @type {Set<string>} */
    this.speaking = new Set();
    this.status = el("span", { id: "connection-status", class: "status", "data-state": "connecting" }, "Connecting…");
    this.mediaStatus = el("span", { id: "media-status", class: "status", "data-state": "new" }, "Media: waiting");
    const gridRoot = el("div", { id: "video-grid", class: "grid" });
    this.people = el("ul", { id: "participant-list", class: "people" });
    this.peopleTitle = el("h3", {}, "People");
    const sidebar = el("aside", { class: "sidebar" }, el("section", { class: "participants" }, this.peopleTitle, this.people));

    this.buttons = {
      mute: el("button", { type: "button", id: "toggle-mute", onclick: () => actions.toggleMute() }, "Mute"),
      camera: el("button", { type: "button", id: "toggle-camera", onclick: () => actions.toggleCamera() }, "Stop video"),
      screen: el("button", { type: "button", id: "toggle-screen", onclick: () => actions.toggleScreen() }, "Share screen"),
      leave: el("button", { type: "button", id: "leave-button", class: "danger", onclick: () => actions.leave() }, "Leave"),
      end: isHost ? el("button", { type: "button", id: "end-button", class: "danger", onclick: () => actions.end() }, "End for all") : null,
    };
    if (!navigator.mediaDevices?.getDisplayMedia) this.buttons.screen.hidden = true;
    this.recording = new RecordingPanel({
      roomId: room.id,
      isHost,
      active: Boolean(room.recording),
      nameOf: (userId) => actions.nameOf?.(userId) ?? "Someone",
    });
    if (this.recording.section) sidebar.append(this.recording.section);

    this.overlay = el("div", { class: "overlay", id: "meeting-over", hidden: true });
    replace(
      root,
      el(
        "div",
        { class: "meeting", "data-room-id": room.id },
        el(
          "header",
          { class: "meeting-bar" },
          el("h1", { id: "room-name" }, room.name),
          isHost ? el("span", { class: "badge host" }, "host") : null,
          this.recording.indicator,
          el("button", { type: "button", class: "link", id: "copy-link", onclick: () => copyText(roomLink(room.id)) }, "Copy invite link"),
          el("span", { class: "spacer" }),
          this.mediaStatus,
          this.status,
        ),
        el("div", { class: "meeting-body" }, gridRoot, sidebar),
        el("footer", { class: "controls" }, Object.values(this.buttons), this.recording.button),
        this.overlay,
      ),
    );
    this.grid = new VideoGrid(gridRoot, user.id);
    this.chat = new ChatPanel(sidebar, {
      selfId: user.id,
      onSend: (text) => actions.sendChat(text),
      onLoadEarlier: (before) => actions.loadEarlier(before),
    });
  }

  setConnection(state, detail = {}) {
    this.status.dataset.state = state;
    let text = CONNECTION_TEXT[state] ?? state;
    if (state === "reconnecting" && detail.delay) text = `Reconnecting in ${Math.ceil(detail.delay / 1000)} s…`;
    this.status.textContent = text;
  }

  /** The peer connection's state (new, connecting, connected, disconnected, failed). */
  setMediaState(state) {
    this.mediaStatus.dataset.state = state;
    this.mediaStatus.textContent = state === "connected" ? "Media: connected" : `Media: ${state === "new" ? "waiting" : state}`;
  }

  setLocalControls({ muted, mutedByHost, cameraOn, sharing, hasAudio, hasVideo }) {
    const { mute, camera, screen } = this.buttons;
    // Muted by the host: only the host can let us unmute, so the button asks.
    mute.textContent = muted ? (mutedByHost ? "Ask to unmute" : "Unmute") : "Mute";
    mute.dataset.mutedByHost = String(Boolean(muted && mutedByHost));
    mute.classList.toggle("off", muted);
    mute.setAttribute("aria-pressed", String(muted));
    mute.disabled = !hasAudio;
    camera.textContent = cameraOn ? "Stop video" : "Start video";
    camera.classList.toggle("off", !cameraOn);
    camera.setAttribute("aria-pressed", String(!cameraOn));
    camera.disabled = !hasVideo;
    screen.textContent = sharing ? "Stop sharing" : "Share screen";
    screen.classList.toggle("on", sharing);
  }

  /** The participants panel: name, media state and, for the host, mute and remove. */
  setParticipants(list) {
    const sorted = [...list].sort((a, b) => {
      if (a.userId === this.selfId) return -1;
      if (b.userId === this.selfId) return 1;
      return (a.username || "").localeCompare(b.username || "");
    });
    this.peopleTitle.textContent = `People (${sorted.length})`;
    this.people.replaceChildren(...sorted.map((p) => this.personRow(p)));
  }

  /** Highlights who speaks: their tile and their row in the participant list. */
  setSpeakers(userIds) {
    this.grid.setSpeakers(userIds);
    this.speaking = new Set(userIds);
    for (const row of this.people.querySelectorAll("li[data-user-id]")) {
      if (row instanceof HTMLElement) row.classList.toggle("speaking", this.speaking.has(row.dataset.userId ?? ""));
    }
  }

  personRow(p) {
    const self = p.userId === this.selfId;
    const state = [
      p.audioMuted ? (p.mutedByHost ? "muted by host" : "muted") : "mic on",
      p.mutedByHost && p.unmuteRequested ? "asks to unmute" : null,
      p.videoOn ? "camera on" : "camera off",
      p.screenSharing ? "sharing screen" : null,
    ].filter(Boolean);
    const hostTools =
      this.isHost && !self
        ? el(
            "span",
            { class: "host-tools" },
            p.mutedByHost
              ? el("button", { type: "button", class: "small", "data-action": "allow-unmute", onclick: () => this.actions.allowUnmute(p.userId) }, "Allow unmute")
              : el("button", { type: "button", class: "small", "data-action": "mute", onclick: () => this.actions.muteParticipant(p.userId) }, "Mute"),
            el("button", { type: "button", class: "small danger", "data-action": "remove", onclick: () => this.actions.removeParticipant(p.userId) }, "Remove"),
          )
        : null;
    return el(
      "li",
      {
        class: this.speaking.has(p.userId) ? "speaking" : null,
        "data-user-id": p.userId,
        "data-audio-muted": String(Boolean(p.audioMuted)),
        "data-muted-by-host": String(Boolean(p.mutedByHost)),
        "data-unmute-requested": String(Boolean(p.mutedByHost && p.unmuteRequested)),
        "data-video-on": String(Boolean(p.videoOn)),
        "data-screen-sharing": String(Boolean(p.screenSharing)),
      },
      el("div", { class: "person" }, el("strong", { class: "person-name" }, p.username || "Guest", self ? " (you)" : ""), el("span", { class: "muted person-state" }, state.join(" · "))),
      hostTools,
    );
  }

  notice(text, kind = "info") {
    toast(text, kind);
  }

  /** The meeting is over for this user; `reason` is removed, ended or failed. */
  showEnded(reason, title, text, onBack) {
    for (const button of Object.values(this.buttons)) if (button) button.disabled = true;
    this.status.dataset.state = "closed";
    this.status.textContent = "Disconnected";
    this.overlay.dataset.reason = reason;
    replace(
      this.overlay,
      el(
        "div",
        { class: "card" },
        el("h2", {}, title),
        el("p", { class: "message" }, text),
        el("button", { type: "button", class: "primary", id: "back-to-lobby", onclick: onBack }, "Back to my rooms"),
      ),
    );
    this.overlay.hidden = false;
  }
}
