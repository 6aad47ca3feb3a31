/**
 * This browser's keyring for the recipient page, in IndexedDB of the gateway's origin: one record per signed-in
 * recipient, holding only the passphrase-locked age file (lib/keyring.js lock()) and the public recipients of
 * the keys in it — the same convention as the extension's storage. Unlocked secret keys are never stored: they
 * live in the page's memory and go when it closes.
 */
const DB = "safeshare-open";
const STORE = "keyrings";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("This browser would not open its storage for SafeShare."));
  });
}

async function tx(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = work(t.objectStore(STORE));
      t.oncomplete = () => resolve(req?.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error ?? new Error("The browser's storage refused the change."));
    });
  } finally {
    db.close();
  }
}

/** The keyring kept for this recipient ({armored, keys: [{recipient, created}]}), or null. */
export async function loadKeyring(owner) {
  const value = await tx("readonly", (s) => s.get(String(owner)));
  if (!value || typeof value.armored !== "string" || !Array.isArray(value.keys)) return null;
  return value;
}

/** Keep the locked file and the public side of its keys (never a secret key). */
export async function saveKeyring(owner, armored, keys) {
  const keyring = { armored, keys: keys.map((k) => ({ recipient: k.recipient, created: k.created ?? null })) };
  await tx("readwrite", (s) => s.put(keyring, String(owner)));
  return keyring;
}
