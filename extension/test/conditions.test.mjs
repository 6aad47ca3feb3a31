import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { applies, conditionalFields, matches } from "../panel/conditions.js";

const policy = (id) => JSON.parse(readFileSync(new URL(`../../gateway/policies/${id}.json`, import.meta.url)));
const example = (name) => JSON.parse(readFileSync(new URL(`../../tests/fixtures/justifications/${name}.json`, import.meta.url)));
const shown = (p, doc) => new Map([...conditionalFields(p)].map(([k, c]) => [k, applies(p, c, doc)]));

test("questions that only an if/then requires are asked only while it holds, from the schema alone", () => {
  const p = policy("hmg-2018");
  const empty = shown(p, {});
  // Nothing decided yet: the share-only sections and every follow-up question wait.
  for (const k of ["data_categories", "rules.1_lawful_basis", "rules.6_necessary_proportionate", "rules.2_openness.not_sought_reason", "rules.4_transparency.reason"]) {
    assert.equal(empty.get(k), false, k);
  }
  const share = shown(p, example("justification-share"));
  assert.equal(share.get("rules.1_lawful_basis.article_9"), true); // health is shared
  assert.equal(share.get("rules.1_lawful_basis.dpa_schedule_1"), true); // substantial public interest
  assert.equal(share.get("rules.2_openness.not_sought_reason"), true); // agreement not sought
  assert.equal(share.get("rules.7_record.not_shared_reason"), false); // forbidden when sharing
  assert.equal(share.get("rules.4_transparency.reason"), false); // they will be told
  assert.equal(share.get("rules.4_transparency.overriding_reason"), false); // consent was not refused
  const notShare = shown(p, example("justification-not-share"));
  assert.equal(notShare.get("rules.7_record.not_shared_reason"), true);
  assert.equal(notShare.get("rules.1_lawful_basis"), false);
});

test("the DfE 2024 edition gets the same treatment without a line of its own", () => {
  const p = policy("dfe-2024");
  const c = conditionalFields(p);
  assert.ok(c.size > 5);
  assert.equal(shown(p, {}).get("data_categories"), false);
});

test("x-show-when overrides: the property is asked exactly while the justification matches it", () => {
  const p = {
    type: "object",
    properties: {
      decision: { enum: ["share", "not_share"] },
      note: { type: "string", "x-show-when": { required: ["decision"], properties: { decision: { const: "not_share" } } } },
    },
  };
  const c = conditionalFields(p).get("note");
  assert.equal(applies(p, c, { decision: "share" }), false);
  assert.equal(applies(p, c, { decision: "not_share" }), true);
});

test("matches covers the keywords conditions use; unknown keywords pass", () => {
  const p = { $defs: { yes: { const: true } } };
  assert.ok(matches(p, { type: "array", contains: { enum: ["a"] }, minItems: 1 }, ["b", "a"]));
  assert.ok(!matches(p, { type: "array", contains: { enum: ["a"] } }, ["b"]));
  assert.ok(matches(p, { anyOf: [{ $ref: "#/$defs/yes" }, { const: 1 }] }, 1));
  assert.ok(!matches(p, { not: { $ref: "#/$defs/yes" } }, true));
  assert.ok(matches(p, { pattern: "^x" }, "y"));
});
