import { test } from "node:test";
import assert from "node:assert/strict";
import { matchRecipients } from "../lib/share-flow.js";
import { choiceComplete, generatePassphrase, passphraseProblem, resultRows, shareFields } from "../panel/unenrolled.js";

test("a directory person without a key is an address without a key; a keyed person and a team are matched", () => {
  const dir = [
    { id: "alice", kind: "person", email: "alice@example.org", name: "Alice", org: "MASH", age_recipient: "age1x" },
    { id: "nokey", kind: "person", email: "nokey@example.org", name: "No Key", org: "GP", age_recipient: null },
    { id: "duty", kind: "team", email: "duty@example.org", name: "Duty", org: "MASH", age_recipient: null },
  ];
  const { matched, unknown } = matchRecipients(["alice@example.org", "nokey@example.org", "duty@example.org", "new@school.example"], dir);
  assert.deepEqual(matched.map((m) => m.recipient.id), ["alice", "duty"]);
  assert.deepEqual(unknown, ["nokey@example.org", "new@school.example"]);
});

test("Share needs a choice for the addresses without a key, and a long enough passphrase with that choice", () => {
  assert.equal(choiceComplete([], null), true);
  assert.equal(choiceComplete(["a@b.example"], null), false);
  assert.equal(choiceComplete(["a@b.example"], { mode: "other" }), false);
  assert.equal(choiceComplete(["a@b.example"], { mode: "verify" }), true);
  assert.equal(choiceComplete(["a@b.example"], { mode: "passphrase", passphrase: "" }), false);
  assert.equal(choiceComplete(["a@b.example"], { mode: "passphrase", passphrase: "elevenchars" }), false);
  assert.equal(choiceComplete(["a@b.example"], { mode: "passphrase", passphrase: "twelve chars" }), true);
  assert.match(passphraseProblem("short"), /at least 12 characters/);
  assert.match(passphraseProblem(""), /Enter a passphrase/);
  assert.match(passphraseProblem("x".repeat(1025)), /longer than 1024/);
  assert.equal(passphraseProblem("kettle ninety lantern orchard"), null);
});

test("the share request: IDs for the keyed, addresses with one mode for the others, the passphrase only with its mode", () => {
  const matched = [{ recipient: { id: "alice" } }];
  assert.deepEqual(shareFields(matched, [], { mode: "passphrase", passphrase: "not sent at all" }), { recipients: ["alice"] });
  assert.deepEqual(shareFields(matched, ["new@school.example"], { mode: "verify", passphrase: "ignored ignored" }), {
    recipients: ["alice", "new@school.example"],
    unenrolled: "verify",
  });
  assert.deepEqual(shareFields([], ["a@x.example", "b@y.example"], { mode: "passphrase", passphrase: "kettle ninety lantern orchard" }), {
    recipients: ["a@x.example", "b@y.example"],
    unenrolled: "passphrase",
    passphrase: "kettle ninety lantern orchard",
  });
  assert.throws(() => shareFields([], ["a@x.example"], null), /Choose how/);
  assert.throws(() => shareFields([], ["a@x.example"], { mode: "passphrase", passphrase: "short" }), /Choose how/);
});

test("a suggested passphrase: 5 groups of 4 unambiguous characters, different each time, unbiased sampling", () => {
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const p = generatePassphrase();
    assert.match(p, /^[a-hjkmnp-z2-9]{4}(-[a-hjkmnp-z2-9]{4}){4}$/);
    assert.equal(passphraseProblem(p), null);
    seen.add(p);
  }
  assert.equal(seen.size, 200);
  // Bytes at or above the largest multiple of the alphabet's size are skipped, not folded onto early letters.
  let calls = 0;
  const fixed = (a) => {
    calls++;
    a.fill(calls === 1 ? 255 : 0);
    return a;
  };
  assert.equal(generatePassphrase(fixed), "aaaa-aaaa-aaaa-aaaa-aaaa");
  assert.equal(calls, 2);
});

test("the result per recipient: how they open it, the link, and the phone reminder for a passphrase", () => {
  const rows = resultRows({
    notice_url: "https://gw.example/s/shr_1",
    recipients: [
      { id: "alice", name: "Alice", org: "MASH", mode: "key", link: "https://gw.example/s/shr_1" },
      { recipient: "new@school.example", mode: "held", state: "held", link: "https://gw.example/s/shr_1" },
      { recipient: "gp@nhs.example", mode: "passphrase", state: "held" },
    ],
  });
  assert.deepEqual(rows.map((r) => r.who), ["Alice (MASH)", "new@school.example", "gp@nhs.example"]);
  assert.match(rows[1].how, /prove the address with a code/);
  assert.equal(rows[1].link, "https://gw.example/s/shr_1");
  assert.match(rows[2].how, /by phone, not by email/);
  assert.equal(rows[2].link, "https://gw.example/s/shr_1");
  assert.deepEqual(rows.map((r) => r.phone), [false, false, true]);
});

test("the gateway's refusals of a choice, in plain words: nothing shared, the passphrase never quoted", async () => {
  const { explain } = await import("../lib/gateway.js");
  const weak = explain(422, { error: "passphrase_weak", field: "passphrase", message: "The passphrase is too easy to guess." });
  assert.equal(weak.code, "passphrase_weak");
  assert.match(weak.message, /refused the passphrase\. The passphrase is too easy to guess\..*Nothing was shared/);
  const mail = explain(422, { error: "mail_not_configured", field: "unenrolled", message: "…" });
  assert.equal(mail.code, "mail_not_configured");
  assert.match(mail.message, /cannot send email.*passphrase instead.*Nothing was shared/);
});
