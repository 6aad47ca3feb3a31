/**
 * What the recipient pages share: talking to the service worker (the only gateway client, which holds the
 * token), the keyring as stored in this browser, and small DOM helpers for accessible messages.
 *
 * Storage convention: "keyring" = {armored, keys: [{recipient, created}]} in the extension origin's IndexedDB
 * (lib/private-store.js, out of reach of content scripts) — only the passphrase-locked age file and the public
 * recipients are ever written; unlocked secret keys live in the memory of the page that unlocked them and go
 * when it closes. A keyring an older version kept in chrome.storage.local is moved there on first read.
 */
import { privateGet, privateSet } from "../lib/private-store.js";

export const api = globalThis.browser ?? globalThis.chrome;
export const $ = (id) => document.getElementById(id);

/** Ask the service worker; its refusals arrive as {code, message} in plain words. */
export async function ask(type, payload = {}) {
  let answer;
  try {
    answer = await api.runtime.sendMessage({ type, ...payload });
  } catch (e) {
    throw Object.assign(new Error(`SafeShare stopped unexpectedly (${e?.message ?? e}). Reload this page and try again.`), { code: "internal" });
  }
  if (!answer) throw Object.assign(new Error("SafeShare did not answer. Reload this page and try again."), { code: "internal" });
  if (!answer.ok) throw Object.assign(new Error(answer.error?.message ?? "Something went wrong in SafeShare."), answer.error ?? {});
  return answer.value;
}

/** The stored keyring, or null when receiving is not set up in this browser. */
export async function loadKeyring() {
  let keyring = await privateGet("keyring");
  if (!keyring) {
    const old = (await api.storage.local.get("keyring")).keyring;
    if (old && typeof old.armored === "string" && Array.isArray(old.keys)) {
      await privateSet("keyring", old);
      keyring = old;
    }
  }
  // Nothing of it stays where content scripts can read it.
  await api.storage.local.remove("keyring");
  if (!keyring || typeof keyring.armored !== "string" || !Array.isArray(keyring.keys)) return null;
  return keyring;
}

/** Store the locked file and the public side of its keys (never a secret key). */
export async function saveKeyring(armored, keys) {
  const keyring = { armored, keys: keys.map((k) => ({ recipient: k.recipient, created: k.created ?? null })) };
  await privateSet("keyring", keyring);
  await api.storage.local.remove("keyring");
  new BroadcastChannel(KEYRING_CHANNEL).postMessage("changed");
  return keyring;
}

/** Told when another extension page of this browser saved the keyring. */
export const KEYRING_CHANNEL = "safeshare-keyring";
export function onKeyringChanged(listener) {
  new BroadcastChannel(KEYRING_CHANNEL).onmessage = () => listener();
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** The page's error line (role=alert: announced at once). An empty message hides it. */
export function showAlert(message) {
  const a = $("alert");
  a.textContent = message ?? "";
  a.hidden = !message;
}

/** The page's status line (role=status, polite). */
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

/** A definition list from [label, value] pairs (values may be nodes). */
export function facts(pairs, attrs = {}) {
  const dl = el("dl", { class: "facts", ...attrs });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(el("dt", { text: label }), el("dd", {}, value));
  }
  return dl;
}
