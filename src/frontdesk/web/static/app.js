// Frontdesk agent workspace: the live parts (real-time socket, presence), keyboard
// shortcuts, and small behaviours htmx does not cover. Plain JS, no build step.
// Everything the server renders arrives through htmx; this file only decides *when* to ask.
(() => {
  "use strict";

  document.documentElement.classList.add("js");
  const configEl = document.getElementById("fd-config");
  const config = configEl ? JSON.parse(configEl.textContent) : null;
  const strings = (config && config.strings) || {};
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const fmt = (s, values) => s.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

  // ---------------------------------------------------------------- list helpers
  const rowsEl = () => document.getElementById("rows");
  const listParams = () => (rowsEl() ? rowsEl().dataset.params || "" : "");
  const openConversationId = () => {
    const el = document.getElementById("conversation");
    return el ? Number(el.dataset.conversationId) : null;
  };

  // Rows are ordered like the service orders them: each row's data-sort key, descending
  // (newest activity, priority) or ascending (oldest activity, waiting longest) as the
  // list's data-sort-dir says.
  const ascending = () => (rowsEl() ? rowsEl().dataset.sortDir === "asc" : false);
  const before = (a, b) => (ascending() ? a < b : a > b);
  function placeRow(li) {
    const list = rowsEl();
    if (!list) return;
    const key = li.dataset.sort || "";
    const more = list.querySelector(":scope > li.more");
    for (const other of $$(":scope > li.row", list)) {
      if (other !== li && before(key, other.dataset.sort || "")) {
        list.insertBefore(li, other);
        return;
      }
    }
    // Older than every loaded row: it belongs on a later page unless this is the last one.
    if (more) { li.remove(); return; }
    list.appendChild(li);
  }

  function sortRows() {
    const list = rowsEl();
    if (!list) return;
    const rows = $$(":scope > li.row", list);
    const sign = ascending() ? 1 : -1;
    const sorted = [...rows].sort((a, b) => {
      const x = a.dataset.sort || "", y = b.dataset.sort || "";
      return x === y ? 0 : (x < y ? -sign : sign);
    });
    if (sorted.some((r, i) => r !== rows[i])) {
      const more = list.querySelector(":scope > li.more");
      for (const r of sorted) list.insertBefore(r, more);
    }
  }

  // Unread markers are the server's (conversations.reads: per agent, kept across reloads,
  // tabs and devices): rows arrive with class "unread". This page reads the conversation
  // it shows while the tab is visible: when it opens, when its thread is redrawn (a new
  // message), when the tab comes back to the front. The agent's other tabs hear the
  // private conversation.read event and update their row.
  const csrf = () => {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; }
    catch { return ""; }
  };
  const readingHere = (id) => id === openConversationId() && document.visibilityState === "visible";
  function newestShownMessage() {
    let newest = 0;
    for (const el of $$('#thread [id^="msg-"]')) newest = Math.max(newest, Number(el.id.slice(4)) || 0);
    return newest;
  }
  function readOpenConversation() {
    const id = openConversationId();
    if (!id || !config || !readingHere(id)) return;
    const li = document.getElementById(`row-${id}`);
    if (li) li.classList.remove("unread");
    const newest = newestShownMessage();
    const body = new URLSearchParams({ up_to: newest ? String(newest) : "" });
    fetch(`/app/conversations/${id}/read`, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), "HX-Request": "true" },
    }).catch(() => {});
  }
  document.addEventListener("visibilitychange", readOpenConversation);

  function markActive() {
    const id = openConversationId();
    for (const li of $$("li.row")) {
      const active = Number(li.dataset.id) === id;
      li.classList.toggle("is-active", active);
      const link = li.querySelector(".row-link");
      if (link) { if (active) link.setAttribute("aria-current", "true"); else link.removeAttribute("aria-current"); }
    }
  }

  async function refreshRow(id, { isNew = false } = {}) {
    const url = `/app/conversations/${id}/row?${listParams()}`;
    let response;
    try {
      response = await fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
    } catch { return; }
    if (response.status === 204 || response.status === 404) {
      for (const stale of $$(`li.row[data-id="${id}"]`)) stale.remove();
      return;
    }
    if (!response.ok) return;
    const html = (await response.text()).trim();
    // Look for the row only now: two events of one conversation (created, then its first
    // message) refresh it concurrently, and the other refresh may have inserted it while
    // this one awaited the network.
    const existing = $$(`li.row[data-id="${id}"]`);
    const template = document.createElement("template");
    template.innerHTML = html;
    const li = template.content.querySelector("li.row");
    if (!li || !rowsEl()) return;
    if (existing.length) {
      const check = existing[0].querySelector(".row-check");
      if (check && check.checked) li.querySelector(".row-check").checked = true;
      existing[0].replaceWith(li);
      for (const duplicate of existing.slice(1)) duplicate.remove();
    } else rowsEl().prepend(li);
    placeRow(li);
    if (!li.isConnected) return;
    window.htmx && htmx.process(li);
    if (readingHere(id)) li.classList.remove("unread");  // being read here right now
    if (id === openConversationId()) li.classList.add("is-active");
    if (isNew) { li.classList.remove("is-new"); void li.offsetWidth; li.classList.add("is-new"); }
    renderPresence();
    updateBulk();
  }

  let countsTimer = null;
  function refreshCounts() {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(() => {
      if (document.getElementById("nav-views") && window.htmx) {
        htmx.ajax("GET", `/app/inbox/counts?${listParams()}`, { target: "#nav-views", swap: "outerHTML" });
      }
    }, 400);
  }

  function threadAtBottom(thread) {
    return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
  }
  function scrollThreadToEnd() {
    const thread = document.getElementById("thread");
    if (thread) thread.scrollTop = thread.scrollHeight;
  }

  let stickToBottom = true;
  function refreshThread(id) {
    const thread = document.getElementById("thread");
    if (!thread || !window.htmx) return;
    stickToBottom = threadAtBottom(thread);
    // Back to the oldest message on screen: earlier pages the agent opened stay open.
    const oldest = thread.querySelector('[id^="msg-"]');
    const from = oldest ? `?from=${oldest.id.slice(4)}` : "";
    htmx.ajax("GET", `/app/conversations/${id}/thread${from}`, { target: "#thread", swap: "outerHTML" });
  }
  // "Show earlier messages" puts a page above what is read: keep the reader's place.
  let earlierAnchor = null;
  document.addEventListener("htmx:beforeSwap", (e) => {
    const target = e.detail.target;
    const thread = target && target.classList && target.classList.contains("thread-earlier") && target.closest("#thread");
    if (thread) earlierAnchor = { thread, fromBottom: thread.scrollHeight - thread.scrollTop };
  });
  function keepEarlierAnchor() {
    const { thread, fromBottom } = earlierAnchor;
    earlierAnchor = null;
    // The page's last day may be the day the thread already started with: one line for it.
    let previous = null;
    for (const sep of thread.querySelectorAll(".day-sep")) {
      if (previous && previous.textContent === sep.textContent) sep.remove(); else previous = sep;
    }
    thread.scrollTop = thread.scrollHeight - fromBottom;
  }
  function refreshHead(id) {
    const head = document.getElementById("conv-head");
    // Never pull the controls from under someone using them (an open menu, a half-typed tag).
    if (!head || !window.htmx || head.contains(document.activeElement) || head.querySelector("details[open]")) return;
    htmx.ajax("GET", `/app/conversations/${id}/head?${listParams()}`, { target: "#conv-head", swap: "outerHTML" });
  }

  // ---------------------------------------------------------------- real-time socket
  const live = document.getElementById("live-status");
  function setLive(state) {
    if (!live) return;
    live.dataset.state = state;
    const text = live.querySelector(".live-text");
    if (text) text.textContent = strings[state === "live" ? "live" : state === "offline" ? "offline" : "connecting"] || state;
  }

  let socket = null;
  let retry = 0;
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function connect() {
    if (!config) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // The session cookie authenticates the socket: the page never holds an API token.
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/realtime`);
    socket.addEventListener("message", (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame.type === "ready") {
        const resumed = retry > 0;
        retry = 0;
        setLive("live");
        announcePresence();
        if (resumed) resync();
      } else if (frame.type === "event" && frame.event) {
        onEvent(frame.event);
      }
    });
    socket.addEventListener("close", () => {
      setLive("offline");
      socket = null;
      const delay = Math.min(15000, 500 * 2 ** retry) * (0.7 + Math.random() * 0.6);
      retry += 1;
      setTimeout(connect, delay);
    });
  }

  // After a disconnect events may have been missed: redraw what is on screen.
  function resync() {
    const id = openConversationId();
    if (id) { refreshThread(id); refreshHead(id); }
    if (rowsEl() && window.htmx) {
      htmx.ajax("GET", `/app/inbox?${listParams()}`, { target: "#list-results", swap: "innerHTML" });
    }
    refreshCounts();
  }

  function onEvent(event) {
    // Other modules (notify.js: sounds and notifications) hear every event too.
    document.dispatchEvent(new CustomEvent("fd:event", { detail: event }));
    if (event.type === "presence") { onPresence(event.data); return; }
    const conversation = event.data && event.data.conversation;
    if (!conversation || typeof conversation.id !== "number") return;
    const id = conversation.id;
    if (event.type === "conversation.read") {  // this agent's own, from any of their tabs
      const li = document.getElementById(`row-${id}`);
      if (li) li.classList.toggle("unread", !!event.data.unread && !readingHere(id));
      return;
    }
    const isOpen = id === openConversationId();
    const incoming = event.type === "message.created" && event.data.message &&
      event.data.message.message_type === "incoming";
    refreshRow(id, { isNew: event.type === "conversation.created" || incoming });
    // This page's own actions already drew their result (the action's response); redrawing
    // from the event too could land on top of the next action's response with older state.
    const mine = config && event.data.actor_user_id === config.userId;
    if (isOpen && !mine) {
      if (event.type === "message.created") refreshThread(id);
      else { refreshHead(id); refreshThread(id); }
    }
    refreshCounts();
  }

  // ---------------------------------------------------------------- bulk selection
  // Rows are ticked with their checkbox (shift-click ticks a range), `x` on the row the
  // keyboard is on, or "select all"; the bulk bar's forms send the ticked ids.
  const rowChecks = () => $$("#rows > li.row .row-check");
  const checkedRows = () => rowChecks().filter((c) => c.checked);
  let lastChecked = null;

  function updateBulk() {
    const bar = document.getElementById("bulk-bar");
    if (!bar) return;
    const checks = rowChecks();
    const n = checks.filter((c) => c.checked).length;
    const actions = document.getElementById("bulk-actions");
    if (actions) actions.hidden = n === 0;
    const count = document.getElementById("bulk-count");
    if (count) count.textContent = n ? fmt(bar.dataset.labelSelected || "{count}", { count: n }) : "";
    const all = document.getElementById("select-all");
    if (all) { all.checked = n > 0 && n === checks.length; all.indeterminate = n > 0 && n < checks.length; }
    for (const c of checks) c.closest("li.row").classList.toggle("is-checked", c.checked);
  }

  document.addEventListener("click", (e) => {
    const box = e.target.closest && e.target.closest(".row-check");
    if (!box) return;
    if (e.shiftKey && lastChecked && lastChecked !== box && lastChecked.isConnected) {
      const checks = rowChecks();
      const a = checks.indexOf(lastChecked), b = checks.indexOf(box);
      if (a >= 0 && b >= 0) for (const c of checks.slice(Math.min(a, b), Math.max(a, b) + 1)) c.checked = box.checked;
    }
    lastChecked = box;
    updateBulk();
  });
  document.addEventListener("change", (e) => {
    if (e.target.id !== "select-all") return;
    for (const c of rowChecks()) c.checked = e.target.checked;
    updateBulk();
  });

  function toggleCurrentRow() {
    const row = $("#rows > li.row.is-selected") || $("#rows > li.row.is-active");
    const box = row && row.querySelector(".row-check");
    if (!box) return;
    box.checked = !box.checked;
    lastChecked = box;
    updateBulk();
  }

  function submitBulk(name) {
    const form = document.querySelector(`form[data-bulk="${name}"]`);
    if (!form) return false;
    if (window.htmx) htmx.process(form);
    form.requestSubmit();
    return true;
  }

  // ---------------------------------------------------------------- presence
  // conversation id -> Map(user id -> {name, state, at})
  const presence = new Map();
  const PRESENCE_TTL = 45000;
  let announced = null;     // the conversation this page last said it was viewing
  let myState = "viewing";
  let typingTimer = null;

  function announcePresence() {
    const id = openConversationId();
    if (announced && announced !== id) send({ type: "presence", conversation_id: announced, state: "left" });
    announced = id;
    if (id) send({ type: "presence", conversation_id: id, state: myState });
  }

  function onPresence(data) {
    if (!data || !data.user || !data.conversation) return;
    if (config && data.user.id === config.userId) return;
    const id = data.conversation.id;
    const people = presence.get(id) || new Map();
    // Someone new on the conversation open here: tell them we are here too, or they would
    // only learn it at our next heartbeat. (They answer us once: it converges.)
    if (data.state !== "left" && !people.has(data.user.id) && id === openConversationId()) {
      send({ type: "presence", conversation_id: id, state: myState });
    }
    if (data.state === "left") people.delete(data.user.id);
    else people.set(data.user.id, { name: data.user.name, state: data.state, at: Date.now() });
    if (people.size) presence.set(id, people); else presence.delete(id);
    renderPresence();
  }

  function renderPresence() {
    const now = Date.now();
    for (const [id, people] of presence) {
      for (const [uid, p] of people) if (now - p.at > PRESENCE_TTL) people.delete(uid);
      if (!people.size) presence.delete(id);
    }
    for (const el of $$("[data-presence-for]")) {
      const people = presence.get(Number(el.dataset.presenceFor));
      el.textContent = "";
      if (people && people.size) {
        const names = [...people.values()].map((p) => p.name).join(", ");
        el.title = fmt(strings.viewing || "{name} is viewing", { name: names });
        const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        svg.setAttribute("class", "icon icon-xs");
        svg.setAttribute("aria-hidden", "true");
        const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
        use.setAttribute("href", "#i-eye");
        svg.appendChild(use);
        el.append(svg, document.createTextNode(names));
      }
    }
    const banner = document.getElementById("presence");
    if (!banner) return;
    const people = presence.get(openConversationId());
    if (!people || !people.size) { banner.textContent = ""; delete banner.dataset.state; return; }
    const replying = [...people.values()].filter((p) => p.state === "replying");
    const list = replying.length ? replying : [...people.values()];
    const key = replying.length ? "replying" : "viewing";
    banner.dataset.state = key;
    banner.textContent = fmt(strings[key] || "{name}", { name: list.map((p) => p.name).join(", ") });
  }

  function setMyState(state) {
    if (state === myState) return;
    myState = state;
    const id = openConversationId();
    if (id) send({ type: "presence", conversation_id: id, state });
  }

  setInterval(() => { if (document.visibilityState === "visible") announcePresence(); renderPresence(); }, 20000);
  window.addEventListener("pagehide", () => {
    if (announced) send({ type: "presence", conversation_id: announced, state: "left" });
  });

  document.addEventListener("input", (e) => {
    if (e.target.id !== "composer-text") return;
    setMyState(e.target.value.trim() ? "replying" : "viewing");
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => setMyState("viewing"), 15000);
  });

  // ---------------------------------------------------------------- htmx glue
  document.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    if (!target) return;
    if (earlierAnchor) { keepEarlierAnchor(); return; }
    if (target.id === "pane" || target.closest("#pane") || target.id === "thread") {
      if (target.id === "pane") { myState = "viewing"; stickToBottom = true; }
      if (stickToBottom || target.id === "pane") scrollThreadToEnd();
    }
  });
  document.addEventListener("htmx:afterSettle", (e) => {
    const target = e.detail.target;
    if (target && (target.id === "pane")) {
      announcePresence();
      markActive();
      readOpenConversation();
      closeNav();
      const main = document.getElementById("main");
      // Focus the thread so screen readers land in the conversation and j/k keep working.
      if (main && !document.activeElement.closest("#pane")) document.getElementById("thread")?.focus({ preventScroll: true });
    }
    if (target && target.id === "thread") readOpenConversation();  // new messages shown
    if (target && (target.id === "list-region" || target.id === "list-results" || target.closest?.("#rows"))) {
      markActive(); renderPresence(); updateBulk();
    }
    sortRows();
  });
  // Actions that redraw this thread (a reply, a status change) keep its earlier pages open.
  document.addEventListener("htmx:configRequest", (e) => {
    const thread = document.getElementById("thread");
    const oldest = thread && thread.querySelector('[id^="msg-"]');
    if (oldest && e.detail.path.startsWith(`/app/conversations/${thread.dataset.conversationId}/`)) {
      e.detail.headers["X-Thread-From"] = oldest.id.slice(4);
    }
  });
  document.addEventListener("htmx:oobAfterSwap", () => { sortRows(); markActive(); });
  document.addEventListener("htmx:afterRequest", (e) => {
    const form = e.detail.elt;
    if (e.detail.successful && form instanceof HTMLFormElement && form.hasAttribute("data-reset-on-success")) {
      const text = form.querySelector("textarea");
      if (text) text.value = "";
      setMyState("viewing");
      stickToBottom = true;
    }
  });
  document.addEventListener("htmx:beforeRequest", (e) => {
    // A row clicked: show it selected at once, before the pane arrives.
    const li = e.detail.elt.closest && e.detail.elt.closest("li.row");
    if (li) { for (const r of $$("li.row.is-active")) r.classList.remove("is-active"); li.classList.add("is-active"); }
  });
  // Toasts disappear on their own.
  new MutationObserver(() => {
    for (const t of $$("#toasts .toast:not([data-timed])")) {
      t.dataset.timed = "1";
      setTimeout(() => t.remove(), 6000);
    }
  }).observe(document.getElementById("toasts") || document.body, { childList: true });
  for (const t of $$("#toasts .toast")) { t.dataset.timed = "1"; setTimeout(() => t.remove(), 6000); }

  // Composer: placeholder follows reply/note; Ctrl+Enter sends.
  document.addEventListener("change", (e) => {
    const t = e.target;
    if (t.name === "mode" && t.closest("#composer")) {
      const area = $("#composer-text");
      if (area) area.placeholder = t.value === "note" ? area.dataset.placeholderNote : area.dataset.placeholderReply;
    }
    if (t.matches("select[data-autosubmit]")) t.form.requestSubmit();
  });

  // Menu for narrow screens.
  function closeNav() { document.body.classList.remove("nav-open-state"); }
  document.addEventListener("click", (e) => {
    const toggle = e.target.closest("[data-toggle-nav]");
    if (toggle) { document.body.classList.toggle("nav-open-state"); return; }
    if (e.target.closest("[data-open-shortcuts]")) { openShortcuts(); return; }
    // Close open <details> menus when clicking elsewhere.
    for (const d of $$("details.menu[open], details.ws-switch[open]")) if (!d.contains(e.target)) d.open = false;
  });

  // ---------------------------------------------------------------- keyboard
  function openShortcuts() {
    const dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function selectRow(delta) {
    const rows = $$("#rows > li.row");
    if (!rows.length) return;
    let index = rows.findIndex((r) => r.classList.contains("is-selected"));
    if (index < 0) index = rows.findIndex((r) => r.classList.contains("is-active"));
    index = index < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, index + delta));
    for (const r of rows) r.classList.remove("is-selected");
    const row = rows[index];
    row.classList.add("is-selected");
    const link = row.querySelector(".row-link");
    link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function focusComposer(mode) {
    const form = document.getElementById("composer");
    if (!form) return;
    const radio = form.querySelector(`input[name="mode"][value="${mode}"]`);
    if (radio && !radio.checked) { radio.checked = true; radio.dispatchEvent(new Event("change", { bubbles: true })); }
    $("#composer-text", form).focus();
  }

  // A message in the toast area, as the server's own toasts look.
  function showToast(text) {
    const toasts = document.getElementById("toasts");
    if (!toasts) return;
    const toast = document.createElement("div");
    toast.className = "toast toast-error";
    toast.setAttribute("role", "alert");
    const span = document.createElement("span");
    span.textContent = text;
    toast.append(span);
    toasts.append(toast);
  }

  function submitShortcut(name) {
    const form = document.querySelector(`form[data-shortcut="${name}"]`);
    if (!form) {
      // Not offered here: say why (the page carries the reason, translated) rather than nothing.
      const refusal = document.querySelector(`[data-shortcut-refusal="${name}"]`);
      if (refusal) showToast(refusal.textContent.trim());
      return;
    }
    // Content swapped in a moment ago is bound by htmx when it settles; bind it now, so a
    // quick key press never falls through to a native submit.
    if (window.htmx) htmx.process(form);
    form.requestSubmit();
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (t.id === "composer-text" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      if (window.htmx) htmx.process(t.form);
      t.form.requestSubmit();
      return;
    }
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector("dialog[open]")) return;
    switch (e.key) {
      case "j": e.preventDefault(); selectRow(1); break;
      case "k": e.preventDefault(); selectRow(-1); break;
      case "Enter": {
        const selected = $("#rows > li.row.is-selected .row-link");
        if (selected && document.activeElement !== selected) { e.preventDefault(); selected.click(); }
        break;
      }
      case "r": e.preventDefault(); focusComposer("reply"); break;
      case "n": e.preventDefault(); focusComposer("note"); break;
      // With rows ticked, e and a act on them; otherwise on the open conversation.
      case "e": e.preventDefault(); if (!(checkedRows().length && submitBulk("resolve"))) submitShortcut("resolve"); break;
      case "a": e.preventDefault(); if (!(checkedRows().length && submitBulk("assign-me"))) submitShortcut("assign-me"); break;
      case "u": e.preventDefault(); submitShortcut("unread"); break;
      case "x": e.preventDefault(); toggleCurrentRow(); break;
      case "/": e.preventDefault(); $("#q")?.focus(); break;
      case "?": e.preventDefault(); openShortcuts(); break;
      default: break;
    }
  });

  // ---------------------------------------------------------------- start
  markActive();
  readOpenConversation();
  updateBulk();
  scrollThreadToEnd();
  if (config) { setLive("connecting"); connect(); }
})();
