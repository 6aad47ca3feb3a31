/**
 * The auditor's and administrator's console (`/console/`). Sign in with the organisation's identity provider
 * (authorization code + PKCE, lib/oidc.js: a byte-identical copy of the extension's) or a pasted token; the
 * token is kept in this tab's sessionStorage only. What the console offers follows what the gateway lets the
 * token do (it asks, rather than reading roles from the token, since an organisation's identity provider may
 * name roles in its own claim): the ledger search, subject report and statistics for an auditor; enrolments,
 * recipients and teams for an administrator. Every action is an existing API call, recorded in the ledger by
 * the gateway exactly as the command line's are.
 */
import { initAll } from "./vendor/govuk-frontend.min.js";
import { authorizationUrl, checkTokenFor, codeChallenge, issuerLabel, parseRedirect, parseTokenResponse, randomToken, signInIssuers, tokenRequestBody } from "./lib/oidc.js";
import { chartSection, chartSpecs, statsCsv } from "./charts.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "safeshare-console-token";
const OIDC_KEY = "safeshare-console-oidc";
const VIEWS = ["signin", "home", "search", "report", "stats", "admin"];

let token = sessionStorage.getItem(TOKEN_KEY);
let can = { auditor: false, admin: false, keeper: false };
let words = { purpose: humanise, article_6: humanise, kind: kindWords, purposes: [], categories: [] };
let lastStats = null;
let searchCursor = null;
let searchParams = null;
let pending = null;
let orgNames = {};
const blobUrls = [];

// -- small helpers ---------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function humanise(code) {
  const s = String(code ?? "").replace(/_/g, " ").trim();
  if (!s || s === "none") return "None recorded";
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const KIND_WORDS = {
  share: "Shared",
  decision: "Decision recorded",
  fetch: "Downloaded",
  revoke: "Share revoked",
  expire: "Expired",
  acknowledge: "Receipt acknowledged",
  recipient_add: "Added to the directory",
  recipient_disable: "Disabled in the directory",
  enrolment_request: "Enrolment asked for",
  enrolment_approve: "Enrolment approved",
  enrolment_reject: "Enrolment rejected",
  team_member_add: "Added to a team",
  team_member_remove: "Removed from a team",
  agreement_add: "Agreement added",
  agreement_retire: "Agreement retired",
  emergency_completed: "Emergency share's justification completed",
  share_approved: "Share approved",
  advice_question: "Advice asked for",
  advice_answer: "Advice given",
};

function kindWords(kind) {
  return KIND_WORDS[kind] ?? humanise(kind);
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const LONDON = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London",
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
  hourCycle: "h23",
});

/** "3 December 2026 at 9:05am", in UK time (GMT or BST as the clock showed), as the printed report says it. */
export function ukTime(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "unknown";
  const p = Object.fromEntries(LONDON.formatToParts(d).map((x) => [x.type, x.value]));
  const hour = Number(p.hour);
  return `${Number(p.day)} ${MONTHS[Number(p.month) - 1]} ${p.year} at ${hour % 12 || 12}:${p.minute}${hour < 12 ? "am" : "pm"}`;
}

/** "2026-01-31" → "31 January 2026" (a date as typed in a date field, written as the report writes dates). */
export function ukDate(ymd) {
  const [y, m, d] = String(ymd).split("-").map(Number);
  return MONTHS[m - 1] && d ? `${d} ${MONTHS[m - 1]} ${y}` : String(ymd);
}

/** The UTC instant of midnight, UK time, at the start of a YYYY-MM-DD date (plus `days`). */
export function ukMidnight(date, days = 0) {
  const [y, m, d] = date.split("-").map(Number);
  const guess = new Date(Date.UTC(y, m - 1, d + days));
  const p = Object.fromEntries(LONDON.formatToParts(guess).map((x) => [x.type, x.value]));
  const offsetHours = Number(p.hour) === 0 ? 0 : Number(p.hour) === 1 ? 1 : 0;
  return new Date(guess.getTime() - offsetHours * 3600 * 1000).toISOString();
}

function say(message) {
  $("status").textContent = message ?? "";
}

function done(message) {
  $("done-text").textContent = message;
  $("done").hidden = false;
  $("done").focus();
}

function clearErrors() {
  $("error-summary").hidden = true;
  document.title = document.title.replace(/^Error: /, "");
  $("error-list").replaceChildren();
  for (const g of document.querySelectorAll(".govuk-form-group--error")) g.classList.remove("govuk-form-group--error");
  for (const m of document.querySelectorAll(".govuk-error-message")) {
    m.hidden = true;
    m.textContent = "";
  }
  for (const i of document.querySelectorAll("[aria-invalid]")) {
    i.removeAttribute("aria-invalid");
    i.classList.remove("govuk-input--error", "govuk-textarea--error", "govuk-file-upload--error");
    const ids = (i.getAttribute("aria-describedby") ?? "").split(" ").filter((x) => x && !x.endsWith("-error"));
    if (ids.length) i.setAttribute("aria-describedby", ids.join(" "));
    else i.removeAttribute("aria-describedby");
  }
}

/** The GOV.UK error pattern: a summary at the top, focused, linking to each field; the message by the field. */
function showErrors(errors) {
  clearErrors();
  $("done").hidden = true;
  const list = $("error-list");
  for (const { field, message } of errors) {
    const input = field ? $(field) : null;
    if (input) {
      const link = el("a", { href: `#${field}`, text: message });
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        input.focus();
      });
      list.append(el("li", {}, link));
      const msg = $(`${field}-error`);
      if (msg && (input.type === "radio" || input.type === "checkbox")) {
        msg.replaceChildren(el("span", { class: "govuk-visually-hidden", text: "Error: " }), message);
        msg.hidden = false;
      } else if (msg) {
        msg.replaceChildren(el("span", { class: "govuk-visually-hidden", text: "Error: " }), message);
        msg.hidden = false;
        const ids = new Set((input.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
        ids.add(`${field}-error`);
        input.setAttribute("aria-describedby", [...ids].join(" "));
      }
      $(`${field}-group`)?.classList.add("govuk-form-group--error");
      // A group of radios or boxes has its message on the fieldset (its link goes to the first choice).
      if (input.type !== "radio" && input.type !== "checkbox") {
        const styled = { TEXTAREA: "govuk-textarea--error" }[input.tagName] ?? (input.type === "file" ? "govuk-file-upload--error" : "govuk-input--error");
        input.classList.add(styled);
        input.setAttribute("aria-invalid", "true");
      }
    } else {
      list.append(el("li", { text: message }));
    }
  }
  $("error-summary").hidden = errors.length === 0;
  if (errors.length) {
    // As GOV.UK pages do: the title says so too (it is the first thing a screen reader announces).
    if (!document.title.startsWith("Error: ")) document.title = `Error: ${document.title}`;
    $("error-summary").focus();
  }
}

class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** Several fields wrong at once: the summary lists every one (the GOV.UK pattern), not only the first. */
class FieldErrors extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
  }
}

/** Every empty field of a form, each with its own message, in the form's order. */
function requireAll(body, fields, messages) {
  const errors = Object.entries(fields)
    .filter(([k]) => !body[k])
    .map(([k, id]) => ({ field: id, message: messages[k] }));
  if (errors.length) throw new FieldErrors(errors);
}

/** Run an action from a form or a button: problems go to the error summary; the button is disabled meanwhile. */
async function busy(button, work) {
  clearErrors();
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (e) {
    say("");
    showErrors(e?.errors ?? [{ field: e?.field ?? null, message: e?.message ?? String(e) }]);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// -- the gateway -------------------------------------------------------------------------------------------------

/** Words for a refusal; `fields` maps the gateway's `field` to this page's input id. */
function refusal(status, body, fields = {}) {
  const code = body?.error;
  if (status === 401) return new Error("Your sign-in has ended or was not accepted. Sign out and sign in again.");
  if (status === 403) return new Error("Your account is not allowed to do this here (it needs another role, or belongs to another organisation).");
  const message = typeof body?.message === "string" ? body.message : `The gateway refused this (error ${status}).`;
  // A field inside a JSON value (`standard_answers.0.answers.rules…`) is shown at the control that sent it, with its path.
  const top = typeof body?.field === "string" ? body.field.split(".")[0] : "";
  const field = body?.field && (fields[body.field] ?? (top !== body.field ? fields[top] : undefined));
  if (code === "not_found") return new Error(`Not found: ${message}`);
  if (field && !fields[body.field]) return new FieldError(field, `${message} (at ${body.field})`);
  return field ? new FieldError(field, message) : new Error(message);
}

async function api(path, { method = "GET", body, fields, raw = false } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body !== undefined && !(body instanceof FormData) ? { "Content-Type": "application/json" } : {}),
        ...(raw ? {} : { Accept: "application/json" }),
      },
      body: body instanceof FormData ? body : body !== undefined ? JSON.stringify(body) : undefined,
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("The SafeShare gateway could not be reached. Check your connection and try again.");
  }
  if (!resp.ok) {
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    throw refusal(resp.status, data, fields);
  }
  return raw ? resp : resp.json();
}

/** Whether a probe call is allowed: 403 means not this role; anything else wrong is a real problem. */
async function allowed(path) {
  try {
    await api(path);
    return true;
  } catch (e) {
    if (/not allowed/.test(e.message)) return false;
    throw e;
  }
}

/**
 * Whether this token may add and retire the partnership's agreements (a partnership-wide administrator's, not
 * one organisation's). Asked without changing anything: an agreement is only accepted as multipart/form-data,
 * so a JSON body is refused either way, with 403 before the role is found wanting, 415 after it was accepted.
 */
async function mayKeepAgreements() {
  try {
    await api("/api/v1/agreements", { method: "POST", body: {} });
    return true;
  } catch (e) {
    return !/not allowed/.test(e.message);
  }
}

function tokenClaims(t) {
  try {
    const part = String(t).split(".")[1];
    return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=")));
  } catch {
    return null;
  }
}

// -- signing in --------------------------------------------------------------------------------------------------

function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const redirectUri = () => `${location.origin}/console/`;

async function startOidc(issuer) {
  const verifier = randomToken();
  const state = randomToken();
  sessionStorage.setItem(OIDC_KEY, JSON.stringify({ verifier, state, issuer: issuer.issuer }));
  location.assign(authorizationUrl(issuer, { redirectUri: redirectUri(), state, challenge: await codeChallenge(verifier) }));
}

/** Back from the identity provider with ?code=…&state=…: exchange the code (PKCE) for the access token. */
async function finishOidc(config) {
  const saved = JSON.parse(sessionStorage.getItem(OIDC_KEY) ?? "null");
  sessionStorage.removeItem(OIDC_KEY);
  const here = location.href;
  history.replaceState(null, "", `/console/${location.hash}`);
  if (!saved) throw new Error("This sign-in was not started on this page. Sign in again.");
  const issuer = signInIssuers(config).find((o) => o.issuer === saved.issuer);
  if (!issuer) throw new Error("That sign-in service is no longer offered by the gateway. Sign in again.");
  const code = parseRedirect(here, { redirectUri: redirectUri(), state: saved.state });
  let resp;
  try {
    resp = await fetch(issuer.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: tokenRequestBody({ code, redirectUri: redirectUri(), clientId: issuer.client_id, verifier: saved.verifier }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("Your organisation's sign-in service could not be reached to finish the sign-in. Try again.");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const t = parseTokenResponse(resp.status, body);
  checkTokenFor(issuer, tokenClaims(t));
  setToken(t);
}

async function signInWithToken(ev) {
  ev.preventDefault();
  await busy($("token-go"), async () => {
    const t = $("token").value.trim();
    if (!t) throw new FieldError("token", "Paste your sign-in token");
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(t) || !tokenClaims(t)) {
      throw new FieldError("token", "That is not a sign-in token: paste the whole token, three parts separated by dots");
    }
    setToken(t);
    try {
      await whatCanIDo();
    } catch (e) {
      setToken(null);
      throw new FieldError("token", e.message);
    }
    $("token").value = "";
    // To the home view once: setting location.hash would also queue a hashchange, a second route() that could
    // land after the person's next click (a view opened twice, its data loaded twice).
    history.pushState(null, "", "#/");
    await route();
  });
}

/** Ask the gateway what this token may do (the role names in an organisation's tokens are its own). */
async function whatCanIDo() {
  can = {
    auditor: await allowed("/api/v1/ledger/stats?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z"),
    admin: await allowed("/api/v1/enrolments?status=pending"),
  };
  can.keeper = can.admin && (await mayKeepAgreements());
  for (const node of document.querySelectorAll("[data-for]")) node.hidden = !can[node.dataset.for];
  $("nav").hidden = false;
  $("no-role").hidden = can.auditor || can.admin;
  const claims = tokenClaims(token) ?? {};
  const org = claims.org_name ?? claims.org;
  $("who").textContent = `Signed in as ${claims.name ?? claims.sub ?? "unknown"}${org ? ` (${org})` : ""}.`;
  await loadWords();
}

/** The policies' own words for codes (purposes, lawful bases), from every edition the gateway loads. */
async function loadWords() {
  const maps = { purpose: {}, article_6: {}, category: {} };
  try {
    const list = await api("/api/v1/policies");
    for (const p of list.policies ?? []) {
      const doc = await api(`/api/v1/policies/${encodeURIComponent(p.id)}`);
      const deref = (node) => {
        let n = node;
        for (let i = 0; i < 8 && n && typeof n.$ref === "string" && n.$ref.startsWith("#/"); i++) {
          n = n.$ref.slice(2).split("/").reduce((a, k) => a?.[k], doc);
        }
        return n ?? {};
      };
      const props = (node) => deref(node).properties ?? {};
      const purpose = deref(props(props(doc).purpose).code)["x-labels"] ?? {};
      const a6 = deref(props(props(props(doc).rules)["1_lawful_basis"]).article_6)["x-labels"] ?? {};
      const category = deref(deref(props(doc).data_categories).items);
      for (const c of category.enum ?? []) maps.category[c] = category["x-labels"]?.[c] ?? maps.category[c] ?? humanise(c);
      for (const c of deref(props(props(doc).purpose).code).enum ?? []) maps.purpose[c] ??= humanise(c);
      Object.assign(maps.purpose, purpose);
      Object.assign(maps.article_6, a6);
    }
  } catch {
    // Codes are humanised instead; the figures are unchanged.
  }
  words = {
    purpose: (c) => maps.purpose[c] ?? humanise(c),
    article_6: (c) => maps.article_6[c] ?? humanise(c),
    kind: kindWords,
    // Every code the loaded policies allow, with its words: the agreement form's boxes.
    purposes: Object.entries(maps.purpose),
    categories: Object.entries(maps.category),
  };
}

function signOut() {
  setToken(null);
  can = { auditor: false, admin: false, keeper: false };
  $("nav").hidden = true;
  $("report-body").replaceChildren();
  $("charts").replaceChildren();
  $("results").hidden = true;
  // Another sign-in may have another scope: its names are asked for afresh.
  peopleLoaded = false;
  orgNames = {};
  for (const p of Object.values(pickers)) {
    p.clear();
    p.setOptions([]);
  }
  for (const u of blobUrls.splice(0)) URL.revokeObjectURL(u);
  location.hash = "#/";
  say("You are signed out.");
}

// -- views ---------------------------------------------------------------------------------------------------------

function showView(name) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll(".govuk-service-navigation__item")) {
    const link = a.querySelector("a");
    const active = link && link.getAttribute("href") === `#/${name}`;
    a.classList.toggle("govuk-service-navigation__item--active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link?.removeAttribute("aria-current");
  }
}

function focusHeading(name) {
  const h = document.querySelector(`#view-${name} h1`);
  h?.focus();
}

async function route() {
  clearErrors();
  $("done").hidden = true;
  const hash = location.hash || "#/";
  if (hash === "#/signout") {
    signOut();
    return route();
  }
  if (!token) {
    showView("signin");
    document.title = "Sign in – SafeShare console";
    return;
  }
  const [, view, ...rest] = hash.split("/");
  if (view === "search" && can.auditor) {
    showView("search");
    document.title = "Search the ledger – SafeShare console";
    await loadPeople();
  } else if (view === "report" && can.auditor && rest.length) {
    showView("report");
    await showReport(decodeURIComponent(rest.join("/")));
  } else if (view === "stats" && can.auditor) {
    showView("stats");
    document.title = "Oversight statistics – SafeShare console";
    if (!lastStats) await loadStats();
  } else if (view === "admin" && can.admin) {
    showView("admin");
    document.title = "Administration – SafeShare console";
    await loadAdmin();
  } else {
    showView("home");
    document.title = "SafeShare console";
  }
  if (!view) return;
  const shown = VIEWS.find((v) => !$(`view-${v}`).hidden);
  // The view shows before its data arrives; someone who has already started typing in it keeps the focus.
  if (!typingIn($(`view-${shown}`))) focusHeading(shown);
}

/** Whether someone is already typing in a field of `view` (as on /open/: a view that finishes loading leaves
 * their focus alone). */
function typingIn(view) {
  const active = document.activeElement;
  return !!active && view.contains(active) && active.matches("input, select, textarea");
}

// -- auditor: pick people and organisations by name -----------------------------------------------------------

/**
 * The search form's practitioner, recipient and organisation fields as comboboxes (the WAI-ARIA 1.2 pattern that
 * GOV.UK's accessible-autocomplete follows): type part of a name, organisation or ID; the matches are listed
 * below (Down and Up move through them, Enter or a click picks one, Escape closes the list); the field then
 * shows the name and the search sends the ID, which is what the ledger holds. A name typed in full without
 * picking is matched too; anything else is sent as typed (an ID). The lists come from GET /api/v1/ledger/people,
 * which offers an organisation's auditor only their own organisation's people.
 */
const MAX_SHOWN = 12;
const pickers = {};
let peopleLoaded = false;

class Picker {
  constructor(inputId, noun) {
    this.input = $(inputId);
    this.list = $(`${inputId}-list`);
    this.count = $(`${inputId}-count`);
    this.noun = noun;
    this.options = []; // {id, label, name, search}
    this.shown = [];
    this.active = -1;
    this.picked = null;
    this.input.addEventListener("input", () => {
      this.picked = null;
      this.update();
    });
    this.input.addEventListener("keydown", (ev) => this.key(ev));
    this.input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    // A click on an option picks it (mousedown: before the field loses the focus).
    this.list.addEventListener("mousedown", (ev) => {
      const li = ev.target.closest("[role=option]");
      if (!li) return;
      ev.preventDefault();
      this.pick(Number(li.dataset.i));
    });
  }

  setOptions(options) {
    this.options = options.map((o) => ({ ...o, search: `${o.label} ${o.id}`.toLowerCase() }));
    // Names that arrive while someone is already typing here are offered for what they have typed.
    if (document.activeElement === this.input && this.input.value.trim()) this.update();
  }

  update() {
    const typed = this.input.value.trim().toLowerCase();
    if (!typed || !this.options.length) return this.close();
    const words = typed.split(/\s+/);
    this.shown = this.options.filter((o) => words.every((w) => o.search.includes(w))).slice(0, MAX_SHOWN);
    this.active = -1;
    this.input.removeAttribute("aria-activedescendant");
    this.list.replaceChildren(
      ...this.shown.map((o, i) =>
        el("li", { class: "picker__option", role: "option", id: `${this.input.id}-opt-${i}`, "aria-selected": "false", "data-i": i, text: o.label }),
      ),
    );
    const open = this.shown.length > 0;
    this.list.hidden = !open;
    this.input.setAttribute("aria-expanded", String(open));
    const n = this.shown.length;
    this.count.textContent = n ? `${n} ${n === 1 ? this.noun : `${this.noun}s`} found${n === MAX_SHOWN ? " (type more to narrow the list)" : ""}. Use the down arrow to choose.` : `No ${this.noun} of that name is known; the search will use what you typed as an ID.`;
  }

  move(step) {
    if (this.list.hidden || !this.shown.length) {
      this.update();
      if (this.list.hidden) return;
    }
    const next = Math.max(-1, Math.min(this.shown.length - 1, this.active + step));
    this.active = next;
    this.shown.forEach((_, i) => $(`${this.input.id}-opt-${i}`).setAttribute("aria-selected", String(i === next)));
    if (next >= 0) {
      const li = $(`${this.input.id}-opt-${next}`);
      this.input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else this.input.removeAttribute("aria-activedescendant");
  }

  key(ev) {
    if (ev.key === "ArrowDown") {
      ev.preventDefault();
      this.move(1);
    } else if (ev.key === "ArrowUp") {
      ev.preventDefault();
      this.move(-1);
    } else if (ev.key === "Enter" && !this.list.hidden && this.active >= 0) {
      ev.preventDefault(); // pick, rather than submit the form
      this.pick(this.active);
    } else if (ev.key === "Escape" && !this.list.hidden) {
      ev.preventDefault();
      this.close();
    }
  }

  pick(i) {
    const o = this.shown[i];
    if (!o) return;
    this.picked = o;
    this.input.value = o.label;
    this.close();
    this.count.textContent = `${o.label} chosen.`;
    this.input.focus();
  }

  close() {
    this.list.hidden = true;
    this.list.replaceChildren();
    this.shown = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  clear() {
    this.input.value = "";
    this.picked = null;
    this.close();
    this.count.textContent = "";
  }

  /** The ID to search by: the one picked; or the one whose label or name was typed in full; else what was typed. */
  id() {
    const typed = this.input.value.trim();
    if (!typed) return "";
    if (this.picked && this.picked.label === typed) return this.picked.id;
    const lower = typed.toLowerCase();
    const byLabel = this.options.find((o) => o.label.toLowerCase() === lower);
    if (byLabel) return byLabel.id;
    const byName = this.options.filter((o) => o.name && o.name.toLowerCase() === lower);
    if (byName.length === 1) return byName[0].id;
    if (byName.length > 1) throw new FieldError(this.input.id, `More than one ${this.noun} is called ${typed}: choose one from the list`);
    return typed;
  }
}

function setUpPickers() {
  pickers.practitioner = new Picker("q-practitioner", "practitioner");
  pickers.recipient = new Picker("q-recipient", "recipient");
  pickers.org = new Picker("q-org", "organisation");
}

/** The names offered, once per sign-in; without them the fields still take IDs. */
async function loadPeople() {
  if (peopleLoaded) return;
  try {
    const people = await api("/api/v1/ledger/people");
    peopleLoaded = true;
    pickers.practitioner.setOptions(
      (people.practitioners ?? []).map((p) => ({ id: p.id, name: p.name, label: named(p.id, { [p.id]: p }, p.org) })),
    );
    pickers.recipient.setOptions(
      (people.recipients ?? []).map((r) => ({ id: r.id, name: r.name, label: `${r.name}${r.kind === "team" ? " (team)" : ""}, ${r.org} (${r.id})` })),
    );
    pickers.org.setOptions((people.organisations ?? []).map((o) => ({ id: o.id, name: o.name, label: o.name && o.name !== o.id ? `${o.name} (${o.id})` : o.id })));
    orgNames = Object.fromEntries((people.organisations ?? []).filter((o) => o.name).map((o) => [o.id, o.name]));
  } catch {
    // The search works without the names: IDs typed are sent as they are.
  }
}

// -- auditor: search -------------------------------------------------------------------------------------------

const SEARCH_FIELDS = { subject: "q-subject", practitioner: "q-practitioner", recipient: "q-recipient", org: "q-org", from: "q-from", to: "q-to" };

function period(fromId, toId) {
  const from = $(fromId).value;
  const to = $(toId).value;
  if (from && !/^\d{4}-\d{2}-\d{2}$/.test(from)) throw new FieldError(fromId, "Enter the start date as a real date");
  if (to && !/^\d{4}-\d{2}-\d{2}$/.test(to)) throw new FieldError(toId, "Enter the end date as a real date");
  if (from && to && to < from) throw new FieldError(toId, "The end date must be the same as or after the start date");
  return { from: from ? ukMidnight(from) : null, to: to ? ukMidnight(to, 1) : null };
}

function searchQuery() {
  const q = new URLSearchParams();
  const subject = $(SEARCH_FIELDS.subject).value.trim();
  if (subject) q.set("subject", subject);
  for (const name of ["practitioner", "recipient", "org"]) {
    const v = pickers[name]?.id() ?? $(SEARCH_FIELDS[name]).value.trim();
    if (v) q.set(name, v);
  }
  const { from, to } = period("q-from", "q-to");
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  return q;
}

/**
 * A person or team by name, with the ID that tells two people of the same name apart and that every record uses:
 * "Pat Jones, Hereford Primary School (pat)". `people` is the API's names beside the ledger's IDs; an ID it does
 * not name is shown as it is, with the organisation ID the entry holds.
 */
function named(id, people, org) {
  const known = people?.[id] ?? {};
  const orgName = known.org_name ?? org;
  if (!known.name || known.name === id) return orgName ? `${id} (${orgName})` : id;
  return `${known.name}${orgName ? `, ${orgName}` : ""} (${id})`;
}

function describeEntry(entry, people) {
  const parts = [];
  if (entry.purpose?.code) parts.push(words.purpose(entry.purpose.code));
  if (entry.kind === "decision" && entry.decision) parts.push(entry.decision === "not_share" ? "Decided not to share" : "Decided to share");
  const recips = (entry.recipients ?? []).map((r) => (r.id ? named(r.id, people, r.org) : r.address)).filter(Boolean);
  if (recips.length) parts.push(`To ${recips.join(", ")}`);
  if (entry.reason) parts.push(`Reason: ${entry.reason}`);
  if (entry.share_id) parts.push(`Share ${entry.share_id}`);
  return parts.join(". ");
}

function resultRow(item, people) {
  const e = item.entry ?? {};
  // The name the entry itself recorded for this decision (the token's, then) comes before the API's.
  const recorded = e.actor?.name ? { [e.actor.sub]: { ...people[e.actor.sub], name: e.actor.name } } : people;
  const actor = e.actor ? named(e.actor.sub, recorded, e.actor.org) : "The gateway";
  const subjects = el("td", { class: "govuk-table__cell" });
  (e.subjects ?? []).forEach((s, i) => {
    if (i) subjects.append(", ");
    subjects.append(el("a", { class: "govuk-link", href: `#/report/${encodeURIComponent(s)}`, text: s }));
  });
  return el(
    "tr",
    { class: "govuk-table__row" },
    el("td", { class: "govuk-table__cell", text: ukTime(item.time) }),
    el("td", { class: "govuk-table__cell", text: kindWords(item.kind) }),
    el("td", { class: "govuk-table__cell", text: actor }),
    subjects,
    el("td", { class: "govuk-table__cell", text: describeEntry(e, people) || "—" }),
  );
}

async function runSearch(ev, more = false) {
  ev?.preventDefault();
  await busy(more ? $("results-more") : $("search-go"), async () => {
    if (!more) {
      searchParams = searchQuery();
      searchCursor = null;
      $("results-rows").replaceChildren();
    }
    const q = new URLSearchParams(searchParams);
    q.set("limit", "50");
    if (searchCursor) q.set("cursor", searchCursor);
    say("Searching…");
    const page = await api(`/api/v1/ledger?${q}`, { fields: SEARCH_FIELDS });
    for (const item of page.entries) $("results-rows").append(resultRow(item, page.people ?? {}));
    searchCursor = page.next_cursor;
    const count = $("results-rows").children.length;
    $("results").hidden = false;
    $("results-empty").hidden = count > 0;
    $("results-table").hidden = count === 0;
    $("results-more").hidden = !searchCursor;
    say(count ? `${count} entr${count === 1 ? "y" : "ies"} shown${searchCursor ? "; older entries can be shown" : ""}.` : "No entries match.");
  });
}

/** Download a response body the API only gives with the token: fetched here, saved through a blob: link. */
async function saveAs(resp, fallbackName) {
  const disposition = resp.headers.get("Content-Disposition") ?? "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const blob = await resp.blob();
  saveBlob(blob, name);
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  blobUrls.push(url);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

async function searchCsv() {
  await busy($("results-csv"), async () => {
    const q = new URLSearchParams(searchParams ?? searchQuery());
    q.set("format", "csv");
    say("Preparing the CSV…");
    await saveAs(await api(`/api/v1/ledger?${q}`, { raw: true, fields: SEARCH_FIELDS }), "safeshare-ledger.csv");
    say("The CSV of every matching entry has been downloaded.");
  });
}

function openReport() {
  const subject = $("q-subject").value.trim();
  if (!subject) {
    showErrors([{ field: "q-subject", message: "Enter the subject reference to see its report" }]);
    return;
  }
  location.hash = `#/report/${encodeURIComponent(subject)}`;
}

// -- auditor: the subject report -------------------------------------------------------------------------------

/**
 * The gateway's own printable report (the same HTML the API serves), fetched with the token and parsed into an
 * inert document: nothing in it runs (it has no scripts, and every value was escaped by the gateway), its inline
 * styles are dropped (this page's CSP forbids them) and console.css styles it for screen and print.
 */
async function showReport(subject) {
  document.title = `Subject report: ${subject} – SafeShare console`;
  $("report-h").textContent = `Subject report: ${subject}`;
  $("report-body").replaceChildren();
  await busy(null, async () => {
    say("Preparing the report and checking every entry's proof…");
    const resp = await api(`/api/v1/ledger/report?${new URLSearchParams({ subject, format: "html" })}`, { raw: true });
    // The report's own <style> would only be refused by this page's policy (and reported as a violation).
    const html = (await resp.text()).replace(/<style>[\s\S]*?<\/style>/gi, "");
    const doc = new DOMParser().parseFromString(html, "text/html");
    const main = doc.querySelector("main");
    if (!main) throw new Error("The gateway's report could not be read.");
    for (const bad of main.querySelectorAll("script, style, link, iframe, object, embed, img")) bad.remove();
    for (const node of main.querySelectorAll("*")) {
      for (const attr of [...node.attributes]) if (attr.name.startsWith("on") || attr.name === "style") node.removeAttribute(attr.name);
    }
    // The report's own h1 is the page's heading; the visually hidden one would repeat it.
    const h1 = main.querySelector("h1");
    if (h1) {
      h1.id = "report-title";
      $("report-h").hidden = true;
      $("report-body").setAttribute("aria-labelledby", "report-title");
    }
    $("report-body").replaceChildren(...[...main.childNodes].map((n) => document.adoptNode(n)));
    say("");
  });
  const h1 = $("report-title");
  if (h1) {
    h1.tabIndex = -1;
    h1.focus();
  }
}

// -- auditor: statistics ---------------------------------------------------------------------------------------

async function loadStats(ev) {
  ev?.preventDefault();
  await busy($("stats-go"), async () => {
    const { from, to } = period("s-from", "s-to");
    const q = new URLSearchParams();
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    say("Counting…");
    lastStats = await api(`/api/v1/ledger/stats?${q}`, { fields: { from: "s-from", to: "s-to" } });
    // The period chosen is in the form, which is not printed: the page says it too, for the paper copy.
    const [f, t] = [$("s-from").value, $("s-to").value];
    $("stats-period").textContent = `Period: ${f ? `from ${ukDate(f)}` : "from the first entry"} ${t ? `to ${ukDate(t)}, inclusive` : `to ${ukTime(new Date().toISOString())}`} (UK dates).`;
    const charts = $("charts");
    charts.replaceChildren();
    if (!(lastStats.months ?? []).length) {
      charts.append(el("p", { class: "govuk-body", text: "Nothing was recorded in this period." }));
    } else {
      for (const spec of chartSpecs(lastStats, words)) charts.append(chartSection(spec.id, spec));
    }
    $("stats-csv").hidden = !(lastStats.months ?? []).length;
    say("");
  });
}

async function downloadStatsCsv() {
  if (!lastStats) return;
  await loadPeople(); // the organisations' names for the CSV's per-organisation columns
  saveBlob(new Blob([statsCsv(lastStats, words, orgNames)], { type: "text/csv;charset=utf-8" }), "safeshare-oversight-statistics.csv");
  say("The figures have been downloaded as CSV.");
}

// -- administrator ---------------------------------------------------------------------------------------------

function shortKey(k) {
  return k ? `${k.slice(0, 12)}…${k.slice(-6)}` : "—";
}

function actionButton(text, label, onClick, secondary = true) {
  const b = el("button", { type: "button", class: `govuk-button govuk-button--small ${secondary ? "govuk-button--secondary" : ""}`.trim() }, text, el("span", { class: "govuk-visually-hidden", text: ` ${label}` }));
  b.addEventListener("click", () => onClick(b));
  return b;
}

async function loadAdmin() {
  await busy(null, async () => {
    say("Loading the directory…");
    const [enrolments, recipients] = await Promise.all([
      api("/api/v1/enrolments?status=pending"),
      api("/api/v1/recipients?include_disabled=1&limit=500"),
    ]);
    const rows = $("enrol-rows");
    rows.replaceChildren();
    for (const e of enrolments.enrolments) {
      const who = `${e.name} (${e.recipient_id})`;
      rows.append(
        el(
          "tr",
          { class: "govuk-table__row" },
          el("td", { class: "govuk-table__cell", text: who }),
          el("td", { class: "govuk-table__cell" }, e.org, el("br"), e.email),
          el("td", { class: "govuk-table__cell" }, el("code", { text: shortKey(e.age_recipient), title: e.age_recipient })),
          el("td", { class: "govuk-table__cell", text: ukTime(e.requested_at) }),
          el(
            "td",
            { class: "govuk-table__cell" },
            el(
              "div",
              { class: "govuk-button-group" },
              actionButton("Approve", `the enrolment of ${who}`, (b) => askDecision(e, true, b), false),
              actionButton("Reject", `the enrolment of ${who}`, (b) => askDecision(e, false, b)),
            ),
          ),
        ),
      );
    }
    $("enrol-table").hidden = enrolments.enrolments.length === 0;
    $("enrol-empty").hidden = enrolments.enrolments.length > 0;

    const list = $("recipients-rows");
    list.replaceChildren();
    const teams = [];
    for (const r of recipients.recipients) {
      if (r.kind === "team") teams.push(r);
      const who = `${r.name} (${r.id})`;
      list.append(
        el(
          "tr",
          { class: "govuk-table__row" },
          el("td", { class: "govuk-table__cell", text: r.name }),
          el("td", { class: "govuk-table__cell" }, el("code", { text: r.id })),
          el("td", { class: "govuk-table__cell", text: r.org }),
          el("td", { class: "govuk-table__cell", text: r.kind === "team" ? "Team" : "Person" }),
          el("td", { class: "govuk-table__cell" }, el("strong", { class: `govuk-tag ${r.status === "active" ? "govuk-tag--green" : "govuk-tag--grey"}`, text: r.status === "active" ? "Active" : "Disabled" })),
          el("td", { class: "govuk-table__cell" }, r.status === "active" ? actionButton("Disable", who, (b) => askDisable(r, b)) : ""),
        ),
      );
    }
    await showTeams(teams);
    await showAgreements();
    say("");
  });
}

const AGREEMENT_KINDS = { protocol: "Overarching protocol", data_exchange: "Data exchange agreement", other: "Agreement" };
const AGREEMENT_SCOPES = { children: "children", adults: "adults", both: "children and adults" };

/** The current version of every agreement, as `safeshare agreement list` shows them; retiring is the
 * partnership administrator's (`safeshare agreement retire`). */
async function showAgreements() {
  const { agreements } = await api("/api/v1/agreements");
  $("agreements-note").textContent = can.keeper
    ? "Adding and retiring agreements are recorded in the ledger. A retired agreement can no longer be relied on by new shares."
    : "Agreements bind several organisations, so only a partnership administrator retires them or adds new versions.";
  const rows = $("agreements-rows");
  rows.replaceChildren();
  for (const a of agreements) {
    const active = a.status === "active";
    const name = `${a.title} (version ${a.version})`;
    rows.append(
      el(
        "tr",
        { class: "govuk-table__row" },
        el("td", { class: "govuk-table__cell" }, a.document?.url ? el("a", { class: "govuk-link", href: a.document.url, text: name }) : name, el("br"), el("code", { text: a.id }), standardAnswers(a), a.version > 1 ? versionsDetails(a) : null),
        el("td", { class: "govuk-table__cell", text: `${AGREEMENT_KINDS[a.kind] ?? humanise(a.kind)}, for ${AGREEMENT_SCOPES[a.scope] ?? a.scope}` }),
        el("td", { class: "govuk-table__cell", text: (a.signatories ?? []).join("; ") }),
        el("td", { class: "govuk-table__cell", text: ukDate(a.review_date) }),
        el("td", { class: "govuk-table__cell" }, el("strong", { class: `govuk-tag ${active ? "govuk-tag--green" : "govuk-tag--grey"}`, text: active ? "In force" : "Retired" })),
        el("td", { class: "govuk-table__cell" }, active && can.keeper ? actionButton("Retire", a.title, (b) => askRetire(a, b)) : ""),
      ),
    );
  }
  $("agreements-table").hidden = agreements.length === 0;
  $("agreements-empty").hidden = agreements.length > 0;
  $("add-agreement-details").hidden = !can.keeper;
  for (const [name, codes] of [["purposes", words.purposes], ["categories", words.categories]]) {
    const list = $(`a-${name}-list`);
    if (list.children.length) continue; // built once; ticks survive a reload of the lists
    codes.forEach(([code, label], i) => {
      const id = i === 0 ? `a-${name}` : `a-${name}-${code}`;
      list.append(el("div", { class: "govuk-checkboxes__item" }, el("input", { class: "govuk-checkboxes__input", id, name: `a-${name}`, type: "checkbox", value: code }), el("label", { class: "govuk-label govuk-checkboxes__label", for: id, text: label })));
    });
  }
}

/** The sets of standard answers agreed in this version: each one's title, policy and the rules it answers. */
function standardAnswers(a) {
  const sets = a.standard_answers ?? [];
  if (!sets.length) return null;
  const list = el("ul", { class: "govuk-list govuk-list--bullet" });
  for (const s of sets) {
    const rules = Object.keys(s.answers?.rules ?? {}).map((k) => k.split("_")[0]);
    list.append(el("li", { text: `${s.title} (${s.policy}${rules.length ? `; answers rule${rules.length === 1 ? "" : "s"} ${rules.join(", ")}` : ""})` }));
  }
  return el("div", { class: "standard-answers" }, el("p", { class: "govuk-body-s govuk-!-margin-bottom-1", text: "Standard answers agreed in it:" }), list);
}

/** Every version of an agreement (as `safeshare agreement show`), fetched when first opened. */
function versionsDetails(a) {
  const list = el("ol", { class: "govuk-list govuk-list--number" });
  const details = el(
    "details",
    { class: "govuk-details versions" },
    el("summary", { class: "govuk-details__summary" }, el("span", { class: "govuk-details__summary-text", text: `Every version of ${a.title}` })),
    el("div", { class: "govuk-details__text" }, list),
  );
  details.addEventListener("toggle", async () => {
    if (!details.open || list.children.length) return;
    await busy(null, async () => {
      const { versions } = await api(`/api/v1/agreements/${encodeURIComponent(a.id)}`);
      versions.forEach((v, i) => {
        const later = versions[i + 1];
        const retired = `retired${v.retired_at ? ` ${ukTime(v.retired_at)}` : ""}${v.retired_reason ? ` (${v.retired_reason})` : ""}`;
        const state = v.status === "active" ? "in force" : later ? `replaced by version ${later.version}` : retired;
        const title = `Version ${v.version}: ${v.title}`;
        list.append(el("li", {}, v.document?.url ? el("a", { class: "govuk-link", href: v.document.url, text: title }) : title, `, added ${ukTime(v.created_at)}, ${state}, review by ${ukDate(v.review_date)}`));
      });
    });
  });
  return details;
}

/** `safeshare agreement add`: the fields as JSON, then the document, in one multipart request. */
async function addAgreement(ev) {
  ev.preventDefault();
  const fields = { id: "a-id", title: "a-title", kind: "a-kind", scope: "a-scope", signatories: "a-signatories", purposes: "a-purposes", categories: "a-categories", review_date: "a-review", document: "a-document", standard_answers: "a-standard" };
  await busy($("a-go"), async () => {
    const chosen = (name) => document.querySelector(`input[name="a-${name}"]:checked`)?.value ?? "";
    const ticked = (name) => [...document.querySelectorAll(`input[name="a-${name}"]:checked`)].map((i) => i.value);
    const file = $("a-document").files?.[0];
    const body = {
      id: $("a-id").value.trim(),
      title: $("a-title").value.trim(),
      kind: chosen("kind"),
      scope: chosen("scope"),
      signatories: $("a-signatories").value.split("\n").map((x) => x.trim()).filter(Boolean),
      purposes: ticked("purposes"),
      categories: ticked("categories"),
      review_date: $("a-review").value,
    };
    requireAll({ ...body, signatories: body.signatories.length, document: file, purposes: true, categories: true, standard_answers: true }, fields, {
      id: "Enter the agreement's ID",
      title: "Enter the agreement's title",
      kind: "Select the kind of agreement",
      scope: "Select whose information it covers",
      signatories: "Enter the organisations that signed it, one per line",
      review_date: "Enter the date it is to be reviewed",
      document: "Select the signed document",
    });
    const standard = $("a-standard").files?.[0];
    if (standard) {
      try {
        body.standard_answers = JSON.parse(await standard.text());
      } catch {
        throw new FieldError("a-standard", "The standard answers file must be JSON: a list of sets, each with a title, a policy and its answers");
      }
    }
    const form = new FormData();
    form.append("agreement", JSON.stringify(body)); // first, as the route reads it
    form.append("document", file, file.name);
    const r = await api("/api/v1/agreements", { method: "POST", body: form, fields });
    $("add-agreement-form").reset();
    await loadAdmin();
    done(`${r.agreement.title} (version ${r.agreement.version}) added. Recorded in the ledger as entry ${r.ledger_index}.`);
  });
}

async function showTeams(teams) {
  const box = $("teams");
  box.replaceChildren();
  $("teams-empty").hidden = teams.length > 0;
  for (const t of teams.filter((x) => x.status === "active")) {
    let members = [];
    try {
      members = (await api(`/api/v1/teams/${encodeURIComponent(t.id)}/members`)).members;
    } catch (e) {
      if (!/Not found/.test(e.message)) throw e;
      continue; // another organisation's team: listed in the directory, not administered here
    }
    const idBase = `team-${t.id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const table = el(
      "table",
      { class: "govuk-table" },
      el("caption", { class: "govuk-table__caption govuk-table__caption--s", text: `Members of ${t.name}` }),
      el("thead", { class: "govuk-table__head" }, el("tr", { class: "govuk-table__row" }, el("th", { scope: "col", class: "govuk-table__header", text: "Member" }), el("th", { scope: "col", class: "govuk-table__header", text: "Organisation" }), el("th", { scope: "col", class: "govuk-table__header" }, el("span", { class: "govuk-visually-hidden", text: "Actions" })))),
    );
    const body = el("tbody", { class: "govuk-table__body" });
    for (const m of members) {
      body.append(
        el(
          "tr",
          { class: "govuk-table__row" },
          el("td", { class: "govuk-table__cell", text: `${m.name} (${m.id})` }),
          el("td", { class: "govuk-table__cell", text: m.org }),
          el("td", { class: "govuk-table__cell" }, actionButton("Remove", `${m.name} from ${t.name}`, (b) => changeMember(b, t, m.id, false))),
        ),
      );
    }
    if (!members.length) body.append(el("tr", { class: "govuk-table__row" }, el("td", { class: "govuk-table__cell", colspan: "3", text: "No members yet." })));
    table.append(body);
    const inputId = `${idBase}-member`;
    const form = el(
      "form",
      { novalidate: true, class: "team-add" },
      el(
        "div",
        { class: "govuk-form-group", id: `${inputId}-group` },
        el("label", { class: "govuk-label", for: inputId, text: `Add a member to ${t.name} (their directory ID)` }),
        el("p", { class: "govuk-error-message", id: `${inputId}-error`, hidden: true }),
        el("input", { class: "govuk-input govuk-input--width-20", id: inputId, type: "text", spellcheck: "false", autocomplete: "off" }),
      ),
      el("button", { type: "submit", class: "govuk-button govuk-button--secondary", text: "Add the member" }),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const member = $(inputId).value.trim();
      changeMember(form.querySelector("button"), t, member, true, inputId);
    });
    box.append(el("section", { class: "team", "aria-labelledby": `${idBase}-h` }, el("h3", { class: "govuk-heading-s", id: `${idBase}-h`, text: `${t.name} (${t.id}), ${t.org}` }), table, form));
  }
}

async function changeMember(button, team, member, add, inputId) {
  await busy(button, async () => {
    if (add && !member) throw new FieldError(inputId, "Enter the directory ID of the person to add");
    const path = add ? `/api/v1/teams/${encodeURIComponent(team.id)}/members` : `/api/v1/teams/${encodeURIComponent(team.id)}/members/${encodeURIComponent(member)}/remove`;
    const r = await api(path, { method: "POST", body: add ? { member } : undefined, fields: add ? { member: inputId } : {} });
    await loadAdmin();
    done(`${member} ${add ? "added to" : "removed from"} ${team.name}. Recorded in the ledger as entry ${r.ledger_index}.`);
  });
}

function askDecision(e, approve, opener) {
  pending = { kind: "decide", enrolment: e, approve, opener };
  $("decide-h").textContent = `${approve ? "Approve" : "Reject"} the enrolment of ${e.name} (${e.recipient_id})?`;
  // The whole key, to read out and compare by another channel: a shortened one would not prove it is theirs.
  $("decide-check").replaceChildren(
    ...(approve
      ? [`Check with ${e.name} by another channel (telephone, in person) that this is the key their browser shows: `, el("code", { class: "key", text: e.age_recipient }), ". Shares to them will be encrypted to it."]
      : [`${e.name} will not receive shares with this key; they can enrol again.`]),
  );
  $("decide-go").textContent = approve ? "Approve the enrolment" : "Reject the enrolment";
  $("decide-reason-label").textContent = "Reason (optional; recorded in the ledger)";
  $("decide-reason").value = "";
  $("decide-reason-group").hidden = false;
  $("decide-form").hidden = false;
  $("decide-h").focus();
}

function askDisable(r, opener) {
  pending = { kind: "disable", recipient: r, opener };
  $("decide-h").textContent = `Disable ${r.name} (${r.id})?`;
  $("decide-check").textContent = "Nothing more can be shared with them; shares already sent stay as they are (revoke them from the ledger if needed).";
  $("decide-go").textContent = `Disable ${r.kind === "team" ? "the team" : "the recipient"}`;
  $("decide-reason-group").hidden = true;
  $("decide-form").hidden = false;
  // The form sits under the enrolments; bring it into view for a sighted keyboard user too.
  $("decide-h").focus();
}

function askRetire(a, opener) {
  pending = { kind: "retire", agreement: a, opener };
  $("decide-h").textContent = `Retire ${a.title} (version ${a.version})?`;
  $("decide-check").textContent = "Shares can no longer rely on it. Shares that relied on it stay as they were recorded.";
  $("decide-go").textContent = "Retire the agreement";
  $("decide-reason-label").textContent = "Why it is retired (recorded in the ledger)";
  $("decide-reason").value = "";
  $("decide-reason-group").hidden = false;
  $("decide-form").hidden = false;
  $("decide-h").focus();
}

async function confirmPending(ev) {
  ev.preventDefault();
  const p = pending;
  if (!p) return;
  await busy($("decide-go"), async () => {
    let r;
    let message;
    if (p.kind === "decide") {
      const reason = $("decide-reason").value.trim();
      const verb = p.approve ? "approve" : "reject";
      r = await api(`/api/v1/recipients/${encodeURIComponent(p.enrolment.recipient_id)}/${verb}`, {
        method: "POST",
        body: reason ? { reason } : {},
        fields: { reason: "decide-reason" },
      });
      message = `${p.approve ? "Approved" : "Rejected"} the enrolment of ${p.enrolment.name}.`;
    } else if (p.kind === "retire") {
      const reason = $("decide-reason").value.trim();
      if (!reason) throw new FieldError("decide-reason", "Enter why the agreement is retired");
      r = await api(`/api/v1/agreements/${encodeURIComponent(p.agreement.id)}/retire`, {
        method: "POST",
        body: { reason },
        fields: { reason: "decide-reason" },
      });
      message = `${p.agreement.title} is retired.`;
    } else {
      r = await api(`/api/v1/recipients/${encodeURIComponent(p.recipient.id)}/disable`, { method: "POST" });
      message = `${p.recipient.name} is disabled.`;
    }
    pending = null;
    $("decide-form").hidden = true;
    await loadAdmin();
    done(`${message} Recorded in the ledger as entry ${r.ledger_index ?? r.ledger?.index ?? "(see the ledger)"}.`);
  });
}

/** Cancel: nothing is sent; the focus goes back to the button that asked (hiding the form would drop it to the
 * page's start, and a keyboard user would have to find their place again). */
function cancelPending() {
  const opener = pending?.opener;
  pending = null;
  $("decide-form").hidden = true;
  clearErrors();
  say("Nothing was changed.");
  if (opener?.isConnected) opener.focus();
}

async function addRecipient(ev) {
  ev.preventDefault();
  const fields = { id: "r-id", name: "r-name", org: "r-org", email: "r-email", age_recipient: "r-key" };
  await busy($("r-go"), async () => {
    const body = Object.fromEntries(Object.entries(fields).map(([k, id]) => [k, $(id).value.trim()]));
    const missing = {
      id: "Enter the recipient's directory ID",
      name: "Enter the recipient's name",
      org: "Enter the recipient's organisation",
      email: "Enter the recipient's e-mail address",
      age_recipient: "Enter the recipient's public key (it starts with age1)",
    };
    requireAll(body, fields, missing);
    const r = await api("/api/v1/recipients", { method: "POST", body, fields });
    for (const id of Object.values(fields)) $(id).value = "";
    await loadAdmin();
    done(`${r.recipient.name} (${r.recipient.id}) added to the directory. Recorded in the ledger as entry ${r.ledger_index}.`);
  });
}

async function addTeam(ev) {
  ev.preventDefault();
  const fields = { id: "t-id", name: "t-name", org: "t-org", email: "t-email" };
  await busy($("t-go"), async () => {
    const body = Object.fromEntries(Object.entries(fields).map(([k, id]) => [k, $(id).value.trim()]));
    const missing = {
      id: "Enter the team's directory ID",
      name: "Enter the team's name",
      org: "Enter the team's organisation",
      email: "Enter the team's e-mail address",
    };
    requireAll(body, fields, missing);
    const r = await api("/api/v1/teams", { method: "POST", body, fields });
    for (const id of Object.values(fields)) $(id).value = "";
    await loadAdmin();
    done(`Team ${r.team.name} (${r.team.id}) added. Recorded in the ledger as entry ${r.ledger_index}.`);
  });
}

// -- start -----------------------------------------------------------------------------------------------------

async function start() {
  document.body.classList.add("js-enabled", "govuk-frontend-supported");
  initAll();
  setUpPickers();
  $("token-form").addEventListener("submit", signInWithToken);
  $("search-form").addEventListener("submit", (ev) => runSearch(ev));
  $("results-more").addEventListener("click", () => runSearch(null, true));
  $("results-csv").addEventListener("click", searchCsv);
  $("search-report").addEventListener("click", openReport);
  $("report-print").addEventListener("click", () => window.print());
  $("stats-form").addEventListener("submit", loadStats);
  $("stats-csv").addEventListener("click", downloadStatsCsv);
  $("decide-form").addEventListener("submit", confirmPending);
  $("decide-cancel").addEventListener("click", cancelPending);
  $("add-recipient-form").addEventListener("submit", addRecipient);
  $("add-team-form").addEventListener("submit", addTeam);
  $("add-agreement-form").addEventListener("submit", addAgreement);
  window.addEventListener("hashchange", () => route());

  let config = null;
  try {
    config = await (await fetch("/api/v1/auth/config", { credentials: "omit", cache: "no-store" })).json();
  } catch {
    config = null;
  }
  const issuers = signInIssuers(config);
  $("oidc-section").hidden = issuers.length === 0;
  for (const issuer of issuers) {
    const b = el("button", { type: "button", class: "govuk-button", text: `Sign in with ${issuerLabel(issuer.issuer)}` });
    b.addEventListener("click", () => startOidc(issuer));
    $("oidc-list").append(el("li", {}, b));
  }
  await busy(null, async () => {
    if (new URLSearchParams(location.search).has("code") || new URLSearchParams(location.search).has("error")) {
      await finishOidc(config);
    }
    if (token) {
      try {
        await whatCanIDo();
      } catch (e) {
        setToken(null);
        throw e;
      }
    }
  });
  await route();
  $("main").setAttribute("aria-busy", "false");
}

start();
