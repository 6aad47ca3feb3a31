// The recipient's side: share references, inbox rows and states, enrolment states, the justification shown
// beside a share, and the recipient's gateway client (requests and refusals in plain words).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  backupFileName,
  base64ToBytes,
  bytesToBase64,
  enrolmentState,
  explainForRecipient,
  formatTime,
  handlingNotes,
  inboxRow,
  justificationSections,
  policyLabels,
  recipientClient,
  sentRow,
  sha256Hex,
  shareIdFromHash,
  shareIdFromNoticePath,
  shareState,
} from "../lib/recipient.js";

const POLICY = JSON.parse(readFileSync(new URL("../../gateway/policies/hmg-2018.json", import.meta.url)));
const JUSTIFICATION = JSON.parse(readFileSync(new URL("../../tests/fixtures/justifications/justification-share.json", import.meta.url)));
const ID = "sh_abcdefghijklmnopqrstuvwx";

test("share references: from the extension page's hash and from a notification link's path, nothing else", () => {
  assert.equal(shareIdFromHash(`#share=${ID}`), ID);
  assert.equal(shareIdFromHash(`share=${ID}`), ID);
  assert.equal(shareIdFromHash("#share=sh_short"), null);
  assert.equal(shareIdFromHash("#share=javascript:alert(1)"), null);
  assert.equal(shareIdFromHash(""), null);
  assert.equal(shareIdFromNoticePath(`/s/${ID}`), ID);
  assert.equal(shareIdFromNoticePath(`/safeshare/s/${ID}/`), ID);
  assert.equal(shareIdFromNoticePath(`/s/${ID}/extra`), null);
  assert.equal(shareIdFromNoticePath("/s/<script>"), null);
});

test("backup file names carry the recipient ID and nothing that could leave the download folder", () => {
  assert.equal(backupFileName("hereford-mash-duty"), "safeshare-keys-hereford-mash-duty.age");
  assert.equal(backupFileName("../../etc/passwd"), "safeshare-keys-etc_passwd.age");
  assert.equal(backupFileName(""), "safeshare-keys-recipient.age");
});

test("base64 round trip over more than one slice, and SHA-256 in lower-case hex", async () => {
  const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff);
  assert.deepEqual(base64ToBytes(bytesToBase64(bytes)), bytes);
  assert.equal(bytesToBase64(new TextEncoder().encode("hi")), "aGk=");
  assert.equal(await sha256Hex(new TextEncoder().encode("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("times are shown in UTC with the zone named", () => {
  assert.equal(formatTime("2026-11-25T09:05:00.000Z"), "25 Nov 2026, 09:05 UTC");
  assert.equal(formatTime("not a time"), "unknown");
  assert.equal(formatTime(null), "unknown");
});

test("states: acknowledged, revoked, expired (also before the gateway's sweep) and exhausted", () => {
  const now = new Date("2026-11-25T10:00:00Z");
  const row = { state: "active", expires_at: "2026-12-01T00:00:00.000Z", acknowledged_at: null };
  assert.equal(shareState(row, now), "active");
  assert.equal(shareState({ ...row, acknowledged_at: "2026-11-25T09:00:00.000Z" }, now), "acknowledged");
  assert.equal(shareState({ ...row, expires_at: "2026-11-25T09:59:59.000Z" }, now), "expired");
  assert.equal(shareState({ ...row, state: "revoked" }, now), "revoked");
  assert.equal(shareState({ ...row, state: "exhausted", acknowledged_at: "x" }, now), "exhausted");
});

test("an inbox row in words: sender, organisation, purpose and categories labelled from the policy", () => {
  const labels = policyLabels(POLICY);
  const row = inboxRow(
    {
      id: ID,
      from: { sub: "pat", org: "Hereford Primary" },
      purpose: { code: "s47_enquiry", description: "Enquiry." },
      data_categories: ["health", "safeguarding_concern"],
      created_at: "2026-11-25T09:00:00.000Z",
      expires_at: "2026-12-25T09:00:00.000Z",
      state: "revoked",
      via: "hereford-mash",
    },
    { labels, now: new Date("2026-11-26T00:00:00Z") },
  );
  assert.equal(row.from, "pat");
  assert.equal(row.organisation, "Hereford Primary");
  assert.equal(row.purpose, "Child protection enquiry (Children Act 1989 s47)");
  assert.equal(row.categories, "Health (special category), Safeguarding concern");
  assert.equal(row.received, "25 Nov 2026, 09:00 UTC");
  assert.equal(row.expires, "25 Dec 2026, 09:00 UTC");
  assert.equal(row.stateLabel, "Revoked by the sender");
  assert.equal(row.openable, false);
  assert.equal(row.via, "hereford-mash");
  // Without the policy, codes are still readable.
  const plain = inboxRow({ id: ID, from: { sub: "pat", org: null }, purpose: { code: "mash_research" }, data_categories: [], state: "active" });
  assert.equal(plain.purpose, "Mash research");
  assert.equal(plain.organisation, "not given");
  assert.equal(plain.categories, "none recorded");
  assert.equal(plain.openable, true);
});

test("the sender's list shows each recipient's name, organisation, when they opened it, acknowledgement and note", () => {
  const row = sentRow(
    {
      id: ID,
      state: "active",
      purpose: { code: "referral" },
      subjects: ["CASE-1"],
      created_at: "2026-11-25T09:00:00.000Z",
      expires_at: "2099-01-01T00:00:00.000Z",
      recipients: [
        { id: "alice", name: "Alice Ames", org: "MASH", downloads: 1, first_downloaded_at: "2026-11-25T09:30:00.000Z", acknowledged_at: "2026-11-25T10:00:00.000Z", acknowledgement: "Visit booked." },
        { id: "bob", name: "Bob Brown", org: "MASH", downloads: 0, acknowledged_at: null, acknowledgement: null, via: "duty" },
        { id: "carol", org: "Police", downloads: 0, acknowledged_at: null, acknowledgement: null },
      ],
    },
    { labels: policyLabels(POLICY) },
  );
  assert.equal(row.stateLabel, "Available");
  assert.equal(row.recipients[0].acknowledged, "Received and actioned 25 Nov 2026, 10:00 UTC");
  assert.equal(row.recipients[0].note, "Visit booked.");
  assert.equal(row.recipients[1].acknowledged, "Not yet acknowledged");
  assert.equal(row.recipients[1].id, "bob");
  assert.equal(row.recipients[1].name, "Bob Brown (via duty)");
  assert.equal(row.recipients[0].name, "Alice Ames");
  assert.equal(row.recipients[0].opened, "opened 25 Nov 2026, 09:30 UTC");
  assert.equal(row.recipients[1].opened, "not opened yet");
  // A gateway that gives no name: the ID, never nothing.
  assert.equal(row.recipients[2].name, "carol");
});

test("the justification beside a share, with the policy's titles and labels", () => {
  const sections = justificationSections(JUSTIFICATION, POLICY);
  const byTitle = Object.fromEntries(sections.map((s) => [s.title, Object.fromEntries(s.rows.map((r) => [r.label, r.value]))]));
  assert.equal(byTitle["Why you have it"]["Purpose"], "Referral");
  assert.equal(byTitle["Why you have it"]["About (references, never names)"], "CASE-2026-0412 (Child)");
  assert.equal(byTitle["Why you have it"]["Categories of information"], "Identity, Health (special category), Safeguarding concern");
  const lawful = byTitle["Rule 1 — Lawful basis"];
  assert.equal(lawful["Article 6 lawful basis"].startsWith("Public task"), true, lawful["Article 6 lawful basis"]);
  assert.match(lawful["Statutory gateways"], /Children Act 1989 s47/);
  assert.equal(byTitle["Rule 2 — Openness"]["Agreement sought"], "No");
  assert.equal(byTitle["Rule 6 — Necessary, proportionate, adequate, relevant, accurate, timely and secure"]["Urgency"], "Within 24 hours");
  assert.deepEqual(justificationSections(null, POLICY), []);
  // Without the policy the codes are still shown, readably.
  const bare = justificationSections(JUSTIFICATION, null);
  assert.equal(bare.find((s) => s.title === "Lawful basis").rows[0].value, "public_task");
});

test("handling notes: urgency, who must not be told, references only, proportionality", () => {
  const notes = handlingNotes(JUSTIFICATION, POLICY);
  assert.equal(notes[0], "Urgency: Within 24 hours.");
  assert.match(notes[1], /agreement was not sought \(seeking it would prejudice the person's protection\)\. Do not contact them/);
  assert.match(notes[1], /could place the child at greater risk/);
  assert.match(notes[2], /^Will be told after sharing: the person is not to learn of this share from you/);
  assert.match(notes.join("\n"), /identified by reference only/);
  assert.match(notes.at(-1), /^Shared only as far as needed: Only the disclosure/);
  assert.deepEqual(handlingNotes({}, POLICY), []);
});

test("handling notes: a DfE 2024 rule 5 handling instruction comes first, in the policy's words", () => {
  const dfe = JSON.parse(readFileSync(new URL("../../gateway/policies/dfe-2024.json", import.meta.url)));
  const draft = JSON.parse(readFileSync(new URL("../../tests/fixtures/justifications/dfe-2024-share.json", import.meta.url)));
  const handling = {
    policy: "dfe-2024",
    rule: 5,
    title: "Rule 5 — Protect identities",
    field: "rules.5_protect_identities",
    whose: [{ code: "referrer", label: "The person who raised the concern" }],
    how: [{ code: "withhold_referrer_identity", label: "Do not say who raised the concern" }],
    instruction: draft.rules["5_protect_identities"].instruction,
  };
  const notes = handlingNotes(draft, dfe, handling);
  assert.match(notes[0], /^Rule 5 — Protect identities: protect the person who raised the concern\. Do not say who raised the concern\. The sender's instruction: Do not tell the father/);
  assert.equal(handlingNotes(draft, dfe).length, notes.length - 1);
});

test("enrolment states from /recipients/me and this browser's keys", () => {
  const k1 = "age1one";
  const k2 = "age1two";
  const en = (age, status, t) => ({ age_recipient: age, status, requested_at: t });
  assert.equal(enrolmentState({ keys: [], enrolments: [] }, []).state, "none");
  assert.equal(enrolmentState({ keys: [], enrolments: [] }, [k1]).state, "not_enrolled");
  const pending = enrolmentState({ keys: [], enrolments: [en(k1, "pending", "1")] }, [k1]);
  assert.equal(pending.state, "pending");
  assert.match(pending.message, /^Waiting for approval/);
  assert.equal(enrolmentState({ keys: [{ age_recipient: k1, status: "active" }], enrolments: [en(k1, "approved", "1")] }, [k1]).state, "active");
  assert.equal(enrolmentState({ keys: [], enrolments: [en(k1, "rejected", "1")] }, [k1]).state, "rejected");
  // Rotation: the new key waits while the old one stays active; then the new one is active.
  const rotating = enrolmentState(
    { keys: [{ age_recipient: k1, status: "active" }], enrolments: [en(k1, "approved", "1"), en(k2, "pending", "2")] },
    [k1, k2],
  );
  assert.equal(rotating.state, "pending");
  assert.match(rotating.message, /keep using your current key/);
  const rotated = enrolmentState(
    { keys: [{ age_recipient: k2, status: "active" }, { age_recipient: k1, status: "retired" }], enrolments: [en(k2, "approved", "2")] },
    [k1, k2],
  );
  assert.equal(rotated.state, "active");
  assert.equal(enrolmentState({ keys: [{ age_recipient: "age1else", status: "active" }], enrolments: [] }, [k1]).state, "elsewhere");
  assert.equal(enrolmentState({ recipient: { status: "disabled" }, keys: [], enrolments: [] }, [k1]).state, "disabled");
});

function fakeFetch(handler) {
  const calls = [];
  return {
    calls,
    f: async (url, init) => {
      calls.push({ url, init });
      return handler(url, init);
    },
  };
}
const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

test("the recipient client: enrolment sends only the public key, with the token in the header", async () => {
  const { f, calls } = fakeFetch(() => json(202, { enrolment: { status: "pending" } }));
  const c = recipientClient({ baseUrl: "https://gw.example/", token: "T0K", fetch: f });
  assert.deepEqual(await c.enrol("age1xyz"), { enrolment: { status: "pending" } });
  assert.equal(calls[0].url, "https://gw.example/api/v1/recipients/enrol");
  assert.equal(calls[0].init.method, "POST");
  assert.deepEqual(JSON.parse(calls[0].init.body), { age_recipient: "age1xyz" });
  assert.equal(calls[0].init.headers.Authorization, "Bearer T0K");
  assert.equal(calls[0].init.credentials, "omit");
});

test("the recipient client refuses a malformed share reference before calling the gateway", async () => {
  const { f, calls } = fakeFetch(() => json(200, {}));
  const c = recipientClient({ baseUrl: "https://gw.example", token: "T", fetch: f });
  await assert.rejects(c.share("../ledger"), (e) => e.code === "bad_reference");
  await assert.rejects(c.acknowledge("sh_x", "n"), (e) => e.code === "bad_reference");
  assert.equal(calls.length, 0);
  await c.inbox("42");
  assert.equal(calls[0].url, "https://gw.example/api/v1/inbox?cursor=42");
});

test("the envelope is checked against the SHA-256 the gateway recorded", async () => {
  const bytes = new TextEncoder().encode("age-encryption.org/v1\n...");
  const good = await sha256Hex(bytes);
  const respond = (sha) => () => new Response(bytes, { status: 200, headers: { "X-SafeShare-Envelope-SHA256": sha, "X-SafeShare-Ledger-Index": "7" } });
  let c = recipientClient({ baseUrl: "https://gw.example", token: "T", fetch: fakeFetch(respond(good)).f });
  const env = await c.envelope(ID);
  assert.deepEqual(env.bytes, bytes);
  assert.equal(env.ledgerIndex, 7);
  c = recipientClient({ baseUrl: "https://gw.example", token: "T", fetch: fakeFetch(respond("0".repeat(64))).f });
  await assert.rejects(c.envelope(ID), (e) => e.code === "digest_mismatch" && /not the one the gateway recorded/.test(e.message));
});

test("refusals in words a recipient understands", async () => {
  const cases = [
    [401, { error: "token_expired" }, /sign-in has expired/],
    [401, { error: "token_missing" }, /not signed in/],
    [403, { error: "forbidden" }, /not a recipient's sign-in/],
    [404, { error: "not_found" }, /not addressed to you, or it does not exist/],
    [410, { error: "share_revoked" }, /sender revoked this share/],
    [410, { error: "share_expired" }, /has expired/],
    [410, { error: "download_limit_reached" }, /as many times as the sender allowed/],
    [503, { error: "x", message: "busy" }, /had a problem \(error 503\)\. The gateway said: busy/],
  ];
  for (const [status, body, re] of cases) assert.match(explainForRecipient(status, body).message, re);
  const down = recipientClient({ baseUrl: "http://127.0.0.1:9", token: "T", fetch: async () => { throw new TypeError("fetch failed"); } });
  await assert.rejects(down.inbox(), (e) => e.code === "unreachable" && /could not be reached/.test(e.message));
  const anon = recipientClient({ baseUrl: "http://127.0.0.1:9", token: null, fetch: async () => json(200, {}) });
  await assert.rejects(anon.me(), (e) => e.code === "not_signed_in");
});

test("a share the recipient has downloaded is not new; rows carry the case and share references", async () => {
  const { inboxRow: row, shareState: st } = await import("../lib/recipient.js");
  const base = { id: "s-1", state: "active", expires_at: "2999-01-01T00:00:00Z", subjects: ["CASE-1", "CASE-2"], from: { sub: "pat", org: "e2e" } };
  assert.equal(st({ ...base, downloads: 0 }), "active");
  assert.equal(st({ ...base, downloads: 1 }), "opened");
  const r = row({ ...base, downloads: 1 });
  assert.equal(r.stateLabel, "Opened, not yet acknowledged");
  assert.ok(r.openable);
  assert.equal(r.cases, "CASE-1, CASE-2");
  assert.equal(r.shareRef, "s-1");
  assert.equal(r.from, "pat");
  const named = row({ ...base, from: { sub: "pat", org: "e2e", name: "Pat Jones", org_name: "Hereford Primary" } });
  assert.equal(named.from, "Pat Jones");
  assert.equal(named.organisation, "Hereford Primary");
});
