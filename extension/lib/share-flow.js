/**
 * The share flow's decisions that the service worker (background.js) makes and that need no browser API, kept
 * apart from the panel's page code so the worker imports nothing from panel/: which of the email's addresses
 * the gateway's directory can receive for, and the text left in the email once the content has gone through
 * the gateway.
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
