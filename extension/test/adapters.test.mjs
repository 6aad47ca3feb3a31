// The webmail adapters against the saved compose pages (the same pages the end-to-end tests serve).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseHTML } from "./dom-shim.mjs";

await import("../adapters/kit.js");
await import("../adapters/gmail.js");
await import("../adapters/outlook.js");
await import("../adapters/html-text.js");
await import("../adapters/tinymce.js");
await import("../adapters/roundcube.js");
const { gmail, outlook, roundcube } = globalThis.SafeShareAdapters;
const { htmlText } = globalThis.SafeShareHtmlText;
const { cleanHtml } = globalThis.SafeShareTinyMce;

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
      sizeText: "3 KB",
    },
  ]);
  const removed = onRemove(doc, 'button[aria-label^="Remove attachment"]', '[role="option"]');
  assert.equal(outlook.removeAttachments(c), 1);
  assert.equal(removed.length, 1);
  outlook.replaceBody(c, "notification");
  assert.equal(outlook.read(c).text, "notification");
});

test("each adapter replaces the subject (it goes out in the clear with the notification)", () => {
  for (const [adapter, file] of [[gmail, "gmail-compose.html"], [outlook, "outlook-compose.html"], [roundcube, "roundcube-compose.html"]]) {
    const [c] = adapter.findComposes(page(file));
    assert.notEqual(adapter.read(c).subject, "");
    adapter.replaceSubject(c, "Information shared with you securely (SafeShare sh_x)");
    assert.equal(adapter.read(c).subject, "Information shared with you securely (SafeShare sh_x)");
  }
});

test("outlook: a card without a download link is read with its size, for the panel to ask for the file", () => {
  const doc = page("outlook-compose.html");
  const [c] = outlook.findComposes(doc);
  c.querySelector('[aria-label="Attachments"] a').remove();
  const [a] = outlook.read(c).attachments;
  assert.equal(a.url, null);
  assert.equal(a.name, "strategy-notes.docx");
  assert.equal(a.sizeText, "3 KB");
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

/** The HTML-mode page with TinyMCE's editor document attached to its iframe, as a browser has it. */
function htmlModePage() {
  const doc = page("roundcube-compose-html.html");
  const editor = page("roundcube-compose-html-frame.html");
  doc.querySelector("iframe#composebody_ifr").contentDocument = editor;
  return { doc, editor, body: editor.body };
}

const NOTICE = [
  "Information has been shared with you securely through SafeShare.",
  "",
  "Reference: 0f3c (ledger entry 7)",
  "Retrieve it at https://gateway.example/s/0f3c before Tue, 02 Jun 2026 10:00:00 GMT.",
  "",
  "This email itself contains no sensitive information.",
].join("\n");

test("roundcube html editor: reads the HTML body and a text version from TinyMCE's iframe", () => {
  const { doc } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  assert.equal(c.localName, "form");
  assert.match(roundcube.anchor(c).className, /\bsend\b/);
  assert.equal(roundcube.mode(c), "html");
  const d = roundcube.read(c);
  assert.deepEqual(d.to, ["carol@example.org"]);
  assert.equal(d.subject, "Section 42 enquiry: ADULT-88-1930");
  // TinyMCE's editing aids (the bogus <br>, data-mce-*) are not part of the message.
  assert.equal(
    d.html,
    "<p>Dear Carol,</p><p><strong>Urgent:</strong> the care plan for ADULT-88-1930 is attached — see école notes.</p>" +
      "<ul><li>first visit on Monday</li><li>second visit: Friday &amp; &lt;after&gt;</li></ul><p>Pat</p><div id=\"_rc_sig\"></div>",
  );
  assert.equal(
    d.text,
    "Dear Carol,\n\nUrgent: the care plan for ADULT-88-1930 is attached — see école notes.\n\n" +
      "- first visit on Monday\n- second visit: Friday & <after>\n\nPat",
  );
  assert.deepEqual(d.attachments, [
    {
      name: "care-plan.pdf",
      type: "",
      url: "?_task=mail&_action=display-attachment&_file=rcmfile11795586352019470400&_id=7738026256b06792f90cfc",
    },
  ]);
});

test("roundcube html editor: the hidden textarea is not read (TinyMCE fills it only on save)", () => {
  const { doc } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  c.querySelector("#composebody").value = "<p>stale copy from the last autosave</p>";
  const d = roundcube.read(c);
  assert.doesNotMatch(d.html + d.text, /stale copy/);
  assert.match(d.text, /^Dear Carol,/);
});

test("roundcube html editor: replacing leaves only the notification, in the editor and in the textarea", () => {
  const { doc, body } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  const area = c.querySelector("#composebody");
  const seen = [];
  body.addEventListener("input", (ev) => seen.push(`editor:${ev.type}`));
  area.addEventListener("change", (ev) => seen.push(`textarea:${ev.type}`));
  doc.addEventListener("keypress", (ev) => seen.push(`document:${ev.type}`));
  const removed = onRemove(doc, "#attachment-list a.delete", "li");
  assert.equal(roundcube.removeAttachments(c), 1);
  roundcube.replaceBody(c, NOTICE);
  assert.equal(removed.length, 1);
  // The editor shows the notification, one paragraph each, the address as a link; nothing of the email is left.
  assert.equal(
    body.innerHTML,
    "<p>Information has been shared with you securely through SafeShare.</p>" +
      "<p>Reference: 0f3c (ledger entry 7)<br>Retrieve it at <a href=\"https://gateway.example/s/0f3c\">https://gateway.example/s/0f3c</a>" +
      " before Tue, 02 Jun 2026 10:00:00 GMT.</p><p>This email itself contains no sensitive information.</p>",
  );
  assert.doesNotMatch(body.textContent, /Carol|care plan|visit/);
  // What Roundcube sends is the textarea: it holds the same HTML, in case it is submitted without a TinyMCE save.
  assert.equal(area.value, body.innerHTML);
  // TinyMCE hears the change; Roundcube's draft hash and its localStorage copy are told (a keypress counts as typing).
  assert.deepEqual(seen, ["editor:input", "textarea:change", "document:keypress"]);
  const after = roundcube.read(c);
  assert.equal(after.text, NOTICE);
  assert.equal(after.html, body.innerHTML);
  assert.deepEqual(after.attachments, []);
});

test("roundcube html editor: after a share, TinyMCE's Undo (which would bring the email back) is refused", () => {
  const { doc, body } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  const undo = doc.querySelector('.tox-tinymce button[aria-label="Undo"]');
  const key = (k, mods = {}) => body.dispatchEvent({ type: "keydown", bubbles: true, key: k, ...mods });
  // Before the share nothing is refused.
  assert.equal(key("z", { ctrlKey: true }), true);
  assert.equal(undo.dispatchEvent({ type: "click", bubbles: true }), true);
  roundcube.replaceBody(c, NOTICE);
  let reached = 0;
  body.addEventListener("keydown", () => reached++); // stands in for TinyMCE's own listener
  assert.equal(key("z", { ctrlKey: true }), false);
  assert.equal(key("Z", { metaKey: true }), false);
  assert.equal(body.dispatchEvent({ type: "beforeinput", bubbles: true, inputType: "historyUndo" }), false);
  assert.equal(undo.dispatchEvent({ type: "click", bubbles: true }), false);
  assert.equal(undo.dispatchEvent({ type: "keydown", bubbles: true, key: "Enter" }), false);
  // Typing, Redo and the other buttons still work; replacing again adds no second set of guards.
  roundcube.replaceBody(c, NOTICE);
  assert.equal(key("a"), true);
  assert.equal(key("z", { ctrlKey: true, shiftKey: true }), true);
  assert.equal(doc.querySelector('button[aria-label="Bold"]').dispatchEvent({ type: "click", bubbles: true }), true);
  assert.equal(reached, 2); // only the two keys not refused reached the editor
});

test("roundcube html editor: text in the editor is escaped and cannot become markup", () => {
  const { doc, body } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  roundcube.replaceBody(c, 'Reference: <img src=x onerror="alert(1)"> & co');
  assert.equal(body.children.length, 1);
  assert.equal(body.querySelector("img"), null);
  assert.equal(body.innerHTML, "<p>Reference: &lt;img src=x onerror=\"alert(1)\"&gt; &amp; co</p>");
});

test("roundcube: the editor in use is looked up each time, so a switch of editor is followed", () => {
  const { doc, body } = htmlModePage();
  const [c] = roundcube.findComposes(doc);
  const area = c.querySelector("#composebody");
  const flag = c.querySelector('input[name="_is_html"]');
  // HTML -> plain: Roundcube converts the text into the textarea, removes TinyMCE's iframe and sets _is_html to 0.
  area.value = "Dear Carol,\n\nUrgent: the care plan is attached.";
  flag.value = "0";
  doc.querySelector(".tox-tinymce").remove();
  assert.equal(roundcube.mode(c), "plain");
  assert.deepEqual([roundcube.read(c).text, roundcube.read(c).html], ["Dear Carol,\n\nUrgent: the care plan is attached.", ""]);
  roundcube.replaceBody(c, NOTICE);
  assert.equal(area.value, NOTICE);
  // plain -> HTML again: a new editor, and the share now replaces it.
  flag.value = "1";
  const frame = doc.createElement("iframe");
  frame.setAttribute("id", "composebody_ifr");
  frame.contentDocument = parseHTML('<html><body id="tinymce" contenteditable="true"><p>typed after the switch</p></body></html>');
  area.insertAdjacentElement("afterend", frame);
  assert.equal(roundcube.mode(c), "html");
  assert.equal(roundcube.read(c).text, "typed after the switch");
  roundcube.replaceBody(c, NOTICE);
  assert.equal(roundcube.read(c).text, NOTICE);
  assert.match(area.value, /^<p>Information has been shared/);
  assert.ok(body !== frame.contentDocument.body);
});

test("roundcube html editor: while TinyMCE is still starting, reading refuses in plain words and replacing still works", () => {
  const doc = page("roundcube-compose-html.html"); // the iframe has no document yet
  const [c] = roundcube.findComposes(doc);
  assert.throws(() => roundcube.read(c), /still starting.*Nothing was shared/);
  roundcube.replaceBody(c, "Line one\nline two\n\nA <new> paragraph");
  // TinyMCE starts from the textarea, so it will open on the notification.
  assert.equal(c.querySelector("#composebody").value, "<p>Line one<br>line two</p><p>A &lt;new&gt; paragraph</p>");
});

test("roundcube html editor: the text version of richer HTML (lists, quotes, links, TinyMCE's aids)", () => {
  const doc = parseHTML(
    '<body id="tinymce" contenteditable="true">' +
      "<h2>Plan</h2><ol><li>call <a href=\"https://school.example/x\">the school</a></li><li>visit<ul><li>Monday</li></ul></li></ol>" +
      '<blockquote><p>On Monday, Bob wrote:</p><p>seen  at\n 09:10</p></blockquote>' +
      '<p>a&nbsp;b<span data-mce-bogus="all">caret</span><span data-mce-bogus="1">c</span>\uFEFF</p>' +
      '<table><tr><td>name</td><td>age</td></tr></table><p><a href="mailto:x@y.example">x@y.example</a><br data-mce-bogus="1"></p></body>',
  );
  assert.equal(
    htmlText(doc.body),
    "Plan\n\n1. call the school <https://school.example/x>\n2. visit\n  - Monday\n\n> On Monday, Bob wrote:\n>\n> seen at 09:10\n\n" +
      "a bc\n\nname age\n\nx@y.example",
  );
  assert.equal(
    cleanHtml(parseHTML('<body><p data-mce-style="color: red;" style="color: rgb(255, 0, 0);" data-mce-selected="1">a<a href="/r" data-mce-href="https://e.example/r">l</a>' +
      '<span data-mce-bogus="all">x</span><span data-mce-bogus="1"><em>b</em></span><br data-mce-bogus="1"></p></body>').body),
    // TinyMCE's own copies (data-mce-style, data-mce-href) keep what was written; the live ones are the browser's.
    '<p style="color: red;">a<a href="https://e.example/r">l</a><em>b</em></p>',
  );
});

test("kit: addresses from display-name forms, deduplicated and lower-cased", () => {
  const { emailsIn } = globalThis.SafeShareAdapterKit;
  assert.deepEqual(emailsIn('"Smith, Jo" <Jo.Smith@Council.example>, jo.smith@council.example; x@y'), ["jo.smith@council.example"]);
});
