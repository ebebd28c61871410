// @ts-check
// Small DOM helpers shared by the views. Text always goes in through textContent
// (never innerHTML): names and chat messages come from other people.

import { describe } from "./errors.js";

/**
 * Builds an element: `el("button", {class: "x", onclick: f, "data-id": 1}, "text", child)`.
 * Attributes starting with "on" become listeners; `null`/`false` ones are skipped.
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name in node && typeof value !== "string") {
      node[name] = value; // properties such as `srcObject`, `muted`, `autoplay`
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the contents of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** A short message in the corner; errors stay longer. */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/** A form's fields as an object of trimmed strings (passwords untrimmed). */
/**
 * @param {HTMLFormElement} form
 * @returns {Record<string, string>} each named field's value, trimmed except passwords
 */
export function formValues(form) {
  /** @type {Record<string, string>} */
  const values = {};
  for (const [name, value] of new FormData(form)) {
    const field = /** @type {HTMLInputElement | null} */ (form.elements.namedItem(name));
    values[name] = field?.type === "password" ? String(value) : String(value).trim();
  }
  return values;
}

/** An inline error line under a form; `error` null hides it. */
export function formError(form, text) {
  let line = form.querySelector(".form-error");
  if (!line) {
    line = el("p", { class: "form-error", role: "alert" });
    form.append(line);
  }
  line.textContent = text ?? "";
  line.hidden = !text;
}

/** Disables a form's controls while `work` runs, so a slow request is not sent twice. */
export async function busy(form, work) {
  const controls = [...form.querySelectorAll("button, input, select, textarea")];
  const before = controls.map((control) => control.disabled);
  controls.forEach((control) => (control.disabled = true));
  try {
    return await work();
  } finally {
    controls.forEach((control, index) => (control.disabled = before[index]));
  }
}

/**
 * On submit, runs `work` with the form's values while the form is `busy`; an
 * error it throws is shown under the form (`describe`), then `onError` runs.
 * @param {HTMLFormElement} form
 * @param {(values: Record<string, string>) => unknown} work
 * @param {((error: unknown) => void) | null} [onError]
 */
export function submitForm(form, work, onError = null) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(form);
    formError(form, null);
    await busy(form, async () => {
      try {
        await work(values);
      } catch (error) {
        formError(form, describe(error));
        onError?.(error);
      }
    });
  });
}

export function formatTime(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatDate(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** The join link of a room, shareable as is. */
export function roomLink(roomId) {
  return `${location.origin}/#/rooms/${roomId}`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Link copied");
  } catch {
    // Clipboard access needs a secure context or permission; show it instead.
    window.prompt("Copy this link", text);
  }
}

/**
 * Fills `box` with what `load()` answers: a list of `item(x)`, the `empty` line,
 * or the error.
 * @template T
 * @param {HTMLElement} box @param {() => Promise<T[]>} load
 * @param {{empty: string, item: (x: T) => Node}} render
 */
export async function fillList(box, load, { empty, item }) {
  try {
    const items = await load();
    replace(box, items.length ? el("ul", { class: "rooms" }, items.map(item)) : el("p", { class: "muted" }, empty));
  } catch (error) {
    replace(box, el("p", { class: "form-error" }, describe(error)));
  }
}
