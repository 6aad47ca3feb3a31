/**
 * Storage only the extension's own pages and its worker can read: IndexedDB of the extension's origin.
 *
 * `storage.local` is readable by content scripts (which run inside webmail pages; a compromised page cannot
 * reach them directly, but everything a content script can read is one bug away from the page), so what must
 * stay private — the passphrase-locked keyring and the practitioner's panel phrase — lives here instead.
 * Content scripts run with the web page's origin and cannot open this database.
 */
const DB = "safeshare-private";
const STORE = "kv";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export async function privateGet(key) {
  return (await run("readonly", (s) => s.get(key))) ?? null;
}

export async function privateSet(key, value) {
  await run("readwrite", (s) => s.put(value, key));
}

export async function privateDelete(key) {
  await run("readwrite", (s) => s.delete(key));
}
