// The webmail adapters against the saved compose pages (the same pages the end-to-end tests serve).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseHTML } from "./dom-shim.mjs";

await import("../adapters/kit.js");
await import("../adapters/gmail.js");
await import("../adapters/outlook.js");
await import("../adapters/roundcube.js");
const { gmail, outlook, roundcube } = globalThis.SafeShareAdapters;

const page = (name) => parseHTML(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));

/** The webmail's own reaction to a remove click (the saved pages' scripts do not run here). */
function onRemove(doc, selector, container) {
  const removed = [];
  doc.addEventListener("click", (ev) => {
    const hit = ev.target.closest(selector);
    if (hit) {
      removed.push(hit);
      hit.closest(container).remove();
    }
  });
  return removed;
}

test("gmail: finds the compose window, its Send button and reads the draft", () => {
  const doc = page("gmail-compose.html");
  const composes = gmail.findComposes(doc);
  assert.equal(composes.length, 1);
  const [c] = composes;
  assert.equal(c.getAttribute("aria-label"), "New Message");
  assert.equal(gmail.anchor(c).textContent, "Send");
  const d = gmail.read(c);
  assert.deepEqual(d.to, ["alice@example.org"]);
  assert.deepEqual(d.cc, []);
  assert.equal(d.subject, "Referral: CASE-2026-0412 — injury disclosed at school");
  assert.match(d.text, /bruising seen at 09:10 — école/);
  assert.match(d.html, /^<div>Dear Alice,<\/div>/);
  assert.deepEqual(
    d.attachments.map((a) => [a.name, a.url]),
    [
      ["referral-notes.pdf", "/mail/u/0/?ui=2&view=att&attid=0.1&disp=safe"],
      ["body-map – école.png", "/mail/u/0/?ui=2&view=att&attid=0.2&disp=safe"],
    ],
  );
});

test("gmail: several compose windows, and chips added to Cc", () => {
  const doc = page("gmail-compose.html");
  const dialog = doc.querySelector('[role="dialog"]');
  const second = parseHTML(dialog.serialize()).querySelector('[role="dialog"]');
  dialog.parentNode.append(second);
  second.querySelector('[role="listbox"][aria-label="CC recipients"]').innerHTML =
    '<div class="afV" role="option" data-hovercard-id="Bob@Example.org">Bob</div>';
  const composes = gmail.findComposes(doc);
  assert.equal(composes.length, 2);
  assert.deepEqual(gmail.read(composes[1]).cc, ["bob@example.org"]);
  assert.deepEqual(gmail.read(composes[0]).cc, []);
});

test("gmail: no editor, no compose window", () => {
  assert.deepEqual(gmail.findComposes(parseHTML("<div role=main>Inbox</div>")), []);
});

test("gmail: replacing the draft removes attachments and sets the text", () => {
  const doc = page("gmail-compose.html");
  const [c] = gmail.findComposes(doc);
  const removed = onRemove(doc, '[aria-label="Remove attachment"]', ".dL");
  let inputs = 0;
  c.querySelector('[aria-label="Message Body"]').addEventListener("input", () => inputs++);
  assert.equal(gmail.removeAttachments(c), 2);
  gmail.replaceBody(c, "Shared securely.\n\nReference: abc <x>");
  assert.equal(removed.length, 2);
  assert.equal(gmail.read(c).attachments.length, 0);
  assert.equal(c.querySelector('[aria-label="Message Body"]').innerHTML, "<div>Shared securely.</div><div><br></div><div>Reference: abc &lt;x&gt;</div>");
  assert.equal(inputs, 1);
});

test("outlook: reads To and Cc wells, subject, body and attachment cards", () => {
  const doc = page("outlook-compose.html");
  const [c, ...rest] = outlook.findComposes(doc);
  assert.equal(rest.length, 0);
  assert.equal(outlook.anchor(c).getAttribute("aria-label"), "Send");
  const d = outlook.read(c);
  assert.deepEqual(d.to, ["bob@example.org"]);
  assert.deepEqual(d.cc, ["alice@example.org"]);
  assert.equal(d.subject, "Strategy discussion notes — ADULT-77");
  assert.match(d.text, /Notes from today's strategy discussion/);
  assert.deepEqual(d.attachments, [
    {
      name: "strategy-notes.docx",
      type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      url: "/owa/service.svc/s/GetFileAttachment?id=AAMkAD1",
    },
  ]);
  const removed = onRemove(doc, 'button[aria-label^="Remove attachment"]', '[role="option"]');
  assert.equal(outlook.removeAttachments(c), 1);
  assert.equal(removed.length, 1);
  outlook.replaceBody(c, "notification");
  assert.equal(outlook.read(c).text, "notification");
});

test("roundcube: reads the compose form and builds attachment URLs from the compose id", () => {
  const doc = page("roundcube-compose.html");
  const [c] = roundcube.findComposes(doc);
  assert.equal(c.localName, "form");
  assert.match(roundcube.anchor(c).className, /\bsend\b/);
  const d = roundcube.read(c);
  assert.deepEqual(d.to, ["carol@example.org"]);
  assert.deepEqual(d.cc, []);
  assert.equal(d.subject, "Section 42 enquiry: ADULT-88-1930");
  assert.equal(d.text, "Dear Carol,\n\nThe care plan for ADULT-88-1930 is attached, as discussed.\n\nPat");
  assert.equal(d.html, "");
  assert.deepEqual(d.attachments, [
    { name: "care-plan.pdf", type: "", url: "?_task=mail&_action=display-attachment&_file=rcmfile71e0a3&_id=186f2c5a0d1e2" },
  ]);
  const removed = onRemove(doc, "#attachment-list a.delete", "li");
  let changes = 0;
  c.querySelector("#composebody").addEventListener("change", () => changes++);
  assert.equal(roundcube.removeAttachments(c), 1);
  roundcube.replaceBody(c, "notification");
  assert.equal(removed.length, 1);
  assert.equal(roundcube.read(c).text, "notification");
  assert.equal(changes, 1);
});

test("roundcube: a page that is not the compose screen has no compose window", () => {
  assert.deepEqual(roundcube.findComposes(parseHTML('<div id="messagelist"></div>')), []);
});

test("kit: addresses from display-name forms, deduplicated and lower-cased", () => {
  const { emailsIn } = globalThis.SafeShareAdapterKit;
  assert.deepEqual(emailsIn('"Smith, Jo" <Jo.Smith@Council.example>, jo.smith@council.example; x@y'), ["jo.smith@council.example"]);
});
