// @ts-check
// The signaling WebSocket (`/ws?roomId=&token=`), kept alive across drops; without
// a room it is the lobby socket (`/ws?token=`), which carries the user's
// notifications.
//
// A socket that closes for a reason that may pass (network, server restart,
// keep-alive timeout, an expired token) is reopened with exponential backoff and
// jitter. Closes that end the meeting for this user (removed, room ended, unknown
// room) are final and reported once.

import { CLOSE } from "./errors.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

/** Close codes after which reconnecting cannot help. */
const FINAL = new Set([
  CLOSE.REMOVED,
  CLOSE.ROOM_ENDED,
  CLOSE.LEFT,
  CLOSE.NOT_PARTICIPANT,
  CLOSE.UNKNOWN_ROOM,
  CLOSE.BAD_REQUEST,
  // Reconnecting would in turn replace the newer socket, and so on for ever.
  CLOSE.REPLACED,
]);

export class Signaling {
  /**
   * @param {object} options
   * @param {string | null} options.roomId null for the lobby socket
   * @param {(closeCode: number|null) => Promise<string>} options.prepare
   *   called before every (re)connect with the previous close code; answers the
   *   access token to use, and may rejoin the room first. Throwing stops retrying.
   * @param {(message: object) => void} options.onMessage
   * @param {(state: string, detail?: object) => void} options.onState
   *   "connecting", "open", "reconnecting" ({delay, code}), "closed" ({code, reason})
   */
  constructor({ roomId, prepare, onMessage, onState }) {
    this.roomId = roomId;
    this.prepare = prepare;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.admitted = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.onOnline = () => this.reconnectNow();
    window.addEventListener("online", this.onOnline);
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Opens the socket (first connect, or a reconnect after `code`). */
  async connect(code = null) {
    if (this.stopped) return;
    this.onState("connecting", { code });
    let token;
    try {
      token = await this.prepare(code);
    } catch (error) {
      // prepare() decides when retrying is pointless (room ended, signed out...).
      if (error?.final) return this.finish(code ?? 0, error.message, error);
      return this.scheduleReconnect(code);
    }
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token });
    if (this.roomId) query.set("roomId", this.roomId);
    const ws = new WebSocket(`${scheme}://${location.host}/ws?${query}`);
    this.ws = ws;
    ws.onopen = () => {
      // A room socket is admitted by its first message (the participants); the
      // lobby socket may stay quiet until there is news, so open is admitted.
      if (this.roomId || this.admitted) return;
      this.admitted = true;
      this.attempt = 0;
      this.onState("open");
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; ignore anything else
      }
      if (!this.admitted) {
        // Refusals arrive as a close after the upgrade, so "open" alone does not
        // mean admitted: the first message does. Only then reset the backoff.
        this.admitted = true;
        this.attempt = 0;
        this.onState("open");
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return; // an old socket we already replaced
      this.ws = null;
      this.admitted = false;
      if (this.stopped) return;
      if (FINAL.has(event.code)) return this.finish(event.code, event.reason);
      this.scheduleReconnect(event.code);
    };
    // onerror is always followed by onclose, which does the work.
    ws.onerror = () => {};
  }

  scheduleReconnect(code) {
    if (this.stopped || this.timer) return;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    // Jitter spreads out a whole room reconnecting after a server restart.
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.onState("reconnecting", { delay, code });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect(code);
    }, delay);
  }

  /** The browser says the network is back: do not wait for the backoff. */
  reconnectNow() {
    if (this.stopped || this.ws || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect(null);
  }

  finish(code, reason, error = null) {
    this.stop();
    this.onState("closed", { code, reason, error });
  }

  /** Sends `{type, payload}`; false when the socket is not open (the caller tells the user). */
  send(type, payload = {}) {
    if (!this.open || !this.ws) return false;
    this.ws.send(JSON.stringify({ type, payload }));
    return true;
  }

  /** For tests and for the "network dropped" path: close as if the network failed. */
  drop() {
    this.ws?.close(4000, "dropped by the client");
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    window.removeEventListener("online", this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "left");
  }
}
