// @ts-check
// The chat panel: live messages from the socket merged with the stored history
// (`GET /rooms/{id}/chat`), in time order and without duplicates.
//
// A message can reach us twice: once live and once in a history page fetched
// around the same time (on join, after a reconnect). Stored messages have ids;
// live ones may not, so two messages are the same when they have the same id, or
// the same author and text within a few seconds.

import { el, formatTime } from "./ui.js";

const SAME_MESSAGE_WINDOW_MS = 5000;

export class ChatPanel {
  /**
   * @param {HTMLElement} root where the panel goes
   * @param {object} options
   * @param {string} options.selfId
   * @param {(text: string) => boolean} options.onSend answers false when not sent
   * @param {(before: string) => Promise<void>} options.onLoadEarlier
   */
  constructor(root, { selfId, onSend, onLoadEarlier }) {
    this.selfId = selfId;
    this.messages = [];
    this.list = el("ol", { id: "chat-messages", class: "chat-messages", "aria-live": "polite" });
    this.earlier = el("button", { type: "button", class: "link", id: "chat-earlier", hidden: true }, "Load earlier messages");
    this.earlier.addEventListener("click", async () => {
      this.earlier.disabled = true;
      try {
        await onLoadEarlier(this.nextBefore);
      } finally {
        this.earlier.disabled = false;
      }
    });
    this.input = el("input", { id: "chat-input", name: "message", maxlength: 2000, autocomplete: "off", placeholder: "Message everyone" });
    const form = el("form", { id: "chat-form", class: "chat-form" }, this.input, el("button", { type: "submit" }, "Send"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      if (onSend(text)) this.input.value = "";
    });
    root.append(el("section", { class: "chat" }, el("h3", {}, "Chat"), this.earlier, this.list, form));
  }

  /** Adds messages ({id?, userId, username, message, timestamp}); duplicates are skipped. */
  add(messages) {
    let changed = false;
    for (const message of messages) {
      if (!message?.message || this.messages.some((known) => same(known, message))) continue;
      this.messages.push(message);
      changed = true;
    }
    if (!changed) return;
    this.messages.sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.replaceChildren(...this.messages.map((message) => this.render(message)));
    if (atBottom || messages.some((m) => m.userId === this.selfId)) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Where "load earlier" continues from; null hides the button. */
  setNextBefore(cursor) {
    this.nextBefore = cursor ?? null;
    this.earlier.hidden = !this.nextBefore;
  }

  render(message) {
    if (message.system) return el("li", { class: "system" }, message.message);
    const mine = message.userId === this.selfId;
    return el(
      "li",
      { class: mine ? "mine" : null, "data-user-id": message.userId },
      el("div", { class: "meta" }, el("strong", {}, mine ? "You" : message.username || "Guest"), " ", el("time", {}, formatTime(message.timestamp))),
      el("p", { class: "text" }, message.message),
    );
  }

  /** A line from the room itself ("Ayu joined"), not stored anywhere. */
  system(text) {
    this.add([{ system: true, userId: null, message: text, timestamp: new Date().toISOString() }]);
  }
}

function same(a, b) {
  if (a.id != null && b.id != null) return String(a.id) === String(b.id);
  return (
    a.userId === b.userId &&
    a.message === b.message &&
    Math.abs(Date.parse(a.timestamp) - Date.parse(b.timestamp)) < SAME_MESSAGE_WINDOW_MS
  );
}
