// The extension pages' one helper module (lib/page.js): how a service worker's answer becomes a value or an Error.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseHTML } from "./dom-shim.mjs";

let reply = async () => undefined;
const sent = [];
globalThis.chrome = { runtime: { sendMessage: async (m) => (sent.push(m), reply(m)) } };
globalThis.document = parseHTML("<html><body><p id=alert hidden></p></body></html>");
const { asker, el } = await import("../lib/page.js");

test("asker: the value of an ok answer, with the page's extra fields before the payload's", async () => {
  reply = async () => ({ ok: true, value: 42 });
  sent.length = 0;
  const ask = asker({ extra: () => ({ session: "s1" }) });
  assert.equal(await ask("status", { a: 1 }), 42);
  assert.deepEqual(sent, [{ type: "status", session: "s1", a: 1 }]);
});

test("asker: a refusal keeps the worker's code, field and message", async () => {
  reply = async () => ({ ok: false, error: { code: "invalid", field: "x", message: "Bad x." } });
  const e = await asker()("share").catch((err) => err);
  assert.equal(e.message, "Bad x.");
  assert.equal(e.code, "invalid");
  assert.equal(e.field, "x");
});

test("asker: no answer or a dead worker is code internal, with the page's advice", async () => {
  reply = async () => undefined;
  let e = await asker({ advice: "Nothing was shared." })("share").catch((err) => err);
  assert.equal(e.code, "internal");
  assert.equal(e.message, "SafeShare did not answer. Nothing was shared.");
  reply = async () => {
    throw new Error("gone");
  };
  e = await asker()("share").catch((err) => err);
  assert.equal(e.code, "internal");
  assert.equal(e.message, "SafeShare stopped unexpectedly (gone). Reload this page and try again.");
});

test("el: attributes and children, never markup; null, false and empty left out", () => {
  const node = el("p", { class: "x", hidden: false, open: true, title: null }, "a<b>", null, false, "", el("b", { text: "c" }));
  assert.equal(node.serialize(), '<p class="x" open>a&lt;b&gt;<b>c</b></p>');
});
