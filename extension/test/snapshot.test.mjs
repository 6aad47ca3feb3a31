// The snapshot's pure parts: what changed between two reads, short file identities, the recipient summary.
import assert from "node:assert/strict";
import { test } from "node:test";

await import("../lib/snapshot.js");
const S = globalThis.SafeShareSnapshot;

const draft = {
  to: ["alice@example.org"],
  cc: [],
  subject: "Referral",
  text: "Dear Alice",
  html: "<div>Dear Alice</div>",
  attachments: [{ name: "a.pdf", url: "/att?id=1" }],
};

test("identical reads differ in nothing", () => {
  assert.deepEqual(S.differences(draft, structuredClone(draft)), []);
});

test("each part is told apart", () => {
  assert.deepEqual(S.differences(draft, { ...draft, text: "SWAPPED BODY" }), ["body"]);
  assert.deepEqual(S.differences(draft, { ...draft, html: "<div>Dear Alice<span hidden>x</span></div>" }), ["body"]);
  assert.deepEqual(S.differences(draft, { ...draft, cc: ["mallory@evil.example"] }), ["recipients"]);
  assert.deepEqual(S.differences(draft, { ...draft, to: [], cc: ["alice@example.org"] }), ["recipients"]);
  assert.deepEqual(S.differences(draft, { ...draft, subject: "x" }), ["subject"]);
  assert.deepEqual(S.differences(draft, { ...draft, attachments: [] }), ["attachments"]);
  assert.deepEqual(S.differences(draft, { ...draft, subject: "x", text: "y" }), ["subject", "body"]);
  assert.deepEqual(S.differences(null, draft), ["recipients", "subject", "body", "attachments"]);
});

test("parts in a sentence", () => {
  assert.equal(S.listParts([]), "");
  assert.equal(S.listParts(["body"]), "the body");
  assert.equal(S.listParts(["recipients", "body", "attachments"]), "the recipients, the body and the attachments");
});

test("short identity from SHA-256", () => {
  const hex = "3F2A91C07D4E11AB" + "0".repeat(48);
  assert.equal(S.shortId(hex), "3f2a 91c0 7d4e 11ab");
  assert.equal(S.shortId("xyz"), "");
  assert.equal(S.shortId(""), "");
});

test("sizes in words", () => {
  assert.equal(S.formatSize(1), "1 byte");
  assert.equal(S.formatSize(900), "900 bytes");
  assert.equal(S.formatSize(2048), "2.0 KB (2,048 bytes)");
  assert.equal(S.formatSize(3 * 1048576), "3.0 MB (3,145,728 bytes)");
});

test("recipient summary: count and organisations", () => {
  const r = (org) => ({ recipient: { org } });
  assert.deepEqual(S.recipientSummary([]), { count: 0, orgs: [], line: "No recipients" });
  assert.equal(S.recipientSummary([r("Hereford MASH")]).line, "1 recipient in 1 organisation: Hereford MASH");
  const s = S.recipientSummary([r("Hereford MASH"), r("West Mercia Police"), r("Hereford MASH")]);
  assert.equal(s.count, 3);
  assert.deepEqual(s.orgs, ["Hereford MASH", "West Mercia Police"]);
  assert.equal(s.line, "3 recipients in 2 organisations: Hereford MASH, West Mercia Police");
});
