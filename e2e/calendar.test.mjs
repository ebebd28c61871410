// Scheduling in real headless Chromium, against a running `rapat serve`
// (infra/run-e2e.sh starts one and sets RAPAT_E2E_URL):
//
//   two users register; the invitee sets their time zone and a long reminder
//   lead on the settings page; the host schedules a meeting and invites them by
//   email; the invitee's bell shows the invitation live (no reload); they accept,
//   the reminder arrives in the bell, the upcoming list shows the meeting in their
//   own time zone, and they join it from there.

import { expect, register, test } from "./fixtures.mjs";

const run = Date.now().toString(36);
const LIVE = 20_000;

/** @typedef {import("@playwright/test").Page} Page */

/** The bell's unread count as a number (0 when the badge is hidden). @param {Page} page */
async function unread(page) {
  const badge = page.locator("#bell-count");
  return (await badge.isHidden()) ? 0 : Number(await badge.textContent());
}

test("schedule, invite, a live bell, accept, the reminder, join from upcoming", async ({ openUser }) => {
  const host = await openUser("host");
  const guest = await openUser("guest");
  const guestEmail = `guest.${run}@example.com`;

  await test.step("both register; the guest's lobby socket is open", async () => {
    for (const [page, first, email] of [
      [host, "Hana", `host.${run}@example.com`],
      [guest, "Gita", guestEmail],
    ]) {
      await page.goto("/");
      await register(page, { first, last: "Tester", email });
    }
    await expect(guest.locator("#bell")).toBeVisible();
  });

  await test.step("the guest works in Jakarta and wants reminders a day ahead", async () => {
    await guest.click("#settings-link");
    await guest.locator("#settings-form").waitFor();
    await guest.selectOption("#settings-timezone", "Asia/Jakarta");
    await guest.fill("#settings-reminder", "1440");
    await guest.click("#settings-form button[type=submit]");
    await expect(guest.locator(".toast", { hasText: "Settings saved" })).toBeVisible();
    await guest.goto("/#/");
  });

  // The next quarter hour in UTC (the host's default zone): at most 16 minutes away,
  // so the guest's reminder, a day ahead, is due at once.
  await test.step("the host schedules a meeting and invites the guest by email", async () => {
    await host.locator("#schedule-form").waitFor();
    await host.fill("#schedule-form input[name=name]", `Planning ${run}`);
    await host.fill("#schedule-emails", guestEmail);
    await host.click("#schedule-form button[type=submit]");
    await expect(host.locator(".toast", { hasText: "Scheduled for" })).toBeVisible();
    await expect(host.locator("#upcoming li", { hasText: `Planning ${run}` })).toBeVisible();
  });

  await test.step("the guest's bell shows the invitation without a reload", async () => {
    await expect.poll(() => unread(guest), { timeout: LIVE }).toBeGreaterThanOrEqual(1);
    await guest.click("#bell");
    await expect(guest.locator('#bell-list li[data-kind="room_invitation"]')).toContainText(`Planning ${run}`);
    await guest.click("#bell");
  });

  await test.step("the guest accepts; the reminder arrives", async () => {
    await guest.reload();
    const invitation = guest.locator("#my-invitations li", { hasText: `Planning ${run}` });
    await invitation.locator("button.accept").click();
    await expect(guest.locator(".toast", { hasText: "Accepted" })).toBeVisible();
    await expect(invitation).toHaveCount(0);
    await expect
      .poll(
        async () => {
          await guest.click("#bell");
          const reminders = await guest.locator('#bell-list li[data-kind="meeting_reminder"]').count();
          await guest.click("#bell");
          return reminders;
        },
        { timeout: LIVE },
      )
      .toBe(1);
  });

  await test.step("the upcoming list shows Jakarta time, and the guest joins from it", async () => {
    const entry = guest.locator("#upcoming li", { hasText: `Planning ${run}` });
    await expect(entry).toBeVisible();
    const scheduledAt = await entry.getAttribute("data-room-id").then((id) =>
      guest.evaluate(async (roomId) => {
        const token = JSON.parse(sessionStorage.getItem("rapat.session") ?? "{}").token;
        const response = await fetch(`/api/v1/rooms/${roomId}`, { headers: { authorization: `Bearer ${token}` } });
        return (await response.json()).data.scheduledAt;
      }, id),
    );
    const jakarta = new Intl.DateTimeFormat("en", { timeZone: "Asia/Jakarta", timeStyle: "short" }).format(new Date(scheduledAt));
    await expect(entry).toContainText(jakarta);
    await entry.locator("button.primary").click();
    await guest.locator("#join-form").waitFor();
    await guest.click("#join-button");
    await guest.locator("#connection-status[data-state=open]").waitFor();
  });
});
