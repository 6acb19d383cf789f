// Frontdesk notifications: the service worker (installable app, Web Push), a sound and a
// browser notification when a conversation is assigned to this agent, and the settings
// page's "notifications on this browser" switch. Plain JS, no build step.
(() => {
  "use strict";

  const configEl = document.getElementById("fd-config");
  const config = configEl ? JSON.parse(configEl.textContent) : null;
  if (!config) return;
  const strings = config.strings || {};
  const csrf = (() => {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"]; }
    catch { return ""; }
  })();
  const canPush = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  const registration = "serviceWorker" in navigator
    ? navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => null)
    : Promise.resolve(null);

  function keyBytes(base64url) {
    const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }
  const sameKey = (a, b) => a && b && a.byteLength === b.byteLength &&
    new Uint8Array(a).every((v, i) => v === b[i]);

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (!response.ok && response.status !== 204) throw new Error(`HTTP ${response.status}`);
  }

  async function currentSubscription() {
    const reg = await registration;
    return reg && reg.pushManager ? reg.pushManager.getSubscription() : null;
  }

  async function subscribe() {
    const reg = await registration;
    if (!reg) throw new Error("no service worker");
    const key = keyBytes(config.pushKey);
    let subscription = await reg.pushManager.getSubscription();
    if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe();  // made for another server key: useless now
      subscription = null;
    }
    if (!subscription) {
      subscription = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    await post("/app/push/subscriptions", { ...subscription.toJSON(), user_agent: navigator.userAgent.slice(0, 300) });
    return subscription;
  }

  async function unsubscribe() {
    const subscription = await currentSubscription();
    if (!subscription) return;
    await post("/app/push/unsubscribe", { endpoint: subscription.endpoint });
    await subscription.unsubscribe();
  }

  // ------------------------------------------------------------ on assignment
  let audio = null;
  function chime() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const now = audio.currentTime;
      for (const [offset, pitch] of [[0, 880], [0.16, 1318.5]]) {
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.frequency.value = pitch;
        gain.gain.setValueAtTime(0.0001, now + offset);
        gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.35);
        tone.connect(gain).connect(audio.destination);
        tone.start(now + offset);
        tone.stop(now + offset + 0.4);
      }
    } catch { /* no audio here: the toast still shows */ }
  }

  function toast(text, href) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = document.createElement(href ? "a" : "div");
    item.className = "toast toast-ok toast-assigned";
    item.textContent = text;
    if (href) item.href = href;
    box.appendChild(item);
    setTimeout(() => item.remove(), 8000);
  }

  document.addEventListener("fd:event", async (e) => {
    const event = e.detail;
    if (!event || event.type !== "conversation.assigned" || !event.data) return;
    const change = (event.data.changes || {}).assignee_id;
    const conversation = event.data.conversation || {};
    if (!Array.isArray(change) || change[1] !== config.userId) return;
    if (event.data.actor_user_id === config.userId) return;  // took it oneself
    const href = `/app/conversations/${conversation.id}`;
    toast(strings.assignedToYou, href);
    document.body.dataset.lastAssigned = String(conversation.id);
    if (config.notifySound) chime();
    // With a push subscription the service worker notifies (also when this tab is in the
    // background); without one, this page does while it is hidden.
    if (!config.notifyAssignments || !("Notification" in window)) return;
    if (Notification.permission !== "granted" || document.visibilityState === "visible") return;
    if (await currentSubscription()) return;
    const note = new Notification(strings.assignedToYou, { tag: `conversation-${conversation.id}`, body: conversation.subject || "" });
    note.onclick = () => { window.focus(); location.href = href; };
  });

  // ------------------------------------------------------------ settings page switch
  const toggle = document.getElementById("push-toggle");
  const status = document.getElementById("push-status");
  async function showState() {
    if (!toggle || !status) return;
    if (!canPush) { status.textContent = strings.pushUnsupported; toggle.hidden = true; return; }
    if (Notification.permission === "denied") { status.textContent = strings.pushBlocked; toggle.hidden = true; return; }
    const on = Boolean(await currentSubscription()) && Notification.permission === "granted";
    status.textContent = on ? strings.pushOn : strings.pushOff;
    toggle.dataset.on = on ? "1" : "0";
    toggle.textContent = on ? toggle.dataset.labelOff : toggle.dataset.labelOn;
    toggle.hidden = false;
  }
  if (toggle) {
    toggle.addEventListener("click", async () => {
      toggle.disabled = true;
      try {
        if (toggle.dataset.on === "1") await unsubscribe();
        else if (await Notification.requestPermission() === "granted") await subscribe();
      } catch { if (status) status.textContent = strings.pushFailed; toggle.disabled = false; return; }
      toggle.disabled = false;
      showState();
    });
    showState();
  }

  // A browser that was subscribed before keeps the server up to date (a new server key,
  // or another agent now signed in on this computer).
  if (canPush && config.notifyAssignments && Notification.permission === "granted") {
    currentSubscription().then((s) => (s ? subscribe() : null)).catch(() => {});
  }
})();
