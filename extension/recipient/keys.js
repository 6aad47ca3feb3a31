/**
 * "Set up receiving" and key management: make a key in this browser (locked with the recipient's passphrase),
 * send only its public part for approval, show where the approval stands, rotate, back up and restore.
 */
import { KeyringError, generateKey, lock, passphraseProblem, unlock } from "../lib/keyring.js";
import { backupFileName, enrolmentState, formatTime } from "../lib/recipient.js";
import { formChecks } from "../lib/govuk.js";
import { $, ask, busy, el, errors, loadKeyring, onKeyringChanged, saveKeyring, say, showAlert } from "./common.js";

let claims = null;

/** Set-up's two passphrase boxes: a strong enough passphrase, typed the same twice. */
const setupChecks = formChecks(errors, [
  { input: $("setup-pass"), check: () => passphraseProblem($("setup-pass").value) ?? "", also: [$("setup-pass2")] },
  {
    input: $("setup-pass2"),
    check: () => {
      if (!$("setup-pass2").value) return "Type the passphrase again, to be sure it is the one you meant.";
      if ($("setup-pass2").value !== $("setup-pass").value) return "The two passphrases are different. Type the same passphrase in both boxes.";
      return "";
    },
  },
]);

const rotateChecks = formChecks(errors, [{ input: $("rotate-pass"), check: () => ($("rotate-pass").value ? "" : "Enter your passphrase.") }]);

/** Restore: a file and its passphrase, and this browser's passphrase when keys are here already (shown then). */
const restoreChecks = formChecks(errors, [
  { input: $("restore-file"), check: () => ($("restore-file").files?.length ? "" : "Choose the backup file (safeshare-keys-….age).") },
  { input: $("restore-pass"), check: () => ($("restore-pass").value ? "" : "Enter the passphrase the backup was made with.") },
  { input: $("restore-current"), check: () => ($("restore-current").value ? "" : "Enter this browser's passphrase.") },
]);

function describeWho(status) {
  claims = status.signedIn ? status.claims ?? {} : null;
  const who = $("who");
  who.replaceChildren();
  if (!claims) {
    who.append(
      "Not signed in. ",
      el("a", { class: "govuk-link", href: "../options/options.html", text: "Sign in on the options page" }),
      " with the recipient sign-in your organisation gave you, then come back here.",
    );
    return;
  }
  const parts = [claims.sub, claims.email, claims.org].filter((x) => typeof x === "string" && x);
  who.textContent = parts.join(" · ");
}

/** The keys section (or the set-up form), with the gateway's view of them. */
async function render({ check = true } = {}) {
  const keyring = await loadKeyring();
  $("setup").hidden = !!keyring;
  $("keys").hidden = !keyring;
  $("restore-current-field").hidden = !keyring;
  if (!keyring) return;
  const list = $("key-list");
  list.replaceChildren();
  keyring.keys.forEach((k, i) => {
    const newest = i === keyring.keys.length - 1;
    list.append(
      el(
        "li",
        { dataset: { recipient: k.recipient } },
        el("code", { text: k.recipient }),
        el("span", { class: "govuk-hint", text: ` made ${k.created ? formatTime(k.created) : "at an unknown time"}${newest ? " (newest)" : ""}` }),
      ),
    );
  });
  if (!check) return;
  const state = $("state");
  if (!claims) {
    state.dataset.state = "unknown";
    state.textContent = "Sign in to see whether your key has been approved.";
    $("resend").hidden = true;
    return;
  }
  try {
    const me = await ask("recipient-me");
    const s = enrolmentState(me, keyring.keys.map((k) => k.recipient));
    state.dataset.state = s.state;
    state.textContent = s.message;
    $("resend").hidden = !(s.state === "not_enrolled" || s.state === "rejected" || s.state === "elsewhere");
  } catch (e) {
    state.dataset.state = "unknown";
    state.textContent = "The gateway could not be asked whether your key is approved.";
    showAlert(e.message);
  }
}

async function enrol(recipient) {
  const r = await ask("recipient-enrol", { ageRecipient: recipient });
  return r.enrolment;
}

async function setUp(ev) {
  ev.preventDefault();
  if (!setupChecks.submit()) return;
  await busy($("setup-go"), async () => {
    if (!claims) throw new Error("Sign in first (on the options page) with your recipient sign-in; nothing was created.");
    if (await loadKeyring()) throw new Error("Receiving is already set up in this browser.");
    const p1 = $("setup-pass").value;
    // Before any key is made: can this sign-in receive at all (a recipient sign-in, gateway reachable)?
    say("Checking your sign-in with the gateway…");
    let me;
    try {
      me = await ask("recipient-me");
    } catch (e) {
      say("");
      throw new Error(`${e.message} No key was made.`, { cause: e });
    }
    say("Making your key and locking it with your passphrase…");
    // A post-quantum key where the organisation requires one (the gateway would refuse a classic key).
    const key = await generateKey({ postQuantum: Boolean(me?.post_quantum_required) });
    const armored = await lock([key], p1);
    // Stored before enrolling: a key the gateway knows about must never be lost because a page closed.
    await saveKeyring(armored, [key]);
    $("setup-pass").value = "";
    $("setup-pass2").value = "";
    setupChecks.done();
    say("Your key is made and kept in this browser. Asking your administrator to approve it…");
    try {
      await enrol(key.recipient);
      say("Your key was sent for approval. Now download a backup of it.");
    } catch (e) {
      say("");
      showAlert(`Your key is kept in this browser, but it could not be sent for approval: ${e.message} Choose "Send my key for approval" to try again.`);
    }
    await render();
    $("backup").focus();
  });
}

async function resend() {
  await busy($("resend"), async () => {
    const keyring = await loadKeyring();
    if (!keyring) return;
    await enrol(keyring.keys.at(-1).recipient);
    say("Your key was sent for approval.");
    await render();
  });
}

async function rotate(ev) {
  ev.preventDefault();
  if (!rotateChecks.submit()) return;
  await busy($("rotate-go"), async () => {
    if (!claims) throw new Error("Sign in first (on the options page); nothing was changed.");
    const keyring = await loadKeyring();
    const pass = $("rotate-pass").value;
    say("Unlocking your keys…");
    let keys;
    try {
      keys = await unlock(keyring.armored, pass);
    } catch (e) {
      say("");
      if (!(e instanceof KeyringError && e.code === "wrong_passphrase")) throw e;
      rotateChecks.refuse($("rotate-pass"), "That passphrase does not unlock your keys. Nothing was changed.");
      return;
    }
    say("Making a new key…");
    const me = await ask("recipient-me").catch(() => null);
    const key = await generateKey({ postQuantum: Boolean(me?.post_quantum_required) });
    const armored = await lock([...keys, key], pass);
    await saveKeyring(armored, [...keys, key]);
    $("rotate-pass").value = "";
    rotateChecks.done();
    try {
      await enrol(key.recipient);
      say("A new key was made and sent for approval. Your older keys are kept so older shares still open. Download a new backup.");
    } catch (e) {
      say("");
      showAlert(`The new key is kept in this browser, but it could not be sent for approval: ${e.message} Choose "Send my key for approval" to try again.`);
    }
    await render();
  });
}

async function backup() {
  await busy($("backup"), async () => {
    const keyring = await loadKeyring();
    if (!keyring) return;
    const name = backupFileName(claims?.sub ?? "recipient");
    const url = URL.createObjectURL(new Blob([keyring.armored], { type: "application/octet-stream" }));
    const a = el("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    say(`The backup ${name} is in your downloads. It opens only with your passphrase; keep it somewhere safe, away from this computer.`);
  });
}

const ARMOR_START = "-----BEGIN AGE ENCRYPTED FILE-----";

/** A refusal about the backup or one of the passphrases, beside the field it is about; anything else is thrown. */
function restoreRefused(e, passField, wrongPassphrase) {
  say("");
  if (!(e instanceof KeyringError)) throw e;
  if (e.code === "not_a_backup") restoreChecks.refuse($("restore-file"), e.message);
  else if (e.code === "wrong_passphrase") restoreChecks.refuse($(passField), wrongPassphrase);
  else if (e.code === "weak_passphrase") restoreChecks.refuse($(passField), e.message);
  else throw e;
}

async function restore(ev) {
  ev.preventDefault();
  if (!restoreChecks.submit()) return;
  await busy($("restore-go"), async () => {
    const file = $("restore-file").files[0];
    const bytes = new Uint8Array(await file.arrayBuffer());
    const pass = $("restore-pass").value;
    say("Opening the backup…");
    let restored;
    try {
      restored = await unlock(bytes, pass);
    } catch (e) {
      return restoreRefused(e, "restore-pass", "That passphrase does not open this backup. Nothing was changed.");
    }
    const existing = await loadKeyring();
    let keys;
    let armored;
    try {
      if (!existing) {
        keys = restored;
        const text = new TextDecoder().decode(bytes).trim();
        // An armored backup (what SafeShare writes) is kept as it is; anything else is locked again here.
        armored = text.startsWith(ARMOR_START) ? text + "\n" : await lock(keys, pass);
      } else {
        const mine = await unlock(existing.armored, $("restore-current").value);
        keys = [...restored.filter((k) => !mine.some((m) => m.recipient === k.recipient)), ...mine];
        armored = await lock(keys, $("restore-current").value);
      }
    } catch (e) {
      return restoreRefused(
        e,
        existing ? "restore-current" : "restore-pass",
        "This browser's passphrase is not right, so the backup was not added. Nothing was changed.",
      );
    }
    await saveKeyring(armored, keys);
    for (const id of ["restore-pass", "restore-current"]) $(id).value = "";
    $("restore-file").value = "";
    restoreChecks.done();
    say(`Restored ${restored.length === 1 ? "1 key" : `${restored.length} keys`} from the backup. Shares encrypted to ${restored.length === 1 ? "it" : "them"} can be opened in this browser.`);
    await render();
  });
}

async function load() {
  try {
    describeWho(await ask("status"));
  } catch (e) {
    showAlert(e.message);
  }
  await render();
  $("main").setAttribute("aria-busy", "false");
}

$("setup-form").addEventListener("submit", setUp);
$("rotate-form").addEventListener("submit", rotate);
$("restore-form").addEventListener("submit", restore);
$("refresh").addEventListener("click", () => busy($("refresh"), async () => {
  say("Asking the gateway…");
  await render();
  say("");
}));
$("resend").addEventListener("click", resend);
$("backup").addEventListener("click", backup);
onKeyringChanged(() => render({ check: false }).catch(() => {}));
load().catch((e) => showAlert(e.message));
