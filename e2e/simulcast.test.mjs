// Simulcast across renegotiations, in real headless Chromium against a running
// `rapat serve` (infra/run-e2e.sh starts it):
//
//   two people publish their cameras in three layers (the client's default) and
//   watch each other; a third joins, so the SFU renegotiates with both. Chrome
//   names a layer (the rid header extension) only until the SFU has
//   acknowledged its SSRC, so after that renegotiation the SFU must still know
//   which SSRC is which layer: the first two keep decoding each other's video,
//   and the third decodes both.

import { SKIP_MEDIA, createRoom, expect, joinRoom, signUp, test } from "./fixtures.mjs";

const MEDIA_WAIT = 45_000;

/** @typedef {import("@playwright/test").Page} Page */

/** framesDecoded of each inbound video stream, by stats id. */
function decoded(page) {
  return page.evaluate(async () => {
    const pc = window.rapat?.pc;
    /** @type {Record<string, number>} */
    const video = {};
    if (!pc) return video;
    (await pc.getStats()).forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.kind === "video") video[stat.id] = stat.framesDecoded ?? 0;
    });
    return video;
  });
}

/** The rids of the camera layers the page sends now. */
function sentLayers(page) {
  return page.evaluate(async () => {
    const rids = [];
    (await window.rapat.pc.getStats()).forEach((stat) => {
      if (stat.type === "outbound-rtp" && stat.kind === "video" && stat.rid) rids.push(stat.rid);
    });
    return rids.sort();
  });
}

/** Waits until `videos` inbound video streams each decode more frames than a second before. */
async function expectVideosDecoding(page, videos, what) {
  let before = null;
  let seen = null;
  await expect
    .poll(
      async () => {
        const after = await decoded(page);
        const previous = before;
        before = after;
        if (!previous) return false;
        seen = { before: previous, after };
        return Object.keys(after).filter((id) => after[id] > (previous[id] ?? 0)).length >= videos;
      },
      { message: what, timeout: MEDIA_WAIT, intervals: [1000] },
    )
    .toBe(true)
    .catch((error) => {
      throw new Error(`${error.message}; last framesDecoded: ${JSON.stringify(seen)}`);
    });
}

/** Signs `first` up on a page of their own (simulcast left at the client's default unless `simulcast`). */
async function person(openUser, first, index, simulcast = null) {
  const page = await openUser(`simulcast-${first.toLowerCase()}`);
  if (simulcast) await page.addInitScript((value) => localStorage.setItem("rapat.simulcast", value), simulcast);
  await signUp(page, first, "Simulcast", index);
  return page;
}

test("simulcast cameras keep decoding when a third person joins (renegotiation)", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  const host = await person(openUser, "Gita", 0);
  const guest = await person(openUser, "Hadi", 1);
  const roomId = await createRoom(host, "simulcast room");
  await joinRoom(host, roomId);
  await joinRoom(guest, roomId);

  await test.step("two people decode each other's three-layer cameras", async () => {
    for (const page of [host, guest]) await expectVideosDecoding(page, 1, "the other's video decoding");
    for (const page of [host, guest]) {
      // Chrome may leave the top layer out at the fake camera's 640x360.
      await expect.poll(async () => (await sentLayers(page)).length, { message: "camera layers sent" }).toBeGreaterThanOrEqual(2);
    }
    // Long enough for the SFU's receiver reports to acknowledge every layer's
    // SSRC, after which Chrome stops naming the layers in the packets.
    await host.waitForTimeout(3000);
  });

  const third = await person(openUser, "Indah", 2);
  await joinRoom(third, roomId);

  await test.step("after the renegotiation everyone decodes everyone", async () => {
    await expectVideosDecoding(third, 2, "the third decodes both cameras");
    for (const page of [host, guest]) await expectVideosDecoding(page, 2, "the first two decode both others");
  });

  await test.step("and keep decoding a while later", async () => {
    await host.waitForTimeout(3000);
    for (const page of [host, guest, third]) await expectVideosDecoding(page, 2, "still decoding");
  });
});

test("simulcast can be turned off: one layer, media still flows", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  const host = await person(openUser, "Joko", 3, "off");
  const guest = await person(openUser, "Kartika", 4, "off");
  const roomId = await createRoom(host, "single layer room");
  await joinRoom(host, roomId);
  await joinRoom(guest, roomId);
  for (const page of [host, guest]) await expectVideosDecoding(page, 1, "the other's video decoding");
  expect(await sentLayers(host), "no rid on a single-layer camera").toEqual([]);
});
