// The client's peer connection (web/js/media.js, PeerLink) against a stand-in
// for the SFU inside the same page: a plain RTCPeerConnection that behaves as
// SPEC §4 says the SFU does. It is the impolite side, it names forwarded streams
// after their publisher (its SDP's msid is rewritten to a user id), and it
// offers when its tracks change. This checks, without the real SFU:
//
// - an offer collision (both sides offer at once) ends with the client rolling
//   back, answering, and getting its own change through afterwards;
// - media flows both ways (the same getStats counters meeting.test.mjs reads);
// - remote tracks carry the publisher's id as their stream id;
// - renegotiation started by either side (an SFU track added, a client screen
//   track added and removed) ends stable with the tracks where they should be.
//
// Needs only the client's files: RAPAT_E2E_URL is any rapat serve.

import assert from "node:assert/strict";
import { launchBrowser } from "./browser.mjs";

const BASE = process.env.RAPAT_E2E_URL;
if (!BASE) {
  console.error("RAPAT_E2E_URL is not set: run infra/run-e2e.sh");
  process.exit(2);
}

/** Runs in the page. */
async function scenario() {
  const { PeerLink, openLocalMedia } = await import("/js/media.js");
  const publisher = "0f0f0f0f-1111-4222-8333-444444444444";
  const log = [];
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function until(what, check, timeout = 20000) {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (await check()) return;
      await sleep(100);
    }
    throw new Error(`timed out: ${what}\n${log.join("\n")}`);
  }

  const local = (await openLocalMedia()).stream;
  const forwarded = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const sfu = new RTCPeerConnection();
  const received = []; // [{stream, kind}] as the client saw them
  let link = null;
  let sfuMakingOffer = false;
  let forceGlare = true;
  let sfuChain = Promise.resolve();

  // What the SFU sends names its streams after the publisher.
  const munge = (sdp) => sdp.replace(/^a=msid:\S+ /gm, `a=msid:${publisher} `);
  const toClient = (type, payload) => link.handle({ type, payload });

  async function sfuOffer() {
    sfuMakingOffer = true;
    try {
      await sfu.setLocalDescription();
      log.push("sfu offers");
      toClient("offer", { sdp: munge(sfu.localDescription.sdp) });
    } finally {
      sfuMakingOffer = false;
    }
  }

  function toSfu(type, payload) {
    sfuChain = sfuChain
      .then(async () => {
        if (type === "offer") {
          log.push("client offers");
          if (forceGlare) {
            // Offer ourselves before looking at theirs: a collision, every time.
            forceGlare = false;
            await sfuOffer();
          }
          if (sfuMakingOffer || sfu.signalingState !== "stable") {
            log.push("sfu (impolite) ignores the colliding client offer");
            return;
          }
          await sfu.setRemoteDescription({ type, sdp: payload.sdp });
          await sfu.setLocalDescription();
          log.push("sfu answers");
          toClient("answer", { sdp: munge(sfu.localDescription.sdp) });
        } else if (type === "answer") {
          log.push("client answers");
          await sfu.setRemoteDescription({ type, sdp: payload.sdp });
        } else if (type === "ice-candidate") {
          await sfu.addIceCandidate(payload).catch((error) => log.push(`sfu skips a candidate: ${error.message}`));
        }
      })
      .catch((error) => log.push(`sfu error: ${error.message}`));
  }
  sfu.onicecandidate = ({ candidate }) => candidate && toClient("ice-candidate", candidate.toJSON());

  link = new PeerLink({
    iceServers: [],
    send: toSfu,
    onTrack: (event) => received.push({ stream: event.streams[0]?.id, kind: event.track.kind, track: event.track }),
    onState: (state) => log.push(`client pc ${state}`),
  });

  // 1. Both sides add their tracks at once.
  // The SFU, like the real one, forwards on m-lines of its own.
  const forward = (track) => sfu.addTransceiver(track, { direction: "sendonly", streams: [forwarded] });
  for (const track of local.getTracks()) link.publish(track, local);
  for (const track of forwarded.getTracks()) forward(track);

  const stable = () => link.pc.signalingState === "stable" && sfu.signalingState === "stable";
  await until("connected", () => link.pc.connectionState === "connected" && stable());
  // Perfect negotiation: after the rollback the client's own tracks go out too.
  const receiving = (pc) => pc.getTransceivers().filter((t) => t.currentDirection === "sendrecv" || t.currentDirection === "recvonly").length;
  await until("the SFU receives the client's audio and video", () => receiving(sfu) >= 2);

  async function inbound(pc) {
    const counts = { video: 0, audio: 0 };
    (await pc.getStats()).forEach((stat) => {
      if (stat.type !== "inbound-rtp") return;
      if (stat.kind === "video") counts.video += stat.framesDecoded ?? 0;
      if (stat.kind === "audio") counts.audio += stat.packetsReceived ?? 0;
    });
    return counts;
  }
  await until("the client decodes video and receives audio", async () => {
    const counts = await inbound(link.pc);
    return counts.video > 5 && counts.audio > 20;
  });
  await until("the SFU side decodes the client's video", async () => (await inbound(sfu)).video > 5);

  // 2. The SFU forwards one more video track (someone shares a screen).
  const screenForwarded = forwarded.getVideoTracks()[0].clone();
  forward(screenForwarded);
  await sfuOffer();
  await until("a second video track from the publisher", () => received.filter((r) => r.kind === "video").length === 2 && stable());

  // 3. The client shares a screen (a clone of its camera stands in), then stops.
  const screen = local.getVideoTracks()[0].clone();
  const screenSender = link.publish(screen, new MediaStream([screen]));
  await until("the client's screen reaches the SFU", () => receiving(sfu) >= 3 && stable());
  link.unpublish(screenSender);
  await until("the screen removal is negotiated", () => stable() && link.pc.getTransceivers().some((t) => t.sender === screenSender && (t.currentDirection === "inactive" || t.currentDirection === "recvonly")));

  const result = {
    streams: [...new Set(received.map((r) => r.stream))],
    kinds: received.map((r) => r.kind).sort(),
    clientState: link.pc.signalingState,
    sfuState: sfu.signalingState,
    connection: link.pc.connectionState,
    log,
  };
  link.close();
  sfu.close();
  [...local.getTracks(), ...forwarded.getTracks(), screen, screenForwarded].forEach((track) => track.stop());
  return result;
}

const browser = await launchBrowser();
let rc = 0;
try {
  const context = await browser.newContext();
  await context.grantPermissions(["camera", "microphone"], { origin: BASE });
  const page = await context.newPage();
  await page.goto(BASE);
  const result = await page.evaluate(scenario);
  assert.deepEqual(result.streams, ["0f0f0f0f-1111-4222-8333-444444444444"], "remote streams are named after their publisher");
  assert.deepEqual(result.kinds, ["audio", "video", "video"]);
  assert.equal(result.clientState, "stable");
  assert.equal(result.sfuState, "stable");
  assert.equal(result.connection, "connected");
  assert.ok(result.log.includes("sfu (impolite) ignores the colliding client offer"), "the collision happened");
  if (process.env.RAPAT_E2E_VERBOSE) console.log(result.log.join("\n"));
  console.log("✓ perfect negotiation with an impolite SFU: collision, media both ways, renegotiation from both sides");
} catch (error) {
  rc = 1;
  console.error(`✗ negotiation: ${error.stack ?? error}`);
} finally {
  await browser.close();
}
process.exit(rc);
