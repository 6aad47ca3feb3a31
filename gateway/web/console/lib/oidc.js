/**
 * Signing in with the organisation's identity provider: the OAuth 2.0 authorization-code flow with PKCE
 * (RFC 7636, S256) for a public client, as the browser's `identity.launchWebAuthFlow` runs it. Pure apart
 * from the `crypto` and `fetch` it is given, so it is unit-tested in Node; the service worker does the rest.
 */

export class SignInError extends Error {
  /**
   * @param {string} code     stable code ("window_closed", "state_mismatch", "token_refused", ...)
   * @param {string} message  plain words for the practitioner
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }

  toJSON() {
    return { code: this.code, message: this.message };
  }
}

const NOT_SIGNED_IN = "You are not signed in; try again, or paste a token instead.";

/** base64url without padding (RFC 4648 §5), as PKCE and JWTs use it. */
export function base64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A fresh random string of 32 bytes (43 base64url characters): the PKCE code_verifier, or the state. */
export function randomToken(c = globalThis.crypto, bytes = 32) {
  return base64url(c.getRandomValues(new Uint8Array(bytes)));
}

/** The S256 code_challenge for a verifier: base64url(SHA-256(ASCII(verifier))). */
export async function codeChallenge(verifier, c = globalThis.crypto) {
  if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) throw new Error("a PKCE code_verifier is 43-128 unreserved characters");
  return base64url(new Uint8Array(await c.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}

/** https, or plain http only to this computer (a development identity provider). */
export function acceptableEndpoint(text) {
  try {
    const u = new URL(text);
    if (u.protocol === "https:") return true;
    return u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
  } catch {
    return false;
  }
}

/**
 * The issuers a practitioner can sign in with, from the gateway's `GET /api/v1/auth/config`: those that
 * advertise an authorization endpoint, a token endpoint and a client id (both endpoints https, or loopback).
 */
export function signInIssuers(config) {
  const list = Array.isArray(config?.oidc) ? config.oidc : [];
  return list.filter(
    (o) =>
      o &&
      typeof o.issuer === "string" &&
      typeof o.client_id === "string" &&
      o.client_id &&
      acceptableEndpoint(o.authorization_endpoint) &&
      acceptableEndpoint(o.token_endpoint),
  );
}

/** A short name for an issuer on a button: its host (e.g. "login.microsoftonline.com"). */
export function issuerLabel(issuer) {
  try {
    return new URL(issuer).host || issuer;
  } catch {
    return issuer;
  }
}

/** The authorization request (RFC 6749 §4.1.1 with RFC 7636 §4.3). */
export function authorizationUrl(issuer, { redirectUri, state, challenge }) {
  const u = new URL(issuer.authorization_endpoint);
  const scopes = Array.isArray(issuer.scopes) && issuer.scopes.length ? issuer.scopes : ["openid"];
  const params = {
    response_type: "code",
    client_id: issuer.client_id,
    redirect_uri: redirectUri,
    scope: scopes.join(" "),
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  };
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * The code from the address the identity provider sent the browser back to, after checking it is our
 * redirect address and carries the state we sent. Errors are in plain words.
 */
export function parseRedirect(responseUrl, { redirectUri, state }) {
  let u;
  try {
    u = new URL(responseUrl);
  } catch {
    throw new SignInError("bad_redirect", `The sign-in service sent the browser to an address SafeShare does not understand. ${NOT_SIGNED_IN}`);
  }
  const expected = new URL(redirectUri);
  if (u.origin !== expected.origin || u.pathname !== expected.pathname) {
    throw new SignInError("bad_redirect", `The sign-in service sent the browser somewhere other than SafeShare. ${NOT_SIGNED_IN}`);
  }
  const params = new URLSearchParams(u.search);
  if (!params.has("code") && !params.has("error") && u.hash) {
    for (const [k, v] of new URLSearchParams(u.hash.slice(1))) params.set(k, v);
  }
  if (params.get("state") !== state) {
    throw new SignInError(
      "state_mismatch",
      `The answer from the sign-in service did not match the sign-in SafeShare started, so it was not used (this protects you from forged sign-ins). ${NOT_SIGNED_IN}`,
    );
  }
  const error = params.get("error");
  if (error) {
    const said = params.get("error_description");
    if (error === "access_denied") {
      throw new SignInError(error, `The sign-in was cancelled or not allowed.${said ? ` The sign-in service said: ${said}` : ""} ${NOT_SIGNED_IN}`);
    }
    throw new SignInError(error, `The sign-in service refused the sign-in (${error}).${said ? ` It said: ${said}` : ""} ${NOT_SIGNED_IN}`);
  }
  const code = params.get("code");
  if (!code) throw new SignInError("no_code", `The sign-in service did not send a sign-in code back. ${NOT_SIGNED_IN}`);
  return code;
}

/** The token request (RFC 6749 §4.1.3 with RFC 7636 §4.5): a public client, so no secret. */
export function tokenRequestBody({ code, redirectUri, clientId, verifier }) {
  return new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri,
    client_id: clientId,
    code_verifier: verifier,
  }).toString();
}

/** The access token from the token endpoint's answer (RFC 6749 §5.1/§5.2), or a plain-words error. */
export function parseTokenResponse(status, body) {
  if (status < 200 || status >= 300 || !body || typeof body !== "object") {
    const error = body && typeof body.error === "string" ? body.error : `http_${status}`;
    const said = body && typeof body.error_description === "string" ? ` It said: ${body.error_description}` : "";
    throw new SignInError("token_refused", `The sign-in service would not complete the sign-in (${error}).${said} ${NOT_SIGNED_IN}`);
  }
  if (typeof body.token_type === "string" && body.token_type.toLowerCase() !== "bearer") {
    throw new SignInError("token_refused", `The sign-in service gave a kind of token SafeShare cannot use (${body.token_type}). ${NOT_SIGNED_IN}`);
  }
  if (typeof body.access_token !== "string" || !body.access_token) {
    throw new SignInError("token_refused", `The sign-in service did not give SafeShare an access token. ${NOT_SIGNED_IN}`);
  }
  return body.access_token;
}

/** Plain words for a failed `identity.launchWebAuthFlow` (Chromium and Firefox word these differently). */
export function explainLaunchError(err) {
  const m = String(err?.message ?? err ?? "");
  if (/did not approve|cancell?ed|denied|closed/i.test(m)) {
    return new SignInError("window_closed", `The sign-in window was closed before the sign-in finished. ${NOT_SIGNED_IN}`);
  }
  if (/could not be loaded/i.test(m)) {
    return new SignInError("unreachable", `Your organisation's sign-in page could not be opened. Check your connection, then try again. ${NOT_SIGNED_IN}`);
  }
  return new SignInError("sign_in_failed", `The sign-in did not finish (${m || "no reason given"}). ${NOT_SIGNED_IN}`);
}

/** The token must be for this gateway: the issuer and audience the gateway expects. */
export function checkTokenFor(issuer, claims) {
  if (!claims || typeof claims.sub !== "string") {
    throw new SignInError("token_unreadable", `The sign-in service gave a token SafeShare cannot read (not a JWT access token). Ask your SafeShare administrator. ${NOT_SIGNED_IN}`);
  }
  if (claims.iss !== issuer.issuer) {
    throw new SignInError("token_issuer", `The sign-in service gave a token from a different issuer (${claims.iss}) than the gateway expects (${issuer.issuer}). Ask your SafeShare administrator. ${NOT_SIGNED_IN}`);
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (issuer.audience && !aud.includes(issuer.audience)) {
    throw new SignInError("token_audience", `The sign-in service gave a token meant for something other than SafeShare (audience ${aud.join(", ")}). Ask your SafeShare administrator to check the scopes. ${NOT_SIGNED_IN}`);
  }
}

/**
 * The whole flow. `launch` is `identity.launchWebAuthFlow`, `fetch` posts to the token endpoint.
 * @returns {Promise<string>} the access token
 */
export async function signInWith(issuer, { redirectUri, launch, fetch: f, crypto: c = globalThis.crypto, claimsOf }) {
  const verifier = randomToken(c);
  const state = randomToken(c);
  const url = authorizationUrl(issuer, { redirectUri, state, challenge: await codeChallenge(verifier, c) });
  let responseUrl;
  try {
    responseUrl = await launch({ url, interactive: true });
  } catch (e) {
    throw explainLaunchError(e);
  }
  if (!responseUrl) throw explainLaunchError(new Error("cancelled"));
  const code = parseRedirect(responseUrl, { redirectUri, state });
  let resp;
  try {
    resp = await f(issuer.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: tokenRequestBody({ code, redirectUri, clientId: issuer.client_id, verifier }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new SignInError("unreachable", `Your organisation's sign-in service could not be reached to finish the sign-in. Check your connection, then try again. ${NOT_SIGNED_IN}`);
  }
  let body;
  try {
    body = JSON.parse(await resp.text());
  } catch {
    body = null;
  }
  const token = parseTokenResponse(resp.status, body);
  if (claimsOf) checkTokenFor(issuer, claimsOf(token));
  return token;
}
