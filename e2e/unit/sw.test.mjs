// The service worker (web/sw.js) without a browser: the very file runs in a
// node:vm context with a stand-in `self`, and its push and notificationclick
// handlers are called as a browser would call them (`node --test unit/`).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("../../web/sw.js", import.meta.url), "utf8");

/** Loads sw.js into a fresh worker-like scope; returns its listeners and what it did. */
function loadWorker({ windows = [] } = {}) {
  /** @type {Record<string, Function>} */
  const listeners = {};
  const shown = [];
  const opened = [];
  const self = {
    location: { origin: "https://meet.example.org" },
    addEventListener: (type, listener) => {
      listeners[type] = listener;
    },
    skipWaiting: () => Promise.resolve(),
    registration: {
      showNotification: (title, options) => {
        shown.push({ title, options });
        return Promise.resolve();
      },
    },
    clients: {
      claim: () => Promise.resolve(),
      matchAll: () => Promise.resolve(windows),
      openWindow: (url) => {
        opened.push(url);
        return Promise.resolve(null);
      },
    },
  };
  vm.runInNewContext(SOURCE, { self, URL, JSON });
  return { listeners, shown, opened };
}

/** Calls a listener with an event whose waitUntil promise is awaited. */
async function dispatch(listener, event) {
  const waits = [];
  listener({ ...event, waitUntil: (promise) => waits.push(promise) });
  await Promise.all(waits);
}

const pushOf = (value) => ({
  data: {
    json: () => (typeof value === "string" ? JSON.parse(value) : value),
    text: () => (typeof value === "string" ? value : JSON.stringify(value)),
  },
});

test("a pushed notification is shown with its title, body, link and tag", async () => {
  const worker = loadWorker();
  const message = {
    title: "Invitation",
    body: "Hana invited you to Design review",
    url: "/#/rooms/7c9e6679-7425-40de-944b-e07fc1f90ae7",
    notificationId: "0b9c1a4e-6f1e-4d0b-9d8e-3f8f2a1b2c3d",
    kind: "room_invitation",
  };
  await dispatch(worker.listeners.push, pushOf(message));
  assert.equal(worker.shown.length, 1);
  assert.equal(worker.shown[0].title, "Invitation");
  assert.equal(worker.shown[0].options.body, "Hana invited you to Design review");
  assert.equal(worker.shown[0].options.data.url, message.url);
  assert.equal(worker.shown[0].options.tag, message.notificationId);
});

test("a push that is not rapat's JSON still shows something, and never links off the site", async () => {
  const worker = loadWorker();
  await dispatch(worker.listeners.push, pushOf("plain text, not JSON"));
  await dispatch(worker.listeners.push, pushOf({ title: "x", url: "https://evil.example/" }));
  await dispatch(worker.listeners.push, { data: null });
  assert.deepEqual(
    worker.shown.map(({ title, options }) => [title, options.body, options.data.url]),
    [
      ["rapat", "plain text, not JSON", "/"],
      ["x", "", "/"],
      ["rapat", "", "/"],
    ],
  );
});

test("a click focuses a window already there, or opens one at the notification's link", async () => {
  const focused = [];
  const url = "https://meet.example.org/#/rooms/7c9e6679-7425-40de-944b-e07fc1f90ae7";
  const there = { url, focus: () => focused.push(url) };
  const closed = [];
  const click = (link) => ({ notification: { data: { url: link }, close: () => closed.push(link) } });

  const withWindow = loadWorker({ windows: [there] });
  await dispatch(withWindow.listeners.notificationclick, click("/#/rooms/7c9e6679-7425-40de-944b-e07fc1f90ae7"));
  assert.deepEqual(focused, [url]);
  assert.deepEqual(withWindow.opened, []);

  const without = loadWorker();
  await dispatch(without.listeners.notificationclick, click("/"));
  assert.deepEqual(without.opened, ["https://meet.example.org/"]);
  assert.equal(closed.length, 2);
});
