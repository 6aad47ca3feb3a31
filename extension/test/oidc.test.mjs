// Signing in with the organisation: PKCE, the authorization URL, the redirect and the token answer.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import {
  SignInError,
  authorizationUrl,
  base64url,
  checkTokenFor,
  codeChallenge,
  explainLaunchError,
  parseRedirect,
  parseTokenResponse,
  randomToken,
  signInIssuers,
  signInWith,
  tokenRequestBody,
} from "../lib/oidc.js";
import { tokenClaims } from "../lib/gateway.js";

const REDIRECT = "https://abcdefghijklmnop.chromiumapp.org/";
const ISSUER = {
  issuer: "https://idp.example/tenant",
  audience: "api://safeshare",
  authorization_endpoint: "https://idp.example/authorize?tenant=t1",
  token_endpoint: "https://idp.example/token",
  client_id: "safeshare-extension",
  scopes: ["openid", "api://safeshare/Share"],
};

test("RFC 7636 appendix B: the S256 challenge of the example verifier", async () => {
  assert.equal(await codeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
});

test("the challenge is base64url(SHA-256(verifier)) without padding", async () => {
  const v = randomToken();
  const expected = createHash("sha256").update(v).digest("base64url");
  assert.equal(await codeChallenge(v), expected);
  assert.doesNotMatch(await codeChallenge(v), /[+/=]/);
});

test("verifiers and states are 43 unreserved characters and never repeat", async () => {
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const v = randomToken();
    assert.match(v, /^[A-Za-z0-9_-]{43}$/);
    seen.add(v);
  }
  assert.equal(seen.size, 200);
  await assert.rejects(codeChallenge("too-short"));
  assert.equal(base64url(new Uint8Array([0xfb, 0xff])), "-_8");
});

test("only issuers with both endpoints (https or loopback) and a client id are offered", () => {
  const config = {
    audience: "safeshare",
    embedded_issuer: { issuer: "safeshare-embedded" },
    oidc: [
      ISSUER,
      { ...ISSUER, issuer: "no-client", client_id: null },
      { ...ISSUER, issuer: "no-token", token_endpoint: null },
      { ...ISSUER, issuer: "plain-http", authorization_endpoint: "http://idp.example/authorize" },
      { ...ISSUER, issuer: "loopback", authorization_endpoint: "http://127.0.0.1:9000/a", token_endpoint: "http://localhost:9000/t" },
      { ...ISSUER, issuer: "script", authorization_endpoint: "javascript:alert(1)" },
    ],
  };
  assert.deepEqual(signInIssuers(config).map((o) => o.issuer), [ISSUER.issuer, "loopback"]);
  assert.deepEqual(signInIssuers({ oidc: null }), []);
  assert.deepEqual(signInIssuers(null), []);
});

test("the authorization URL keeps the endpoint's own query and carries PKCE, state and the redirect", () => {
  const u = new URL(authorizationUrl(ISSUER, { redirectUri: REDIRECT, state: "S1", challenge: "C1" }));
  assert.equal(u.origin + u.pathname, "https://idp.example/authorize");
  const p = Object.fromEntries(u.searchParams);
  assert.deepEqual(p, {
    tenant: "t1",
    response_type: "code",
    client_id: "safeshare-extension",
    redirect_uri: REDIRECT,
    scope: "openid api://safeshare/Share",
    state: "S1",
    code_challenge: "C1",
    code_challenge_method: "S256",
  });
  assert.equal(new URL(authorizationUrl({ ...ISSUER, scopes: [] }, { redirectUri: REDIRECT, state: "s", challenge: "c" })).searchParams.get("scope"), "openid");
});

test("the redirect gives the code only with our state, at our address", () => {
  assert.equal(parseRedirect(`${REDIRECT}?code=abc&state=S1`, { redirectUri: REDIRECT, state: "S1" }), "abc");
  assert.equal(parseRedirect(`${REDIRECT}#code=abc&state=S1`, { redirectUri: REDIRECT, state: "S1" }), "abc");
  const mismatch = () => parseRedirect(`${REDIRECT}?code=abc&state=OTHER`, { redirectUri: REDIRECT, state: "S1" });
  assert.throws(mismatch, (e) => e instanceof SignInError && e.code === "state_mismatch" && /did not match the sign-in SafeShare started/.test(e.message));
  assert.throws(() => parseRedirect(`${REDIRECT}?code=abc`, { redirectUri: REDIRECT, state: "S1" }), { code: "state_mismatch" });
  assert.throws(() => parseRedirect(`https://evil.example/?code=abc&state=S1`, { redirectUri: REDIRECT, state: "S1" }), { code: "bad_redirect" });
  assert.throws(() => parseRedirect("not a url", { redirectUri: REDIRECT, state: "S1" }), { code: "bad_redirect" });
  assert.throws(
    () => parseRedirect(`${REDIRECT}?error=access_denied&error_description=User+said+no&state=S1`, { redirectUri: REDIRECT, state: "S1" }),
    (e) => e.code === "access_denied" && /cancelled or not allowed/.test(e.message) && /User said no/.test(e.message),
  );
  assert.throws(() => parseRedirect(`${REDIRECT}?error=server_error&state=S1`, { redirectUri: REDIRECT, state: "S1" }), /refused the sign-in \(server_error\)/);
  assert.throws(() => parseRedirect(`${REDIRECT}?state=S1`, { redirectUri: REDIRECT, state: "S1" }), { code: "no_code" });
});

test("the token request is a public client's: the verifier, no secret", () => {
  const body = new URLSearchParams(tokenRequestBody({ code: "c d", redirectUri: REDIRECT, clientId: "cid", verifier: "v" }));
  assert.deepEqual(Object.fromEntries(body), {
    grant_type: "authorization_code",
    code: "c d",
    redirect_uri: REDIRECT,
    client_id: "cid",
    code_verifier: "v",
  });
  assert.ok(!body.has("client_secret"));
});

test("token answers: the access token, or the refusal in plain words", () => {
  assert.equal(parseTokenResponse(200, { access_token: "AT", token_type: "Bearer", expires_in: 3600 }), "AT");
  assert.equal(parseTokenResponse(200, { access_token: "AT" }), "AT");
  assert.throws(
    () => parseTokenResponse(400, { error: "invalid_grant", error_description: "PKCE verification failed" }),
    (e) => e.code === "token_refused" && /would not complete the sign-in \(invalid_grant\)/.test(e.message) && /PKCE verification failed/.test(e.message),
  );
  assert.throws(() => parseTokenResponse(502, null), /http_502/);
  assert.throws(() => parseTokenResponse(200, { token_type: "Bearer" }), /did not give SafeShare an access token/);
  assert.throws(() => parseTokenResponse(200, { access_token: "AT", token_type: "DPoP" }), /DPoP/);
});

test("a closed sign-in window is said plainly, in Chromium's and Firefox's words", () => {
  assert.equal(explainLaunchError(new Error("The user did not approve access.")).code, "window_closed");
  assert.equal(explainLaunchError(new Error("User cancelled or denied access.")).code, "window_closed");
  assert.match(explainLaunchError(new Error("The user did not approve access.")).message, /sign-in window was closed/);
  assert.equal(explainLaunchError(new Error("Authorization page could not be loaded.")).code, "unreachable");
  assert.match(explainLaunchError(new Error("weird")).message, /weird/);
});

const jwt = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

test("the token must come from the issuer and be for the audience the gateway expects", () => {
  checkTokenFor(ISSUER, { sub: "u", iss: ISSUER.issuer, aud: ISSUER.audience });
  checkTokenFor(ISSUER, { sub: "u", iss: ISSUER.issuer, aud: ["other", ISSUER.audience] });
  assert.throws(() => checkTokenFor(ISSUER, null), { code: "token_unreadable" });
  assert.throws(() => checkTokenFor(ISSUER, { sub: "u", iss: "https://sts.windows.net/t/", aud: ISSUER.audience }), { code: "token_issuer" });
  assert.throws(() => checkTokenFor(ISSUER, { sub: "u", iss: ISSUER.issuer, aud: "00000003-0000-0000-c000-000000000000" }), { code: "token_audience" });
});

function fakeIdp({ tamperState = false, tokenStatus = 200 } = {}) {
  const calls = [];
  const launch = async ({ url, interactive }) => {
    const u = new URL(url);
    calls.push({ launch: url, interactive });
    const state = tamperState ? "forged" : u.searchParams.get("state");
    return `${u.searchParams.get("redirect_uri")}?code=CODE1&state=${state}`;
  };
  const f = async (url, init) => {
    calls.push({ url, init });
    const sent = new URLSearchParams(init.body);
    const launched = new URL(calls[0].launch).searchParams;
    const ok = createHash("sha256").update(sent.get("code_verifier")).digest("base64url") === launched.get("code_challenge");
    if (!ok || tokenStatus !== 200) return new Response(JSON.stringify({ error: "invalid_grant" }), { status: 400 });
    return new Response(JSON.stringify({ access_token: jwt({ sub: "pat", iss: ISSUER.issuer, aud: ISSUER.audience }), token_type: "Bearer" }));
  };
  return { calls, launch, f };
}

test("the whole flow: PKCE verified by the token endpoint, the access token returned", async () => {
  const idp = fakeIdp();
  const token = await signInWith(ISSUER, { redirectUri: REDIRECT, launch: idp.launch, fetch: idp.f, claimsOf: tokenClaims });
  assert.equal(tokenClaims(token).sub, "pat");
  assert.equal(idp.calls[0].interactive, true);
  assert.equal(idp.calls[1].url, ISSUER.token_endpoint);
  assert.equal(idp.calls[1].init.method, "POST");
  assert.equal(idp.calls[1].init.headers["Content-Type"], "application/x-www-form-urlencoded");
  assert.equal(new URLSearchParams(idp.calls[1].init.body).get("code"), "CODE1");
});

test("a forged state stops the flow before the token endpoint is called", async () => {
  const idp = fakeIdp({ tamperState: true });
  await assert.rejects(signInWith(ISSUER, { redirectUri: REDIRECT, launch: idp.launch, fetch: idp.f }), { code: "state_mismatch" });
  assert.equal(idp.calls.length, 1);
});

test("a refused exchange, a closed window and an unreachable token endpoint are plain errors", async () => {
  const idp = fakeIdp({ tokenStatus: 400 });
  await assert.rejects(signInWith(ISSUER, { redirectUri: REDIRECT, launch: idp.launch, fetch: idp.f }), { code: "token_refused" });
  const closed = async () => {
    throw new Error("The user did not approve access.");
  };
  await assert.rejects(signInWith(ISSUER, { redirectUri: REDIRECT, launch: closed, fetch: idp.f }), { code: "window_closed" });
  const down = async () => {
    throw new TypeError("Failed to fetch");
  };
  await assert.rejects(signInWith(ISSUER, { redirectUri: REDIRECT, launch: fakeIdp().launch, fetch: down }), { code: "unreachable" });
});
