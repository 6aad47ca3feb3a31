/**
 * The draft as SafeShare read it — the snapshot that the panel shows and that is shared — and how to tell that
 * the compose window no longer matches it. Pure; a classic script (the content script uses it too), defining
 * globalThis.SafeShareSnapshot; module code loads it with `import "./lib/snapshot.js"`.
 *
 * Why two reads: a script of the webmail page can listen for the click on "Share securely" before SafeShare
 * does (capture phase) and swap the body for that instant. The content script therefore reads the draft at the
 * click and again a moment later; when the reads differ the later one is taken and the panel says so, and the
 * panel always shows the whole snapshot (body as text, recipients, attachments with size and SHA-256), so that
 * what is shared is what the practitioner saw. While the panel is open the compose window is compared with the
 * snapshot again, and a difference is pointed out (refresh the snapshot, or share what is shown).
 */
(function () {
  /** What identifies a draft's content without attachment bytes (those are hashed by the worker). */
  function essence(draft) {
    const d = draft ?? {};
    return {
      to: [...(d.to ?? [])].map(String),
      cc: [...(d.cc ?? [])].map(String),
      subject: String(d.subject ?? ""),
      body: String(d.text ?? ""),
      html: String(d.html ?? ""),
      attachments: (d.attachments ?? []).map((a) => [String(a.name ?? ""), String(a.url ?? a.sha256 ?? "")]),
    };
  }

  const PARTS = [
    ["recipients", (e) => JSON.stringify([e.to, e.cc])],
    ["subject", (e) => e.subject],
    ["body", (e) => JSON.stringify([e.body, e.html])],
    ["attachments", (e) => JSON.stringify(e.attachments)],
  ];

  /** Which parts differ between two reads of a draft: a list of "recipients", "subject", "body", "attachments". */
  function differences(a, b) {
    const ea = essence(a);
    const eb = essence(b);
    return PARTS.filter(([, f]) => f(ea) !== f(eb)).map(([name]) => name);
  }

  /** "the body and the recipients" — for sentences. */
  function listParts(parts) {
    const words = parts.map((p) => `the ${p}`);
    if (words.length <= 1) return words.join("");
    return `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
  }

  /** A short, stable identity for a file from its SHA-256 (hex): the first 16 hex digits in groups of four. */
  function shortId(hex) {
    const h = String(hex ?? "").toLowerCase();
    if (!/^[0-9a-f]{16,}$/.test(h)) return "";
    return h.slice(0, 16).match(/.{4}/g).join(" ");
  }

  function formatSize(n) {
    const b = Number(n) || 0;
    if (b < 1024) return `${b} byte${b === 1 ? "" : "s"}`;
    if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB (${b.toLocaleString("en-GB")} bytes)`;
    return `${(b / 1048576).toFixed(1)} MB (${b.toLocaleString("en-GB")} bytes)`;
  }

  /** "3 recipients in 2 organisations: Hereford MASH, West Mercia Police" from the directory matches. */
  function recipientSummary(matched) {
    const orgs = [];
    for (const m of matched ?? []) if (m?.recipient?.org && !orgs.includes(m.recipient.org)) orgs.push(m.recipient.org);
    const n = (matched ?? []).length;
    const people = `${n} recipient${n === 1 ? "" : "s"}`;
    if (!n) return { count: 0, orgs, line: "No recipients" };
    return { count: n, orgs, line: `${people} in ${orgs.length} organisation${orgs.length === 1 ? "" : "s"}: ${orgs.join(", ")}` };
  }

  const api = { essence, differences, listParts, shortId, formatSize, recipientSummary };
  globalThis.SafeShareSnapshot = api;
})();
