/**
 * The service worker: the only gateway client. It holds the token (chrome.storage.session, never visible to
 * web pages or content scripts), keeps each opened draft until its panel has used it, packages the email as
 * MIME, talks to the gateway, and asks the content script to replace the draft once a share succeeded.
 */
import { GatewayError, explain, gatewayClient, notSignedIn, tokenClaims, unreachable } from "./lib/gateway.js";
import { buildMime, unbase64 } from "./lib/mime.js";
import { SignInError, signInIssuers, signInWith } from "./lib/oidc.js";
import { hostPermissionPattern } from "./lib/origins.js";
import { fileMatchesCard, matchRecipients, neutralSubject, notificationText } from "./lib/share-flow.js";
import { bytesToBase64, recipientClient, shareIdFromNoticePath } from "./lib/recipient.js";
import { privateGet, privateSet } from "./lib/private-store.js";
import "./lib/snapshot.js";

const api = globalThis.browser ?? globalThis.chrome;

export const DEFAULTS = { gatewayUrl: "http://127.0.0.1:8080", defaultExpiryDays: 30, webmailOrigins: [] };
const ROUNDCUBE_PREFIX = "roundcube:";
const DRAFT_PREFIX = "draft:";
/** Shares made from a tab (storage.session): their results, so a panel re-opened on the shared draft shows them. */
const DONE_PREFIX = "done:";
const DONE_KEEP = 20;

async function doneShares(tabId) {
  const key = DONE_PREFIX + tabId;
  return (await api.storage.session.get(key))[key] ?? [];
}

async function rememberDone(tabId, done) {
  const list = (await doneShares(tabId)).filter((d) => d.result.share_id !== done.result.share_id);
  list.unshift(done);
  await api.storage.session.set({ [DONE_PREFIX + tabId]: list.slice(0, DONE_KEEP) });
}

/**
 * The share this draft is the notification of, if it was shared from this tab: the draft has no attachments
 * and still carries the share's reference. A draft the practitioner has since rewritten is a new email.
 */
async function sharedDraft(tabId, draft) {
  if ((draft.attachments ?? []).length || (draft.missing ?? []).length) return null;
  const text = String(draft.text ?? "");
  return (await doneShares(tabId)).find((d) => text.includes(d.result.share_id)) ?? null;
}

/** Drafts waiting for (or shown in) a panel: session id → {draft, tabId, frameId}. */
const sessions = new Map();

async function settings() {
  const s = await api.storage.local.get(DEFAULTS);
  return { ...DEFAULTS, ...s };
}

async function token() {
  const { token } = await api.storage.session.get("token");
  return token ?? null;
}

async function client() {
  const s = await settings();
  return gatewayClient({ baseUrl: s.gatewayUrl, token: await token() });
}

async function recipientApi() {
  const s = await settings();
  return recipientClient({ baseUrl: s.gatewayUrl, token: await token() });
}

const NOTICE_SCRIPT = "gateway-notice";
const INBOX_PAGE = "recipient/inbox.html";

/**
 * The notification link (`<gateway>/s/ID`) opens the extension's share view: a content script on that path of
 * the configured gateway only, which asks the service worker to take its tab to the share. The pattern has no
 * port (Firefox refuses one); the worker checks the exact origin.
 */
export async function syncNoticeScript() {
  const { gatewayUrl } = await settings();
  const registered = await api.scripting.getRegisteredContentScripts({ ids: [NOTICE_SCRIPT] });
  if (registered.length) await api.scripting.unregisterContentScripts({ ids: [NOTICE_SCRIPT] });
  let u;
  try {
    u = new URL(gatewayUrl);
  } catch {
    return null;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return null;
  const base = `${u.protocol}//${u.hostname}`;
  if (!(await api.permissions.contains({ origins: [`${base}/*`] })) && !(await api.permissions.contains({ origins: [`${u.origin}/*`] }))) return null;
  const pattern = `${base}${u.pathname.replace(/\/+$/, "")}/s/*`;
  await api.scripting.registerContentScripts([
    { id: NOTICE_SCRIPT, matches: [pattern], js: ["recipient/notice-link.js"], runAt: "document_start", persistAcrossSessions: true },
  ]);
  return pattern;
}

/** Roundcube is self-hosted: one dynamically registered content script per origin the user added. */
export async function syncWebmailScripts() {
  const { webmailOrigins } = await settings();
  const registered = await api.scripting.getRegisteredContentScripts();
  const ours = registered.filter((s) => s.id.startsWith(ROUNDCUBE_PREFIX)).map((s) => s.id);
  if (ours.length) await api.scripting.unregisterContentScripts({ ids: ours });
  const scripts = [];
  const shown = [];
  for (const origin of webmailOrigins) {
    // Without the port: Firefox neither counts "http://127.0.0.1/*" as granting a pattern with a port nor injects
    // through one; both browsers match a pattern without a port on every port of that host.
    const pattern = hostPermissionPattern(origin);
    if (!(await api.permissions.contains({ origins: [pattern] }))) continue;
    shown.push(`${origin.replace(/\/+$/, "")}/*`);
    scripts.push({
      id: ROUNDCUBE_PREFIX + origin,
      matches: [pattern],
      js: ["adapters/kit.js", "adapters/html-text.js", "adapters/tinymce.js", "adapters/roundcube.js", "lib/snapshot.js", "content/content.js"],
      css: ["content/content.css"],
      runAt: "document_idle",
      persistAcrossSessions: true,
    });
  }
  if (scripts.length) await api.scripting.registerContentScripts(scripts);
  return shown;
}

/**
 * The draft behind a panel. Kept in memory, and also in storage.session when it fits (in memory only, never
 * written to disk; out of reach of content scripts) so it survives the browser stopping an idle worker.
 */
async function session(id) {
  let s = sessions.get(id);
  if (!s && typeof id === "string") {
    const key = DRAFT_PREFIX + id;
    s = (await api.storage.session.get(key))[key];
    if (s) sessions.set(id, s);
  }
  if (!s) throw new GatewayError("session_gone", "This share panel has lost its email. Nothing was shared and your email has not been changed. Close the panel and choose Share securely again.");
  return s;
}

async function keep(id, value) {
  sessions.set(id, value);
  try {
    await api.storage.session.set({ [DRAFT_PREFIX + id]: value });
  } catch {
    // Too large for session storage: memory only (the open panel keeps the worker alive).
  }
}

async function forget(id) {
  sessions.delete(id);
  await api.storage.session.remove(DRAFT_PREFIX + id).catch(() => {});
}

function mimeFor(draft) {
  return buildMime({
    to: draft.to,
    cc: draft.cc,
    from: draft.from,
    subject: draft.subject,
    text: draft.text,
    html: draft.html,
    attachments: (draft.attachments ?? []).map((a) => ({ name: a.name, type: a.type, data: unbase64(a.data) })),
  });
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What the panel shows: the whole snapshot that will be shared — recipients, subject, the body as text, each
 * attachment with its exact size and SHA-256 (computed here, from the bytes that go into the share) — and
 * whether the draft changed around the click (`unsteady`) or since the panel opened (`changed`).
 */
async function summary(s) {
  const draft = s.draft;
  const attachments = [];
  for (const a of draft.attachments ?? []) {
    const bytes = unbase64(a.data);
    attachments.push({ name: a.name, type: a.type, size: bytes.length, sha256: await sha256Hex(bytes) });
  }
  return {
    to: draft.to ?? [],
    cc: draft.cc ?? [],
    subject: draft.subject ?? "",
    text: draft.text ?? "",
    bodyChars: (draft.text ?? "").length,
    hasHtml: !!draft.html,
    html: draft.html ?? "",
    attachments,
    // Attachments the webmail would not hand over: the panel asks for each file, or to share without it.
    missing: (draft.missing ?? []).map((m) => ({ name: m.name, type: m.type, sizeText: m.sizeText })),
    webmail: draft.webmail,
    unsteady: Array.isArray(draft.unsteady) ? draft.unsteady : [],
    changed: s.changed ?? [],
  };
}

/** How long a panel has to claim its draft after the click. */
const CLAIM_MS = 60_000;

/** Origins where SafeShare's content script runs: the manifest's webmails and the Roundcube origins added. */
async function webmailOrigin(url) {
  let origin;
  try {
    origin = new URL(url).origin;
  } catch {
    return false;
  }
  const fixed = (api.runtime.getManifest().content_scripts ?? []).flatMap((c) => c.matches ?? []).map((m) => m.replace(/\/\*$/, ""));
  const { webmailOrigins } = await settings();
  return fixed.includes(origin) || webmailOrigins.some((o) => o.replace(/\/+$/, "") === origin);
}

/**
 * A panel may use a draft only from the tab and frame that claimed it with the content script's ticket; a
 * panel framed anywhere else (another tab, another site, a copy in the same page) gets nothing.
 */
async function bound(msg, sender) {
  const s = await session(msg.session);
  const c = s.claimed;
  const same = c && sender.tab?.id === s.tabId && sender.frameId === c.frameId && (c.documentId ?? null) === (sender.documentId ?? null);
  if (!same) throw new GatewayError("session_elsewhere", "This share panel does not belong to this page. Nothing was shared. Close it and choose Share securely in the email again.");
  return s;
}

// -- The practitioner's answers in progress, and their last justification per case (storage.session only) ----

const FORM_PREFIX = "form:";
const LAST_PREFIX = "last:";

/** One email's key: its webmail, subject and recipients (a reloaded tab shows the same draft again). */
async function formKey(s) {
  const d = s.draft ?? {};
  const id = JSON.stringify([d.webmail ?? "", d.subject ?? "", [...(d.to ?? [])].sort(), [...(d.cc ?? [])].sort()]);
  return FORM_PREFIX + (await sha256Hex(new TextEncoder().encode(id)));
}

/** After a share or a decision: the answers in progress go, the justification is kept for each case it names. */
async function finishForm(s, justification) {
  if (s?.draft) await api.storage.session.remove(await formKey(s)).catch(() => {});
  const at = new Date().toISOString();
  const refs = (justification?.subjects ?? []).map((x) => String(x?.ref ?? "")).filter(Boolean);
  const values = Object.fromEntries(refs.map((ref) => [LAST_PREFIX + ref, { ref, at, justification }]));
  if (refs.length) await api.storage.session.set(values).catch(() => {});
}

/** The agreement's standard answers a justification started from (issue 13), as the gateway records it. */
function startedFrom(msg) {
  const f = msg?.started_from;
  if (!f || typeof f !== "object") return {};
  const rules = Array.isArray(f.confirmed_rules) ? f.confirmed_rules.map(Number).filter(Number.isInteger) : [];
  return { started_from: { agreement: String(f.agreement ?? ""), version: Number(f.version), set: String(f.set ?? ""), confirmed_rules: rules } };
}

/** "Pat Jones (Hereford Primary School)" from the token's claims; identifiers only where no name is given. */
function senderName(claims) {
  if (!claims) return undefined;
  const who = typeof claims.name === "string" && claims.name.trim() ? claims.name.trim() : claims.sub;
  const org = typeof claims.org_name === "string" && claims.org_name.trim() ? claims.org_name.trim() : claims.org;
  return org ? `${who} (${org})` : who;
}

/** Handlers for content scripts (a webmail page): they may only hand over a draft. */
const contentHandlers = {
  async open(msg, sender) {
    if (sender.tab?.id === undefined) throw new GatewayError("no_tab", "SafeShare works only in a webmail tab.");
    // One panel per tab: an older draft of this tab goes.
    for (const [old, s] of sessions) if (s.tabId === sender.tab.id) await forget(old);
    const id = crypto.randomUUID();
    const ticket = crypto.randomUUID();
    // Re-opened on a draft that is already a share's notification: the panel shows that share, not a new form.
    const done = await sharedDraft(sender.tab.id, msg.draft ?? {});
    const base = { tabId: sender.tab.id, frameId: sender.frameId ?? 0, ticket, created: Date.now(), claimed: null, changed: [], kept: "" };
    await keep(id, done ? { ...base, done } : { ...base, draft: msg.draft });
    return { session: id, ticket };
  },
  /** The content script saw the compose window differ from the panel's snapshot (parts: what differs). */
  async "compose-changed"(msg, sender) {
    const s = await session(msg.session);
    if (s.tabId !== sender.tab?.id || s.frameId !== (sender.frameId ?? 0)) return {};
    s.changed = (Array.isArray(msg.parts) ? msg.parts : []).filter((p) => ["recipients", "subject", "body", "attachments"].includes(p));
    await keep(msg.session, s);
    return {};
  },
  /**
   * The notification page of the configured gateway was opened: show that share in the extension instead.
   * The share ID comes from the tab's own address (as the browser reports it), never from the message.
   */
  async "open-share"(msg, sender) {
    const { gatewayUrl } = await settings();
    let page;
    let gw;
    try {
      page = new URL(sender.url ?? sender.tab?.url ?? "");
      gw = new URL(gatewayUrl);
    } catch {
      return { opened: false };
    }
    const prefix = gw.pathname.replace(/\/+$/, "");
    const id = page.origin === gw.origin && page.pathname.startsWith(`${prefix}/s/`) ? shareIdFromNoticePath(page.pathname) : null;
    if (!id || sender.tab?.id === undefined || (sender.frameId ?? 0) !== 0) return { opened: false };
    await api.tabs.update(sender.tab.id, { url: api.runtime.getURL(`${INBOX_PAGE}#share=${id}`) });
    return { opened: true };
  },
};

/** Handlers for the extension's own pages (panel, options). */
const pageHandlers = {
  /**
   * A panel presents the ticket its content script posted into it. Only once, only from the tab the draft came
   * from, only while that tab shows a webmail where SafeShare runs, and only soon after the click.
   */
  async claim(msg, sender) {
    const ticket = typeof msg.ticket === "string" ? msg.ticket : "";
    let found = null;
    for (const [id, s] of sessions) if (s.ticket === ticket) found = [id, s];
    if (!found) {
      const all = await api.storage.session.get(null);
      for (const [k, v] of Object.entries(all)) if (k.startsWith(DRAFT_PREFIX) && v?.ticket === ticket) found = [k.slice(DRAFT_PREFIX.length), v];
    }
    const [id, s] = found ?? [];
    const fresh = s && Date.now() - s.created < CLAIM_MS;
    if (!ticket || !s || s.claimed || !fresh || sender.tab?.id !== s.tabId || !(await webmailOrigin(sender.tab?.url ?? ""))) {
      throw new GatewayError("session_elsewhere", "This share panel has no email to show. Nothing was shared. Close it and choose Share securely in the email again.");
    }
    s.claimed = { frameId: sender.frameId, documentId: sender.documentId ?? null };
    s.ticket = null;
    await keep(id, s);
    return { session: id };
  },
  async draft(msg, sender) {
    const s = await bound(msg, sender);
    const st = await settings();
    if (s.done) return { done: s.done };
    return { draft: await summary(s), defaultExpiryDays: st.defaultExpiryDays, gatewayUrl: st.gatewayUrl, signedIn: !!(await token()) };
  },
  /** Whether the compose window still matches the snapshot (the panel asks now and then). */
  async "draft-state"(msg, sender) {
    const s = await bound(msg, sender);
    return { changed: s.changed ?? [], kept: s.kept === (s.changed ?? []).join(",") };
  },
  /** The practitioner chose to share what the panel shows, though the compose window changed. */
  async "keep-snapshot"(msg, sender) {
    const s = await bound(msg, sender);
    s.kept = (s.changed ?? []).join(",");
    await keep(msg.session, s);
    return {};
  },
  /** The practitioner chose to take the compose window as it is now: a new snapshot replaces the old one. */
  async refresh(msg, sender) {
    const s = await bound(msg, sender);
    const answer = await api.tabs.sendMessage(s.tabId, { type: "reread", session: msg.session }, { frameId: s.frameId });
    if (!answer?.ok) throw new GatewayError("reread_failed", `SafeShare could not read the email again: ${answer?.error ?? "the webmail page did not answer."} Nothing was shared.`);
    s.draft = answer.draft;
    s.changed = [];
    s.kept = "";
    await keep(msg.session, s);
    return { draft: await summary(s) };
  },
  /**
   * A file the practitioner added in the panel for an attachment the webmail would not hand over: taken only
   * when it has that attachment's name and a size its card allows, and then shared like the others.
   */
  async "add-attachment"(msg, sender) {
    const s = await bound(msg, sender);
    if (s.done) throw new GatewayError("already_shared", "This email has already been shared.");
    const missing = s.draft.missing ?? [];
    const card = missing.find((m) => m.name === msg.card);
    if (!card) throw new GatewayError("attachment_not_missing", `The email has no attachment called “${msg.card}” waiting for its file. Read the email again.`);
    const data = String(msg.data ?? "");
    const size = unbase64(data).length;
    const problem = fileMatchesCard({ name: String(msg.name ?? ""), size }, card);
    if (problem) throw new GatewayError("attachment_mismatch", problem);
    s.draft.attachments = [...(s.draft.attachments ?? []), { name: card.name, type: card.type || String(msg.mime ?? ""), data }];
    s.draft.missing = missing.filter((m) => m !== card);
    await keep(msg.session, s);
    return { draft: await summary(s) };
  },
  async "form-save"(msg, sender) {
    const s = await bound(msg, sender);
    if (s.done || !msg.state || typeof msg.state !== "object") return {};
    // `confirm`: the rules whose carried-over answers await the practitioner's confirmation (and whether given),
    // so that closing the panel does not turn answers still to be checked into answers taken as checked.
    const confirm = msg.confirm && typeof msg.confirm === "object" ? Object.fromEntries(Object.entries(msg.confirm).map(([k, v]) => [String(k), v === true])) : {};
    const started = startedFrom(msg).started_from;
    await api.storage.session.set({ [await formKey(s)]: { state: msg.state, confirm, ...(started ? { started_from: started } : {}), saved: Date.now() } });
    return {};
  },
  async "form-load"(msg, sender) {
    const s = await bound(msg, sender);
    if (s.done) return null;
    const key = await formKey(s);
    return (await api.storage.session.get(key))[key] ?? null;
  },
  /** The practitioner's last justification naming one of these case references (newest first). */
  async "last-for"(msg, sender) {
    await bound(msg, sender);
    const keys = (Array.isArray(msg.refs) ? msg.refs : []).map((r) => LAST_PREFIX + String(r));
    const found = Object.values(await api.storage.session.get(keys));
    found.sort((a, b) => String(b.at).localeCompare(String(a.at)));
    return found[0] ?? null;
  },
  /** The practitioner's panel phrase (set on the options page; kept where web pages and content scripts cannot read it). */
  async phrase() {
    return { phrase: (await privateGet("panelPhrase")) ?? "" };
  },
  async "set-phrase"(msg) {
    const phrase = String(msg.phrase ?? "").trim().slice(0, 80);
    await privateSet("panelPhrase", phrase);
    return { phrase };
  },
  async policy() {
    return { policy: await (await client()).policy() };
  },
  async validate(msg) {
    return await (await client()).validate(msg.justification, msg.disclosure);
  },
  async recipients(msg) {
    const c = await client();
    const directory = [];
    for (const address of msg.addresses ?? []) {
      for (const r of await c.recipients(address)) if (!directory.some((d) => d.id === r.id)) directory.push(r);
    }
    return matchRecipients(msg.addresses ?? [], directory);
  },
  /**
   * The partnership agreements covering the draft, each document's link made absolute (opened in a new tab).
   * Only for the panel bound to its draft (like `share`): a copy framed elsewhere learns nothing of the partnership.
   */
  async agreements(msg, sender) {
    await bound(msg, sender);
    const st = await settings();
    const answer = await (await client()).agreementOffers(msg);
    const base = st.gatewayUrl.replace(/\/+$/, "");
    for (const a of answer.agreements ?? []) a.document.href = base + a.document.url;
    return answer;
  },
  async share(msg, sender) {
    const s = await bound(msg, sender);
    if (s.done) throw new GatewayError("already_shared", "This email has already been shared. Close the panel; to share something else, write a new email.");
    const changed = (s.changed ?? []).join(",");
    if (changed && s.kept !== changed) {
      throw new GatewayError("draft_changed", `The email changed after SafeShare read it (${globalThis.SafeShareSnapshot.listParts(s.changed)}). Nothing was shared. Choose whether to share what the panel shows or to read the email again.`);
    }
    // An attachment the webmail would not hand over is shared only as the file the practitioner added, or left
    // out because they chose so (it is then removed from the email with the others): never silently dropped.
    const leftOut = Array.isArray(msg.leave_out) ? msg.leave_out.map(String) : [];
    const unresolved = (s.draft.missing ?? []).filter((m) => !leftOut.includes(m.name));
    if (unresolved.length) {
      throw new GatewayError(
        "attachment_missing",
        `SafeShare could not read ${unresolved.map((m) => `“${m.name}”`).join(", ")} from the webmail. Add the file in the panel, or choose to share without it. Nothing was shared.`,
      );
    }
    const st = await settings();
    const c = await client();
    const payload = mimeFor(s.draft);
    const result = await c.share(
      {
        recipients: msg.recipients,
        justification: msg.justification,
        payload_content_type: "message/rfc822",
        expires_in: msg.expires_in,
        ...(msg.agreement_override ? { agreement_override: msg.agreement_override } : {}),
        ...startedFrom(msg),
        // Answered advice the practitioner cites (issue 14): recorded with the share (who, when, what they said).
        ...(Array.isArray(msg.advice) && msg.advice.length ? { advice: msg.advice } : {}),
        // Addresses without a key (issue 10): the practitioner's one choice; the passphrase goes to the
        // gateway only, never to the webmail page or any storage.
        ...(msg.unenrolled === "verify" || msg.unenrolled === "passphrase" ? { unenrolled: msg.unenrolled } : {}),
        ...(msg.unenrolled === "passphrase" ? { passphrase: String(msg.passphrase ?? "") } : {}),
      },
      payload,
    );
    const claims = tokenClaims(await token());
    const text = notificationText({
      shareId: result.share_id,
      ledgerIndex: result.ledger_index,
      expiresAt: result.expires_at,
      gatewayUrl: st.gatewayUrl,
      noticeUrl: result.notice_url,
      // The person's and organisation's names from the token when it carries them (OIDC `name`, `org_name`).
      sender: senderName(claims),
    });
    const subject = neutralSubject(result.share_id);
    let replaced = false;
    let replaceError = null;
    try {
      const answer = await api.tabs.sendMessage(s.tabId, { type: "replace", session: msg.session, text, subject }, { frameId: s.frameId });
      replaced = !!answer?.ok;
      if (!replaced) replaceError = answer?.error ?? "The webmail page did not answer.";
    } catch (e) {
      replaceError = String(e?.message ?? e);
    }
    // The content has gone through the gateway: nothing of it stays in the extension either. The panel stays
    // bound to its tab (so Close and Escape still work) with only the share's result.
    const done = { result, replaced, replaceError, subject, notification: text };
    await finishForm(s, msg.justification);
    if (replaced) {
      const rest = { ...s, done };
      delete rest.draft;
      await keep(msg.session, rest);
      await rememberDone(s.tabId, done);
    }
    return done;
  },
  /** The open panel pings now and then, so the browser does not stop the worker while the form is filled in. */
  async keepalive() {
    return {};
  },
  async decide(msg, sender) {
    const answer = await (await client()).decide(msg.justification, msg.disclosure, undefined, startedFrom(msg));
    await finishForm(await bound(msg, sender).catch(() => null), msg.justification);
    return answer;
  },
  /** Seek advice first (issue 14): the panel asks and lists; the adviser (inbox page) lists and answers. */
  async "ask-advice"(msg) {
    return await (await client()).askAdvice(msg.to, msg.purpose, msg.dataCategories ?? []);
  },
  async "list-advice"() {
    return { questions: await (await client()).listAdvice() };
  },
  async "answer-advice"(msg) {
    return await (await client()).answerAdvice(msg.id, msg.answer);
  },
  /** Emergency shares (issue 14): what the practitioner still owes, and completing one from the panel. */
  async "owed-justifications"() {
    return { owed: await (await client()).owedJustifications() };
  },
  // Like `decide`, not bound to the panel's email: after the share the email is no longer the panel's.
  async "complete-justification"(msg) {
    return await (await client()).completeJustification(msg.shareId, msg.justification);
  },
  async close(msg, sender) {
    const s = await bound(msg, sender).catch(() => null);
    if (!s) return {};
    await forget(msg.session);
    if (s?.tabId !== undefined) {
      await api.tabs.sendMessage(s.tabId, { type: "close-panel", session: msg.session }, { frameId: s.frameId }).catch(() => {});
    }
    return {};
  },
  async status() {
    const st = await settings();
    const t = await token();
    const claims = t ? tokenClaims(t) : null;
    return { settings: st, signedIn: !!t, claims };
  },
  async "sign-in"(msg) {
    const t = String(msg.token ?? "").trim();
    const claims = tokenClaims(t);
    if (!claims || typeof claims.sub !== "string") {
      throw new GatewayError("token_unreadable", "That does not look like a SafeShare token. Copy the whole token and paste it again.");
    }
    await api.storage.session.set({ token: t });
    return { claims };
  },
  /** How the configured gateway lets people sign in (public), and the address the sign-in service sends back to. */
  async "auth-config"() {
    const config = await (await client()).authConfig();
    const issuers = signInIssuers(config).map((o) => ({ issuer: o.issuer, tokenOrigin: new URL(o.token_endpoint).origin }));
    return { embedded: !!config?.embedded_issuer, issuers, redirectUri: api.identity?.getRedirectURL?.() ?? null };
  },
  /**
   * Sign in with the organisation's identity provider: authorization code + PKCE through the browser's
   * identity.launchWebAuthFlow. The endpoints come from the gateway, never from the page; the access token
   * goes where a pasted token goes.
   */
  async "oidc-sign-in"(msg) {
    if (!api.identity?.launchWebAuthFlow) {
      throw new SignInError("unsupported", "This browser cannot open a sign-in window for SafeShare. Paste a token instead.");
    }
    const config = await (await client()).authConfig();
    const issuer = signInIssuers(config).find((o) => o.issuer === msg.issuer);
    if (!issuer) throw new SignInError("unknown_issuer", "The gateway no longer offers this way of signing in. Reload the options page and try again.");
    const t = await signInWith(issuer, {
      redirectUri: api.identity.getRedirectURL(),
      launch: (details) => api.identity.launchWebAuthFlow(details),
      fetch: (url, init) => fetch(url, init),
      claimsOf: tokenClaims,
    });
    await api.storage.session.set({ token: t });
    return { claims: tokenClaims(t) };
  },
  async "sign-out"() {
    await api.storage.session.remove("token");
    return {};
  },
  // -- the recipient's side (recipient/ pages): the token stays here; envelopes go back as base64 ------------
  async "recipient-me"() {
    return await (await recipientApi()).me();
  },
  async "recipient-enrol"(msg) {
    return await (await recipientApi()).enrol(msg.ageRecipient);
  },
  async "recipient-inbox"(msg) {
    return await (await recipientApi()).inbox(msg.cursor);
  },
  async "recipient-sent"(msg) {
    return await (await recipientApi()).sent(msg.cursor);
  },
  // The sender recalls a share from the Sent tab; the gateway records the reason with the revocation.
  async "recipient-revoke"(msg) {
    const { gatewayUrl } = await settings();
    const t = await token();
    if (!t) throw notSignedIn();
    const base = gatewayUrl.replace(/\/+$/, "");
    let resp;
    try {
      resp = await fetch(`${base}/api/v1/shares/${encodeURIComponent(String(msg.id))}/revoke`, {
        method: "POST",
        headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: String(msg.reason ?? "") }),
      });
    } catch {
      throw unreachable(base);
    }
    const body = await resp.json().catch(() => null);
    if (!resp.ok) throw explain(resp.status, body);
    return body;
  },
  async "recipient-decisions"(msg) {
    return await (await recipientApi()).decisions(msg.cursor);
  },
  async "recipient-share"(msg) {
    return await (await recipientApi()).share(msg.id);
  },
  async "recipient-policy"(msg) {
    return await (await recipientApi()).policy(msg.id);
  },
  async "recipient-envelope"(msg) {
    const env = await (await recipientApi()).envelope(msg.id);
    return { base64: bytesToBase64(env.bytes), sha256: env.sha256, ledgerIndex: env.ledgerIndex };
  },
  async "recipient-acknowledge"(msg) {
    return await (await recipientApi()).acknowledge(msg.id, msg.note);
  },
  async "save-settings"(msg) {
    const next = { ...(await settings()), ...msg.settings };
    await api.storage.local.set(next);
    const registered = await syncWebmailScripts();
    return { settings: next, registered };
  },
};

api.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  const fromPage = typeof sender.url === "string" && sender.url.startsWith(api.runtime.getURL(""));
  const handlers = fromPage ? pageHandlers : contentHandlers;
  const handler = msg && typeof msg.type === "string" && Object.hasOwn(handlers, msg.type) ? handlers[msg.type] : null;
  if (!handler) return false;
  handler(msg, sender).then(
    (value) => sendResponse({ ok: true, value }),
    (err) =>
      sendResponse({
        ok: false,
        error: err instanceof GatewayError || err instanceof SignInError ? err.toJSON() : { code: "internal", message: `Something went wrong in SafeShare: ${err?.message ?? err}` },
      }),
  );
  return true;
});

// A closed tab takes its drafts with it: nothing of an abandoned email stays in the extension.
api.tabs.onRemoved.addListener(async (tabId) => {
  for (const [id, s] of sessions) if (s.tabId === tabId) sessions.delete(id);
  const all = await api.storage.session.get(null);
  const stale = Object.keys(all).filter((k) => (k.startsWith(DRAFT_PREFIX) && all[k]?.tabId === tabId) || k === DONE_PREFIX + tabId);
  if (stale.length) await api.storage.session.remove(stale);
});

// Tokens stay out of reach of content scripts (the default, made explicit).
api.storage.session.setAccessLevel?.({ accessLevel: "TRUSTED_CONTEXTS" }).catch?.(() => {});
// Content scripts use no storage at all: where the browser allows it (Chromium), storage.local is closed to them
// too. The keyring and the panel phrase do not rely on this — they live in IndexedDB (lib/private-store.js).
api.storage.local.setAccessLevel?.({ accessLevel: "TRUSTED_CONTEXTS" }).catch?.(() => {});
api.runtime.onInstalled.addListener(() => {
  syncWebmailScripts().catch(() => {});
  syncNoticeScript().catch(() => {});
});
// The notification-link script follows the gateway address, however it was changed.
api.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && changes.gatewayUrl) syncNoticeScript().catch(() => {});
});
// The toolbar button opens the inbox (received shares; the "Sent" tab for practitioners).
api.action?.onClicked.addListener(() => {
  api.tabs.create({ url: api.runtime.getURL(INBOX_PAGE) }).catch(() => {});
});
