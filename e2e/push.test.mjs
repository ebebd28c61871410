// Web push in real headless Chromium, against a running `rapat serve`
// (infra/run-e2e.sh starts one and sets RAPAT_E2E_URL). No real push service is
// reachable from the test, so the push is handed to the service worker through
// the DevTools protocol (`ServiceWorker.deliverPushMessage`), as a push service
// would hand it to the browser:
//
//   a user registers and opens the settings page, which offers the "enable
//   notifications" switch; the service worker (/sw.js) registers for the whole
//   site; a pushed message is shown as a notification with its title, body,
//   link and tag.

import { expect, register, test } from "./fixtures.mjs";

const run = Date.now().toString(36);

test("the service worker registers and shows what is pushed", async ({ openUser, baseURL }) => {
  const page = await openUser("ana");
  const origin = new URL(String(baseURL)).origin;
  await page.context().grantPermissions(["notifications"], { origin });

  await test.step("register and find the switch on the settings page", async () => {
    await page.goto("/");
    await register(page, { first: "Ana", last: "Tester", email: `ana.push.${run}@example.com` });
    await page.click("#settings-link");
    await expect(page.locator("#push-enabled")).toBeVisible();
    await expect(page.locator("#push-enabled")).toBeEnabled();
  });

  await test.step("the switch asks permission and subscribes, or says why it cannot", async () => {
    // Headless Chromium contexts are incognito, where Chromium has no Push API
    // (crbug.com/41124656): then the switch flips back and says why. Where a
    // push service is there, the subscription is registered with the server.
    const registered = [];
    page.on("response", (r) => {
      if (r.url().endsWith("/api/v1/push/subscriptions")) registered.push(r.status());
    });
    await page.click("#push-enabled");
    await expect(page.locator("#push-enabled")).toBeEnabled();
    if (await page.isChecked("#push-enabled")) {
      expect(registered).toEqual([201]);
    } else {
      await expect(page.locator("#push-status")).not.toBeEmpty();
      expect(registered).toEqual([]);
    }
  });

  const scope = await test.step("the service worker registers for the site", async () => {
    const served = await page.request.get("/sw.js");
    expect(served.status()).toBe(200);
    expect(served.headers()["content-type"]).toContain("javascript");
    return page.evaluate(async () => {
      const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await navigator.serviceWorker.ready;
      return registration.scope;
    });
  });
  expect(scope).toBe(`${origin}/`);

  await test.step("a pushed message becomes a notification", async () => {
    const cdp = await page.context().newCDPSession(page);
    const registrationId = await new Promise((resolve) => {
      cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
        const found = registrations.find((r) => r.scopeURL === scope && !r.isDeleted);
        if (found) resolve(found.registrationId);
      });
      cdp.send("ServiceWorker.enable");
    });
    const message = {
      title: "Invitation",
      body: "Hana Tester invited you to Design review",
      url: "/#/rooms/7c9e6679-7425-40de-944b-e07fc1f90ae7",
      notificationId: "0b9c1a4e-6f1e-4d0b-9d8e-3f8f2a1b2c3d",
      kind: "room_invitation",
    };
    await cdp.send("ServiceWorker.deliverPushMessage", { origin, registrationId, data: JSON.stringify(message) });
    await expect
      .poll(() =>
        page.evaluate(async () => {
          const registration = await navigator.serviceWorker.ready;
          const shown = await registration.getNotifications();
          return shown.map((n) => [n.title, n.body, n.data?.url, n.tag]);
        }),
      )
      .toEqual([[message.title, message.body, message.url, message.notificationId]]);
  });
});
