// The golden-rules form model, against the policy the gateway ships (the extension holds no copy of it).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { cardSizeRange, fileMatchesCard, matchRecipients, neutralSubject, notificationText } from "../lib/share-flow.js";
import { fieldsOfRef, fieldTree, placeProblems, policyInfo, problemsPerRule, toJustification, toState } from "../panel/form-model.js";

const repo = new URL("../../", import.meta.url);
const policy = JSON.parse(readFileSync(new URL("gateway/policies/hmg-2018.json", repo), "utf8"));
const example = (name) => JSON.parse(readFileSync(new URL(`tests/fixtures/justifications/justification-${name}.json`, repo), "utf8"));

function find(tree, path) {
  for (const f of tree) {
    if (f.path === path) return f;
    const hit = f.children && find(f.children, path);
    if (hit) return hit;
  }
  return null;
}

/** What a practitioner would enter on screen to produce `doc` (the inverse of toJustification). */
function stateFor(tree, doc, prefix = "", state = {}) {
  for (const f of tree) {
    const path = prefix ? `${prefix}.${f.key}` : f.key;
    const v = doc?.[f.key];
    if (v === undefined) continue;
    if (f.kind === "object") stateFor(f.children, v, path, state);
    else if (f.kind === "objects") {
      state[path] = v.length;
      v.forEach((row, i) => stateFor(f.children, row, `${path}.${i}`, state));
    } else if (f.kind === "list") state[path] = v.join(", ");
    else if (f.kind === "boolean") state[path] = String(v);
    else state[path] = v;
  }
  return state;
}

test("the form follows the policy: one section per golden rule, questions and labels from the policy", () => {
  const tree = fieldTree(policy);
  assert.deepEqual(tree.map((f) => f.key), ["decision", "purpose", "subjects", "data_categories", "agreements", "no_agreement", "request", "rules"]);
  // The partnership's agreements (rule 6): a list of IDs the panel's agreements section fills, and an optional reason.
  assert.equal(find(tree, "agreements").kind, "list");
  assert.equal(find(tree, "agreements").rule, 6);
  assert.equal(find(tree, "no_agreement.reason").kind, "choice");
  const rules = find(tree, "rules").children;
  assert.deepEqual(rules.map((r) => r.rule), [1, 2, 3, 4, 5, 6, 7]);
  for (const r of rules) {
    assert.equal(r.question, policy.properties.rules.properties[r.key]["x-question"]);
    assert.equal(r.kind, "object");
  }
  const a6 = find(tree, "rules.1_lawful_basis.article_6");
  assert.equal(a6.kind, "choice");
  assert.equal(a6.options.find((o) => o.value === "public_task").label, "Public task — Art 6(1)(e)");
  assert.equal(find(tree, "rules.2_openness.agreement_sought").kind, "boolean");
  assert.equal(find(tree, "rules.7_record.rationale").kind, "text");
  assert.equal(find(tree, "subjects").kind, "objects");
  assert.equal(find(tree, "subjects.#.ref").kind, "line");
  assert.equal(find(tree, "data_categories").kind, "multi");
  assert.equal(find(tree, "rules.5_safety_wellbeing.at_risk").kind, "list");
  assert.deepEqual(policyInfo(policy), { id: "hmg-2018", version: "2018.2", title: "Seven golden rules for information sharing", source: policy["x-policy"].source });
});

test("a different policy gives a different form, with no code change", () => {
  const other = structuredClone(policy);
  other.properties.rules.properties["2_openness"]["x-question"] = "Did you engage with the child and their carers?";
  delete other.properties.rules.properties["3_advice"];
  const rules = find(fieldTree(other), "rules").children;
  assert.equal(rules.find((r) => r.key === "2_openness").question, "Did you engage with the child and their carers?");
  assert.ok(!rules.some((r) => r.key === "3_advice"));
});

test("what is entered becomes exactly the justification (share and not-share examples)", () => {
  const tree = fieldTree(policy);
  for (const name of ["share", "not-share"]) {
    const doc = example(name);
    assert.deepEqual(toJustification(tree, stateFor(tree, doc), { policyId: "hmg-2018" }), doc);
  }
});

test("empty answers are left out so the gateway can name them; required sections stay", () => {
  const tree = fieldTree(policy);
  const j = toJustification(tree, { decision: "share", subjects: 1, "subjects.0.ref": "", "rules.2_openness.agreement_sought": "false" });
  assert.deepEqual(j, {
    decision: "share",
    purpose: {},
    subjects: [{}],
    rules: {
      "2_openness": { agreement_sought: false },
      "3_advice": {},
      "4_transparency": {},
      "5_safety_wellbeing": { at_risk: [] },
      "7_record": {},
    },
  });
});

test("problems go next to their field, or the nearest enclosing one, else to the general list", () => {
  const fields = new Set(["subjects.0.ref", "rules.5_safety_wellbeing.at_risk", "rules.1_lawful_basis"]);
  const problems = [
    { field: "subjects.0.ref", rule: 7, message: "a", code: "invalid_ref" },
    { field: "rules.5_safety_wellbeing.at_risk.0", rule: 5, message: "b", code: "x" },
    { field: "rules.1_lawful_basis", rule: 1, message: "c", code: "share_needs_section" },
    { field: "policy", rule: null, message: "d", code: "policy_mismatch" },
  ];
  const { byField, general } = placeProblems(problems, (p) => fields.has(p));
  assert.deepEqual([...byField.keys()], ["subjects.0.ref", "rules.5_safety_wellbeing.at_risk", "rules.1_lawful_basis"]);
  assert.deepEqual(general.map((p) => p.message), ["d"]);
  assert.deepEqual([...problemsPerRule(problems)], [[7, 1], [5, 1], [1, 1], [null, 1]]);
});

test("recipients: exact address match against the directory; unknown ones flagged", () => {
  const dir = [{ id: "alice", email: "Alice@Example.org", name: "Alice", org: "MASH" }, { id: "al", email: "al@example.org", name: "Al", org: "X" }];
  const { matched, unknown } = matchRecipients(["alice@example.org", "ALICE@example.org", "stranger@example.net"], dir);
  assert.deepEqual(matched.map((m) => m.recipient.id), ["alice"]);
  assert.deepEqual(unknown, ["stranger@example.net"]);
});

test("the notification names the share and where to retrieve it, and nothing else", () => {
  const text = notificationText({ shareId: "shr_123", ledgerIndex: 42, expiresAt: "2026-12-02T10:00:00Z", gatewayUrl: "https://gw.example/", sender: "pat" });
  assert.match(text, /^Information has been shared with you securely/);
  assert.match(text, /Reference: shr_123 \(ledger entry 42\)/);
  assert.match(text, /Retrieve it at https:\/\/gw\.example\/s\/shr_123 before Wed, 02 Dec 2026 10:00:00 GMT\./);
  assert.doesNotMatch(text, /pat.*shr|CASE|subject/i);
});

test("a share made another way: the disclosure from what was entered, empty answers left out", async () => {
  const { toDisclosure, localToRfc3339, CHANNELS } = await import("../panel/form-model.js");
  assert.deepEqual(
    CHANNELS.map((c) => c.value),
    ["phone", "meeting", "in_person", "letter", "other_system", "other"],
  );
  const state = {
    "disclosure.channel": "phone",
    "disclosure.with.0.name": " Sam Okafor ",
    "disclosure.with.0.role": "Duty social worker",
    "disclosure.with.0.organisation": "Northshire MASH",
    "disclosure.with.1.name": "",
    "disclosure.summary": "Told the duty line.",
    "disclosure.at": "2026-12-03T09:30",
  };
  const d = toDisclosure(state, 2);
  assert.deepEqual(d.with, [{ name: "Sam Okafor", role: "Duty social worker", organisation: "Northshire MASH" }]);
  assert.equal(d.channel, "phone");
  assert.equal(d.at, new Date("2026-12-03T09:30").toISOString());
  assert.deepEqual(toDisclosure({}, 1), { with: [] });
  assert.equal(localToRfc3339("not a time"), "not a time");
});

test("the safety net's release fields are marked so the panel shows them only while it applies", () => {
  const tree = fieldTree(policy);
  assert.equal(find(tree, "rules.7_record.safety_net").safetyNet, "not_share_despite_risk");
  assert.equal(find(tree, "rules.7_record.rationale").safetyNet, undefined);
  // Left empty, it is not part of the justification (the examples stay as they are).
  assert.equal(JSON.stringify(toJustification(tree, stateFor(tree, example("not-share")))).includes("safety_net"), false);
});

test("questions show only where they apply: the policy's if/then refusals hide them (issue 19)", async () => {
  const { notApplicable, matches } = await import("../panel/form-model.js");
  const share = JSON.parse(readFileSync(new URL("../../tests/fixtures/justifications/justification-share.json", import.meta.url), "utf8"));
  const hidden = notApplicable(policy, share);
  // The routine referral: none of the situation-specific questions is asked.
  for (const p of [
    "rules.1_lawful_basis.legal_duty",
    "rules.1_lawful_basis.professional",
    "rules.1_lawful_basis.p10_consent_would_prejudice",
    "rules.6_necessary_proportionate.information_quality",
    "subjects.0.adult_at_risk_tests",
  ]) assert.ok(hidden.has(p), p);
  assert.ok(!hidden.has("rules.1_lawful_basis.consent_reason_18_2")); // paragraph 18 is relied on
  assert.ok(!hidden.has("subjects.0.consent"));
  // Legal obligation asks for the duty; an adult at risk for the three tests; a child is never asked them.
  const legal = structuredClone(share);
  legal.rules["1_lawful_basis"].article_6 = "legal_obligation";
  legal.subjects.push({ ref: "A-1", role: "adult_at_risk" }, { ref: "C-2", role: "child", consent: { sought: true } });
  const now = notApplicable(policy, legal);
  assert.ok(!now.has("rules.1_lawful_basis.legal_duty"));
  assert.ok(now.has("rules.1_lawful_basis.legal_duty_detail"));
  assert.ok(!now.has("subjects.1.adult_at_risk_tests") && now.has("subjects.2.adult_at_risk_tests"));
  assert.ok(now.has("subjects.1.consent.childs_views") && !now.has("subjects.2.consent.childs_views"));
  assert.ok(now.has("subjects.2.consent.not_sought_reason") && !now.has("subjects.2.consent.response"));
  assert.equal(matches({ not: { const: 1 } }, 2), true);
  assert.equal(matches({ type: "object", required: ["a"] }, {}), false);
});

test("a file added in the panel must have the card's name and a size its rounded size allows", () => {
  assert.deepEqual(cardSizeRange("3 KB"), { min: 2000, max: 4096 });
  assert.equal(cardSizeRange("no size"), null);
  assert.equal(fileMatchesCard({ name: "a.docx", size: 1765 }, { name: "a.docx", sizeText: "2 KB" }), null);
  assert.match(fileMatchesCard({ name: "b.docx", size: 1765 }, { name: "a.docx", sizeText: "2 KB" }), /is called “b.docx”/);
  assert.match(fileMatchesCard({ name: "a.docx", size: 5 }, { name: "a.docx", sizeText: "2 KB" }), /different version/);
  assert.equal(fileMatchesCard({ name: "a.docx", size: 5 }, { name: "a.docx", sizeText: "" }), null);
});

test("the neutral subject names only SafeShare and the share's reference", () => {
  assert.equal(neutralSubject("sh_1"), "Information shared with you securely (SafeShare sh_1)");
});

test("toState is the inverse of toJustification; lists of references know where their answers come from", () => {
  const tree = fieldTree(policy);
  for (const name of ["share", "not-share"]) {
    const doc = example(name);
    assert.deepEqual(toJustification(tree, toState(tree, doc), { policyId: "hmg-2018" }), doc);
  }
  assert.deepEqual(fieldsOfRef(tree, "ref"), ["subjects.#.ref"]);
  assert.equal(find(tree, "rules.5_safety_wellbeing.at_risk").itemRef, "ref");
});
