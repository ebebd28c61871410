// @ts-check
// Recording in the meeting view (SPEC §10): the "● Recording" indicator that
// everyone sees while the room is recorded and, for the host, the Start/Stop
// button and the list of recorded tracks with their downloads. The server's
// `recording` message decides what the indicator shows; the button only asks.

import * as api from "./api.js";
import { el, toast } from "./ui.js";

const KIND_TEXT = { audio: "Audio", video: "Video" };

/** `1 min 05 s` from milliseconds. @param {number} ms */
function duration(ms) {
  const seconds = Math.round(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  return minutes > 0 ? `${minutes} min ${rest} s` : `${seconds} s`;
}

/** `1.2 MB` from bytes. @param {number} bytes */
function size(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}

export class RecordingPanel {
  /**
   * @param {{roomId: string, isHost: boolean, active?: boolean, nameOf: (userId: string) => string}} options
   */
  constructor({ roomId, isHost, active = false, nameOf }) {
    this.roomId = roomId;
    this.isHost = isHost;
    this.nameOf = nameOf;
    this.active = false;
    this.busy = false;
    this.indicator = el(
      "span",
      { id: "recording-indicator", class: "badge recording", role: "status", title: "This meeting is being recorded", hidden: true },
      "● Recording",
    );
    /** For the host only, in the controls. */
    this.button = isHost
      ? el("button", { type: "button", id: "toggle-recording", onclick: () => this.toggle() }, "Start recording")
      : null;
    this.list = el("ul", { id: "recording-list", class: "recordings-list" });
    /** For the host only, in the sidebar. */
    this.section = isHost
      ? el(
          "section",
          { class: "recordings", id: "recordings" },
          el(
            "h3",
            {},
            "Recordings ",
            el("button", { type: "button", class: "small link", id: "refresh-recordings", onclick: () => this.refresh() }, "Refresh"),
          ),
          this.list,
        )
      : null;
    this.setActive(active);
  }

  /** What the server says: the room is recorded or not. @param {boolean} active */
  setActive(active) {
    const stopped = this.active && !active;
    this.active = active;
    this.indicator.hidden = !active;
    if (this.button) {
      this.button.textContent = active ? "Stop recording" : "Start recording";
      this.button.classList.toggle("on", active);
      this.button.setAttribute("aria-pressed", String(active));
    }
    // Files are listed once the media server closes them, shortly after a stop.
    if (stopped && this.isHost) setTimeout(() => this.refresh(), 1500);
  }

  async toggle() {
    if (this.busy || !this.button) return;
    this.busy = true;
    this.button.disabled = true;
    try {
      const room = this.active ? await api.stopRecording(this.roomId) : await api.startRecording(this.roomId);
      this.setActive(Boolean(room?.recording));
    } catch (error) {
      // 409: someone (another tab of the host) changed it meanwhile; the socket tells the truth.
      if (error.status !== 409) toast(error.message, "error");
    } finally {
      this.busy = false;
      this.button.disabled = false;
    }
  }

  /** Reads the host's list of recorded tracks again. */
  async refresh() {
    if (!this.isHost) return;
    try {
      const entries = await api.recordings(this.roomId);
      this.show(Array.isArray(entries) ? entries : []);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  /** @param {Array<{id: string, userId: string, kind: string, codec: string, startedAt: string, durationMs: number, bytes: number}>} entries */
  show(entries) {
    if (entries.length === 0) {
      this.list.replaceChildren(el("li", { class: "muted" }, "Nothing recorded yet."));
      return;
    }
    this.list.replaceChildren(
      ...entries.map((entry) => {
        const label = `${this.nameOf(entry.userId)} · ${KIND_TEXT[entry.kind] ?? entry.kind} · ${duration(entry.durationMs)} · ${size(entry.bytes)}`;
        return el(
          "li",
          { "data-recording-id": entry.id, "data-kind": entry.kind },
          el("span", { class: "recording-label" }, label),
          el("button", { type: "button", class: "small link", onclick: () => this.download(entry) }, "Download"),
        );
      }),
    );
  }

  /** Fetches the file with the access token and saves it through a Blob URL. */
  async download(entry) {
    try {
      const blob = await api.downloadRecording(this.roomId, entry.id);
      const url = URL.createObjectURL(blob);
      const extension = entry.codec === "opus" ? "ogg" : "webm";
      const link = el("a", { href: url, download: `${entry.kind}-${entry.id}.${extension}`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      toast(error.message, "error");
    }
  }
}
