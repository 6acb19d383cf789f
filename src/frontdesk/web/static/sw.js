// Frontdesk service worker: shows push notifications of new assignments (the words come
// from the server in the agent's language) and opens the conversation when one is clicked.
// It caches nothing: the workspace is live data, and customers' messages must not stay on
// a shared computer's disk after sign-out.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const title = data.title || "Frontdesk";
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    // A page of the workspace in front of the agent already shows it (and rings, if the
    // agent wants a sound): no second, system-level notification for the same news.
    const seen = windows.some((w) => w.visibilityState === "visible" && w.focused);
    for (const w of windows) w.postMessage({ type: "push", data });
    if (seen) return;
    await self.registration.showNotification(title, {
      body: data.body || "",
      tag: data.tag || undefined,
      lang: data.lang || undefined,
      dir: data.dir || "auto",
      icon: "/app/static/icon-192.png",
      badge: "/app/static/icon-192.png",
      data: { url: data.url || "/app/inbox" },
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL((event.notification.data && event.notification.data.url) || "/app/inbox",
                      self.location.origin);
  if (url.origin !== self.location.origin) return;  // only ever our own pages
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).pathname.startsWith("/app/") && "focus" in w) {
        await w.focus();
        return w.navigate(url.href);
      }
    }
    return self.clients.openWindow(url.href);
  })());
});
