/**
 * What the recipient pages share: talking to the service worker (the only gateway client, which holds the
 * token) and the DOM helpers (both from lib/page.js, re-exported), and the keyring as stored in this browser.
 * The GOV.UK Design System's markup comes from lib/govuk.js, as in the share panel, and so does the pages' error
 * summary: a form's problems shown only after the person submits it or leaves a field they changed.
 *
 * Storage convention: "keyring" = {armored, keys: [{recipient, created}]} in the extension origin's IndexedDB
 * (lib/private-store.js, out of reach of content scripts) — only the passphrase-locked age file and the public
 * recipients are ever written; unlocked secret keys live in the memory of the page that unlocked them and go
 * when it closes. A keyring an older version kept in chrome.storage.local is moved there on first read.
 */
import { errorSummary } from "../lib/govuk.js";
import { $, api, asker } from "../lib/page.js";
import { privateGet, privateSet } from "../lib/private-store.js";

export { $, api, busy, el, say, showAlert } from "../lib/page.js";

/**
 * The page's one error summary (#error-summary, at the top of <main>): each form's field errors as links to
 * the fields, and the #alert line for what is not about a field (the gateway refused or could not be reached).
 */
export const errors = errorSummary($("error-summary"));

/** Ask the service worker; its refusals arrive as {code, message} in plain words (lib/page.js). */
export const ask = asker({ advice: "Reload this page and try again." });

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
