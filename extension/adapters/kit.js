/**
 * Helpers the webmail adapters share; they know nothing about any particular webmail.
 * A classic script (content scripts cannot be modules): it defines globalThis.SafeShareAdapterKit.
 */

/**
 * The contract every webmail adapter meets (adapters/gmail.js, outlook.js, roundcube.js), written down once.
 * An adapter is the only code that knows its webmail's DOM; content/content.js drives it and knows none.
 * Each registers itself as `globalThis.SafeShareAdapters[name]`; the content script uses the one present.
 *
 * @typedef {object} DraftAttachment
 * @property {string} name       the file name the webmail shows
 * @property {string} type       its media type, or "" when the webmail does not say
 * @property {string|null} url   where the content script fetches its bytes (same origin), or null
 *
 * @typedef {object} Draft       what `read` returns: the draft as the user sees it, nothing hidden
 * @property {string} webmail    the adapter's name
 * @property {string[]} to       addresses visibly shown in To, lower-cased, each once (kit.emailsIn, kit.isShown)
 * @property {string[]} cc       the same for Cc
 * @property {string} subject
 * @property {string} text       the body as plain text
 * @property {string} html       the body as HTML ("" for a plain-text editor)
 * @property {DraftAttachment[]} attachments
 *
 * @typedef {object} WebmailAdapter
 * @property {string} name                                   e.g. "gmail"; the key in SafeShareAdapters
 * @property {(doc: Document) => Element[]} findComposes     every open compose window (each once)
 * @property {(compose: Element) => Element|null} anchor      where the Share securely button goes (after it)
 * @property {(compose: Element) => Draft} read               the draft, read afresh on every call
 * @property {(compose: Element, text: string) => void} replaceBody
 *           after a share: the body becomes `text` (the notification), in whichever editor is in use, with
 *           the events the webmail listens to fired so it saves the change
 * @property {(compose: Element) => number} removeAttachments
 *           after a share: remove every attachment; returns how many removal controls were used
 * @property {(compose: Element) => string} [mode]           optional: "html" or "plain", the editor in use
 */
(function () {
  const EMAIL = /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+/g;

  /** Every distinct email address in `text`, lower-cased, in order. */
  function emailsIn(text) {
    const out = [];
    for (const m of String(text ?? "").matchAll(EMAIL)) {
      const a = m[0].toLowerCase();
      if (!out.includes(a)) out.push(a);
    }
    return out;
  }

  /** Addresses carried by an element and its descendants: attributes first (chips), then visible text. */
  function emailsUnder(el, attrs = ["email", "data-hovercard-id", "title", "aria-label", "data-email"]) {
    if (!el) return [];
    const found = [];
    const add = (list) => list.forEach((a) => found.includes(a) || found.push(a));
    for (const node of [el, ...el.querySelectorAll("*")]) {
      for (const name of attrs) if (node.hasAttribute?.(name)) add(emailsIn(node.getAttribute(name)));
      if (node.tagName === "INPUT" || node.tagName === "TEXTAREA") add(emailsIn(node.value));
    }
    add(emailsIn(el.textContent));
    return found;
  }

  /**
   * Whether the webmail visibly shows `el`: not hidden (attribute, input type, aria-hidden), not display:none,
   * visibility:hidden/collapse or opacity 0 (its own or an ancestor's), not of zero size and not placed off
   * the page. Recipients are read only from what this accepts, so a script that slips an invisible address
   * into the compose window adds no one. Without a layout engine (the unit tests' DOM) only the markup checks
   * apply.
   */
  function isShown(el) {
    if (!el || el.nodeType !== 1) return false;
    if (el.tagName === "INPUT" && String(el.getAttribute("type") ?? "").toLowerCase() === "hidden") return false;
    const view = el.ownerDocument?.defaultView;
    const computed = typeof view?.getComputedStyle === "function";
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      if (n.hasAttribute("hidden") || n.getAttribute("aria-hidden") === "true") return false;
      if (!computed) continue;
      const st = view.getComputedStyle(n);
      if (st.display === "none" || st.visibility === "hidden" || st.visibility === "collapse") return false;
      if (Number(st.opacity) < 0.1) return false;
      if (st.contentVisibility === "hidden") return false;
    }
    if (!computed || typeof el.getBoundingClientRect !== "function") return true;
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) return false;
    const sx = view.scrollX ?? 0;
    const sy = view.scrollY ?? 0;
    if (r.right + sx <= 0 || r.bottom + sy <= 0) return false;
    const doc = el.ownerDocument.documentElement;
    if (r.left + sx >= Math.max(doc.scrollWidth, view.innerWidth) || r.top + sy >= Math.max(doc.scrollHeight, view.innerHeight)) return false;
    const clip = view.getComputedStyle(el).clipPath;
    if (clip && /inset\(\s*50%|circle\(\s*0/.test(clip)) return false;
    return true;
  }

  /** Addresses the webmail visibly shows under `el`: shown elements' attributes, shown fields' values, shown text. */
  function visibleEmailsUnder(el, attrs = ["email", "data-hovercard-id", "title", "aria-label", "data-email"]) {
    if (!isShown(el)) return [];
    const found = [];
    const add = (list) => list.forEach((a) => found.includes(a) || found.push(a));
    const doc = el.ownerDocument;
    for (const node of [el, ...el.querySelectorAll("*")]) {
      if (!isShown(node)) continue;
      for (const name of attrs) if (node.hasAttribute?.(name)) add(emailsIn(node.getAttribute(name)));
      if (node.tagName === "INPUT" || node.tagName === "TEXTAREA") add(emailsIn(node.value));
    }
    const SHOW_TEXT = doc.defaultView?.NodeFilter?.SHOW_TEXT ?? 4;
    if (typeof doc.createTreeWalker === "function") {
      const walker = doc.createTreeWalker(el, SHOW_TEXT);
      for (let t = walker.nextNode(); t; t = walker.nextNode()) if (isShown(t.parentElement)) add(emailsIn(t.nodeValue));
    } else {
      add(emailsIn(el.textContent));
    }
    return found;
  }

  /** The first element under `root` whose aria-label matches `re`. */
  function byLabel(root, re, selector = "[aria-label]") {
    for (const el of root.querySelectorAll(selector)) if (re.test(el.getAttribute("aria-label") ?? "")) return el;
    return null;
  }

  /** The nearest ancestor of `el` (or `el`) that contains an element matching `selector`. */
  function ancestorWith(el, selector) {
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) if (n.querySelector(selector)) return n;
    return null;
  }

  /** Visible text of an element: innerText in a browser (line breaks kept), textContent elsewhere. */
  function text(el) {
    if (!el) return "";
    return typeof el.innerText === "string" ? el.innerText : el.textContent ?? "";
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function fire(el, type) {
    const Ev = el.ownerDocument?.defaultView?.Event ?? globalThis.Event;
    if (typeof Ev === "function") el.dispatchEvent(new Ev(type, { bubbles: true }));
  }

  /**
   * Replace a rich-text editor's content with plain text, one <div> per line, as the editors do. Built with
   * DOM nodes, not markup, so it works under the webmail's Trusted Types policy and cannot inject anything.
   */
  function setEditableText(el, value) {
    const doc = el.ownerDocument;
    el.textContent = "";
    for (const line of String(value).split("\n")) {
      const div = doc.createElement("div");
      div.append(line ? line : doc.createElement("br"));
      el.append(div);
    }
    fire(el, "input");
  }

  /** Replace a form field's value and tell the page's scripts. */
  function setFieldValue(el, value) {
    el.value = value;
    fire(el, "input");
    fire(el, "change");
  }

  function click(el) {
    if (typeof el.click === "function") el.click();
  }

  globalThis.SafeShareAdapterKit = { emailsIn, emailsUnder, isShown, visibleEmailsUnder, byLabel, ancestorWith, text, setEditableText, setFieldValue, click, escapeHtml };
  globalThis.SafeShareAdapters = globalThis.SafeShareAdapters ?? {};
})();
