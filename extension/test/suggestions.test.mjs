import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fieldTree } from "../panel/form-model.js";
import { organisationPaths, recipientOrganisations } from "../panel/suggestions.js";

const policy = (name) => JSON.parse(readFileSync(new URL(`../../gateway/policies/${name}.json`, import.meta.url)));

test("the questions offered the recipients' organisations are the ones the policy marks (x-offer), in both editions", () => {
  for (const name of ["hmg-2018", "dfe-2024"]) {
    assert.deepEqual(organisationPaths(fieldTree(policy(name))), ["request.organisation"], name);
  }
  // A policy that marks nothing is offered nothing: no question is guessed at from its wording.
  assert.deepEqual(organisationPaths(fieldTree({ properties: { org: { type: "string", title: "Organisation" } } })), []);
});

test("the recipients' organisations: each once, in the e-mail's order, ignoring capitals and spacing", () => {
  const matched = [
    { address: "a@x", recipient: { id: "a", org: "Hereford MASH" } },
    { address: "b@x", recipient: { id: "b", org: "West Mercia  Police" } },
    { address: "c@x", recipient: { id: "c", org: "hereford mash" } },
    { address: "d@x", recipient: { id: "d", org: "" } },
    { address: "e@x", recipient: { id: "e" } },
  ];
  assert.deepEqual(recipientOrganisations(matched), ["Hereford MASH", "West Mercia Police"]);
  assert.deepEqual(recipientOrganisations([]), []);
  assert.deepEqual(recipientOrganisations(undefined), []);
});
