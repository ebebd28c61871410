// @ts-check
// Sign in and create an account.

import * as api from "./api.js";
import { el, replace, submitForm } from "./ui.js";

/**
 * Renders the sign-in form (or the registration form) into `root`; calls
 * `onSignedIn(user)` once a session exists.
 */
/**
 * @param {HTMLElement} root
 * @param {{onSignedIn: (user: import("./api.js").User) => void, mode?: string, note?: string | null, email?: string | null}} options
 */
export function renderAuth(root, { onSignedIn, mode = "login", note = null, email = null }) {
  const switchTo = (next) => renderAuth(root, { onSignedIn, mode: next, email });
  const form = mode === "login" ? loginForm(onSignedIn) : registerForm(onSignedIn);
  const emailInput = /** @type {HTMLInputElement | null} */ (form.querySelector("input[name=email]"));
  if (email && emailInput) emailInput.value = email;
  replace(
    root,
    el(
      "section",
      { class: "card auth" },
      el("h1", {}, mode === "login" ? "Sign in" : "Create an account"),
      note ? el("p", { class: "note" }, note) : null,
      form,
      mode === "login" ? el("p", { class: "switch" }, el("a", { href: "#/forgot-password", id: "forgot-password" }, "Forgot your password?")) : null,
      el(
        "p",
        { class: "switch" },
        mode === "login" ? "No account yet? " : "Already have an account? ",
        el(
          "button",
          { type: "button", class: "link", id: mode === "login" ? "show-register" : "show-login", onclick: () => switchTo(mode === "login" ? "register" : "login") },
          mode === "login" ? "Create one" : "Sign in",
        ),
      ),
    ),
  );
  form.querySelector("input")?.focus();
}

function field(label, name, type, extra = {}) {
  return el("label", {}, label, el("input", { name, type, required: true, ...extra }));
}

function loginForm(onSignedIn) {
  const form = el(
    "form",
    { id: "login-form" },
    field("Email", "email", "email", { autocomplete: "username" }),
    field("Password", "password", "password", { autocomplete: "current-password" }),
    el("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  submitForm(form, async ({ email, password }) => onSignedIn(await api.login(email, password)));
  return form;
}

function registerForm(onSignedIn) {
  const form = el(
    "form",
    { id: "register-form" },
    el(
      "div",
      { class: "row" },
      field("First name", "firstName", "text", { autocomplete: "given-name", maxlength: 100 }),
      field("Last name", "lastName", "text", { autocomplete: "family-name", maxlength: 100 }),
    ),
    field("Email", "email", "email", { autocomplete: "username" }),
    field("Password", "password", "password", { autocomplete: "new-password", minlength: 8 }),
    el("p", { class: "hint" }, "At least 8 characters, with a letter and a digit or symbol."),
    el("button", { type: "submit", class: "primary" }, "Create account"),
  );
  submitForm(form, async ({ email, password, firstName, lastName }) => {
    await api.register({ email, password, firstName, lastName });
    // Registration makes the account; a login makes the session.
    onSignedIn(await api.login(email, password));
  });
  return form;
}
