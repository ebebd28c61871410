// @ts-check
// The pages the account emails link to: asking for a password reset, choosing
// a new password with the emailed token, and confirming an email address.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { el, replace, submitForm } from "./ui.js";

/** The `token` of a `#/page?token=...` link, or null. */
export function tokenFromHash() {
  const query = location.hash.split("?")[1] ?? "";
  return new URLSearchParams(query).get("token");
}

/** @param {HTMLElement} root */
export function renderForgotPassword(root) {
  const form = el(
    "form",
    { id: "forgot-password-form" },
    el("label", {}, "Email", el("input", { name: "email", type: "email", required: true, autocomplete: "username" })),
    el("button", { type: "submit", class: "primary" }, "Email me a link"),
  );
  const card = el(
    "section",
    { class: "card auth" },
    el("h1", {}, "Forgot your password?"),
    el("p", { class: "note" }, "We email a link to choose a new one. It works once, for 30 minutes."),
    form,
    el("p", { class: "switch" }, el("a", { href: "#/" }, "Back to sign in")),
  );
  submitForm(form, async ({ email }) => {
    await api.requestPasswordReset(email);
    // The same words whether or not the address has an account: the server does not say.
    replace(form, el("p", { id: "reset-requested" }, `If an account uses ${email}, a link is on its way there.`));
  });
  replace(root, card);
  form.querySelector("input")?.focus();
}

/** @param {HTMLElement} root @param {string} token */
export function renderResetPassword(root, token) {
  const form = el(
    "form",
    { id: "reset-password-form" },
    el(
      "label",
      {},
      "New password",
      el("input", { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" }),
    ),
    el("p", { class: "hint" }, "At least 8 characters, with a letter and a digit or symbol."),
    el("button", { type: "submit", class: "primary" }, "Set the new password"),
  );
  submitForm(form, async ({ password }) => {
    await api.confirmPasswordReset(token, password);
    replace(
      form,
      el("p", { id: "password-reset-done" }, "Your password is changed and every session of the account has ended. "),
      el("a", { href: "#/" }, "Sign in"),
    );
  });
  replace(root, el("section", { class: "card auth" }, el("h1", {}, "Choose a new password"), form));
  form.querySelector("input")?.focus();
}

/** @param {HTMLElement} root @param {string} token */
export async function renderVerifyEmail(root, token) {
  const status = el("p", { id: "verify-email-status" }, "Confirming your email address…");
  replace(root, el("section", { class: "card auth" }, el("h1", {}, "Email address"), status, el("a", { href: "#/" }, "Continue")));
  try {
    await api.verifyEmail(token);
    status.textContent = "Your email address is confirmed.";
  } catch (error) {
    status.textContent = describe(error);
  }
}
