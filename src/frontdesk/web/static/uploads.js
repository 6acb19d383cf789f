// Files attached to a reply: each chosen file is uploaded at once (with the session's
// CSRF token) and shown as a chip; the chip holds the signed id the reply form sends.
(() => {
  "use strict";

  const csrf = () => {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"]; }
    catch { return ""; }
  };

  async function upload(input, file) {
    const target = document.getElementById(input.dataset.uploadTarget || "");
    if (!target) return;
    const body = new FormData();
    body.append("file", file, file.name);
    const response = await fetch(input.dataset.uploadUrl, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf() },
    });
    if (!response.ok) throw new Error(String(response.status));
    // The server's own template: escaped names, a hidden input and a button, no script.
    target.insertAdjacentHTML("beforeend", await response.text());
  }

  document.addEventListener("change", async (e) => {
    const input = e.target;
    if (!(input instanceof HTMLInputElement) || !input.dataset.uploadUrl || !input.files) return;
    const files = Array.from(input.files);
    input.value = "";
    const form = input.closest("form");
    form?.setAttribute("aria-busy", "true");
    try {
      for (const file of files) {
        try { await upload(input, file); }
        catch { window.alert(`${input.dataset.uploadFailed || "Upload failed"} (${file.name})`); }
      }
    } finally {
      form?.removeAttribute("aria-busy");
    }
  });

  document.addEventListener("click", (e) => {
    const button = e.target instanceof Element ? e.target.closest(".upload-remove") : null;
    if (button) button.closest(".upload-chip")?.remove();
  });

  // A reply sent: its files went with it.
  document.body?.addEventListener("htmx:afterRequest", (e) => {
    const form = e.target;
    if (e.detail.successful && form instanceof HTMLFormElement
        && form.hasAttribute("data-reset-on-success")) {
      form.querySelectorAll(".upload-chip").forEach((chip) => chip.remove());
    }
  });
})();
