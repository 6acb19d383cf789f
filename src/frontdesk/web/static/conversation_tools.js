// Frontdesk conversation tools: the `/` canned-response picker of the composer, and the
// composer's reset after "Send later". Plain JS, no build step. Canned responses arrive as
// JSON text with their placeholders filled in by the server; they are shown with
// textContent and inserted into the textarea's value, so nothing in them is ever HTML.
(() => {
  "use strict";

  // The word being typed at the caret, when it starts with "/": at the start of the text
  // or after whitespace (so a URL's slashes never open the picker).
  const SLASH_WORD = /(^|\s)\/([\p{L}\p{N}_-]*)$/u;
  const MAX_OPTIONS = 8;
  const cache = new Map(); // url -> Promise of the items
  let state = null; // { area, picker, start, matches, index }

  function load(url) {
    if (!cache.has(url)) {
      const request = fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : { items: [] }))
        .then((body) => body.items || [])
        .catch(() => []);
      cache.set(url, request);
    }
    return cache.get(url);
  }

  function close() {
    if (!state) return;
    state.picker.hidden = true;
    state.picker.replaceChildren();
    state.area.removeAttribute("aria-activedescendant");
    state = null;
  }

  function select(index) {
    if (!state || !state.matches.length) return;
    state.index = (index + state.matches.length) % state.matches.length;
    state.picker.querySelectorAll("[role=option]").forEach((el, i) => {
      el.setAttribute("aria-selected", i === state.index ? "true" : "false");
      if (i === state.index) {
        state.area.setAttribute("aria-activedescendant", el.id);
        el.scrollIntoView({ block: "nearest" });
      }
    });
  }

  function insert(item) {
    const { area, start } = state;
    const end = area.selectionStart;
    area.value = area.value.slice(0, start) + item.content + area.value.slice(end);
    const caret = start + item.content.length;
    close();
    area.focus();
    area.setSelectionRange(caret, caret);
    area.dispatchEvent(new Event("input", { bubbles: true })); // presence: "replying"
  }

  function render(area, picker, start, query, items) {
    const q = query.toLowerCase();
    const matches = items.filter((i) => i.shortcut.startsWith(q)).slice(0, MAX_OPTIONS);
    picker.replaceChildren();
    if (!matches.length) {
      const empty = document.createElement("div");
      empty.className = "canned-empty";
      empty.textContent = items.length ? picker.dataset.empty : picker.dataset.none;
      picker.append(empty);
    }
    matches.forEach((item, i) => {
      const option = document.createElement("div");
      option.className = "canned-option";
      option.id = `canned-option-${i}`;
      option.setAttribute("role", "option");
      option.dataset.shortcut = item.shortcut;
      const name = document.createElement("span");
      name.className = "canned-shortcut";
      name.textContent = `/${item.shortcut}`;
      const preview = document.createElement("span");
      preview.className = "canned-preview";
      preview.textContent = item.content;
      option.append(name, preview);
      // mousedown, not click: the textarea keeps its focus and caret.
      option.addEventListener("mousedown", (e) => { e.preventDefault(); insert(item); });
      picker.append(option);
    });
    picker.hidden = false;
    state = { area, picker, start, matches, index: 0 };
    select(0);
  }

  async function update(area) {
    const picker = document.getElementById(area.getAttribute("aria-controls") || "");
    const url = area.dataset.cannedUrl;
    if (!picker || !url) return;
    const before = area.value.slice(0, area.selectionStart);
    const match = area.selectionStart === area.selectionEnd ? SLASH_WORD.exec(before) : null;
    if (!match) { close(); return; }
    const start = before.length - match[2].length - 1; // where the "/" is
    const items = await load(url);
    // The agent may have typed on while the list loaded: only show it for what is there now.
    const now = SLASH_WORD.exec(area.value.slice(0, area.selectionStart));
    if (document.activeElement !== area || !now || now[2] !== match[2]) return;
    render(area, picker, start, match[2], items);
  }

  document.addEventListener("input", (e) => {
    if (e.target instanceof HTMLTextAreaElement && e.target.dataset.cannedUrl) update(e.target);
  });
  document.addEventListener("focusout", (e) => {
    if (state && e.target === state.area) close();
  });
  // Capture phase: the picker's keys win over the composer's and the page's shortcuts.
  document.addEventListener("keydown", (e) => {
    if (!state || e.target !== state.area) return;
    if (e.key === "ArrowDown") { e.preventDefault(); select(state.index + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); select(state.index - 1); }
    else if ((e.key === "Enter" || e.key === "Tab") && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
      if (!state.matches.length) { close(); return; }
      e.preventDefault();
      e.stopPropagation();
      insert(state.matches[state.index]);
    } else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(); }
  }, true);

  // "Send later" succeeded: the reply is in the scheduled list now, so empty the composer.
  document.addEventListener("htmx:afterRequest", (e) => {
    const button = e.detail.elt;
    if (!e.detail.successful || !(button instanceof HTMLElement) || !button.hasAttribute("data-schedule-submit")) return;
    const form = button.form;
    if (!form) return;
    const text = form.querySelector("textarea");
    if (text) { text.value = ""; text.dispatchEvent(new Event("input", { bubbles: true })); }
    const when = form.querySelector("[data-send-at]");
    if (when) when.value = "";
    const details = button.closest("details");
    if (details) details.open = false;
  });
  document.addEventListener("htmx:afterSwap", (e) => {
    // A new conversation opened: the picker of the old composer is gone.
    if (state && !document.contains(state.area)) state = null;
    // The thread changed (a live message): a scheduled reply may just have gone out.
    const target = e.detail.target;
    const waiting = document.querySelector("#scheduled .scheduled-item");
    if (target && target.id === "thread" && waiting && window.htmx) {
      htmx.trigger(document.getElementById("scheduled"), "refresh-scheduled");
    }
  });
})();
