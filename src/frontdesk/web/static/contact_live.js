// Frontdesk contact sidebar, live: when a contact's tags or notes change (another agent, the
// API, a merge), the conversation view's contact section redraws itself. app.js re-emits
// every real-time event as `fd:event` on document. Plain JS, no build step.
(() => {
  "use strict";

  const CONTACT_EVENTS = new Set(["contact.updated", "contact.merged", "contact_note.created",
                                  "contact_note.updated", "contact_note.deleted"]);

  function contactIdOf(event) {
    const data = event.data || {};
    if (data.note && typeof data.note.contact_id === "number") return data.note.contact_id;
    if (data.contact && typeof data.contact.id === "number") return data.contact.id;
    return null;
  }

  document.addEventListener("fd:event", (e) => {
    const event = e.detail;
    if (!event || !CONTACT_EVENTS.has(event.type) || !window.htmx) return;
    const section = document.getElementById("contact-extras");
    if (!section || Number(section.dataset.contactId) !== contactIdOf(event)) return;
    // Never pull a half-typed note or tag from under the agent (an empty, focused field
    // is fine: htmx gives the focus back to the redrawn one, which has the same id).
    const active = document.activeElement;
    if (section.contains(active) && typeof active.value === "string" && active.value.trim()) return;
    htmx.ajax("GET", `/app/contacts/${section.dataset.contactId}/sidebar`,
              { target: "#contact-extras", swap: "outerHTML" });
  });
})();
