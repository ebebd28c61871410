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
// Needs only the client's files: RAPAT_E2E_URL is any rapat serve. The page sets
// things in motion; the test waits on its state with expect.poll.

import { expect, test } from "./fixtures.mjs";

const PUBLISHER = "0f0f0f0f-1111-4222-8333-444444444444";

/** Runs in the page: the client's PeerLink and a stand-in SFU, kept on window.negotiation. */
async function setUp(publisher) {
  const { PeerLink, openLocalMedia } = await import("/js/media.js");
  const log = [];
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

  // The SFU, like the real one, forwards on m-lines of its own.
  const forward = (track) => sfu.addTransceiver(track, { direction: "sendonly", streams: [forwarded] });
  const receiving = (pc) =>
    pc.getTransceivers().filter((t) => t.currentDirection === "sendrecv" || t.currentDirection === "recvonly").length;
  async function inbound(pc) {
    const counts = { video: 0, audio: 0 };
    (await pc.getStats()).forEach((stat) => {
      if (stat.type !== "inbound-rtp") return;
      if (stat.kind === "video") counts.video += stat.framesDecoded ?? 0;
      if (stat.kind === "audio") counts.audio += stat.packetsReceived ?? 0;
    });
    return counts;
  }
  const state = { link, sfu, local, forwarded, received, log, forward, sfuOffer, receiving, inbound, stopLater: [] };
  state.stable = () => link.pc.signalingState === "stable" && sfu.signalingState === "stable";
  window.negotiation = state;

  // 1. Both sides add their tracks at once.
  for (const track of local.getTracks()) link.publish(track, local);
  for (const track of forwarded.getTracks()) forward(track);
}

test("perfect negotiation with an impolite SFU: collision, media both ways, renegotiation from both sides", async ({ openUser }) => {
  const page = await openUser("negotiation");
  await page.goto("/");
  await page.evaluate(setUp, PUBLISHER);
  /** Polls a predicate over the page's window.negotiation; the log comes with a timeout. */
  const until = async (what, check) => {
    await expect
      .poll(() => page.evaluate(check), { message: what, intervals: [100] })
      .toBe(true)
      .catch(async (error) => {
        const log = await page.evaluate(() => window.negotiation.log).catch(() => []);
        throw new Error(`${error.message}\n${log.join("\n")}`);
      });
  };

  await test.step("connected, the collision resolved, the client's tracks through", async () => {
    await until("connected", () => window.negotiation.link.pc.connectionState === "connected" && window.negotiation.stable());
    // Perfect negotiation: after the rollback the client's own tracks go out too.
    await until("the SFU receives the client's audio and video", () => {
      const n = window.negotiation;
      return n.receiving(n.sfu) >= 2;
    });
  });

  await test.step("media both ways", async () => {
    await until("the client decodes video and receives audio", async () => {
      const n = window.negotiation;
      const counts = await n.inbound(n.link.pc);
      return counts.video > 5 && counts.audio > 20;
    });
    await until("the SFU side decodes the client's video", async () => {
      const n = window.negotiation;
      return (await n.inbound(n.sfu)).video > 5;
    });
  });

  await test.step("the SFU forwards one more video track (someone shares a screen)", async () => {
    await page.evaluate(async () => {
      const n = window.negotiation;
      const screenForwarded = n.forwarded.getVideoTracks()[0].clone();
      n.stopLater.push(screenForwarded);
      n.forward(screenForwarded);
      await n.sfuOffer();
    });
    await until("a second video track from the publisher", () => {
      const n = window.negotiation;
      return n.received.filter((r) => r.kind === "video").length === 2 && n.stable();
    });
  });

  await test.step("the client shares a screen (a clone of its camera), then stops", async () => {
    await page.evaluate(() => {
      const n = window.negotiation;
      const screen = n.local.getVideoTracks()[0].clone();
      n.stopLater.push(screen);
      n.screenSender = n.link.publish(screen, new MediaStream([screen]));
    });
    await until("the client's screen reaches the SFU", () => {
      const n = window.negotiation;
      return n.receiving(n.sfu) >= 3 && n.stable();
    });
    await page.evaluate(() => window.negotiation.link.unpublish(window.negotiation.screenSender));
    await until("the screen removal is negotiated", () => {
      const n = window.negotiation;
      return (
        n.stable() &&
        n.link.pc
          .getTransceivers()
          .some((t) => t.sender === n.screenSender && (t.currentDirection === "inactive" || t.currentDirection === "recvonly"))
      );
    });
  });

  const result = await page.evaluate(() => {
    const n = window.negotiation;
    const result = {
      streams: [...new Set(n.received.map((r) => r.stream))],
      kinds: n.received.map((r) => r.kind).sort(),
      clientState: n.link.pc.signalingState,
      sfuState: n.sfu.signalingState,
      connection: n.link.pc.connectionState,
      log: n.log,
    };
    n.link.close();
    n.sfu.close();
    [...n.local.getTracks(), ...n.forwarded.getTracks(), ...n.stopLater].forEach((track) => track.stop());
    return result;
  });
  expect(result.streams, "remote streams are named after their publisher").toEqual([PUBLISHER]);
  expect(result.kinds).toEqual(["audio", "video", "video"]);
  expect(result.clientState).toBe("stable");
  expect(result.sfuState).toBe("stable");
  expect(result.connection).toBe("connected");
  expect(result.log, "the collision happened").toContain("sfu (impolite) ignores the colliding client offer");
  if (process.env.RAPAT_E2E_VERBOSE) console.log(result.log.join("\n"));
});
