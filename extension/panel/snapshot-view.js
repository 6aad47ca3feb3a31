/**
 * The snapshot in the panel: exactly what will be shared — the recipients summed up where they cannot be
 * missed, the subject, the whole body as text (scrollable), each attachment with its size and a short SHA-256
 * identity — and the notices when the draft changed around the click or since the panel opened.
 */
import { el } from "../lib/page.js";
import "../lib/snapshot.js";
import { safeHtmlDocument } from "../lib/mail-view.js";

const S = globalThis.SafeShareSnapshot;

export function renderSnapshot(draft, $) {
  $("email-subject").textContent = draft.subject || "(no subject)";
  const body = $("email-body");
  body.textContent = draft.text || "(no text)";
  // A formatted email is shown as the recipients' SafeShare will show it (the same sanitiser, in a sandboxed
  // frame), with its plain-text version (also shared) below; a plain email as its text.
  const frame = $("email-html");
  frame.hidden = !draft.html;
  frame.srcdoc = draft.html ? safeHtmlDocument(draft.html) : "";
  $("email-text-box").open = !draft.html;
  $("email-text-summary").textContent = draft.html ? "Its plain-text version (also shared)" : "The text";
  $("email-body-note").textContent = draft.html
    ? `A formatted email: above as the recipients will see it; its plain-text version has ${draft.bodyChars.toLocaleString("en-GB")} characters.`
    : `${draft.bodyChars.toLocaleString("en-GB")} characters.`;
  const list = $("email-attachments");
  list.replaceChildren();
  if (!draft.attachments.length) list.append(el("li", { text: "None" }));
  for (const a of draft.attachments) {
    list.append(
      el(
        "li",
        { "data-sha256": a.sha256 },
        el("span", { class: "name", text: a.name }),
        ` — ${a.type || "unknown type"}, ${S.formatSize(a.size)}, `,
        el("span", { class: "fileid", title: `SHA-256 ${a.sha256}`, text: `SHA-256 ${S.shortId(a.sha256)}…` }),
      ),
    );
  }
  const unsteady = $("unsteady");
  unsteady.hidden = !draft.unsteady.length;
  unsteady.textContent = draft.unsteady.length
    ? `Check the email below: ${S.listParts(draft.unsteady)} changed while SafeShare was reading it (a script on the webmail page may have interfered). What is shown here is exactly what will be shared.`
    : "";
  $("email").hidden = false;
}

/** The recipients, summed up in the form and again beside the Share button (count, organisations, each one). */
export function renderRecipientSummary(matched, $) {
  const s = S.recipientSummary(matched);
  $("recipient-summary").textContent = s.line;
  const each = matched.map((m) => `${m.recipient.name} (${m.recipient.org}) <${m.address}>`).join("; ");
  $("share-to").textContent = s.count ? `Share with ${s.line}. ${each}.` : "No recipients to share with.";
  $("share-to").hidden = false;
}

/** The compose window changed after the panel opened: say what, and offer the two choices. */
export function renderChanged(parts, $) {
  const box = $("changed");
  box.hidden = !parts.length;
  $("changed-text").textContent = parts.length
    ? `The email in the webmail changed after SafeShare read it (${S.listParts(parts)}). SafeShare will share only what this panel shows. Read the email again to share it as it is now, or share what is shown.`
    : "";
}
