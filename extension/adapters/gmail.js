/**
 * Gmail (mail.google.com): the only file that knows Gmail's compose DOM.
 *
 * What it relies on (Gmail's own accessibility labels and long-standing attributes):
 * - the message editor: div[contenteditable="true"][aria-label="Message Body"] (role="textbox");
 * - the Send button: [role="button"] whose data-tooltip / aria-label starts with "Send";
 *   a compose window is the nearest ancestor of the editor that also holds its Send button;
 * - recipients: chips carrying the address in data-hovercard-id (or email), inside the fields labelled
 *   "To recipients" / "CC recipients" (case varies) — only chips and fields that are visibly shown
 *   (kit.isShown), never hidden inputs;
 * - subject: input[name="subjectbox"];
 * - attachments: chips linking to the attachment (a[href*="attid="]) with the file name in the chip
 *   (download attribute, or the .vI name element), removed with their "Remove attachment" button.
 */
(function () {
  const K = globalThis.SafeShareAdapterKit;
  const BODY = 'div[contenteditable="true"][aria-label="Message Body"]';
  const SEND = '[role="button"][data-tooltip^="Send"], [role="button"][aria-label^="Send"]';
  const ATTACHMENT_LINK = 'a[href*="attid="]';
  const REMOVE = '[role="button"][aria-label="Remove attachment"]';

  function composeRoot(body) {
    return K.ancestorWith(body, SEND);
  }

  /** The field's own row: the nearest ancestor holding address chips, never one that spans another field. */
  function chipRow(field, kind) {
    const own = new RegExp(`^${kind} recipients$`, "i");
    for (let node = field, i = 0; node && i < 5; node = node.parentElement, i++) {
      const labels = [...node.querySelectorAll("[aria-label]")].map((e) => e.getAttribute("aria-label"));
      if (labels.some((l) => /recipients$/i.test(l) && !own.test(l))) return null;
      if (node.querySelector("[data-hovercard-id], [email]")) return node;
    }
    return null;
  }

  function recipients(compose, kind) {
    const field = K.byLabel(compose, new RegExp(`^${kind} recipients$`, "i"));
    const found = [];
    const row = chipRow(field, kind);
    const add = (list) => list.forEach((a) => found.includes(a) || found.push(a));
    // Only what Gmail visibly shows: chips and the typed field (never a hidden input, nor an invisible chip).
    if (row) {
      for (const chip of row.querySelectorAll("[data-hovercard-id], [email]")) {
        if (K.isShown(chip)) add(K.emailsIn(chip.getAttribute("email") ?? chip.getAttribute("data-hovercard-id")));
      }
    }
    if (field && (field.tagName === "INPUT" || field.tagName === "TEXTAREA") && K.isShown(field)) add(K.emailsIn(field.value));
    return found;
  }

  /** @type {WebmailAdapter} (the contract in adapters/kit.js) */
  const adapter = {
    name: "gmail",
    /** @param {Document} doc */
    findComposes(doc) {
      const out = [];
      for (const body of doc.querySelectorAll(BODY)) {
        const root = composeRoot(body);
        if (root && !out.includes(root)) out.push(root);
      }
      return out;
    },
    /** Where the Share securely button goes: right after Send. */
    anchor(compose) {
      return compose.querySelector(SEND);
    },
    read(compose) {
      const body = compose.querySelector(BODY);
      const attachments = [];
      for (const link of compose.querySelectorAll(ATTACHMENT_LINK)) {
        const nameEl = link.querySelector(".vI");
        const name = (link.getAttribute("download") || (nameEl && nameEl.textContent) || link.textContent || "attachment").trim();
        attachments.push({ name, type: link.getAttribute("type") || "", url: link.getAttribute("href") });
      }
      return {
        webmail: "gmail",
        to: recipients(compose, "To"),
        cc: recipients(compose, "Cc"),
        subject: compose.querySelector('input[name="subjectbox"]')?.value ?? "",
        text: K.text(body),
        html: body ? body.innerHTML : "",
        attachments,
      };
    },
    replaceBody(compose, text) {
      K.setEditableText(compose.querySelector(BODY), text);
    },
    removeAttachments(compose) {
      const buttons = [...compose.querySelectorAll(REMOVE)];
      buttons.forEach(K.click);
      return buttons.length;
    },
  };
  globalThis.SafeShareAdapters.gmail = adapter;
})();
