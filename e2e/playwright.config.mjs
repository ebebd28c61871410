// Playwright Test for the browser client against a running `rapat serve`
// (infra/run-e2e.sh starts one and sets RAPAT_E2E_URL). Debian's chromium, with
// fake camera and microphone; Playwright's own browser downloads are never used.

import { defineConfig } from "@playwright/test";
import { FAKE_SPEECH } from "./fake-audio.mjs";

const BASE = process.env.RAPAT_E2E_URL;
if (!BASE) throw new Error("RAPAT_E2E_URL is not set: run infra/run-e2e.sh, or point it at a running rapat serve");

export default defineConfig({
  testDir: ".",
  testMatch: [
    "negotiation.test.mjs", "meeting.test.mjs", "calendar.test.mjs", "push.test.mjs", "recovery.test.mjs",
    "connectivity.test.mjs", "simulcast.test.mjs", "recording.test.mjs", "listen.test.mjs",
    // The watcher behind a shaped link runs only when asked for
    // (RAPAT_E2E_SHAPED=1): its settling and freeze times are not yet within
    // bounds on every run (README, Downlink estimate), and a default run must not flake.
    ...(process.env.RAPAT_E2E_SHAPED === "1" ? ["shaped.test.mjs"] : []),
  ],
  outputDir: "artifacts/results",
  // One server, and a meeting that is one story: no parallel workers, no retries
  // (a flaky pass would hide a real fault).
  workers: 1,
  retries: 0,
  // The whole run is bounded, whatever hangs.
  globalTimeout: 15 * 60_000,
  timeout: 5 * 60_000,
  expect: { timeout: 20_000 },
  reporter: [["list"]],
  use: {
    baseURL: BASE,
    browserName: "chromium",
    headless: true,
    viewport: { width: 1280, height: 720 },
    actionTimeout: 20_000,
    navigationTimeout: 20_000,
    permissions: ["camera", "microphone"],
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // A generated test pattern and a speech-like sound (fake-audio.mjs)
        // instead of real devices, granted without a prompt.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        `--use-file-for-fake-audio-capture=${FAKE_SPEECH}`,
        // The SFU and the browser meet on 127.0.0.1, which WebRTC otherwise leaves out.
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
      ],
    },
  },
});
