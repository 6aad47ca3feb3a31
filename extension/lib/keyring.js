/**
 * The recipient's age keyring, kept in the browser (pure apart from WebCrypto, which age-encryption uses).
 *
 * A recipient's identities (X25519, or hybrid post-quantum ML-KEM-768 + X25519) are generated here and never leave the browser unencrypted: on disk they
 * exist only as an ordinary passphrase-encrypted age file (scrypt recipient, ASCII armor) whose plaintext is
 * a standard age identity file, so the same file is the key backup and opens with `age -d` or any other age
 * implementation. All cryptography is age-encryption's (vendor/age.js); this module only chooses parameters,
 * formats the identity file and turns library errors into plain words for a recipient.
 */
import * as age from "../vendor/age.js";

/** Shortest passphrase accepted for a key backup (characters). */
export const MIN_PASSPHRASE = 12;

/**
 * scrypt work factor (log2 N) for new backups: 18 is the age CLI's own default and age-encryption's, so a
 * backup is as hard to brute-force as one made with `age -p`. Measured on this project's 2-core machines:
 * about 1.1 s to lock or to unlock in Node 20 and in Chromium 156 when idle, up to 1.9 s with both cores
 * busy; it needs 256 MiB of memory for that second. It is not lowered (that would weaken every backup
 * against offline guessing) nor raised (age-encryption refuses to open files above 20).
 */
export const SCRYPT_WORK_FACTOR = 18;

/** Why an operation failed: `code` is stable for the UI, `message` is in plain words for the recipient. */
export class KeyringError extends Error {
  /**
   * @param {"weak_passphrase"|"wrong_passphrase"|"not_a_backup"|"no_matching_key"|"corrupt_envelope"} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "KeyringError";
    this.code = code;
  }
}

/**
 * @typedef {object} Key
 * @property {string} identity  the secret key, "AGE-SECRET-KEY-1…" or (post-quantum) "AGE-SECRET-KEY-PQ-1…"
 * @property {string} recipient its public recipient, "age1…" or "age1pq1…" (what the gateway encrypts to)
 * @property {string|null} created ISO-8601 time the key was made (null when a backup did not say)
 */

/** Words and runs that make up most weak passphrases; a passphrase that is little else is refused. */
const PREDICTABLE = [
  "password", "passphrase", "passwort", "motdepasse", "qwertyuiop", "asdfghjkl", "zxcvbnm", "azerty",
  "letmein", "welcome", "iloveyou", "safeshare", "admin", "secret", "changeme",
  "0123456789", "9876543210", "abcdefghijklmnopqrstuvwxyz", "zyxwvutsrqponmlkjihgfedcba",
];

/**
 * Why a passphrase is too weak to protect a key backup, or null when it is acceptable. The backup can be
 * copied and attacked offline, so length matters most; the other checks catch the obvious patterns that
 * would pass a length rule.
 * @param {string} passphrase
 * @returns {string|null}
 */
export function passphraseProblem(passphrase) {
  if (typeof passphrase !== "string" || passphrase.length === 0) return "Choose a passphrase to protect your keys.";
  const chars = Array.from(passphrase);
  if (chars.length < MIN_PASSPHRASE) {
    return `The passphrase is too short: use at least ${MIN_PASSPHRASE} characters (a few unrelated words work well).`;
  }
  if (passphrase.trim().length === 0) return "The passphrase cannot be only spaces.";
  if (new Set(chars.map((c) => c.toLowerCase())).size < 5) {
    return "The passphrase repeats too few different characters: use a few unrelated words instead.";
  }
  if (/^(.+?)\1+$/su.test(passphrase)) {
    return "The passphrase is the same short piece repeated: use a few unrelated words instead.";
  }
  let rest = passphrase.toLowerCase().replace(/[\s\p{P}\p{S}_]+/gu, "");
  for (const word of PREDICTABLE) {
    // Any run of 4 or more characters of a predictable word or sequence counts as predictable.
    for (let len = word.length; len >= 4; len--) {
      for (let i = 0; i + len <= word.length; i++) rest = rest.split(word.slice(i, i + len)).join("");
    }
  }
  if (Array.from(rest).length < 6) {
    return "The passphrase is too easy to guess (common words, keyboard rows or counting): use a few unrelated words.";
  }
  return null;
}

/**
 * A new identity, made from the browser's random number generator: X25519 by default, or with
 * `postQuantum` the age spec's hybrid ML-KEM-768 + X25519 type (`age1pq1…`), whose envelopes a future
 * quantum computer cannot open even if they are recorded today. The gateway encrypts to either; an
 * organisation may require the hybrid kind for new enrolments (error `post_quantum_required`).
 * @param {{postQuantum?: boolean}} [options]
 * @returns {Promise<Key>}
 */
export async function generateKey({ postQuantum = false } = {}) {
  const identity = postQuantum ? await age.generateHybridIdentity() : await age.generateX25519Identity();
  const recipient = await age.identityToRecipient(identity);
  return { identity, recipient, created: new Date().toISOString().replace(/\.\d{3}Z$/, "Z") };
}

/**
 * The keys as a standard age identity file (the format `age-keygen` writes and `age -d -i FILE` reads):
 * for each key, its creation time and public key as comments, then the secret key.
 * @param {Key[]} keys
 * @returns {string}
 */
export function identityFile(keys) {
  return keys
    .map((k) => {
      const lines = [];
      if (k.created) lines.push(`# created: ${String(k.created).replace(/[\r\n]+/g, " ")}`);
      lines.push(`# public key: ${k.recipient}`, k.identity);
      return lines.join("\n") + "\n";
    })
    .join("");
}

const notABackup = (why) =>
  new KeyringError("not_a_backup", `This is not a SafeShare key backup: ${why}. Choose the .age backup file you saved.`);

/**
 * The keys in an age identity file (the inverse of identityFile). Each public recipient is recomputed from
 * its secret key, never trusted from the comments; the "# created:" comment before a key is kept.
 * @param {string} text
 * @returns {Promise<Key[]>}
 */
export async function parseIdentityFile(text) {
  if (typeof text !== "string") throw notABackup("it is not text");
  const keys = [];
  let created = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s*created:\s*(.+)$/i.exec(line);
      if (m) created = m[1].trim();
      continue;
    }
    if (!line.startsWith("AGE-SECRET-KEY-1") && !line.startsWith("AGE-SECRET-KEY-PQ-1")) {
      throw notABackup(line.startsWith("AGE-") ? "it holds a kind of key this extension does not use" : "it holds something other than age keys");
    }
    let recipient;
    try {
      recipient = await age.identityToRecipient(line);
    } catch {
      throw notABackup("one of its keys is damaged");
    }
    if (!keys.some((k) => k.identity === line)) keys.push({ identity: line, recipient, created });
    created = null;
  }
  if (keys.length === 0) throw notABackup("it contains no keys");
  return keys;
}

/**
 * The keys as a passphrase-encrypted, ASCII-armored age file: the key backup and the form kept in storage.
 * @param {Key[]} keys
 * @param {string} passphrase
 * @returns {Promise<string>}
 */
export async function lock(keys, passphrase) {
  const problem = passphraseProblem(passphrase);
  if (problem) throw new KeyringError("weak_passphrase", problem);
  if (!Array.isArray(keys) || keys.length === 0) throw new TypeError("lock() needs at least one key");
  const e = new age.Encrypter();
  e.setScryptWorkFactor(SCRYPT_WORK_FACTOR);
  e.setPassphrase(passphrase);
  return age.armor.encode(await e.encrypt(identityFile(keys)));
}

const AGE_MAGIC = "age-encryption.org/v1\n";

/** The binary age file in `armored` (armor or binary bytes accepted), or a not_a_backup error. */
function ageBytes(armored) {
  if (armored instanceof Uint8Array) {
    const head = new TextDecoder().decode(armored.subarray(0, 40));
    if (head.startsWith(AGE_MAGIC)) return armored;
    armored = new TextDecoder().decode(armored);
  }
  if (typeof armored !== "string") throw notABackup("it is not an age file");
  try {
    return age.armor.decode(armored.trim());
  } catch {
    throw notABackup("it is not an age encrypted file");
  }
}

/**
 * Opens a backup made by lock() (or by `age -p` around an identity file).
 * @param {string|Uint8Array} armored
 * @param {string} passphrase
 * @returns {Promise<Key[]>}
 */
export async function unlock(armored, passphrase) {
  const file = ageBytes(armored);
  // The header's first stanza says whether this is a passphrase file at all (the header is plain text).
  const header = new TextDecoder().decode(file.subarray(0, 200));
  if (!header.startsWith(AGE_MAGIC)) throw notABackup("it is not an age encrypted file");
  if (!header.slice(AGE_MAGIC.length).startsWith("-> scrypt ")) {
    throw notABackup("it is encrypted to a key, not protected by a passphrase");
  }
  const d = new age.Decrypter();
  d.addPassphrase(String(passphrase ?? ""));
  let text;
  try {
    text = await d.decrypt(file, "text");
  } catch (err) {
    const msg = String(err?.message ?? err);
    if (/no identity matched/i.test(msg)) {
      throw new KeyringError("wrong_passphrase", "That passphrase does not open this key backup. Check it and try again.");
    }
    if (/work factor is too high/i.test(msg)) throw notABackup("its passphrase protection is stronger than this browser can open");
    throw notABackup("the file is damaged");
  }
  return parseIdentityFile(text);
}

/**
 * Decrypts an envelope (binary age v1, as the gateway serves it; armor also accepted) with whichever key
 * it was encrypted to, so shares made before a key rotation still open.
 * @param {Uint8Array} envelope
 * @param {Key[]} keys
 * @returns {Promise<Uint8Array>}
 */
export async function decrypt(envelope, keys) {
  if (!(envelope instanceof Uint8Array)) envelope = new Uint8Array(envelope);
  const head = new TextDecoder().decode(envelope.subarray(0, 40));
  if (head.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
    try {
      envelope = age.armor.decode(new TextDecoder().decode(envelope).trim());
    } catch {
      throw new KeyringError("corrupt_envelope", "This share's encrypted file is damaged and cannot be opened.");
    }
  } else if (!head.startsWith(AGE_MAGIC)) {
    throw new KeyringError("corrupt_envelope", "This share's encrypted file is damaged or is not an age file, so it cannot be opened.");
  }
  if (!keys?.length) {
    throw new KeyringError("no_matching_key", "There are no keys in this browser yet: set up receiving or restore your key backup first.");
  }
  const d = new age.Decrypter();
  for (const k of keys) d.addIdentity(k.identity);
  try {
    return await d.decrypt(envelope);
  } catch (err) {
    if (/no identity matched/i.test(String(err?.message ?? err))) {
      throw new KeyringError(
        "no_matching_key",
        "None of the keys in this browser can open this share: it was encrypted to a key you do not have here (restore the backup that holds it).",
      );
    }
    throw new KeyringError("corrupt_envelope", "This share's encrypted file is damaged and cannot be opened.");
  }
}
