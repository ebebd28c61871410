// Fixtures shared by the end-to-end tests: `openUser(name)` opens a browser
// context of its own for one person (camera and microphone granted, console
// kept, dialogs accepted); when a test fails, every such page leaves a
// screenshot and its last console lines in artifacts/.

import { test as base, expect } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

export { expect };

export const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

/** RAPAT_E2E_SKIP_MEDIA=1 skips audio/video assertions (client work without an SFU; not a pass). */
export const SKIP_MEDIA = process.env.RAPAT_E2E_SKIP_MEDIA === "1";

/** The password every test account registers with. */
export const PASSWORD = "e2e-Passw0rd!";

/**
 * Registers through the page's own form and waits until it says who is signed in.
 * @param {import("@playwright/test").Page} page
 * @param {{first: string, last: string, email: string}} who
 */
export async function register(page, { first, last, email }) {
  await page.click("#show-register");
  await page.fill("#register-form input[name=firstName]", first);
  await page.fill("#register-form input[name=lastName]", last);
  await page.fill("#register-form input[name=email]", email);
  await page.fill("#register-form input[name=password]", PASSWORD);
  await page.click("#register-form button[type=submit]");
  await expect(page.locator("#signed-in-as")).toHaveText(`${first} ${last}`);
}

const RUN = Date.now().toString(36);

/**
 * Registers `first last` from the home page, with an address of this run's own.
 * @param {import("@playwright/test").Page} page
 */
export async function signUp(page, first, last, index) {
  await page.goto("/");
  // Chromium aborts the loads in flight when the host's network changes
  // (net::ERR_NETWORK_CHANGED), as it does when a test's network namespace
  // and its veth pair appear: a page whose scripts were lost that way is
  // loaded once more.
  const ready = await page
    .locator("#show-register")
    .waitFor({ timeout: 10_000 })
    .then(() => true)
    .catch(() => false);
  if (!ready) await page.reload();
  await register(page, { first, last, email: `${first.toLowerCase()}.${last.toLowerCase()}.${RUN}.${index}@example.com` });
}

/**
 * Creates a room from the lobby's form; answers its id.
 * @param {import("@playwright/test").Page} page
 */
export async function createRoom(page, name) {
  await page.fill("#create-room-form input[name=name]", name);
  await page.click("#create-room-form button[type=submit]");
  await page.waitForURL(/#\/rooms\/[0-9a-f-]{36}$/);
  return page.url().split("/").pop();
}

/**
 * Opens a room, joins it and waits until its socket is open.
 * @param {import("@playwright/test").Page} page
 */
export async function joinRoom(page, roomId) {
  await page.goto(`/#/rooms/${roomId}`);
  await page.locator("#join-form").waitFor();
  await page.click("#join-button");
  await page.locator("#connection-status[data-state=open]").waitFor();
}

export const test = base.extend({
  openUser: async ({ browser, baseURL }, use, testInfo) => {
    /** @type {Map<string, {page: import("@playwright/test").Page, lines: string[]}>} */
    const opened = new Map();
    await use(async (who) => {
      const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 720 } });
      await context.grantPermissions(["camera", "microphone"], { origin: baseURL });
      const page = await context.newPage();
      const lines = [];
      page.on("console", (message) => {
        lines.push(`[${message.type()}] ${message.text()}`);
        if (lines.length > 40) lines.shift();
      });
      page.on("pageerror", (error) => lines.push(`[pageerror] ${error.message}`));
      // Removing someone and ending the room ask for confirmation.
      page.on("dialog", (dialog) => dialog.accept());
      opened.set(who, { page, lines });
      return page;
    });
    if (testInfo.status !== testInfo.expectedStatus) {
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const [who, { page, lines }] of opened) {
        await page.screenshot({ path: `${ARTIFACTS}failure-${who}.png` }).catch(() => {});
        if (lines.length) await testInfo.attach(`console-${who}`, { body: lines.join("\n"), contentType: "text/plain" });
        if (lines.length) console.error(`--- ${who}'s browser console (last ${lines.length}) ---\n${lines.join("\n")}`);
      }
    }
    for (const { page } of opened.values()) await page.context().close();
  },
});
