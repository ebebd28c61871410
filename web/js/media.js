// @ts-check
// Local media (microphone, camera, screen) and the one RTCPeerConnection to the
// SFU, negotiated with the WebRTC "perfect negotiation" pattern.
//
// The SFU is the impolite peer and this client the polite one (SPEC §4): when our
// offer crosses one of the SFU's, we roll ours back and answer theirs; the browser
// then fires `negotiationneeded` again and our change goes out in a fresh offer.

/**
 * Microphone and camera, degrading to whatever is available: a meeting is still
 * useful with audio only, or with no devices at all (listen and watch).
 * Answers `{stream, error}`; `error` is the first failure, for a notice.
 */
export async function openLocalMedia() {
  const attempts = [
    { audio: true, video: { width: { ideal: 640 }, height: { ideal: 360 } } },
    { audio: true, video: false },
    { audio: false, video: true },
  ];
  let firstError = null;
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return { stream, error: firstError };
    } catch (error) {
      firstError ??= error;
    }
  }
  return { stream: new MediaStream(), error: firstError };
}

/** A screen (or window, or tab) track, or throws what getDisplayMedia threw. */
export async function openScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  return stream.getVideoTracks()[0];
}

/**
 * "relay" only where a test asks for it (localStorage `rapat.iceTransportPolicy`,
 * set by the TURN end-to-end test); otherwise every path, as a product should.
 * @returns {RTCIceTransportPolicy}
 */
function iceTransportPolicy() {
  try {
    return localStorage.getItem("rapat.iceTransportPolicy") === "relay" ? "relay" : "all";
  } catch {
    return "all";
  }
}

/**
 * A camera in three layers, lowest first (SPEC §9): the SFU forwards each
 * subscriber the one that fits the size it shows the video at.
 * @type {RTCRtpEncodingParameters[]}
 */
export const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * Whether to publish the camera in simulcast layers: yes, unless
 * `localStorage["rapat.simulcast"]` is "off" (one layer, for a network or a
 * browser where three encodings cost more than they bring).
 */
export function simulcastEnabled() {
  try {
    return globalThis.localStorage?.getItem("rapat.simulcast") !== "off";
  } catch {
    return true;
  }
}

/**
 * The peer connection to the SFU. Signaling goes out through `send(type, payload)`
 * (`offer`, `answer`, `ice-candidate`, never with a targetUserId); what the SFU
 * sends comes in through `handle(message)`.
 */
export class PeerLink {
  constructor({ iceServers, send, onTrack, onState }) {
    this.send = send;
    this.pc = new RTCPeerConnection({ iceServers: iceServers ?? [], iceTransportPolicy: iceTransportPolicy() });
    this.makingOffer = false;
    this.closed = false;
    // Incoming signaling is applied one message at a time, in arrival order: an
    // ICE candidate must not overtake the description it belongs to.
    this.queue = Promise.resolve();

    this.pc.onnegotiationneeded = () => this.offer();
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.send("ice-candidate", candidate.toJSON());
    };
    this.pc.ontrack = (event) => onTrack(event);
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      onState?.(state);
    };
  }

  /**
   * With nothing to send the client would never offer, and the SFU answers
   * offers rather than making the first one: ask for audio and video to receive,
   * so a participant with no devices still gets everyone else's media.
   */
  listenOnly() {
    this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.pc.addTransceiver("video", { direction: "recvonly" });
  }

  async offer() {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      // The description may have been rolled back while we awaited (a crossing
      // SFU offer won); then there is nothing of ours to send.
      if (this.pc.localDescription?.type === "offer" && this.pc.signalingState === "have-local-offer") {
        this.send("offer", { sdp: this.pc.localDescription.sdp });
      }
    } catch (error) {
      console.warn("rapat: creating an offer failed", error);
    } finally {
      this.makingOffer = false;
    }
  }

  /** Applies one `offer`, `answer` or `ice-candidate` message from the SFU. */
  handle(message) {
    this.queue = this.queue.then(() => this.apply(message)).catch((error) => {
      console.warn(`rapat: applying an SFU ${message.type} failed`, error);
    });
    return this.queue;
  }

  async apply({ type, payload }) {
    if (this.closed || !payload) return;
    const pc = this.pc;
    if (type === "ice-candidate") {
      // An end-of-candidates marker may come as an empty candidate.
      if (payload.candidate === undefined) return;
      await pc.addIceCandidate(payload);
      return;
    }
    const description = { type, sdp: payload.sdp };
    if (type === "offer") {
      const collision = this.makingOffer || pc.signalingState !== "stable";
      if (collision && pc.signalingState === "have-local-offer") {
        // Polite: our offer loses. Roll it back, then take theirs. (When our offer
        // is still being created, setRemoteDescription rolls back implicitly.)
        await pc.setLocalDescription({ type: "rollback" });
      }
      await pc.setRemoteDescription(description);
      await pc.setLocalDescription();
      this.send("answer", { sdp: pc.localDescription?.sdp });
    } else if (type === "answer") {
      // An answer to an offer we already rolled back is stale: drop it.
      if (pc.signalingState !== "have-local-offer") return;
      await pc.setRemoteDescription(description);
    }
  }

  /**
   * Sends one of our tracks to the SFU, always on an m-line of its own
   * (`sendonly`). addTrack() would reuse a transceiver the SFU opened to send us
   * someone else's media, mixing our upload into their m-line. Answers the sender.
   */
  publish(track, stream, { simulcast = false } = {}) {
    const init = { direction: /** @type {const} */ ("sendonly"), streams: [stream] };
    if (simulcast && track.kind === "video") {
      try {
        return this.pc.addTransceiver(track, { ...init, sendEncodings: SIMULCAST_ENCODINGS }).sender;
      } catch (error) {
        console.warn("rapat: simulcast refused, sending one layer", error);
      }
    }
    return this.pc.addTransceiver(track, init).sender;
  }

  /**
   * Pauses the simulcast layers of one of our tracks that no subscriber needs
   * (`publisher_layers`: `{mid, trackId, active: ["q", …]}`) and resumes the others.
   */
  async setActiveLayers({ mid, trackId, active }) {
    if (this.closed || !Array.isArray(active) || active.length === 0) return;
    const transceiver = this.pc
      .getTransceivers()
      .find((t) => (mid != null && t.mid === mid) || (trackId && t.sender.track?.id === trackId));
    const sender = transceiver?.sender;
    if (!sender) return;
    const parameters = sender.getParameters();
    if (!parameters.encodings || parameters.encodings.length < 2) return;
    let changed = false;
    for (const encoding of parameters.encodings) {
      const on = !encoding.rid || active.includes(encoding.rid);
      if (encoding.active !== on) {
        encoding.active = on;
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await sender.setParameters(parameters);
    } catch (error) {
      console.warn("rapat: pausing simulcast layers failed", error);
    }
  }

  /** Stops sending a published track (its m-line becomes inactive). */
  unpublish(sender) {
    if (!this.closed && sender) this.pc.removeTrack(sender);
  }

  close() {
    this.closed = true;
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}
