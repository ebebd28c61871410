// A participant with no microphone and no camera (none found, or none allowed)
// still watches and hears the meeting, in real headless Chromium against a
// running `rapat serve` (infra/run-e2e.sh). The client offers first, so with
// nothing to send it must still ask for media to receive.

import { SKIP_MEDIA, expect, register, test } from "./fixtures.mjs";

const run = Date.now().toString(36);

async function person(openUser, first, index, devices) {
  const page = await openUser(`listen-${first.toLowerCase()}`);
  if (!devices) {
    await page.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("no devices here", "NotFoundError"));
    });
  }
  await page.goto("/");
  await register(page, { first, last: "Listen", email: `${first.toLowerCase()}.listen.${run}.${index}@example.com` });
  return page;
}

async function join(page, roomId) {
  await page.goto(`/#/rooms/${roomId}`);
  await page.locator("#join-form").waitFor();
  await page.click("#join-button");
  await page.locator("#connection-status[data-state=open]").waitFor();
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
  await host.fill("#create-room-form input[name=name]", "listen-only room");
  await host.click("#create-room-form button[type=submit]");
  await host.waitForURL(/#\/rooms\/[0-9a-f-]{36}$/);
  const roomId = host.url().split("/").pop();
  await join(host, roomId);
  await join(listener, roomId);
  await expect
    .poll(async () => (await received(listener)).frames, { message: "the listener decodes the host's video", timeout: 45_000 })
    .toBeGreaterThan(30);
  expect((await received(listener)).audioBytes, "and receives the host's audio").toBeGreaterThan(1000);
});
