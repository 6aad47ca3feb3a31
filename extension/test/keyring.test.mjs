// The recipient's keyring: keys generated here, locked under a passphrase as an ordinary age file, and used
// to decrypt envelopes (including ones encrypted to an older key). Runs against the BUILT vendor/age.js.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as age from "../vendor/age.js";
import {
  KeyringError,
  MIN_PASSPHRASE,
  SCRYPT_WORK_FACTOR,
  decrypt,
  generateKey,
  identityFile,
  lock,
  parseIdentityFile,
  passphraseProblem,
  unlock,
} from "../lib/keyring.js";

const PASSPHRASE = "plum orbit — kettle 47 lantern";

const rejectsWith = (promise, code) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof KeyringError, `a KeyringError, got ${err}`);
    assert.equal(err.code, code);
    assert.ok(err.message.length > 20 && !/undefined|null|\[object/.test(err.message), `plain words: ${err.message}`);
    return true;
  });

async function encryptTo(recipient, bytes) {
  const e = new age.Encrypter();
  e.addRecipient(recipient);
  return e.encrypt(bytes);
}

const payload = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) % 256);

// Two keys, as after one rotation; scrypt is slow by design, so the backup is made once for every test.
const keysPromise = Promise.all([generateKey(), generateKey()]);
const lockedPromise = keysPromise.then((keys) => lock(keys, PASSPHRASE));

test("generateKey makes an X25519 identity whose recipient age itself derives", async () => {
  const [a, b] = await keysPromise;
  assert.match(a.identity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
  assert.match(a.recipient, /^age1[0-9a-z]{58}$/);
  assert.equal(a.recipient, await age.identityToRecipient(a.identity));
  assert.notEqual(a.identity, b.identity, "fresh randomness per key");
  assert.ok(!Number.isNaN(Date.parse(a.created)) && Math.abs(Date.parse(a.created) - Date.now()) < 60_000);
});

test("lock → unlock gives back exactly the keys; the backup is an armored scrypt age file", async () => {
  const keys = await keysPromise;
  const armored = await lockedPromise;
  assert.match(armored, /^-----BEGIN AGE ENCRYPTED FILE-----\n[\s\S]+\n-----END AGE ENCRYPTED FILE-----\n?$/);
  const header = new TextDecoder().decode(age.armor.decode(armored).subarray(0, 120));
  const stanza = header.split("\n")[1].split(" ");
  assert.deepEqual([stanza[0], stanza[1], stanza[3]], ["->", "scrypt", String(SCRYPT_WORK_FACTOR)]);
  assert.ok(SCRYPT_WORK_FACTOR >= 18, "not weaker than the age CLI's default");
  assert.ok(!armored.includes(keys[0].identity.slice(16, 40)), "no secret in the clear");
  const back = await unlock(armored, PASSPHRASE);
  assert.deepEqual(back, keys);
  // The plaintext is the standard identity file, so any age tool can use it once decrypted.
  const d = new age.Decrypter();
  d.addPassphrase(PASSPHRASE);
  assert.equal(await d.decrypt(age.armor.decode(armored), "text"), identityFile(keys));
});

test("a wrong passphrase is refused as such", async () => {
  await rejectsWith(unlock(await lockedPromise, PASSPHRASE + "x"), "wrong_passphrase");
});

test("something that is not a passphrase backup is refused as not_a_backup", async () => {
  const [a] = await keysPromise;
  await rejectsWith(unlock("hello", PASSPHRASE), "not_a_backup");
  await rejectsWith(unlock("", PASSPHRASE), "not_a_backup");
  // An age file encrypted to a key, not a passphrase:
  await rejectsWith(unlock(age.armor.encode(await encryptTo(a.recipient, payload(10))), PASSPHRASE), "not_a_backup");
  // A passphrase file whose content is not an identity file:
  const e = new age.Encrypter();
  e.setScryptWorkFactor(10);
  e.setPassphrase(PASSPHRASE);
  await rejectsWith(unlock(age.armor.encode(await e.encrypt("just some notes")), PASSPHRASE), "not_a_backup");
});

test("weak passphrases are refused before anything is encrypted", async () => {
  const keys = await keysPromise;
  for (const weak of ["", "short", "a".repeat(40), "abcabcabcabcabc", "password1234", "Password123456!", "qwertyuiop12", "0123456789abc"]) {
    assert.ok(passphraseProblem(weak), `refused: ${JSON.stringify(weak)}`);
    await rejectsWith(lock(keys, weak), "weak_passphrase");
  }
  assert.match(passphraseProblem("x".repeat(MIN_PASSPHRASE - 1)), new RegExp(`at least ${MIN_PASSPHRASE}`));
  for (const ok of [PASSPHRASE, "correct horse battery staple", "école à la maison ce soir", "Tr0ub4dor&3x!!"]) {
    assert.equal(passphraseProblem(ok), null, ok);
  }
});

test("identityFile writes the age-keygen format for two keys and parseIdentityFile reads it back", async () => {
  const keys = await keysPromise;
  const text = identityFile(keys);
  assert.equal(
    text,
    keys.map((k) => `# created: ${k.created}\n# public key: ${k.recipient}\n${k.identity}\n`).join(""),
  );
  assert.deepEqual(await parseIdentityFile(text), keys);
  // As age-keygen writes it (CRLF, blank lines, no created comment), and a lying public-key comment.
  const [a, b] = keys;
  const loose = `# public key: ${b.recipient}\r\n${a.identity}\r\n\r\n# created: 2020-01-01T00:00:00Z\r\n${b.identity}\r\n`;
  assert.deepEqual(await parseIdentityFile(loose), [
    { identity: a.identity, recipient: a.recipient, created: null },
    { identity: b.identity, recipient: b.recipient, created: "2020-01-01T00:00:00Z" },
  ]);
});

test("parseIdentityFile refuses what is not an identity file", async () => {
  const [a] = await keysPromise;
  await rejectsWith(parseIdentityFile(""), "not_a_backup");
  await rejectsWith(parseIdentityFile("# only a comment\n"), "not_a_backup");
  await rejectsWith(parseIdentityFile(`${a.identity}\nhello\n`), "not_a_backup");
  await rejectsWith(parseIdentityFile(a.identity.slice(0, -1) + (a.identity.endsWith("Q") ? "P" : "Q")), "not_a_backup");
  // Post-quantum identities are keys this extension uses now (see the postQuantum test); plugin ones are not.
  await rejectsWith(parseIdentityFile("AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"), "not_a_backup");
});

test("decrypt opens an envelope encrypted to the older of two keys (after a rotation)", async () => {
  const [older, newer] = await keysPromise;
  const bytes = payload(200_000); // several 64 KiB STREAM chunks
  const envelope = await encryptTo(older.recipient, bytes);
  assert.deepEqual(await decrypt(envelope, [newer, older]), bytes);
  assert.deepEqual(await decrypt(await encryptTo(newer.recipient, bytes), [newer, older]), bytes);
  // Armored envelopes are accepted too.
  assert.deepEqual(await decrypt(new TextEncoder().encode(age.armor.encode(envelope)), [older]), bytes);
});

test("an envelope for a key this browser does not have: no_matching_key", async () => {
  const keys = await keysPromise;
  const stranger = await generateKey();
  await rejectsWith(decrypt(await encryptTo(stranger.recipient, payload(100)), keys), "no_matching_key");
  await rejectsWith(decrypt(await encryptTo(keys[0].recipient, payload(100)), []), "no_matching_key");
});

test("a damaged envelope: corrupt_envelope", async () => {
  const keys = await keysPromise;
  const envelope = await encryptTo(keys[0].recipient, payload(100_000));
  const flipped = envelope.slice();
  flipped[flipped.length - 10] ^= 1;
  await rejectsWith(decrypt(flipped, keys), "corrupt_envelope");
  await rejectsWith(decrypt(envelope.slice(0, envelope.length - 5000), keys), "corrupt_envelope");
  await rejectsWith(decrypt(new TextEncoder().encode("not an age file at all"), keys), "corrupt_envelope");
});

test("generateKey({postQuantum: true}) makes a hybrid key; it survives the identity file and opens its envelopes", async () => {
  const pq = await generateKey({ postQuantum: true });
  assert.match(pq.identity, /^AGE-SECRET-KEY-PQ-1[0-9A-Z]+$/);
  assert.match(pq.recipient, /^age1pq1[0-9a-z]+$/);
  assert.equal(pq.recipient, await age.identityToRecipient(pq.identity));
  const [classic] = await keysPromise;
  const both = await parseIdentityFile(identityFile([classic, pq]));
  assert.deepEqual(both.map((k) => k.recipient), [classic.recipient, pq.recipient]);
  const bytes = payload(70_000);
  const envelope = await encryptTo(pq.recipient, bytes);
  assert.match(new TextDecoder().decode(envelope.subarray(0, 60)), /\n-> mlkem768x25519 /);
  assert.deepEqual(await decrypt(envelope, both), bytes);
});
