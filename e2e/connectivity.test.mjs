// Media on networks that make it hard, in real headless Chromium against a
// running `rapat serve` (infra/run-e2e.sh starts it with ICE-TCP on
// RAPAT_SFU_TCP_ADDR and TURN credentials for a real coturn on loopback):
//
//   with every UDP datagram to the SFU's port dropped (an nft rule on this
//   machine, added and removed by the test), two people still see and hear each
//   other, over the SFU's passive ICE-TCP candidate;
//
//   with the browsers allowed only relayed paths (iceTransportPolicy "relay",
//   asked for through localStorage), media flows through coturn, which accepts
//   the time-limited credentials the gateway signed for each socket;
//
//   with every DTLS datagram from the SFU dropped (another nft rule), the SFU
//   gives up on the handshake and tells each browser `peer_failed`; the
//   browser makes a new peer connection on the same socket, and once the rule
//   is lifted the two see and hear each other.

import { execFileSync } from "node:child_process";

import { SKIP_MEDIA, expect, register, test } from "./fixtures.mjs";

const MEDIA_WAIT = 45_000;
const run = Date.now().toString(36);
const NFT = process.env.RAPAT_E2E_NFT;
const SFU_UDP_PORT = process.env.RAPAT_E2E_SFU_UDP_PORT;
const SFU_TCP_PORT = Number(process.env.RAPAT_E2E_SFU_TCP_PORT);

/** @typedef {import("@playwright/test").Page} Page */

/** frames decoded and audio packets received, summed over the inbound streams. */
function received(page) {
  return page.evaluate(async () => {
    const pc = window.rapat?.pc;
    if (!pc) return { video: 0, audio: 0 };
    let video = 0;
    let audio = 0;
    (await pc.getStats()).forEach((stat) => {
      if (stat.type !== "inbound-rtp") return;
      if (stat.kind === "video") video += stat.framesDecoded ?? 0;
      if (stat.kind === "audio") audio += stat.packetsReceived ?? 0;
    });
    return { video, audio };
  });
}

/** Video frames and audio packets keep arriving: both rise between samples a second apart. */
async function expectMediaFlowing(page) {
  let before = null;
  await expect
    .poll(
      async () => {
        const after = await received(page);
        const rising = before !== null && after.video > before.video && after.audio > before.audio;
        before = after;
        return rising;
      },
      { message: "video and audio flowing", timeout: MEDIA_WAIT, intervals: [1000] },
    )
    .toBe(true);
}

/** The candidate pair the page's peer connection uses now. */
function selectedPath(page) {
  return page.evaluate(async () => {
    const stats = await window.rapat.pc.getStats();
    let pairId = null;
    stats.forEach((stat) => {
      if (stat.type === "transport" && stat.selectedCandidatePairId) pairId = stat.selectedCandidatePairId;
    });
    const pair = pairId ? stats.get(pairId) : null;
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      localType: local?.candidateType,
      localProtocol: local?.protocol,
      remoteProtocol: remote?.protocol,
      remotePort: remote?.port,
    };
  });
}

/** Two people in a room of their own, each with media going; `prepare` runs on each page first. */
async function meetingOfTwo(openUser, label, prepare = async () => {}) {
  const pages = [];
  for (const [index, first] of ["Dian", "Eko"].entries()) {
    const page = await openUser(`${label}-${first.toLowerCase()}`);
    await prepare(page);
    await page.goto("/");
    await register(page, { first, last: label, email: `${first.toLowerCase()}.${label}.${run}.${index}@example.com` });
    pages.push(page);
  }
  const [host, guest] = pages;
  await host.fill("#create-room-form input[name=name]", `${label} room`);
  await host.click("#create-room-form button[type=submit]");
  await host.waitForURL(/#\/rooms\/[0-9a-f-]{36}$/);
  const roomId = host.url().split("/").pop();
  await guest.goto(`/#/rooms/${roomId}`);
  for (const page of pages) {
    await page.locator("#join-form").waitFor();
    await page.click("#join-button");
    await page.locator("#connection-status[data-state=open]").waitFor();
  }
  return pages;
}

test("with UDP to the SFU blocked, media flows over ICE-TCP", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  expect(NFT, "run through infra/run-e2e.sh, which provides nft").toBeTruthy();
  const table = `rapat_e2e_${process.pid}`;
  const nft = (...args) => execFileSync(NFT, args, { stdio: "pipe" });
  // Every UDP datagram this machine sends to the SFU's port is dropped: the
  // browsers' checks, and coturn's relayed ones too.
  nft("add", "table", "inet", table);
  try {
    nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }");
    nft("add", "rule", "inet", table, "out", "ip", "daddr", "127.0.0.1", "udp", "dport", SFU_UDP_PORT, "counter", "drop");

    const pages = await meetingOfTwo(openUser, "tcp");
    for (const page of pages) {
      await expectMediaFlowing(page);
      const path = await selectedPath(page);
      expect(path, "the path media takes").toMatchObject({ remoteProtocol: "tcp", remotePort: SFU_TCP_PORT });
    }
    // The rule did see (and drop) the browsers' UDP attempts: the test blocked something real.
    const listed = nft("list", "table", "inet", table).toString();
    const dropped = Number(/counter packets (\d+)/.exec(listed)?.[1] ?? 0);
    expect(dropped, `UDP datagrams dropped by ${listed}`).toBeGreaterThan(0);
  } finally {
    nft("delete", "table", "inet", table);
  }
});

test("relay only: media flows through coturn with the gateway's TURN credentials", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  const relayOnly = (page) => page.addInitScript(() => localStorage.setItem("rapat.iceTransportPolicy", "relay"));
  const pages = await meetingOfTwo(openUser, "relay", relayOnly);
  for (const page of pages) {
    const turn = await page.evaluate(() => window.rapat.pc.getConfiguration());
    expect(turn.iceTransportPolicy).toBe("relay");
    const server = turn.iceServers.find((entry) => String(entry.urls).startsWith("turn:"));
    expect(server?.username, "a TURN username of the form expiry:userId").toMatch(/^\d{10}:[0-9a-f-]{36}$/);
    await expectMediaFlowing(page);
    expect(await selectedPath(page), "the path media takes").toMatchObject({ localType: "relay" });
  }
});

test("a peer connection whose DTLS handshake dies is made anew on the same socket", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  expect(NFT, "run through infra/run-e2e.sh, which provides nft").toBeTruthy();
  const table = `rapat_e2e_dtls_${process.pid}`;
  const nft = (...args) => execFileSync(NFT, args, { stdio: "pipe" });
  /** Per page: room sockets opened, and whether the SFU said `peer_failed` on one. */
  const seen = [];
  const watch = async (page) => {
    const mine = { sockets: 0, peerFailed: false };
    seen.push(mine);
    page.on("websocket", (socket) => {
      // The room's sockets; the lobby has one of its own.
      if (!socket.url().includes("roomId=")) return;
      mine.sockets += 1;
      socket.on("framereceived", ({ payload }) => {
        if (String(payload).includes('"peer_failed"')) mine.peerFailed = true;
      });
    });
  };
  // The SFU's DTLS datagrams (RFC 7983: first byte 20-63, the UDP payload's
  // first byte is at bit 64 of the transport header) never reach the
  // browsers; STUN and everything else does, so ICE connects and DTLS cannot.
  nft("add", "table", "inet", table);
  let lifted = false;
  const lift = () => {
    if (!lifted) nft("delete", "table", "inet", table);
    lifted = true;
  };
  try {
    nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }");
    // Whatever address the browser's chosen candidate has (not always 127.0.0.1).
    nft("add", "rule", "inet", table, "out", "udp", "sport", SFU_UDP_PORT, "@th,64,8", "20-63", "counter", "drop");

    const pages = await meetingOfTwo(openUser, "dtls", watch);
    for (const page of pages) {
      await expect.poll(() => page.evaluate(() => window.rapat.pc !== null), { message: "a peer connection" }).toBe(true);
      await page.evaluate(() => {
        window.firstPeer = window.rapat.pc;
      });
    }
    // The SFU fails a handshake that ran out of retransmissions, or one not
    // done 20 s after ICE connected.
    await expect
      .poll(() => seen.map((page) => page.peerFailed), { message: "peer_failed on both sockets", timeout: 60_000 })
      .toEqual([true, true]);
    const listed = nft("list", "table", "inet", table).toString();
    const dropped = Number(/counter packets (\d+)/.exec(listed)?.[1] ?? 0);
    expect(dropped, `DTLS datagrams dropped by ${listed}`).toBeGreaterThan(0);
    lift();

    for (const page of pages) {
      await expectMediaFlowing(page);
      const renewed = await page.evaluate(() => window.rapat.pc !== null && window.rapat.pc !== window.firstPeer);
      expect(renewed, "a new peer connection, not the first").toBe(true);
    }
    // The same socket throughout: the new peer connection came from
    // `peer_failed`, not from a socket dropped and opened again.
    expect(seen.map((page) => page.sockets)).toEqual([1, 1]);
  } finally {
    lift();
  }
});
