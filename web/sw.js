// The service worker (SPEC §7): shows what rapat pushes and opens the app where a
// notification leads. A classic script; its rules are plain functions so the
// unit test (e2e/unit/sw.test.mjs) runs this very file with a stand-in `self`.
//
// A push message is the JSON the server's push channel sends:
// {title, body, url, notificationId, kind}.

/**
 * What to show for a push message's data (already parsed, or text).
 * @param {any} data
 * @returns {{title: string, options: {body: string, tag?: string, data: {url: string}, icon: string}}}
 */
function noticeFor(data) {
  let message = data;
  if (typeof message === "string") {
    try {
      message = JSON.parse(message);
    } catch {
      message = { body: message };
    }
  }
  message = message && typeof message === "object" ? message : {};
  const url = typeof message.url === "string" && message.url.startsWith("/") ? message.url : "/";
  /** @type {{body: string, tag?: string, data: {url: string}, icon: string}} */
  const options = {
    body: typeof message.body === "string" ? message.body : "",
    data: { url },
    icon: "/favicon.svg",
  };
  // One notification per rapat notification: a repeat replaces, never adds.
  if (typeof message.notificationId === "string") options.tag = message.notificationId;
  const title = typeof message.title === "string" && message.title ? message.title : "rapat";
  return { title, options };
}

/** The push event's data, as JSON when it is, else as text. @param {any} event */
function pushData(event) {
  if (!event.data) return {};
  try {
    return event.data.json();
  } catch {
    return event.data.text();
  }
}

/** Focuses a window of the app already on `url`, else opens one. @param {any} scope @param {string} url */
async function openOrFocus(scope, url) {
  const target = new URL(url, scope.location.origin).href;
  const windows = await scope.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) {
    if (client.url === target && "focus" in client) return client.focus();
  }
  for (const client of windows) {
    if ("navigate" in client && "focus" in client) {
      await client.navigate(target);
      return client.focus();
    }
  }
  return scope.clients.openWindow(target);
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const { title, options } = noticeFor(pushData(event));
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url ?? "/";
  event.waitUntil(openOrFocus(self, url));
});
