// The MIME packaging of a draft: RFC 5322 multipart/mixed, every attachment with its name and type.
import assert from "node:assert/strict";
import { test } from "node:test";
import { base64, buildMime, encodeHeaderValue, mediaType, unbase64 } from "../lib/mime.js";

const bytes = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) % 256);

/** A small reader for what buildMime writes: headers, and parts split on the boundary. */
function parse(text) {
  const [head, ...rest] = text.split("\r\n\r\n");
  const headers = Object.fromEntries(
    head
      .replace(/\r\n /g, " ")
      .split("\r\n")
      .map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 2)]),
  );
  return { headers, body: rest.join("\r\n\r\n") };
}

function parts(body, boundary) {
  const chunks = body.split(`--${boundary}`);
  assert.equal(chunks.at(-1).trim(), "--", "the message ends with the closing boundary");
  return chunks.slice(1, -1).map((c) => parse(c.replace(/^\r\n/, "").replace(/\r\n$/, "")));
}

const draft = {
  to: ["alice@example.org", "bob@example.org"],
  cc: ["carol@example.org"],
  subject: "Referral: CASE-1 — école",
  text: "Line one\nLine two — é",
  html: "<div>Line one</div>",
  attachments: [
    { name: "notes.pdf", type: "application/pdf", data: bytes(5000) },
    { name: "carte – école.png", type: "image/png", data: bytes(3) },
    { name: 'odd"name.bin', type: "not a type", data: new Uint8Array(0) },
  ],
};

test("multipart/mixed with a multipart/alternative body and every attachment", () => {
  const text = buildMime(draft, { boundary: "=_b", date: new Date("2026-11-25T10:00:00Z") });
  // eslint-disable-next-line no-control-regex -- the whole 7-bit range, control characters included
  assert.ok(/^[\x00-\x7f]*$/.test(text), "7-bit ASCII only");
  assert.ok(!/[^\r]\n/.test(text), "CRLF line ends only");
  assert.ok(text.split("\r\n").every((l) => l.length <= 998), "no line over RFC 5322's limit");
  assert.ok(text.split("\r\n").every((l) => l.length <= 78 || l.startsWith(" filename*=") || l.startsWith(" name*=")), "short lines");
  const msg = parse(text);
  assert.equal(msg.headers["mime-version"], "1.0");
  assert.equal(msg.headers.to, "alice@example.org, bob@example.org");
  assert.equal(msg.headers.cc, "carol@example.org");
  assert.equal(msg.headers.date, "Wed, 25 Nov 2026 10:00:00 +0000");
  assert.equal(msg.headers["content-type"], 'multipart/mixed; boundary="=_b"');
  const [body, pdf, png, odd] = parts(msg.body, "=_b");
  assert.equal(body.headers["content-type"], 'multipart/alternative; boundary="alt=_b"');
  const [plain, html] = parts(body.body, "alt=_b");
  assert.equal(new TextDecoder().decode(unbase64(plain.body.replace(/\r\n/g, ""))), draft.text);
  assert.equal(plain.headers["content-type"], "text/plain; charset=UTF-8");
  assert.equal(new TextDecoder().decode(unbase64(html.body.replace(/\r\n/g, ""))), draft.html);

  assert.equal(pdf.headers["content-type"], 'application/pdf; name="notes.pdf"');
  assert.equal(pdf.headers["content-disposition"], 'attachment; filename="notes.pdf"');
  assert.deepEqual(unbase64(pdf.body.replace(/\r\n/g, "")), draft.attachments[0].data);
  assert.equal(png.headers["content-disposition"], "attachment; filename*=UTF-8''carte%20%E2%80%93%20%C3%A9cole.png");
  assert.deepEqual(unbase64(png.body.replace(/\r\n/g, "")), bytes(3));
  assert.equal(odd.headers["content-type"], 'application/octet-stream; name="odd\\"name.bin"');
  assert.equal(odd.body, "");
});

test("a plain-text draft without attachments is a single text part", () => {
  const msg = parse(buildMime({ to: ["a@b.example"], subject: "Hi", text: "Hello" }, { boundary: "=_x" }));
  const [only, ...none] = parts(msg.body, "=_x");
  assert.equal(none.length, 0);
  assert.equal(only.headers["content-type"], "text/plain; charset=UTF-8");
  assert.equal(atob(only.body), "Hello");
});

test("header values: ASCII as is, anything else as RFC 2047 encoded-words; no header injection", () => {
  assert.equal(encodeHeaderValue("Plain subject"), "Plain subject");
  assert.equal(encodeHeaderValue("a\r\nBcc: x@y"), "a Bcc: x@y");
  const long = "é".repeat(60);
  const words = encodeHeaderValue(long).split("\r\n ");
  assert.ok(words.length > 1 && words.every((w) => w.length <= 75 && /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/.test(w)));
  const decoded = words.map((w) => new TextDecoder().decode(unbase64(w.slice(10, -2)))).join("");
  assert.equal(decoded, long);
  const msg = buildMime({ to: ["a@b.example\r\nBcc: evil@x"], subject: "s\nX-Injected: 1", text: "" });
  assert.ok(!/^Bcc:/m.test(msg) && !/^X-Injected:/m.test(msg));
});

test("media types are kept when well-formed", () => {
  assert.equal(mediaType("Image/PNG"), "image/png");
  assert.equal(mediaType("application/vnd.openxmlformats-officedocument.wordprocessingml.document"), "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
  assert.equal(mediaType("text/html; charset=utf-8"), "application/octet-stream");
  assert.equal(mediaType(""), "application/octet-stream");
});

test("base64 round trip of every byte value, beyond one chunk", () => {
  const data = Uint8Array.from({ length: 70000 }, (_, i) => i % 256);
  assert.deepEqual(unbase64(base64(data)), data);
  assert.equal(base64(new Uint8Array([0xff, 0, 0x80])), Buffer.from([0xff, 0, 0x80]).toString("base64"));
});
