/**
 * Recipients without a SafeShare key (issue 10), the panel's pure part: which choice is needed, whether it is
 * complete, what the share request carries, a generated passphrase, and the result per recipient. No DOM, no
 * storage: unit-tested in Node.
 *
 * The gateway takes ONE `unenrolled` mode (and one passphrase) per share, for every address without a key, so
 * the panel asks once for all of them.
 */

export const VERIFY = "verify";
export const PASSPHRASE = "passphrase";
/** The gateway's rule (gateway/claims.py): at least 12 characters and a zxcvbn score of 3 or more. */
export const PASSPHRASE_MIN_LENGTH = 12;
export const PASSPHRASE_MAX_LENGTH = 1024;

export const CHOICES = [
  { value: VERIFY, label: "Send a link: they prove the address with a code and make a key" },
  { value: PASSPHRASE, label: "Protect with a passphrase I will tell them by phone" },
];

export const PASSPHRASE_RULE =
  `At least ${PASSPHRASE_MIN_LENGTH} characters and hard to guess: four or more unrelated words, or the one SafeShare suggests. ` +
  "The gateway refuses one that is easy to guess (common words, names, dates, keyboard patterns or repeats). " +
  "SafeShare never stores it and never puts it in your email: tell it to the recipient by phone, not by email.";

/** A problem the panel can see before asking the gateway (which also checks how easy it is to guess), or null. */
export function passphraseProblem(passphrase) {
  const p = String(passphrase ?? "");
  if (!p) return "Enter a passphrase, or use the suggested one.";
  if (p.length > PASSPHRASE_MAX_LENGTH) return `The passphrase is longer than ${PASSPHRASE_MAX_LENGTH} characters.`;
  if ([...p].length < PASSPHRASE_MIN_LENGTH) return `The passphrase is too short: use at least ${PASSPHRASE_MIN_LENGTH} characters.`;
  return null;
}

/** Whether Share may be enabled as far as the addresses without a key go. */
export function choiceComplete(unknown, choice) {
  if (!unknown.length) return true;
  if (!choice || (choice.mode !== VERIFY && choice.mode !== PASSPHRASE)) return false;
  return choice.mode === VERIFY || passphraseProblem(choice.passphrase) === null;
}

/**
 * The `share` part's recipients and choice: directory IDs for the people with a key, the addresses themselves
 * for the others with `unenrolled` (and the passphrase only with that mode).
 * @param {{recipient: {id: string}}[]} matched
 * @param {string[]} unknown
 * @param {{mode: string, passphrase?: string}|null} choice
 */
export function shareFields(matched, unknown, choice) {
  const recipients = [...matched.map((m) => m.recipient.id), ...unknown];
  if (!unknown.length) return { recipients };
  if (!choiceComplete(unknown, choice)) throw new Error("Choose how the recipients without a SafeShare key may open the share.");
  return choice.mode === PASSPHRASE ? { recipients, unenrolled: PASSPHRASE, passphrase: String(choice.passphrase) } : { recipients, unenrolled: VERIFY };
}

// Letters and digits that cannot be confused when read out on the phone (no 0/o, 1/l/i).
const ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";

/**
 * A strong passphrase to read out on the phone: 5 groups of 4 characters (about 99 bits).
 * @param {(a: Uint8Array) => Uint8Array} [random]  crypto.getRandomValues
 */
export function generatePassphrase(random = (a) => globalThis.crypto.getRandomValues(a)) {
  const out = [];
  while (out.length < 20) {
    for (const b of random(new Uint8Array(32))) {
      // Rejection sampling: no bias towards the first letters.
      if (b < 256 - (256 % ALPHABET.length) && out.length < 20) out.push(ALPHABET[b % ALPHABET.length]);
    }
  }
  return [0, 4, 8, 12, 16].map((i) => out.slice(i, i + 4).join("")).join("-");
}

/**
 * The result screen, one line per recipient: how they open it and, for an address without a key, the link.
 * @param {{recipients: object[], notice_url?: string}} result  the gateway's answer
 * @returns {{who: string, how: string, link: string|null, phone: boolean}[]}
 */
export function resultRows(result) {
  return (result.recipients ?? []).map((r) => {
    if (r.mode === "passphrase") {
      return {
        who: r.recipient,
        how: "Protected with your passphrase. Tell them the passphrase by phone, not by email.",
        link: r.link ?? result.notice_url ?? null,
        phone: true,
      };
    }
    if (r.mode === "held") {
      return {
        who: r.recipient,
        how: "Sent a link: they prove the address with a code sent by email and make a key.",
        link: r.link ?? result.notice_url ?? null,
        phone: false,
      };
    }
    return { who: `${r.name} (${r.org})`, how: "Their SafeShare key.", link: r.link ?? null, phone: false };
  });
}
