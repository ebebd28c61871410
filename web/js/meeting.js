// @ts-check
// One meeting, from the join button to leaving: the REST calls, the signaling
// socket, local media and the peer connection to the SFU. The DOM is the view's
// (meeting-view.js); this file decides what happens.

import * as api from "./api.js";
import { CLOSE, describe, describeMediaError } from "./errors.js";
import { PeerLink, openLocalMedia, openScreen, simulcastEnabled } from "./media.js";
import { MeetingView, renderPreJoin, renderRoomLoading, renderRoomProblem } from "./meeting-view.js";
import { Roster } from "./roster.js";
import { Signaling } from "./signaling.js";
import { speakingUsers } from "./speakers.js";

/**
 * An error that makes reconnecting pointless (see Signaling's prepare).
 * @param {string} message
 */
function final(message) {
  /** @type {Error & {final?: boolean}} */
  const error = new Error(message);
  error.final = true;
  return error;
}

export class Meeting {
  constructor({ root, roomId, user, onExit }) {
    this.root = root;
    this.roomId = roomId;
    this.user = user;
    this.onExit = onExit;
    this.room = null;
    this.isHost = false;
    /** Who is in the room and their media state (see roster.js). */
    this.roster = new Roster(user.id);
    /** @type {{stream: MediaStream, audio: MediaStreamTrack | null, video: MediaStreamTrack | null, screen: MediaStreamTrack | null, screenStream: MediaStream | null}} */
    this.local = { stream: new MediaStream(), audio: null, video: null, screen: null, screenStream: null };
    this.state = { muted: false, cameraOn: true, sharing: false };
    /** @type {PeerLink | null} */
    this.peer = null;
    /** @type {RTCRtpSender | null} */
    this.screenSender = null;
    /** Signaling messages that came before the peer connection: handed to it once made. */
    this.pendingSignals = [];
    /** The ICE servers of the last `config`, for a peer connection made again. */
    this.iceServers = undefined;
    /** @type {Signaling | null} */
    this.signaling = null;
    /** @type {MeetingView | null} */
    this.view = null;
    this.finished = false;
    this.leaving = false;
    this.connectedOnce = false;
  }

  /** The view, which join() makes before any message or action can reach us. */
  get shown() {
    if (!this.view) throw new Error("the meeting is not shown yet");
    return this.view;
  }

  // ------------------------------------------------------------ entering

  /** Looks the room up and shows the join screen (with a password field if needed). */
  async open() {
    renderRoomLoading(this.root);
    try {
      this.room = await api.getRoom(this.roomId);
    } catch (error) {
      if (!this.finished) renderRoomProblem(this.root, describe(error), this.onExit);
      return;
    }
    if (this.finished) return; // the user went elsewhere meanwhile
    if (this.room.status === "ended") return renderRoomProblem(this.root, describe({ code: "room_ended" }), this.onExit);
    this.isHost = this.room.hostId === this.user.id;
    renderPreJoin(this.root, {
      room: this.room,
      needsPassword: this.room.hasPassword && !this.isHost,
      onJoin: (password) => this.join(password),
      onCancel: this.onExit,
    });
  }

  /** Joins through REST, then media, chat history and the socket. Throws ApiError for the join form. */
  async join(password) {
    await api.joinRoom(this.roomId, password);
    if (this.finished) {
      api.leaveRoom(this.roomId).catch(() => {}); // the user went elsewhere while joining
      return;
    }
    this.view = new MeetingView(this.root, {
      room: this.room,
      user: this.user,
      isHost: this.isHost,
      actions: this,
    });
    window.addEventListener("pagehide", this.onPageHide);

    const { stream, error } = await openLocalMedia();
    if (this.finished) return stream.getTracks().forEach((track) => track.stop());
    if (error) this.shown.notice(describeMediaError(error), "error");
    this.local.stream = stream;
    this.local.audio = stream.getAudioTracks()[0] ?? null;
    this.local.video = stream.getVideoTracks()[0] ?? null;
    this.state.cameraOn = Boolean(this.local.video);
    this.shown.grid.setLocal(stream);
    // How high each remote camera is shown: the SFU picks the simulcast layer.
    this.shown.grid.onVideoSize = (userId, height) =>
      this.signaling?.send("video_constraints", { publisherId: userId, maxHeight: Math.min(height, 65535) });
    this.shown.setLocalControls(this.controls());
    this.upsert({ userId: this.user.id, username: displayName(this.user), videoOn: this.state.cameraOn });

    this.refreshParticipants();
    this.loadChat();
    this.signaling = new Signaling({
      roomId: this.roomId,
      prepare: (code) => this.prepareConnection(code),
      onMessage: (message) => this.onMessage(message),
      onState: (state, detail) => this.onConnectionState(state, detail),
    });
    this.signaling.connect();
  }

  /** Before each (re)connect: a fresh token, and the room still there for us. */
  async prepareConnection(code) {
    if (code === null) return api.freshToken();
    try {
      // Also refreshes an expired token (the 4401 case) through the 401 path.
      const room = await api.getRoom(this.roomId);
      if (room.status === "ended") throw final(describe({ code: "room_ended" }));
      return await api.freshToken();
    } catch (error) {
      // Network trouble and 5xx pass; a refusal (room gone or ended, signed out,
      // wrong password now) will not.
      if (error.final || (error.status >= 400 && error.status < 500)) throw final(describe(error));
      throw error;
    }
  }

  // ------------------------------------------------------------ signaling

  onConnectionState(state, detail = {}) {
    if (this.leaving) return;
    if (state === "closed") {
      if (detail.code === CLOSE.REMOVED) return this.finish("removed");
      if (detail.code === CLOSE.ROOM_ENDED) return this.finish("ended");
      if (detail.code === CLOSE.LEFT) return this.finish("left");
      // Not joining again by ourselves: the host may have removed us while we
      // were away, and that must stick.
      if (detail.code === CLOSE.NOT_PARTICIPANT) return this.finish("failed", describe({ code: "not_participant" }));
      if (detail.code === CLOSE.REPLACED) return this.finish("failed", describe({ code: "replaced" }));
      return this.finish("failed", detail.reason || describe(detail.error));
    }
    if (state === "reconnecting" && this.peer) {
      // The SFU drops our peer connection with the socket; a new one comes with
      // the next `config`. Until then nobody's media can flow.
      this.closePeer();
    }
    this.view?.setConnection(state, detail);
  }

  onMessage(message) {
    const { type, payload = {}, userId } = message;
    switch (type) {
      case "config":
        this.iceServers = payload.iceServers;
        return this.startPeer(payload.iceServers);
      case "participants":
        return this.onParticipants(payload.participants ?? []);
      case "user_joined":
        return this.onJoined(userId, message.username);
      case "user_left":
        return this.onLeft(userId, message.username, Boolean(payload.removedBy));
      case "chat":
        // The server echoes our own messages too, once stored (payload.id).
        return this.shown.chat.add([
          { id: payload.id, userId, username: message.username, message: payload.message, timestamp: message.timestamp },
        ]);
      case "mute":
        // A host's mute holds until the host allows unmuting (unmute_allowed), so
        // a mute of our own meanwhile does not make it ours.
        return this.onMediaState(userId, {
          audioMuted: Boolean(payload.muted),
          mutedByHost: payload.byHost ? true : payload.muted ? undefined : false,
        });
      case "unmute_requested":
        return this.onUnmuteRequested(userId, message.username);
      case "unmute_allowed":
        return this.onUnmuteAllowed(userId);
      case "video":
        return this.onMediaState(userId, { videoOn: Boolean(payload.on) });
      case "screen_share":
        return this.onMediaState(userId, { screenSharing: Boolean(payload.sharing) });
      case "recording":
        return this.shown.recording.setActive(Boolean(payload.active));
      case "publisher_layers":
        return this.peer?.setActiveLayers(payload);
      case "offer":
      case "answer":
      case "ice-candidate":
        // Messages with a targetUserId are peer-to-peer relays, which this client
        // does not use: everything goes through the SFU.
        if (message.targetUserId) return;
        if (this.peer) return this.peer.handle(message);
        this.pendingSignals.push(message);
        return;
      case "active_speakers":
        return this.shown.setSpeakers(speakingUsers(payload));
      case "removed":
        return this.finish("removed");
      case "room_ended":
        return this.finish("ended");
      case "error":
        // The SFU closed our peer connection because it failed (its DTLS
        // handshake never finished, or ICE failed) and forgot it: a new one on
        // this socket gets a new peer. Nothing for the person to do.
        if (payload.code === "peer_failed") return this.restartPeer();
        return this.shown.notice(describe(payload), "error");
      default:
        return; // newer server, older client: ignore what we do not know
    }
  }

  // Who is in the room: roster.js decides, from the socket's messages; here the
  // view is told and the REST list asked when a name is missing.

  onJoined(userId, username) {
    if (!userId) return;
    if (this.roster.joined(userId, username)) this.shown.chat.system(`${username || "Someone"} joined`);
    if (!username) this.refreshParticipants();
    this.render();
  }

  onLeft(userId, username, removed) {
    if (!userId || userId === this.user.id) return;
    const name = this.roster.left(userId, username);
    if (name !== null) this.shown.chat.system(removed ? `${name} was removed by the host` : `${name} left`);
    this.shown.grid.remove(userId);
    this.render();
  }

  /** A participant's name for the recordings list (recording.js). @param {string} userId */
  nameOf(userId) {
    return userId === this.user.id ? "You" : this.roster.nameOf(userId, "") || "Someone";
  }

  onParticipants(list) {
    const { present, me } = this.roster.snapshot(list);
    this.shown.grid.retain(present);
    if (me) this.reconcileOwnState(me);
    if (this.connectedOnce) this.loadChat(); // fill what we missed while away
    this.connectedOnce = true;
    this.render();
  }

  /**
   * The server's record of our media state against what we actually do (it
   * starts with the camera off; we may have toggled while disconnected). A mute
   * by the host wins over our own memory.
   */
  reconcileOwnState(me) {
    if (me.mutedByHost && !this.state.muted) this.applyMute(true, true);
    if (me.audioMuted !== this.state.muted) this.signaling?.send("mute", { muted: this.state.muted });
    if (me.videoOn !== this.state.cameraOn) this.signaling?.send("video", { on: this.state.cameraOn });
    if (me.screenSharing !== this.state.sharing) this.signaling?.send("screen_share", { sharing: this.state.sharing });
    this.upsert({ userId: this.user.id, audioMuted: this.state.muted, videoOn: this.state.cameraOn, screenSharing: this.state.sharing });
    this.shown.setLocalControls(this.controls());
  }

  onMediaState(userId, change) {
    if (!userId || this.roster.isGone(userId)) return;
    if (userId === this.user.id && change.audioMuted !== undefined && change.mutedByHost && !this.state.muted) {
      this.applyMute(true, true);
    }
    this.roster.mediaState(userId, change);
    if (userId === this.user.id) this.shown.setLocalControls(this.controls());
    this.render();
  }

  /** (Host) a participant we muted asks to unmute. */
  onUnmuteRequested(userId, username) {
    if (!this.roster.unmuteRequested(userId)) return;
    const name = this.roster.nameOf(userId, username);
    this.shown.notice(`${name} asks to unmute. Use "Allow unmute" in the people list.`, "info");
    this.render();
  }

  /** The host lifted a mute; the microphone stays off until its owner turns it on. */
  onUnmuteAllowed(userId) {
    this.onMediaState(userId, { mutedByHost: false });
    if (userId === this.user.id) this.shown.notice("The host allowed you to unmute.", "info");
  }

  get mutedByHost() {
    return this.roster.selfMutedByHost;
  }

  // ------------------------------------------------------------ media

  startPeer(iceServers) {
    this.closePeer();
    this.peer = new PeerLink({
      iceServers,
      send: (type, payload) => this.signaling?.send(type, payload),
      onTrack: (event) => this.onTrack(event),
      onState: (state) => {
        this.shown.setMediaState(state);
        // The SFU closes a peer connection whose ICE or DTLS failed, so an ICE
        // restart has nothing to restart: start over on a new socket, which
        // brings a new peer connection (as after a dropped socket).
        if (state === "failed") this.signaling?.drop();
      },
    });
    for (const track of this.local.stream.getTracks()) {
      this.peer.publish(track, this.local.stream, { simulcast: simulcastEnabled() });
    }
    if (this.local.screen) this.screenSender = this.peer.publish(this.local.screen, this.local.screenStream);
    if (this.local.stream.getTracks().length === 0 && !this.local.screen) this.peer.listenOnly();
    const early = this.pendingSignals.splice(0);
    for (const message of early) this.peer.handle(message);
  }

  /** A new peer connection on the same socket, with the servers of the last `config`. */
  restartPeer() {
    if (!this.peer) return;
    console.info("rapat: the media server closed our failed peer connection; making a new one");
    this.startPeer(this.iceServers);
  }

  closePeer() {
    if (!this.peer) return;
    this.peer.close();
    this.peer = null;
    this.screenSender = null;
    this.view?.grid.clearRemoteMedia();
    this.view?.setMediaState("new");
  }

  onTrack(event) {
    // The SFU names each forwarded stream after its publisher (SPEC §4).
    const userId = event.streams[0]?.id;
    if (!userId || userId === this.user.id || this.roster.isGone(userId)) return;
    const { track } = event;
    const grid = this.shown.grid;
    grid.addRemoteTrack(userId, track);
    if (!this.roster.has(userId)) this.refreshParticipants(); // tracks may beat user_joined
    track.addEventListener("ended", () => grid.removeRemoteTrack(userId, track));
    event.streams[0].addEventListener("removetrack", (e) => grid.removeRemoteTrack(userId, e.track));
    this.render();
  }

  toggleMute() {
    if (!this.local.audio) return this.shown.notice("There is no microphone to unmute.", "error");
    if (this.state.muted && this.mutedByHost) {
      // The server would refuse to unmute us: ask the host instead.
      if (this.signaling?.send("request_unmute")) this.shown.notice("The host has been asked to let you unmute.", "info");
      return;
    }
    this.applyMute(!this.state.muted, false);
    this.signaling?.send("mute", { muted: this.state.muted });
  }

  applyMute(muted, byHost) {
    this.state.muted = muted;
    if (this.local.audio) this.local.audio.enabled = !muted;
    // Our own mute leaves a host's mute as it is (only the host lifts it).
    this.upsert({ userId: this.user.id, audioMuted: muted, mutedByHost: byHost && muted ? true : muted ? undefined : false });
    if (byHost) this.shown.notice("The host muted your microphone.", "info");
    this.shown.setLocalControls(this.controls());
    this.render();
  }

  toggleCamera() {
    if (!this.local.video) return this.shown.notice("There is no camera to turn on.", "error");
    this.state.cameraOn = !this.state.cameraOn;
    // A disabled track keeps its place in the connection (no renegotiation) and
    // sends black frames; the camera light goes off.
    this.local.video.enabled = this.state.cameraOn;
    this.signaling?.send("video", { on: this.state.cameraOn });
    this.upsert({ userId: this.user.id, videoOn: this.state.cameraOn });
    this.shown.setLocalControls(this.controls());
    this.render();
  }

  async toggleScreen() {
    if (this.state.sharing) return this.stopScreen();
    let track;
    try {
      track = await openScreen();
    } catch (error) {
      // Cancelling the browser's picker is a NotAllowedError too: say little.
      if (error?.name !== "NotAllowedError") this.shown.notice(describeMediaError(error, "screen"), "error");
      return;
    }
    if (this.finished) return track.stop();
    this.local.screen = track;
    this.local.screenStream = new MediaStream([track]);
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener("ended", () => this.stopScreen());
    if (this.peer) this.screenSender = this.peer.publish(track, this.local.screenStream);
    this.state.sharing = true;
    this.signaling?.send("screen_share", { sharing: true });
    this.shown.grid.setLocalScreen(track);
    this.upsert({ userId: this.user.id, screenSharing: true });
    this.shown.setLocalControls(this.controls());
    this.render();
  }

  stopScreen() {
    if (!this.state.sharing) return;
    this.peer?.unpublish(this.screenSender);
    this.screenSender = null;
    this.local.screen?.stop();
    this.local.screen = null;
    this.local.screenStream = null;
    this.state.sharing = false;
    this.signaling?.send("screen_share", { sharing: false });
    this.shown.grid.setLocalScreen(null);
    this.upsert({ userId: this.user.id, screenSharing: false });
    this.shown.setLocalControls(this.controls());
    this.render();
  }

  controls() {
    return { ...this.state, mutedByHost: this.mutedByHost, hasAudio: Boolean(this.local.audio), hasVideo: Boolean(this.local.video) };
  }

  // ------------------------------------------------------------ people and chat

  /** @param {import("./roster.js").ParticipantChange} change */
  upsert(change) {
    this.roster.upsert(change);
  }

  render() {
    if (!this.view || this.finished) return;
    const everyone = this.roster.list();
    for (const participant of everyone) this.shown.grid.update(participant);
    this.shown.setParticipants(everyone);
  }

  /** Fills in names and people from the REST list (see Roster.fillFrom for what it never does). */
  async refreshParticipants() {
    try {
      const list = await api.participants(this.roomId);
      if (this.finished) return;
      this.roster.fillFrom(list);
      this.render();
    } catch (error) {
      if (error.code === "room_ended") this.finish("ended");
    }
  }

  async loadChat(before = null) {
    try {
      const page = await api.chatHistory(this.roomId, before);
      if (this.finished) return;
      this.shown.chat.add(page.messages ?? []);
      // Only the first page sets where "load earlier" starts; later pages move it back.
      if (!before && this.shown.chat.nextBefore !== undefined) return;
      this.shown.chat.setNextBefore(page.nextBefore);
    } catch (error) {
      // A server without stored chat (404) still has live chat: nothing to say.
      if (error.status !== 404) this.view?.notice(`Chat history: ${describe(error)}`, "error");
    }
  }

  loadEarlier(before) {
    return this.loadChat(before);
  }

  sendChat(text) {
    if (!this.signaling?.send("chat", { message: text })) {
      this.shown.notice("Not connected: the message was not sent. Reconnecting…", "error");
      return false;
    }
    return true;
  }

  async muteParticipant(userId) {
    try {
      const row = await api.muteParticipant(this.roomId, userId);
      this.upsert({ userId, audioMuted: row.audioMuted, mutedByHost: row.mutedByHost });
      this.render();
    } catch (error) {
      this.shown.notice(describe(error), "error");
    }
  }

  async allowUnmute(userId) {
    try {
      const row = await api.allowUnmute(this.roomId, userId);
      this.onMediaState(userId, { mutedByHost: row.mutedByHost });
    } catch (error) {
      this.shown.notice(describe(error), "error");
    }
  }

  async removeParticipant(userId) {
    const name = this.roster.get(userId)?.username || "this participant";
    if (!window.confirm(`Remove ${name} from the meeting?`)) return;
    try {
      // Their user_left comes through the socket, as it does for everyone.
      await api.removeParticipant(this.roomId, userId);
    } catch (error) {
      this.shown.notice(describe(error), "error");
    }
  }

  // ------------------------------------------------------------ leaving

  /** Leaves the room; `navigate: false` when the page is already going elsewhere. */
  async leave({ navigate = true } = {}) {
    // Leaving through REST makes the server close our socket (4499); that close
    // is expected, not news to show.
    this.leaving = true;
    try {
      await api.leaveRoom(this.roomId);
    } catch {
      // Leaving an ended room is refused (409) and changes nothing: we are out.
    }
    this.teardown();
    if (navigate) this.onExit();
  }

  async end() {
    if (!window.confirm("End the meeting for everyone?")) return;
    try {
      await api.endRoom(this.roomId);
      this.finish("ended");
    } catch (error) {
      if (error.code === "room_ended") return this.finish("ended");
      this.shown.notice(describe(error), "error");
    }
  }

  /** The meeting is over for us: removed, ended, or the connection cannot come back. */
  finish(reason, detail = null) {
    if (this.finished) return;
    this.teardown();
    const texts = {
      removed: ["You were removed", describe({ code: "removed" })],
      ended: ["The meeting has ended", "The host ended this meeting for everyone."],
      left: ["You left the meeting", describe({ code: "left" })],
      failed: ["Disconnected", detail || "The connection to the meeting was lost."],
    };
    const [title, text] = texts[reason] ?? texts.failed;
    this.view?.showEnded(reason, title, text, this.onExit);
  }

  /** Stops everything this meeting started; safe to call twice. */
  teardown() {
    this.finished = true;
    window.removeEventListener("pagehide", this.onPageHide);
    this.signaling?.stop();
    this.closePeer();
    this.local.screen?.stop();
    this.local.stream.getTracks().forEach((track) => track.stop());
    this.view?.grid.stopLocal();
  }

  /** Closing the tab leaves the room, so others see us go. */
  onPageHide = () => {
    const session = api.currentSession();
    if (!session || this.finished) return;
    fetch(`/api/v1/rooms/${encodeURIComponent(this.roomId)}/leave`, {
      method: "POST",
      keepalive: true,
      headers: { authorization: `Bearer ${session.token}` },
    }).catch(() => {});
  };
}

export function displayName(user) {
  return [user.firstName, user.lastName].filter(Boolean).join(" ") || user.email || "You";
}
