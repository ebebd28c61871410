// @ts-check
// The notification bell in the header: the unread count and the list, kept live
// by the lobby socket (`/ws?token=` without a room), which every open tab of the
// user has while signed in, in a meeting or not.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { userZone } from "./settings-view.js";
import { Signaling } from "./signaling.js";
import { formatInZone } from "./time.js";
import { el, replace, toast } from "./ui.js";

/** @typedef {{id: string, kind: string, createdAt: string, readAt: string | null, payload: any}} Notification */

/**
 * What a notification says, in the user's time zone.
 * @param {Notification} notification @param {string} zone
 */
export function notificationText({ kind, payload }, zone) {
  const p = payload ?? {};
  const room = p.room?.name ?? "a meeting";
  const actor = p.actor?.name ?? "Someone";
  const when = p.scheduledAt ? formatInZone(p.scheduledAt, zone) : "";
  switch (kind) {
    case "room_invitation":
      return `${actor} invited you to ${room}${when ? ` on ${when}` : ""}`;
    case "invitation_accepted":
      return `${actor} accepted your invitation to ${room}`;
    case "invitation_declined":
      return `${actor} declined your invitation to ${room}`;
    case "meeting_reminder":
      return `Reminder: ${room} starts ${when || "soon"}${p.late ? " (sent late)" : ""}`;
    case "meeting_started":
      return `${room} has started`;
    case "meeting_rescheduled":
      return `${room} moved to ${when || "a new time"}`;
    case "meeting_cancelled":
      return `${room} was cancelled`;
    case "contact_added":
      return `${actor} added you as a contact`;
    case "removed_from_room":
      return `You were removed from ${room}`;
    default:
      return kind.replace(/_/g, " ");
  }
}

/** The room a notification is about, if any. @param {Notification} notification */
function roomOf({ payload }) {
  return payload?.room?.id ?? null;
}

export class Bell {
  /**
   * @param {HTMLElement} box where the bell goes (in the header)
   * @param {(roomId: string) => void} openRoom
   */
  constructor(box, openRoom) {
    this.box = box;
    this.openRoom = openRoom;
    this.count = 0;
    this.badge = el("span", { id: "bell-count", class: "badge", hidden: true }, "0");
    this.list = el("ul", { id: "bell-list", class: "notifications" });
    this.panel = el(
      "div",
      { id: "bell-panel", class: "bell-panel", hidden: true },
      el(
        "div",
        { class: "row" },
        el("strong", {}, "Notifications"),
        el("button", { type: "button", class: "link", id: "bell-read-all", onclick: () => this.readAll() }, "Mark all read"),
      ),
      this.list,
    );
    this.button = el(
      "button",
      { type: "button", id: "bell", class: "bell", "aria-label": "Notifications", onclick: () => this.toggle() },
      "🔔",
      this.badge,
    );
    replace(box, el("div", { class: "bell-box" }, this.button, this.panel));
    this.socket = new Signaling({
      roomId: null,
      prepare: () => api.freshToken(),
      onMessage: (message) => {
        if (message?.type === "notification") this.arrived(message.payload);
      },
      // (Re)connected: what came while the socket was away is in the list.
      onState: (state) => {
        if (state === "open") this.refresh();
      },
    });
    this.socket.connect();
  }

  stop() {
    this.socket.stop();
    replace(this.box);
  }

  setCount(count) {
    this.count = Math.max(0, count);
    this.badge.textContent = String(this.count);
    this.badge.hidden = this.count === 0;
  }

  async refresh() {
    try {
      this.setCount(await api.unreadCount());
      if (!this.panel.hidden) await this.load();
    } catch {
      // The badge keeps its last count; the next reconnect or open tries again.
    }
  }

  /** @param {Notification} notification */
  async arrived(notification) {
    const zone = await userZone();
    this.setCount(this.count + 1);
    toast(notificationText(notification, zone));
    if (!this.panel.hidden) this.list.prepend(this.item(notification, zone));
  }

  async toggle() {
    this.panel.hidden = !this.panel.hidden;
    if (!this.panel.hidden) await this.load();
  }

  async load() {
    try {
      const [page, zone] = await Promise.all([api.notifications({ limit: 20 }), userZone()]);
      const items = page.data ?? [];
      replace(
        this.list,
        items.length ? items.map((n) => this.item(n, zone)) : el("li", { class: "muted" }, "Nothing yet."),
      );
    } catch (error) {
      replace(this.list, el("li", { class: "form-error" }, describe(error)));
    }
  }

  /** @param {Notification} notification @param {string} zone */
  item(notification, zone) {
    const roomId = roomOf(notification);
    const item = el(
      "li",
      { class: notification.readAt ? "read" : "unread", "data-kind": notification.kind, "data-id": notification.id },
      el("span", { class: "text" }, notificationText(notification, zone)),
      el("span", { class: "muted when" }, formatInZone(notification.createdAt, zone)),
    );
    item.addEventListener("click", async () => {
      if (!notification.readAt) {
        notification.readAt = new Date().toISOString();
        item.className = "read";
        this.setCount(this.count - 1);
        api.markRead(notification.id).catch(() => this.refresh());
      }
      if (roomId) this.openRoom(roomId);
    });
    return item;
  }

  async readAll() {
    try {
      await api.markAllRead();
      this.setCount(0);
      for (const item of this.list.querySelectorAll("li.unread")) item.className = "read";
    } catch (error) {
      toast(describe(error), "error");
    }
  }
}
