/**
 * Outlook on the web (outlook.office.com, outlook.office365.com, outlook.live.com): the only file that knows
 * OWA's compose DOM.
 *
 * What it relies on (OWA's accessibility labels):
 * - the message editor: div[contenteditable="true"][role="textbox"] whose aria-label starts "Message body";
 * - the Send button: button[aria-label="Send"] (or title starting "Send"); a compose form is the nearest
 *   ancestor of the editor that also holds its Send button;
 * - recipients: the wells labelled "To" and "Cc" (role="textbox"); each recipient pill carries the address
 *   in its title / aria-label or text; only pills and text visibly shown count (kit.visibleEmailsUnder);
 * - subject: input[aria-label="Add a subject"] (or "Subject");
 * - attachments: the list labelled "Attachments"; each card (role="option" or "listitem") has the file name in
 *   its title, a download link, and a button whose aria-label starts "Remove".
 */
(function () {
  const K = globalThis.SafeShareAdapterKit;
  const BODY = 'div[contenteditable="true"][role="textbox"][aria-label^="Message body"]';
  const SEND = 'button[aria-label="Send"], button[title^="Send"]';

  function well(compose, re) {
    return K.byLabel(compose, re, '[role="textbox"][aria-label], input[aria-label]');
  }

  function cards(compose) {
    const list = K.byLabel(compose, /^attachments$/i);
    return list ? [...list.querySelectorAll('[role="option"], [role="listitem"]')] : [];
  }

  /** @type {WebmailAdapter} (the contract in adapters/kit.js) */
  const adapter = {
    name: "outlook",
    findComposes(doc) {
      const out = [];
      for (const body of doc.querySelectorAll(BODY)) {
        const root = K.ancestorWith(body, SEND);
        if (root && !out.includes(root)) out.push(root);
      }
      return out;
    },
    anchor(compose) {
      return compose.querySelector(SEND);
    },
    read(compose) {
      const body = compose.querySelector(BODY);
      const attachments = cards(compose).map((card) => {
        const link = card.querySelector("a[href]");
        const name = (card.getAttribute("title") || link?.getAttribute("download") || card.textContent || "attachment").trim();
        return { name, type: card.getAttribute("data-content-type") || "", url: link?.getAttribute("href") ?? null };
      });
      const subject = compose.querySelector('input[aria-label="Add a subject"], input[aria-label="Subject"], input[placeholder="Add a subject"]');
      return {
        webmail: "outlook",
        to: K.visibleEmailsUnder(well(compose, /^to$/i)),
        cc: K.visibleEmailsUnder(well(compose, /^cc$/i)),
        subject: subject?.value ?? "",
        text: K.text(body),
        html: body ? body.innerHTML : "",
        attachments,
      };
    },
    replaceBody(compose, text) {
      K.setEditableText(compose.querySelector(BODY), text);
    },
    removeAttachments(compose) {
      const buttons = cards(compose)
        .map((card) => card.querySelector('button[aria-label^="Remove"]'))
        .filter(Boolean);
      buttons.forEach(K.click);
      return buttons.length;
    },
  };
  globalThis.SafeShareAdapters.outlook = adapter;
})();
