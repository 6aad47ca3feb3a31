// The gateway client: requests it makes, and refusals in plain words.
import assert from "node:assert/strict";
import { test } from "node:test";
import { explain, gatewayClient, tokenClaims } from "../lib/gateway.js";

function fakeFetch(handler) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init });
    return handler(url, init);
  };
  return { f, calls };
}

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

test("the token goes in the Authorization header, never in the URL; cookies are not sent", async () => {
  const { f, calls } = fakeFetch(() => json(200, { recipients: [{ id: "alice" }] }));
  const c = gatewayClient({ baseUrl: "https://gw.example/", token: "T0K", fetch: f });
  assert.deepEqual(await c.recipients("a b@example.org"), [{ id: "alice" }]);
  assert.equal(calls[0].url, "https://gw.example/api/v1/recipients?q=a%20b%40example.org");
  assert.equal(calls[0].init.headers.Authorization, "Bearer T0K");
  assert.equal(calls[0].init.credentials, "omit");
});

test("a share is multipart: the 'share' JSON part first, then the payload", async () => {
  const { f, calls } = fakeFetch(() => json(201, { share_id: "s1" }));
  const c = gatewayClient({ baseUrl: "https://gw.example", token: "T", fetch: f });
  const meta = { recipients: ["alice"], justification: { decision: "share" }, payload_content_type: "message/rfc822" };
  assert.deepEqual(await c.share(meta, "MIME-Version: 1.0\r\n"), { share_id: "s1" });
  const form = calls[0].init.body;
  assert.deepEqual([...form.keys()], ["share", "payload"]);
  assert.deepEqual(JSON.parse(await form.get("share").text()), meta);
  assert.equal(form.get("payload").type, "message/rfc822");
  assert.equal(await form.get("payload").text(), "MIME-Version: 1.0\r\n");
});

test("each share and decision carries its own Idempotency-Key; a retry can pass the same one", async () => {
  const { f, calls } = fakeFetch(() => json(201, { share_id: "s1" }));
  const c = gatewayClient({ baseUrl: "https://gw.example", token: "T", fetch: f });
  const meta = { recipients: ["alice"], justification: {}, payload_content_type: "text/plain" };
  await c.share(meta, "a");
  await c.share(meta, "a");
  await c.share(meta, "a", "retry-key-1");
  await c.decide({ decision: "not_share" });
  const keys = calls.map((call) => call.init.headers["Idempotency-Key"]);
  assert.match(keys[0], /^[0-9a-f-]{36}$/);
  assert.notEqual(keys[0], keys[1]);
  assert.equal(keys[2], "retry-key-1");
  assert.match(keys[3], /^[0-9a-f-]{36}$/);
  assert.equal(calls[3].init.headers["Content-Type"], "application/json");
});

test("refusals in plain words, each saying nothing was shared", async () => {
  const cases = [
    [401, { error: "token_expired" }, /sign-in has expired/],
    [401, { error: "token_signature_invalid" }, /did not accept your SafeShare sign-in/],
    [403, { error: "forbidden" }, /practitioner role/],
    [422, { error: "unknown_recipients", unknown: ["zed"], disabled: ["dave"] }, /directory or can no longer receive shares: zed, dave/],
    [422, { error: "justification_incomplete", problems: [] }, /not complete yet/],
    [413, { error: "payload_too_large" }, /larger than this gateway accepts/],
    [500, { error: "internal_error", message: "The gateway could not complete this request." }, /had a problem \(error 500\)/],
  ];
  for (const [status, body, re] of cases) {
    const err = explain(status, body);
    assert.match(err.message, re);
    assert.match(err.message, /Nothing was shared and your email has not been changed\./);
    assert.equal(err.code, body.error);
  }
  assert.deepEqual(explain(422, { error: "unknown_recipients", unknown: ["zed"] }).toJSON().unknown, ["zed"]);
});

test("an unreachable gateway, a missing token, no gateway configured", async () => {
  const down = gatewayClient({ baseUrl: "http://127.0.0.1:9", token: "T", fetch: async () => { throw new TypeError("Failed to fetch"); } });
  await assert.rejects(down.policy(), (e) => e.code === "unreachable" && /could not be reached/.test(e.message));
  const anon = gatewayClient({ baseUrl: "http://127.0.0.1:9", token: null, fetch: async () => json(200, {}) });
  await assert.rejects(anon.policy(), (e) => e.code === "not_signed_in");
  const none = gatewayClient({ baseUrl: "", token: "T", fetch: async () => json(200, {}) });
  await assert.rejects(none.policy(), (e) => e.code === "no_gateway");
});

test("token claims are read for display only", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "pat", roles: ["practitioner"], exp: 2 })).toString("base64url");
  assert.deepEqual(tokenClaims(`h.${payload}.s`), { sub: "pat", roles: ["practitioner"], exp: 2 });
  assert.equal(tokenClaims("garbage"), null);
});

test("the sign-in configuration is public: asked for without a token, and none is sent", async () => {
  const config = { audience: "safeshare", embedded_issuer: null, oidc: [] };
  const { f, calls } = fakeFetch(() => json(200, config));
  const c = gatewayClient({ baseUrl: "https://gw.example/", token: null, fetch: f });
  assert.deepEqual(await c.authConfig(), config);
  assert.equal(calls[0].url, "https://gw.example/api/v1/auth/config");
  assert.equal(calls[0].init.headers.Authorization, undefined);
  await assert.rejects(c.policy(), { code: "not_signed_in" });
  await assert.rejects(gatewayClient({ baseUrl: "", token: null, fetch: f }).authConfig(), { code: "no_gateway" });
});
