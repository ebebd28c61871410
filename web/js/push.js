// @ts-check
// Web push in this browser (SPEC §7): the service worker (`/sw.js`) that shows
// pushed notifications, and subscribing it with the deployment's VAPID key.
// The settings page's "enable notifications" switch calls `enablePush` and
// `disablePush`; which kinds go by push is the per-kind "Push" column.

import * as api from "./api.js";

/** Whether this browser can do web push at all (a secure context with the APIs). */
export function pushSupported() {
  return (
    typeof window !== "undefined" &&
    window.isSecureContext &&
    "serviceWorker" in navigator &&
    "PushManager" in window &&
    "Notification" in window
  );
}

/** The service worker's registration, registering it when needed. */
export async function serviceWorker() {
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  return registration;
}

/**
 * A base64url string as the bytes `applicationServerKey` wants.
 * @param {string} text
 */
export function base64UrlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** This browser's subscription, if it has one. */
export async function currentSubscription() {
  if (!pushSupported()) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

/**
 * Asks permission, subscribes this browser and registers the subscription with
 * the server. Throws an Error whose message says what went wrong.
 */
export async function enablePush() {
  if (!pushSupported()) throw new Error("This browser cannot receive push notifications here.");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications are blocked for this site in the browser.");
  const registration = await serviceWorker();
  const key = await api.vapidPublicKey();
  let subscription = await registration.pushManager.getSubscription();
  // A subscription made with another key (the deployment's changed) cannot be used.
  const current = subscription?.options?.applicationServerKey;
  if (subscription && current && !sameBytes(new Uint8Array(current), base64UrlBytes(key))) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: base64UrlBytes(key),
  });
  await api.pushSubscribe(subscription.toJSON());
  return subscription;
}

/** Unsubscribes this browser, here and at the server. */
export async function disablePush() {
  const subscription = await currentSubscription();
  if (!subscription) return;
  const { endpoint } = subscription;
  await subscription.unsubscribe();
  try {
    await api.pushUnsubscribe(endpoint);
  } catch (error) {
    // Already gone at the server (the push service dropped it): nothing to undo.
    if (!(error instanceof api.ApiError && error.status === 404)) throw error;
  }
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
