// A participant with no microphone and no camera (none found, or none allowed)
// still watches and hears the meeting, in real headless Chromium against a
// running `rapat serve` (infra/run-e2e.sh). The client offers first, so with
// nothing to send it must still ask for media to receive.

import { SKIP_MEDIA, createRoom, expect, joinRoom, signUp, test } from "./fixtures.mjs";


async function person(openUser, first, index, devices) {
  const page = await openUser(`listen-${first.toLowerCase()}`);
  if (!devices) {
    await page.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("no devices here", "NotFoundError"));
    });
  }
  await signUp(page, first, "Listen", index);
  return page;
}

/** What the page receives: inbound video frames decoded and audio bytes. */
function received(page) {
  return page.evaluate(async () => {
    const got = { frames: 0, audioBytes: 0 };
    (await window.rapat?.pc?.getStats())?.forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.kind === "video") got.frames += stat.framesDecoded ?? 0;
      if (stat.type === "inbound-rtp" && stat.kind === "audio") got.audioBytes += stat.bytesReceived ?? 0;
    });
    return got;
  });
}

test("a participant with no devices watches and hears the others", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  const host = await person(openUser, "Oka", 0, true);
  const listener = await person(openUser, "Putu", 1, false);
  const roomId = await createRoom(host, "listen-only room");
  await joinRoom(host, roomId);
  await joinRoom(listener, roomId);
  await expect
    .poll(async () => (await received(listener)).frames, { message: "the listener decodes the host's video", timeout: 45_000 })
    .toBeGreaterThan(30);
  expect((await received(listener)).audioBytes, "and receives the host's audio").toBeGreaterThan(1000);
});
