// Headless Chromium for the end-to-end tests: Debian's own build (Playwright's
// browser downloads are never used), with fake camera and microphone.

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A generated test pattern and a beeping tone instead of real devices, granted
  // without a prompt.
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  // The SFU and the browser meet on 127.0.0.1, which WebRTC otherwise leaves out.
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}
