/**
 * The recipient's side of the extension, the parts that need no browser: the gateway calls a recipient makes
 * (with refusals in words a recipient understands), inbox rows and states, the enrolment state shown at
 * set-up, the justification laid out beside a share, and small encoding helpers. Pure apart from the `fetch`
 * given to the client, so all of it is unit-tested in Node.
 */
import { GatewayError, gatewayTransport } from "./gateway.js";
import { base64ToBytes, bytesToBase64 } from "./base64.js";

/** Share IDs as the gateway makes them (and as they appear in notification links). */
export const SHARE_ID_RE = /^sh_[a-z2-7]{24}$/;

/** The share a recipient page was opened for: `#share=ID` (what the notification link leads to), or null. */
export function shareIdFromHash(hash) {
  const params = new URLSearchParams(String(hash ?? "").replace(/^#/, ""));
  const id = params.get("share");
  return id && SHARE_ID_RE.test(id) ? id : null;
}

/** The share ID in a notification link's path (`/s/ID`, under any prefix the gateway is served at), or null. */
export function shareIdFromNoticePath(pathname) {
  const m = /\/s\/([^/?#]+)\/?$/.exec(String(pathname ?? ""));
  return m && SHARE_ID_RE.test(m[1]) ? m[1] : null;
}

/** What a backup file is called: the recipient ID, made safe for a file name. */
export function backupFileName(recipientId) {
  const safe = String(recipientId ?? "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "") || "recipient";
  return `safeshare-keys-${safe}.age`;
}

// -- bytes ---------------------------------------------------------------------------------------------------

/** Base64 of bytes and back: the extension's one (lib/base64.js), offered here to the recipient pages. */
export { bytesToBase64, base64ToBytes };

/** Lower-case hex SHA-256 (WebCrypto): the gateway records each envelope's digest in its ledger. */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// -- times and states ----------------------------------------------------------------------------------------

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "25 Nov 2026, 09:00 UTC": unambiguous for people in different offices, and the same in every browser. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "unknown";
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`;
}

/**
 * The state of the caller's envelope as a recipient should see it. The gateway sweeps expired shares every
 * few seconds; a share past its expiry is shown as expired at once.
 * A share the recipient has downloaded already is "opened", not new (the gateway counts their downloads).
 * @returns {"active"|"opened"|"acknowledged"|"revoked"|"expired"|"exhausted"}
 */
export function shareState(row, now = new Date()) {
  const state = row?.state ?? "active";
  if (state !== "active") return state;
  if (row.expires_at && new Date(row.expires_at).getTime() <= now.getTime()) return "expired";
  if (row.acknowledged_at) return "acknowledged";
  return Number(row.downloads ?? 0) > 0 ? "opened" : "active";
}

const STATE_LABELS = {
  active: "New: ready to open",
  opened: "Opened, not yet acknowledged",
  acknowledged: "Received and actioned",
  revoked: "Revoked by the sender",
  expired: "Expired",
  exhausted: "Download limit reached",
};

export function stateLabel(state) {
  return STATE_LABELS[state] ?? state;
}

/** Whether the envelope can still be fetched (an acknowledged share stays openable until it expires). */
export function isOpenable(state) {
  return state === "active" || state === "opened" || state === "acknowledged";
}

/** Why a share cannot be opened, in plain words. */
export function notOpenableReason(state) {
  if (state === "revoked") return "The sender revoked this share: its encrypted copy has been destroyed and it can no longer be opened. Contact the sender if you still need the information.";
  if (state === "expired") return "This share has expired: its encrypted copy has been destroyed and it can no longer be opened. Ask the sender to share it again if you still need it.";
  if (state === "exhausted") return "This share has been downloaded as many times as the sender allowed, so it can no longer be opened.";
  return null;
}

// -- labels from the policy ----------------------------------------------------------------------------------

function deref(policy, node) {
  if (!node || typeof node.$ref !== "string") return node ?? {};
  const m = /^#\/\$defs\/([^/]+)$/.exec(node.$ref);
  const { $ref, ...rest } = node;
  return { ...(m ? policy?.$defs?.[m[1]] ?? {} : {}), ...rest };
}

function humanise(code) {
  const s = String(code).replace(/[_-]+/g, " ").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** Labels for codes the inbox shows (purpose, data categories), from the policy; codes made readable without it. */
export function policyLabels(policy) {
  const props = policy?.properties ?? {};
  const purpose = deref(policy, props.purpose?.properties?.code)["x-labels"] ?? {};
  const cats = deref(policy, deref(policy, props.data_categories).items)["x-labels"] ?? {};
  return {
    purpose: (code) => purpose[code] ?? humanise(code),
    category: (code) => cats[code] ?? humanise(code),
  };
}

/**
 * One inbox row as shown: every value already in words.
 * @param {object} row  a share from GET /api/v1/inbox (recipient view)
 */
export function inboxRow(row, { labels = policyLabels(null), now = new Date() } = {}) {
  const state = shareState(row, now);
  return {
    id: row.id,
    // The person's and organisation's names when the gateway gives them, their identifiers otherwise.
    from: row.from?.name || row.from?.sub || "unknown",
    organisation: row.from?.org_name || row.from?.org || "not given",
    // What tells two rows apart: the case references and the share's own reference.
    cases: (row.subjects ?? []).join(", ") || "none recorded",
    shareRef: row.id,
    purpose: labels.purpose(row.purpose?.code ?? "other"),
    purposeDescription: row.purpose?.description ?? "",
    categories: (row.data_categories ?? []).map(labels.category).join(", ") || "none recorded",
    received: formatTime(row.created_at),
    expires: formatTime(row.expires_at),
    state,
    stateLabel: stateLabel(state),
    openable: isOpenable(state),
    via: row.via ?? null,
  };
}

/** One of the practitioner's sent shares with each recipient's acknowledgement (the "Sent" tab). */
export function sentRow(share, { labels = policyLabels(null), now = new Date() } = {}) {
  const overall = share.state === "active" && share.expires_at && new Date(share.expires_at) <= now ? "expired" : share.state;
  return {
    id: share.id,
    purpose: labels.purpose(share.purpose?.code ?? "other"),
    subjects: (share.subjects ?? []).join(", "),
    sent: formatTime(share.created_at),
    expires: formatTime(share.expires_at),
    state: overall,
    stateLabel: overall === "active" ? "Available" : stateLabel(overall),
    // Each recipient by name (the directory's, from the gateway; the ID for older gateways), and their organisation.
    recipients: (share.recipients ?? []).map((r) => ({
      id: r.id,
      name: r.via ? `${r.name || r.id} (via ${r.via})` : r.name || r.id,
      org: r.org,
      opened: r.first_downloaded_at ? `opened ${formatTime(r.first_downloaded_at)}` : "not opened yet",
      downloads: r.downloads ?? 0,
      acknowledged: r.acknowledged_at ? `Received and actioned ${formatTime(r.acknowledged_at)}` : "Not yet acknowledged",
      note: r.acknowledgement ?? "",
    })),
  };
}

// -- the justification beside a share -------------------------------------------------------------------------

function valueText(node, value) {
  const labels = node["x-labels"] ?? {};
  if (typeof value === "boolean") return labels[String(value)] ?? (value ? "Yes" : "No");
  if (Array.isArray(value)) {
    const item = node.items ?? {};
    return value.map((v) => (typeof v === "object" && v ? JSON.stringify(v) : (item["x-labels"] ?? {})[v] ?? String(v))).join(", ");
  }
  if (value && typeof value === "object") return JSON.stringify(value);
  return labels[value] ?? String(value);
}

function rows(policy, node, value) {
  const out = [];
  const props = node.properties ?? {};
  for (const [key, v] of Object.entries(value ?? {})) {
    if (v === null || v === undefined || v === "") continue;
    const child = deref(policy, props[key]);
    const label = child.title ?? humanise(key);
    const items = child.items ? deref(policy, child.items) : null;
    out.push({ key, label, value: valueText({ ...child, items }, v) });
  }
  return out;
}

/**
 * The recorded justification laid out for reading: sections of {label, value} rows, with the policy's own
 * titles and labels (codes made readable when the policy is not at hand).
 * @returns {{title: string, rows: {key: string, label: string, value: string}[]}[]}
 */
export function justificationSections(justification, policy) {
  if (!justification || typeof justification !== "object") return [];
  const props = policy?.properties ?? {};
  const labels = policyLabels(policy);
  const roles = deref(policy, deref(policy, props.subjects?.items).properties?.role)["x-labels"] ?? {};
  const sections = [
    {
      title: "Why you have it",
      rows: [
        { key: "purpose", label: "Purpose", value: labels.purpose(justification.purpose?.code ?? "other") },
        { key: "purpose.description", label: "In the sender's words", value: justification.purpose?.description ?? "" },
        {
          key: "subjects",
          label: "About (references, never names)",
          value: (justification.subjects ?? []).map((s) => `${s.ref} (${roles[s.role] ?? humanise(s.role ?? "")})`).join(", "),
        },
        { key: "data_categories", label: "Categories of information", value: (justification.data_categories ?? []).map(labels.category).join(", ") || "none recorded" },
      ].filter((r) => r.value),
    },
  ];
  const ruleProps = deref(policy, props.rules).properties ?? {};
  for (const [key, value] of Object.entries(justification.rules ?? {})) {
    const node = deref(policy, ruleProps[key]);
    const r = rows(policy, node, value);
    if (r.length) sections.push({ title: node.title ?? humanise(key.replace(/^\d+_/, "")), rows: r });
  }
  return sections;
}

/**
 * What the recipient must bear in mind when handling the information, drawn from the justification: urgency,
 * whether the person or family know (so the recipient does not tell them first), consent, and that people are
 * identified by reference only. `handling` is the share's handling instruction from the policy (DfE 2024 rule 5,
 * protect identities: whose identity and how, in the policy's words, and the sender's instruction); it comes first.
 * @returns {string[]}
 */
export function handlingNotes(justification, policy, handling = null) {
  if (!justification?.rules) return [];
  const r = justification.rules;
  const first = [];
  if (handling && typeof handling === "object") {
    const names = (list) => (Array.isArray(list) ? list.map((x) => x?.label ?? humanise(String(x?.code ?? ""))).filter(Boolean) : []);
    const whose = names(handling.whose);
    const how = names(handling.how);
    first.push(
      `${handling.title ?? "Protect identities"}: ` +
        (whose.length ? `protect ${whose.join("; ").toLowerCase()}. ` : "") +
        (how.length ? `${how.join(". ")}. ` : "") +
        (typeof handling.instruction === "string" ? `The sender's instruction: ${handling.instruction}` : ""),
    );
  }
  const ruleProps = deref(policy, policy?.properties?.rules).properties ?? {};
  const label = (rule, field, value) => {
    const node = deref(policy, deref(policy, ruleProps[rule]).properties?.[field]);
    return (node["x-labels"] ?? {})[value] ?? humanise(value);
  };
  const notes = [];
  const urgency = r["6_necessary_proportionate"]?.urgency;
  if (urgency) notes.push(`Urgency: ${label("6_necessary_proportionate", "urgency", urgency)}.`);
  const openness = r["2_openness"];
  if (openness?.agreement_sought === false) {
    const why = openness.not_sought_reason ? ` (${label("2_openness", "not_sought_reason", openness.not_sought_reason).toLowerCase()})` : "";
    notes.push(
      `The person's (or family's) agreement was not sought${why}. Do not contact them about this information before agreeing it with the sender.` +
        (openness.explanation ? ` The sender explains: ${openness.explanation}` : ""),
    );
  }
  const t = r["4_transparency"];
  if (t?.will_inform === "no" || t?.will_inform === "after") {
    notes.push(
      `${label("4_transparency", "will_inform", t.will_inform)}: the person is not to learn of this share from you unless agreed with the sender.` +
        (t.reason ? ` Reason: ${t.reason}` : ""),
    );
  }
  if (t?.consent === "refused") notes.push("The person refused consent; the sender recorded why sharing overrides it. Share further only if you have your own lawful basis.");
  notes.push("The people concerned are identified by reference only. Keep their identities to those who need them for the purpose above.");
  const p = r["6_necessary_proportionate"]?.proportionality;
  if (p) notes.push(`Shared only as far as needed: ${p}`);
  return [...first, ...notes];
}

// -- enrolment ------------------------------------------------------------------------------------------------

/**
 * Where this browser's keys stand at the gateway, from GET /api/v1/recipients/me and the public recipients kept
 * in this browser (newest last).
 * @returns {{state: string, message: string}}
 */
export function enrolmentState(me, localRecipients) {
  const local = new Set(localRecipients ?? []);
  const newest = (localRecipients ?? []).at(-1);
  const keys = me?.keys ?? [];
  const enrolments = [...(me?.enrolments ?? [])].sort((a, b) => String(b.requested_at).localeCompare(String(a.requested_at)));
  if (me?.recipient?.status === "disabled") {
    return { state: "disabled", message: "Your SafeShare account has been disabled: no new shares can be sent to you. Ask your administrator." };
  }
  const active = keys.find((k) => k.status === "active");
  const forNewest = enrolments.find((e) => e.age_recipient === newest);
  if (forNewest?.status === "pending") {
    const still = active && local.has(active.age_recipient) ? " Until then, new shares keep using your current key." : "";
    return { state: "pending", message: `Waiting for approval: your administrator has been asked to approve the key made in this browser.${still}` };
  }
  if (forNewest?.status === "rejected" && !(active && active.age_recipient === newest)) {
    return { state: "rejected", message: "Your administrator rejected this key. Ask them why, then set up receiving again." };
  }
  if (active && local.has(active.age_recipient)) {
    return { state: "active", message: "Active: new shares are encrypted to a key held in this browser." };
  }
  if (active) {
    return {
      state: "elsewhere",
      message: "Your active key is not one this browser holds (it may be in another browser, or in a backup). Restore that backup here, or rotate to a new key.",
    };
  }
  if (!local.size) return { state: "none", message: "Receiving is not set up in this browser yet." };
  return { state: "not_enrolled", message: "The key in this browser has not been sent to the gateway yet." };
}

// -- the recipient's gateway client ---------------------------------------------------------------------------

/** Plain words for a refusal, for a recipient. */
export function explainForRecipient(status, body) {
  const code = body && typeof body.error === "string" ? body.error : `http_${status}`;
  const said = body && typeof body.message === "string" ? ` The gateway said: ${body.message}` : "";
  if (status === 401) {
    if (code === "token_expired") return new GatewayError(code, "Your SafeShare sign-in has expired. Open the SafeShare options and sign in again.");
    if (code === "token_missing") return recipientNotSignedIn();
    return new GatewayError(code, "The gateway did not accept your SafeShare sign-in. Open the SafeShare options and sign in again.");
  }
  if (status === 403) return new GatewayError(code, "Your SafeShare sign-in is not a recipient's sign-in, so it cannot do this. Ask your administrator for a recipient sign-in.");
  if (status === 404) return new GatewayError(code, "This share is not addressed to you, or it does not exist. If you were sent a link, check that you are signed in as the person it was sent to.");
  if (code === "share_revoked") return new GatewayError(code, notOpenableReason("revoked"));
  if (code === "share_expired") return new GatewayError(code, notOpenableReason("expired"));
  if (code === "download_limit_reached") return new GatewayError(code, notOpenableReason("exhausted"));
  if (status === 410) return new GatewayError(code, "This share is no longer available: its encrypted copy has been destroyed.");
  if (code === "enrolment_refused" || code === "invalid_enrolment") return new GatewayError(code, `The gateway could not take your key.${said}`);
  if (status >= 500) return new GatewayError(code, `The SafeShare gateway had a problem (error ${status}).${said} Try again later.`);
  return new GatewayError(code, `The SafeShare gateway refused this request (error ${status}).${said}`);
}

export function recipientNotSignedIn() {
  return new GatewayError("not_signed_in", "You are not signed in to SafeShare. Open the SafeShare options and sign in with the token (or account) your organisation gave you.");
}

export function recipientUnreachable(url) {
  return new GatewayError("unreachable", `The SafeShare gateway at ${url} could not be reached. Check your connection, or ask your administrator whether the gateway is running, then try again.`);
}

/**
 * @param {{baseUrl: string, token: string|null, fetch?: typeof fetch}} opts
 */
export function recipientClient({ baseUrl, token, fetch }) {
  // The extension's one transport (lib/gateway.js), with refusals in a recipient's words.
  const call = gatewayTransport({
    baseUrl,
    token,
    fetch,
    explain: explainForRecipient,
    notSignedIn: recipientNotSignedIn,
    unreachable: recipientUnreachable,
  });
  const json = async (path, init) => {
    const resp = await call(path, init);
    try {
      return await resp.json();
    } catch {
      throw new GatewayError("bad_answer", "The SafeShare gateway sent an answer SafeShare could not read. Try again later.");
    }
  };
  const post = (path, value) => json(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });
  const sid = (id) => {
    if (!SHARE_ID_RE.test(String(id))) throw new GatewayError("bad_reference", "That is not a SafeShare share reference (it looks like sh_ followed by 24 letters and digits).");
    return encodeURIComponent(id);
  };
  const cursor = (c) => (c ? `?cursor=${encodeURIComponent(c)}` : "");

  return {
    enrol: (ageRecipient) => post("/api/v1/recipients/enrol", { age_recipient: ageRecipient }),
    me: () => json("/api/v1/recipients/me"),
    inbox: (c) => json(`/api/v1/inbox${cursor(c)}`),
    share: async (id) => json(`/api/v1/shares/${sid(id)}`),
    sent: (c) => json(`/api/v1/shares${cursor(c)}`),
    /** The caller's decisions recorded without a payload: shares made another way ("by phone to …"), not-share decisions. */
    decisions: (c) => json(`/api/v1/decisions${cursor(c)}`),
    policy: (id) => json(id ? `/api/v1/policies/${encodeURIComponent(id)}` : "/api/v1/policy"),
    acknowledge: async (id, note) => post(`/api/v1/shares/${sid(id)}/acknowledge`, { note }),
    /**
     * The caller's envelope, checked against the SHA-256 the gateway recorded in its ledger for it.
     * @returns {Promise<{bytes: Uint8Array, sha256: string, ledgerIndex: number|null}>}
     */
    envelope: async (id) => {
      const resp = await call(`/api/v1/shares/${sid(id)}/envelope`);
      const bytes = new Uint8Array(await resp.arrayBuffer());
      const sha256 = await sha256Hex(bytes);
      const recorded = resp.headers.get("X-SafeShare-Envelope-SHA256");
      if (recorded && recorded.toLowerCase() !== sha256) {
        throw new GatewayError("digest_mismatch", "The encrypted copy that arrived is not the one the gateway recorded in its ledger, so SafeShare will not open it. Try again; if it happens again, tell your administrator.");
      }
      const idx = resp.headers.get("X-SafeShare-Ledger-Index");
      return { bytes, sha256, ledgerIndex: idx === null ? null : Number(idx) };
    },
  };
}
