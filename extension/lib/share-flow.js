/**
 * The share flow's decisions that the service worker (background.js) makes and that need no browser API, kept
 * apart from the panel's page code so the worker imports nothing from panel/: which of the email's addresses
 * the gateway's directory can receive for, the text and neutral subject left in the email once the content has
 * gone through the gateway, and whether a file added in the panel is the attachment the webmail would not hand over.
 */

/**
 * The email's To/Cc addresses matched against the gateway's directory (exact, case-insensitive email match);
 * `unknown`: the addresses with no SafeShare key yet (not in the directory, or in it without a key).
 * @param {string[]} addresses
 * @param {{id: string, email: string, name: string, org: string}[]} directory
 */
export function matchRecipients(addresses, directory) {
  const seen = new Set();
  const matched = [];
  const unknown = [];
  for (const raw of addresses) {
    const addr = String(raw).trim().toLowerCase();
    if (!addr || seen.has(addr)) continue;
    seen.add(addr);
    // A person in the directory without an active key is, for the gateway, an address without a key (issue 10).
    const hit = directory.find((r) => String(r.email).toLowerCase() === addr && (r.kind === "team" || r.age_recipient !== null));
    if (hit) matched.push({ address: addr, recipient: hit });
    else unknown.push(addr);
  }
  return { matched, unknown };
}

/**
 * The text left in the email once the content has gone through the gateway: no sensitive content, only
 * where and how to retrieve it. The link is the gateway's landing page for a share (`/s/{id}`), which
 * reveals nothing about the share; `noticeUrl` overrides it when the gateway gives its own public link.
 */
export function notificationText({ shareId, ledgerIndex, expiresAt, gatewayUrl, noticeUrl, sender }) {
  const when = expiresAt ? new Date(expiresAt).toUTCString() : "its expiry";
  return [
    "Information has been shared with you securely through SafeShare.",
    "",
    `Reference: ${shareId} (ledger entry ${ledgerIndex})`,
    `Retrieve it at ${noticeUrl ?? `${gatewayUrl.replace(/\/+$/, "")}/s/${shareId}`} before ${when}.`,
    "",
    "This email itself contains no sensitive information." + (sender ? ` Sent by ${sender}.` : ""),
  ].join("\n");
}

/**
 * The subject the notification email goes out with. The draft's own subject often names the case ("Referral:
 * CASE-… — injury disclosed at school") and would travel in the clear with the notification, so after a share
 * it is replaced by this, which says only that something was shared and how to find it.
 */
export function neutralSubject(shareId) {
  return `Information shared with you securely (SafeShare ${shareId})`;
}

// -- Attachments the webmail would not hand over (Outlook on the web fetches them through its own service) ----

/**
 * The size a webmail's attachment card shows ("3 KB", "1.2 MB", "512 bytes"), as the range of byte counts it
 * can stand for: the card rounds, to its shown precision, in units of 1,000 or 1,024. null when there is none.
 */
export function cardSizeRange(text) {
  const m = /(\d+(?:[.,]\d+)?)\s*(bytes?|B|KB|kB|MB|GB)\b/i.exec(String(text ?? ""));
  if (!m) return null;
  const value = Number(m[1].replace(",", "."));
  const decimals = (m[1].split(/[.,]/)[1] ?? "").length;
  const unit = m[2].toLowerCase();
  const power = unit.startsWith("b") ? 0 : { kb: 1, mb: 2, gb: 3 }[unit];
  let min = Infinity;
  let max = 0;
  for (const base of [1000, 1024]) {
    const u = base ** power;
    const step = u * 10 ** -decimals;
    min = Math.min(min, Math.max(0, value * u - step));
    max = Math.max(max, value * u + step);
  }
  return { min: Math.floor(min), max: Math.ceil(max) };
}

/**
 * Whether a file the practitioner added in the panel is the attachment the email's card shows: the same name
 * and a size the card's rounded size allows. null when it is; otherwise what to tell the practitioner.
 * @param {{name: string, size: number}} file
 * @param {{name: string, sizeText?: string}} card
 */
export function fileMatchesCard(file, card) {
  const S = (n) => `${Number(n).toLocaleString("en-GB")} bytes`;
  if (String(file.name) !== String(card.name)) {
    return `That file is called “${file.name}”, but the attachment in your email is “${card.name}”. Choose the same file.`;
  }
  const range = cardSizeRange(card.sizeText);
  if (range && (file.size < range.min || file.size > range.max)) {
    return `“${file.name}” on your computer is ${S(file.size)}, but the attachment in your email is ${card.sizeText}: it is a different version. Choose the same file.`;
  }
  return null;
}
