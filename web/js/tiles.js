// @ts-check
// The video grid: one tile per participant (named, with their media state), and
// one more per shared screen.
//
// Remote tracks arrive on the one peer connection with the publisher's userId as
// their MediaStream id. A user's first video track is their camera; a second one
// is their screen. Audio plays through a separate <audio> element so that a tile
// without video still plays sound.

import { speakerChanges } from "./speakers.js";
import { el } from "./ui.js";

export class VideoGrid {
  constructor(root, selfId) {
    this.root = root;
    this.selfId = selfId;
    /** userId → {tile, video, audio, label, badges, screenTile, audioStream, videos: MediaStreamTrack[]} */
    this.users = new Map();
    /** Who the SFU last said speaks (their tiles have the class `speaking`). @type {Set<string>} */
    this.speaking = new Set();
    /** @type {((userId: string, height: number) => void) | null} told how high a remote camera is shown */
    this.onVideoSize = null;
  }

  /** The tile of `userId`, made on first use. */
  entry(userId) {
    let entry = this.users.get(userId);
    if (entry) return entry;
    const self = userId === this.selfId;
    const video = el("video", { autoplay: true, playsinline: true, muted: true });
    // The own tile never plays the own microphone back.
    const audio = self ? null : el("audio", { autoplay: true });
    const label = el("span", { class: "tile-name" });
    const badges = el("span", { class: "tile-badges" });
    const placeholder = el("div", { class: "tile-placeholder" }, el("span", { class: "initials" }));
    const tile = el(
      "figure",
      { class: `tile${self ? " self" : ""}${this.speaking.has(userId) ? " speaking" : ""} no-video`, "data-user-id": userId },
      video,
      placeholder,
      audio,
      el("figcaption", {}, label, badges),
    );
    entry = {
      tile,
      video,
      audio,
      label,
      badges,
      placeholder,
      screenTile: null,
      audioStream: null,
      videos: [],
      resizes: null,
      resizeTimer: 0,
      sentHeight: 0,
    };
    if (!self && typeof ResizeObserver !== "undefined") {
      const tileEntry = entry;
      entry.resizes = new ResizeObserver(() => this.videoResized(userId, tileEntry));
      entry.resizes.observe(video);
    }
    this.users.set(userId, entry);
    this.root.append(tile);
    this.relayout();
    return entry;
  }

  /** Highlights the tiles of `userIds` (the active speakers) and no others. */
  setSpeakers(userIds) {
    const { stopped, started, now } = speakerChanges(this.speaking, userIds);
    for (const userId of stopped) this.users.get(userId)?.tile.classList.remove("speaking");
    for (const userId of started) this.users.get(userId)?.tile.classList.add("speaking");
    this.speaking = now;
  }

  /** Name and media state of a participant (their tile is made if missing). */
  update(participant) {
    const entry = this.entry(participant.userId);
    const self = participant.userId === this.selfId;
    const name = participant.username || "Guest";
    entry.label.textContent = self ? `${name} (you)` : name;
    entry.tile.dataset.name = name;
    entry.placeholder.querySelector(".initials").textContent = initials(name);
    entry.tile.classList.toggle("audio-muted", Boolean(participant.audioMuted));
    entry.tile.dataset.audioMuted = String(Boolean(participant.audioMuted));
    entry.tile.dataset.videoOn = String(Boolean(participant.videoOn));
    const badges = [];
    if (participant.audioMuted) badges.push(participant.mutedByHost ? "muted by host" : "muted");
    if (!participant.videoOn) badges.push("camera off");
    if (participant.screenSharing) badges.push("sharing");
    entry.badges.replaceChildren(...badges.map((text) => el("span", { class: "badge" }, text)));
    this.showVideo(entry, participant.videoOn !== false);
    if (entry.screenTile) entry.screenTile.querySelector(".tile-name").textContent = `${name}: screen`;
  }

  showVideo(entry, on) {
    entry.videoWanted = on;
    const visible = on && entry.videos.length > 0;
    entry.tile.classList.toggle("no-video", !visible);
  }

  /** Own camera and microphone (the microphone is not played back). */
  setLocal(stream) {
    const entry = this.entry(this.selfId);
    entry.videos = stream.getVideoTracks();
    entry.video.srcObject = entry.videos.length ? new MediaStream([entry.videos[0]]) : null;
    this.showVideo(entry, entry.videoWanted ?? true);
  }

  /** Own screen preview while sharing; null removes it. */
  setLocalScreen(track) {
    this.setScreen(this.entry(this.selfId), track, this.selfId);
  }

  addRemoteTrack(userId, track) {
    const entry = this.entry(userId);
    if (track.kind === "audio") {
      entry.audioStream ??= new MediaStream();
      entry.audioStream.getAudioTracks().forEach((old) => entry.audioStream.removeTrack(old));
      entry.audioStream.addTrack(track);
      entry.audio.srcObject = entry.audioStream;
      entry.audio.play?.().catch(() => {}); // autoplay may need a click; the join click gives one
      return;
    }
    if (!entry.videos.includes(track)) entry.videos.push(track);
    this.renderVideos(userId, entry);
  }

  removeRemoteTrack(userId, track) {
    const entry = this.users.get(userId);
    if (!entry) return;
    if (track.kind === "audio") {
      entry.audioStream?.removeTrack(track);
      return;
    }
    entry.videos = entry.videos.filter((t) => t !== track);
    this.renderVideos(userId, entry);
  }

  renderVideos(userId, entry) {
    const [camera, screen] = entry.videos;
    const current = entry.video.srcObject?.getVideoTracks?.()[0];
    if (camera !== current) {
      entry.video.srcObject = camera ? new MediaStream([camera]) : null;
      // A new track is a new subscription at the SFU: tell it the size again.
      entry.sentHeight = 0;
      if (camera) this.videoResized(userId, entry);
    }
    this.showVideo(entry, entry.videoWanted ?? true);
    this.setScreen(entry, screen ?? null, userId);
  }

  /** Tells `onVideoSize`, once resizing settles, how high a remote camera is shown (device pixels). */
  videoResized(userId, entry) {
    clearTimeout(entry.resizeTimer);
    entry.resizeTimer = setTimeout(() => {
      const height = Math.round(entry.video.clientHeight * (globalThis.devicePixelRatio || 1));
      if (height > 0 && height !== entry.sentHeight && entry.videos.length > 0) {
        entry.sentHeight = height;
        this.onVideoSize?.(userId, height);
      }
    }, 300);
  }

  setScreen(entry, track, userId) {
    if (!track) {
      entry.screenTile?.remove();
      entry.screenTile = null;
      this.relayout();
      return;
    }
    if (!entry.screenTile) {
      const name = entry.tile.dataset.name ?? "";
      entry.screenTile = el(
        "figure",
        { class: "tile screen", "data-screen-of": userId },
        el("video", { autoplay: true, playsinline: true, muted: true }),
        el("figcaption", {}, el("span", { class: "tile-name" }, `${name}: screen`)),
      );
      this.root.prepend(entry.screenTile);
    }
    const video = entry.screenTile.querySelector("video");
    if (video.srcObject?.getVideoTracks()[0] !== track) video.srcObject = new MediaStream([track]);
    this.relayout();
  }

  /** Forgets every remote track (a new peer connection brings them again). */
  clearRemoteMedia() {
    for (const [userId, entry] of this.users) {
      if (userId === this.selfId) continue;
      entry.videos = [];
      entry.video.srcObject = null;
      if (entry.audio) entry.audio.srcObject = null;
      entry.audioStream = null;
      this.renderVideos(userId, entry);
    }
  }

  remove(userId) {
    const entry = this.users.get(userId);
    if (!entry || userId === this.selfId) return;
    entry.resizes?.disconnect();
    clearTimeout(entry.resizeTimer);
    entry.tile.remove();
    entry.screenTile?.remove();
    this.users.delete(userId);
    this.relayout();
  }

  /** Keeps only the tiles of `userIds` (and the own one). */
  retain(userIds) {
    for (const userId of [...this.users.keys()]) {
      if (!userIds.has(userId)) this.remove(userId);
    }
  }

  /** Column count from the tile count, so tiles stay as large as they can be. */
  relayout() {
    const count = this.root.children.length;
    const columns = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
    this.root.style.setProperty("--columns", String(columns));
  }

  stopLocal() {
    const entry = this.users.get(this.selfId);
    if (entry) entry.video.srcObject = null;
  }
}

function initials(name) {
  return name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
}
