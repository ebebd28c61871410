// Recording in the browser, against a running `rapat serve` (infra/run-e2e.sh):
//
//   the host starts recording from the meeting's controls; everyone in the room,
//   and someone who joins while it runs, sees the indicator; the host stops it,
//   the recorded tracks appear in the host's list, and each downloaded file is
//   read by ffprobe (Debian's ffmpeg): the right codec and a duration that
//   matches both the server's and the time the recording ran.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";

import { ARTIFACTS, SKIP_MEDIA, createRoom, expect, joinRoom, signUp, test } from "./fixtures.mjs";

const FFPROBE = process.env.RAPAT_E2E_FFPROBE || "ffprobe";
const RECORDED_MS = 6_000;

/** @typedef {import("@playwright/test").Page} Page */

async function person(openUser, first, index) {
  const page = await openUser(`recording-${first.toLowerCase()}`);
  await signUp(page, first, "Recording", index);
  return page;
}

/** Inbound video frames decoded, summed over the page's streams. */
function framesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    (await window.rapat?.pc?.getStats())?.forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.kind === "video") frames += stat.framesDecoded ?? 0;
    });
    return frames;
  });
}

/** The host's list as the API gives it, read with the page's own session. */
function recordings(page, roomId) {
  return page.evaluate(async (id) => (await import("/js/api.js")).recordings(id), roomId);
}

/** ffprobe's codec and duration (seconds) of a file. */
function probe(path) {
  const out = execFileSync(FFPROBE, ["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json", path]);
  const json = JSON.parse(out.toString());
  return { codec: json.streams?.[0]?.codec_name, seconds: Number(json.format?.duration) };
}

test("the host records a meeting: everyone sees it, the files play at the recorded length", async ({ openUser }) => {
  test.skip(SKIP_MEDIA, "RAPAT_E2E_SKIP_MEDIA=1");
  test.setTimeout(150_000);
  const host = await person(openUser, "Lina", 0);
  const guest = await person(openUser, "Mira", 1);
  const roomId = await createRoom(host, "recorded room");
  await joinRoom(host, roomId);
  await joinRoom(guest, roomId);
  for (const page of [host, guest]) {
    await expect.poll(() => framesDecoded(page), { message: "the other's video decodes", timeout: 45_000 }).toBeGreaterThan(30);
  }
  await expect(guest.locator("#toggle-recording"), "only the host has the button").toHaveCount(0);

  let started = 0;
  await test.step("the host starts recording; everyone sees it, a late joiner at once", async () => {
    await host.click("#toggle-recording");
    for (const page of [host, guest]) await expect(page.locator("#recording-indicator")).toBeVisible();
    started = Date.now();
    const late = await person(openUser, "Nadia", 2);
    await joinRoom(late, roomId);
    await expect(late.locator("#recording-indicator")).toBeVisible();
  });

  let ranMs = 0;
  await test.step("the host stops it; the indicator goes away", async () => {
    await host.waitForTimeout(Math.max(0, RECORDED_MS - (Date.now() - started)));
    await host.click("#toggle-recording");
    for (const page of [host, guest]) await expect(page.locator("#recording-indicator")).toBeHidden();
    ranMs = Date.now() - started;
  });

  await test.step("each recorded track downloads and plays at its length", async () => {
    // Host and guest each publish audio and video; the late joiner's too may be there.
    await expect
      .poll(async () => (await recordings(host, roomId)).length, { message: "recorded tracks listed", timeout: 20_000 })
      .toBeGreaterThanOrEqual(4);
    await host.click("#refresh-recordings");
    const entries = await recordings(host, roomId);
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const entry of entries) {
      const row = host.locator(`#recording-list li[data-recording-id="${entry.id}"]`);
      const [download] = await Promise.all([host.waitForEvent("download"), row.getByRole("button", { name: "Download" }).click()]);
      const path = `${ARTIFACTS}recording-${entry.id}.${entry.codec === "opus" ? "ogg" : "webm"}`;
      await download.saveAs(path);
      const file = probe(path);
      const seconds = entry.durationMs / 1000;
      expect(file.codec, `${entry.kind} codec`).toBe(entry.codec);
      expect(Math.abs(file.seconds - seconds) / seconds, `ffprobe ${file.seconds} s vs the server's ${seconds} s`).toBeLessThan(0.02);
      // The host's and the guest's tracks ran the whole time; the late joiner's
      // started later (same machine, so the server's clock is this one).
      if (Date.parse(entry.startedAt) > started + 1500) continue;
      expect(file.seconds * 1000, `${entry.kind} of ${entry.userId}: recorded ${file.seconds} s of the ${ranMs} ms`).toBeGreaterThan(ranMs - 1500);
      expect(file.seconds * 1000).toBeLessThan(ranMs + 1500);
    }
  });
});
