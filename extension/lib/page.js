/**
 * What every extension page (the share panel, the options page, the recipient's inbox and keys pages) needs
 * to talk to the service worker and to show things accessibly — written once, so that a refusal reads the
 * same wherever it surfaces and a fix to element building reaches every page.
 *
 * The pages differ only in what they tell the person to do when the service worker is gone ("Nothing was
 * shared…" in the panel, "Reload this page…" elsewhere) and in what they send with every message (the
 * panel's session); both are given to `asker`, the behaviour is the same.
 */

export const api = globalThis.browser ?? globalThis.chrome;
export const $ = (id) => document.getElementById(id);

/** An Error carrying the service worker's refusal fields (`code`, `field`, `details`, …) beside its message. */
function refusal(message, fields = {}) {
  return Object.assign(new Error(message), fields);
}

/**
 * An `ask(type, payload)` for one page: sends `{type, ...extra(), ...payload}` to the service worker and
 * resolves with its value; a refusal rejects with an Error whose message is the worker's plain words and
 * whose `code`/`field`/`details` are the worker's; a worker that threw or said nothing rejects with code
 * "internal" and `advice` (what to do next) after the reason.
 *
 * @param {{advice?: string, extra?: () => object}} [opts]
 * @returns {(type: string, payload?: object) => Promise<any>}
 */
export function asker({ advice = "Reload this page and try again.", extra = () => ({}) } = {}) {
  return async function ask(type, payload = {}) {
    let answer;
    try {
      answer = await api.runtime.sendMessage({ type, ...extra(), ...payload });
    } catch (e) {
      throw refusal(`SafeShare stopped unexpectedly (${e?.message ?? e}). ${advice}`, { code: "internal" });
    }
    if (!answer) throw refusal(`SafeShare did not answer. ${advice}`, { code: "internal" });
    if (!answer.ok) throw refusal(answer.error?.message ?? "Something went wrong in SafeShare.", answer.error ?? {});
    return answer.value;
  };
}

/**
 * An element from a tag, attributes and children, never from markup: "text" sets textContent, "dataset" a
 * map of data-*; null, undefined and false attributes and children are left out, true is an empty attribute.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false && c !== "") node.append(c);
  return node;
}

/**
 * The page's error line (#alert, role=alert: announced at once) for what is not about one field; an empty
 * message hides it. `kind` says which step put it there (data-kind), so that step alone may clear it later
 * (the panel's live validation).
 */
export function showAlert(message, kind = "action") {
  const a = $("alert");
  a.dataset.kind = kind;
  a.textContent = message ?? "";
  a.hidden = !message;
  // On the recipient pages the line sits in the page's GOV.UK error summary (lib/govuk.js errorSummary), shown
  // with it and hidden again when the summary lists no field either.
  const box = a.closest(".govuk-error-summary");
  if (box) box.hidden = !message && !box.querySelector(".govuk-error-summary__list > li");
}

/** The page's status line (#status, role=status: polite). */
export function say(message) {
  $("status").textContent = message ?? "";
}

/** Run an action from a button: errors go to the alert line, the button is disabled meanwhile. */
export async function busy(button, work) {
  showAlert("");
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (e) {
    showAlert(e?.message ?? String(e));
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
