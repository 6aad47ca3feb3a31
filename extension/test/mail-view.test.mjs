// Opening a shared e-mail: parsing what the practitioner's side packaged (lib/mime.js), and messages from
// other mailers, with the BUILT vendor/postal-mime.js. safeHtmlDocument needs a real DOM: it is tested in
// Chromium by tests/e2e/test_mail_view.py; here only its refusal without one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildMime } from "../lib/mime.js";
import { CONTENT_SECURITY_POLICY, parseMessage, safeHtmlDocument, textDocument } from "../lib/mail-view.js";

const bytes = (n, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed * 101 + (i >> 8)) % 256);
const crlf = (lines) => new TextEncoder().encode(lines.join("\r\n"));

test("a message built by lib/mime.js comes back whole: headers, text, html and both attachments' bytes", async () => {
  const pdf = new Uint8Array([...bytes(300_000, 3), ...Array.from({ length: 256 }, (_, i) => i)]);
  const png = bytes(4321, 5);
  const draft = {
    from: "pat@example.org",
    to: ["alice@example.org", "bob@example.org"],
    cc: ["carol@example.org"],
    subject: "Referral: CASE-2026-0412 — école, Zoë 😀",
    text: "Line one\r\nLine two — é\r\n",
    html: "<div>Line one</div><p>Zoë — é 😀</p>",
    attachments: [
      { name: "référral notes (draft).pdf", type: "application/pdf", data: pdf },
      { name: "body-map – école 身体图.png", type: "image/png", data: png },
    ],
  };
  const raw = new TextEncoder().encode(buildMime(draft, { date: new Date("2026-11-25T10:00:00Z") }));
  const msg = await parseMessage(raw);
  assert.equal(msg.subject, draft.subject);
  assert.equal(msg.from, "pat@example.org");
  assert.deepEqual(msg.to, draft.to);
  assert.deepEqual(msg.cc, draft.cc);
  assert.equal(msg.date, "2026-11-25T10:00:00.000Z");
  assert.equal(msg.text.replace(/\r\n/g, "\n"), draft.text.replace(/\r\n/g, "\n"));
  assert.equal(msg.html, draft.html);
  assert.equal(msg.attachments.length, 2);
  const [a, b] = msg.attachments;
  assert.equal(a.filename, "référral notes (draft).pdf");
  assert.equal(a.mimeType, "application/pdf");
  assert.ok(a.content instanceof Uint8Array);
  assert.deepEqual(a.content, pdf);
  assert.equal(b.filename, "body-map – école 身体图.png");
  assert.equal(b.mimeType, "image/png");
  assert.deepEqual(b.content, png);
  // ArrayBuffer input works the same.
  assert.equal((await parseMessage(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))).subject, draft.subject);
});

test("file names from other mailers: RFC 2231 continuations and encoded-words; names and groups in addresses", async () => {
  const raw = crlf([
    'From: "Dr Zoë Example" <zoe@example.org>',
    "To: Duty Team: alice@example.org, =?UTF-8?Q?Bj=C3=B6rn?= <bjorn@example.org>;",
    "Subject: =?ISO-8859-1?Q?caf=E9?=",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=ISO-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Caf=E9 au lait",
    "--b1",
    "Content-Type: application/octet-stream",
    "Content-Disposition: attachment;",
    " filename*0*=UTF-8''%C3%A9valuation%20des%20risques%20;",
    " filename*1*=%E2%80%93%20Zo%C3%AB.docx",
    "Content-Transfer-Encoding: base64",
    "",
    "AAECAwQ=",
    "--b1",
    'Content-Type: text/csv; name="=?UTF-8?B?Y2hyb25vbG9neSDigJMgw6ljb2xlLmNzdg==?="',
    "Content-Disposition: attachment",
    "Content-Transfer-Encoding: base64",
    "",
    "YSxi",
    "--b1",
    "Content-Type: application/pdf",
    "Content-Disposition: attachment; filename=\"../../etc/passwd\"",
    "Content-Transfer-Encoding: base64",
    "",
    "JVBERg==",
    "--b1--",
    "",
  ]);
  const msg = await parseMessage(raw);
  assert.equal(msg.subject, "café");
  assert.equal(msg.from, "Dr Zoë Example <zoe@example.org>");
  assert.deepEqual(msg.to, ["alice@example.org", "Björn <bjorn@example.org>"]);
  assert.deepEqual(msg.cc, []);
  assert.equal(msg.date, null);
  assert.equal(msg.text.trim(), "Café au lait");
  assert.equal(msg.html, null);
  assert.deepEqual(
    msg.attachments.map((a) => [a.filename, a.mimeType, Array.from(a.content)]),
    [
      ["évaluation des risques – Zoë.docx", "application/octet-stream", [0, 1, 2, 3, 4]],
      ["chronology – école.csv", "text/csv", [...new TextEncoder().encode("a,b")]],
      [".._.._etc_passwd", "application/pdf", [...new TextEncoder().encode("%PDF")]],
    ],
  );
});

test("inline images referenced by Content-ID are inlined as data: URLs (a sandboxed view cannot fetch cid:)", async () => {
  const img = bytes(50, 9);
  const b64 = Buffer.from(img).toString("base64");
  const raw = crlf([
    "Subject: inline",
    "MIME-Version: 1.0",
    'Content-Type: multipart/related; boundary="r"',
    "",
    "--r",
    "Content-Type: text/html; charset=UTF-8",
    "",
    '<p>Map:<img src="cid:map.1@example.org" alt="map"><img src="cid:other@example.org"></p>',
    "--r",
    "Content-Type: image/png",
    "Content-ID: <map.1@example.org>",
    "Content-Disposition: inline",
    "Content-Transfer-Encoding: base64",
    "",
    b64,
    "--r--",
    "",
  ]);
  const msg = await parseMessage(raw);
  assert.equal(msg.html.trimEnd(), `<p>Map:<img src="data:image/png;base64,${b64}" alt="map"><img src="cid:other@example.org"></p>`);
  assert.equal(msg.attachments.length, 1);
  assert.deepEqual(msg.attachments[0].content, img);
  assert.equal(msg.attachments[0].filename, "attachment-1.png");
});

test("textDocument escapes the text into a <pre> under the same policy", () => {
  const doc = textDocument('<script>alert(1)</script> & "quotes" \u00e9');
  assert.ok(doc.startsWith("<!DOCTYPE html>"));
  const csp = doc.indexOf(`<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY.replace(/'/g, "&#39;")}">`);
  assert.ok(csp > 0 && csp < doc.indexOf("<style") && csp < doc.indexOf("<pre>"), "the policy comes first");
  assert.ok(doc.includes("<pre>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; \u00e9</pre>"));
  assert.ok(!doc.includes("<script>"));
  assert.equal(CONTENT_SECURITY_POLICY, "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'");
});

test("safeHtmlDocument refuses to run without a DOM instead of returning unsanitised HTML", () => {
  assert.equal(globalThis.window, undefined);
  assert.throws(() => safeHtmlDocument("<img src=x onerror=alert(1)>"), /needs a page with a DOM/);
});
