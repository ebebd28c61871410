// The account emails' pages in real headless Chromium, against a running
// `rapat serve` (infra/run-e2e.sh starts one, without a mail server: the emails
// themselves are tested in the gateway's email tests against a real SMTP server):
//
//   "Forgot your password?" asks for an address and answers the same whether
//   or not it has an account; a reset link with a token that is no good says so
//   and changes nothing; a verification link likewise; an invitation's
//   registration link opens the registration form with its address filled in.

import { expect, test } from "./fixtures.mjs";

const run = Date.now().toString(36);

test("the pages the account emails link to", async ({ openUser }) => {
  const page = await openUser("ana");

  await test.step("forgot password: the same answer for any address", async () => {
    await page.goto("/");
    await page.click("#forgot-password");
    const email = `nobody.${run}@example.com`;
    await page.fill("#forgot-password-form input[name=email]", email);
    await page.click("#forgot-password-form button[type=submit]");
    await expect(page.locator("#reset-requested")).toContainText(email);
  });

  await test.step("a reset link whose token is no good says so", async () => {
    await page.goto("/#/reset-password?token=00000000-0000-0000-0000-000000000000.deadbeef");
    await page.fill("#reset-password-form input[name=password]", "another-Passw0rd!");
    await page.click("#reset-password-form button[type=submit]");
    await expect(page.locator("#reset-password-form .form-error")).toBeVisible();
    await expect(page.locator("#password-reset-done")).toHaveCount(0);
  });

  await test.step("a verification link whose token is no good says so", async () => {
    await page.goto("/#/verify-email?token=00000000-0000-0000-0000-000000000000.deadbeef");
    await expect(page.locator("#verify-email-status")).not.toHaveText(/Confirming/);
    await expect(page.locator("#verify-email-status")).not.toHaveText("Your email address is confirmed.");
  });

  await test.step("an invitation's link opens registration with the address filled in", async () => {
    const email = `invited.${run}@example.com`;
    await page.goto(`/#/register?email=${encodeURIComponent(email)}`);
    await expect(page.locator("#register-form input[name=email]")).toHaveValue(email);
  });
});
