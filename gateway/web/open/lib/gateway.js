/**
 * The gateway client: every call the extension makes to a SafeShare gateway, with refusals turned into
 * words a practitioner understands. Pure apart from the `fetch` it is given, so it is unit-tested in Node.
 */
import { base64urlToBytes } from "./base64.js";

export class GatewayError extends Error {
  /**
   * @param {string} code     stable code (the gateway's `error`, or "unreachable" / "not_signed_in")
   * @param {string} message  plain words for the practitioner
   * @param {object} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }

  toJSON() {
    return { code: this.code, message: this.message, ...this.details };
  }
}

const NOTHING_SENT = "Nothing was shared and your email has not been changed.";

/**
 * Plain words for a refusal. `status` and `body` are the gateway's answer.
 * @param {number} status
 * @param {any} body
 * @returns {GatewayError}
 */
export function explain(status, body) {
  const code = body && typeof body.error === "string" ? body.error : `http_${status}`;
  if (status === 401) {
    if (code === "token_expired") {
      return new GatewayError(code, `Your SafeShare sign-in has expired. Open the SafeShare options, sign in again and try again. ${NOTHING_SENT}`);
    }
    if (code === "token_missing") return notSignedIn();
    return new GatewayError(code, `The gateway did not accept your SafeShare sign-in. Open the SafeShare options and sign in again. ${NOTHING_SENT}`);
  }
  if (status === 403) {
    return new GatewayError(code, `Your SafeShare account is not allowed to do this (it needs the practitioner role). ${NOTHING_SENT}`);
  }
  if (code === "unknown_recipients") {
    const names = [...(body.unknown ?? []), ...(body.disabled ?? [])];
    return new GatewayError(
      code,
      `These recipients are not in the SafeShare directory or can no longer receive shares: ${names.join(", ")}. ` +
        `Remove them from the email, ask your SafeShare administrator to register them, or read the email again and choose how they may open the share without a key. ${NOTHING_SENT}`,
      { unknown: body.unknown ?? [], disabled: body.disabled ?? [] },
    );
  }
  if (code === "passphrase_weak") {
    const why = body && typeof body.message === "string" ? ` ${body.message}` : "";
    return new GatewayError(code, `The gateway refused the passphrase.${why} Choose another (or use the suggested one) and share again. ${NOTHING_SENT}`);
  }
  if (code === "mail_not_configured") {
    return new GatewayError(
      code,
      `This SafeShare gateway cannot send email, so it cannot send the code a recipient without a key needs to prove their address. Protect the share with a passphrase instead, or ask your SafeShare administrator to set up email. ${NOTHING_SENT}`,
    );
  }
  if (code === "justification_incomplete") {
    return new GatewayError(code, `The justification is not complete yet: see the problems shown next to each question. ${NOTHING_SENT}`, {
      problems: body.problems ?? [],
    });
  }
  if (code === "agreement_problems") {
    return new GatewayError(
      code,
      `This share is outside what the partnership's agreements allow: see the problems listed above the questions. ` +
        (body.overridable ? "Your organisation lets you share anyway with a recorded reason. " : "") +
        NOTHING_SENT,
      { problems: body.problems ?? [], overridable: !!body.overridable, not_signatories: body.not_signatories ?? [] },
    );
  }
  if (status === 413) {
    return new GatewayError(code, `The email and its attachments are larger than this gateway accepts. ${NOTHING_SENT}`);
  }
  const said = body && typeof body.message === "string" ? ` The gateway said: ${body.message}` : "";
  if (status >= 500) return new GatewayError(code, `The SafeShare gateway had a problem (error ${status}).${said} ${NOTHING_SENT}`);
  return new GatewayError(code, `The SafeShare gateway refused this request (error ${status}).${said} ${NOTHING_SENT}`);
}

export function notSignedIn() {
  return new GatewayError("not_signed_in", `You are not signed in to SafeShare. Open the SafeShare options and sign in. ${NOTHING_SENT}`);
}

export function unreachable(url) {
  return new GatewayError(
    "unreachable",
    `The SafeShare gateway at ${url} could not be reached. Check your connection, or ask your administrator whether the gateway is running, then try again. ${NOTHING_SENT}`,
  );
}

/** Read the payload of a JWT without verifying it (the gateway verifies): for showing who is signed in. */
export function tokenClaims(token) {
  try {
    return JSON.parse(new TextDecoder().decode(base64urlToBytes(String(token).split(".")[1])));
  } catch {
    return null;
  }
}

/** The body of an answer as JSON, or null when it is empty or not JSON (a proxy's HTML error page, say). */
export async function readJson(resp) {
  const text = await resp.text().catch(() => "");
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/**
 * The one way the extension reaches a gateway, for the practitioner's client here and the recipient's
 * (lib/recipient.js): the base URL, the bearer token, no cookies or cache, and every failure as a
 * `GatewayError` in words for whoever is reading — which is why the three wordings are parameters.
 * @param {{baseUrl: string, token: string|null, fetch?: typeof fetch,
 *          explain?: (status: number, body: any) => GatewayError,
 *          notSignedIn?: () => GatewayError, unreachable?: (url: string) => GatewayError}} opts
 * @returns {(path: string, init?: RequestInit, opts?: {signedIn?: boolean}) => Promise<Response>}
 *          `call`: the answer when it is a success (its body unread), else throws
 */
export function gatewayTransport({
  baseUrl,
  token,
  fetch: f = globalThis.fetch.bind(globalThis),
  explain: refused = explain,
  notSignedIn: signedOut = notSignedIn,
  unreachable: away = unreachable,
}) {
  const base = String(baseUrl || "").replace(/\/+$/, "");
  return async function call(path, init = {}, { signedIn = true } = {}) {
    if (!base) throw new GatewayError("no_gateway", "No SafeShare gateway is configured. Open the SafeShare options and enter its address.");
    if (signedIn && !token) throw signedOut();
    let resp;
    try {
      resp = await f(base + path, {
        ...init,
        headers: { ...(init.headers ?? {}), ...(signedIn ? { Authorization: `Bearer ${token}` } : {}) },
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw away(base);
    }
    if (!resp.ok) throw refused(resp.status, await readJson(resp));
    return resp;
  };
}

/**
 * @param {{baseUrl: string, token: string|null, fetch?: typeof fetch}} opts
 */
export function gatewayClient({ baseUrl, token, fetch }) {
  const send = gatewayTransport({ baseUrl, token, fetch });
  async function call(path, init = {}, opts = {}) {
    const resp = await send(path, init, opts);
    return { body: await readJson(resp), headers: resp.headers };
  }

  const json = (path, value, headers = {}) =>
    call(path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(value) });
  // Idempotency-Key (one per share or decision; pass the same key to retry one whose answer was lost): the
  // gateway answers a retry with the first response instead of recording it twice.
  const newKey = () => globalThis.crypto.randomUUID();

  return {
    /** Public (no token): how this gateway lets people sign in. */
    authConfig: async () => (await call("/api/v1/auth/config", {}, { signedIn: false })).body,
    policy: async () => (await call("/api/v1/policy")).body,
    /** With a `disclosure` (a share made another way), both are checked by the gateway's one set of rules. */
    validate: async (justification, disclosure) =>
      (await json("/api/v1/justifications/validate", disclosure === undefined ? justification : { justification, disclosure })).body,
    recipients: async (q) => (await call(`/api/v1/recipients?q=${encodeURIComponent(q)}`)).body.recipients ?? [],
    /** The partnership agreements covering a draft (recipients, purpose, categories, roles), with who has signed. */
    agreementOffers: async ({ recipients = [], purpose = "", categories = [], roles = [] }) => {
      const q = new URLSearchParams({ recipients: recipients.join(","), purpose, categories: categories.join(","), roles: roles.join(",") });
      for (const [k, v] of [...q]) if (!v) q.delete(k);
      return (await call(`/api/v1/agreements/offers?${q}`)).body;
    },
    /** `extra`: parts beside the justification in the wrapped body (e.g. `started_from`, issue 13). */
    decide: async (justification, disclosure, idempotencyKey = newKey(), extra = {}) =>
      (
        await json(
          "/api/v1/decisions",
          disclosure === undefined && !Object.keys(extra).length ? justification : { justification, ...(disclosure === undefined ? {} : { disclosure }), ...extra },
          { "Idempotency-Key": idempotencyKey },
        )
      ).body,
    /** Seek advice first (issue 14): ask an adviser role with only the draft's purpose and data categories. */
    askAdvice: async (to, purpose, dataCategories) => (await json("/api/v1/advice", { to, purpose, data_categories: dataCategories })).body,
    /** An adviser's questions (to their roles in their organisation), or a practitioner's own, each with its answer. */
    listAdvice: async () => (await call("/api/v1/advice")).body.questions ?? [],
    answerAdvice: async (id, answer) => (await json(`/api/v1/advice/${encodeURIComponent(String(id))}/answer`, { answer })).body,
    /** The practitioner's emergency shares whose full justification is still owed (issue 14), soonest first. */
    owedJustifications: async () => (await call("/api/v1/decisions?limit=1")).body.awaiting_justification ?? [],
    /** Complete an emergency share's justification: recorded as a new ledger entry linked to the share. */
    completeJustification: async (shareId, justification) =>
      (await json(`/api/v1/shares/${encodeURIComponent(String(shareId))}/justification`, { justification })).body,
    /**
     * @param {object} meta  recipients, justification, payload_content_type, expires_in
     * @param {string|Uint8Array} payload
     * @param {string} [idempotencyKey]  reuse it to retry the same share
     */
    share: async (meta, payload, idempotencyKey = newKey()) => {
      const form = new FormData();
      form.append("share", new Blob([JSON.stringify(meta)], { type: "application/json" }), "share.json");
      form.append("payload", new Blob([payload], { type: meta.payload_content_type ?? "application/octet-stream" }), "message.eml");
      return (await call("/api/v1/shares", { method: "POST", body: form, headers: { "Idempotency-Key": idempotencyKey } })).body;
    },
  };
}
