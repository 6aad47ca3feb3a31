/**
 * Opening a shared e-mail in the browser: parse the decrypted message/rfc822 (postal-mime) and turn its
 * HTML body into a document that is safe to show in `<iframe sandbox srcdoc=…>` (DOMPurify, plus removal of
 * every reference that would make the browser fetch something).
 *
 * Why this much care: a share comes from another organisation's practitioner, who may have forwarded mail
 * from anyone, and opening it must not run code nor tell a third party that (or where, or when) it was
 * read. Three layers guard that: the sanitiser here, the Content-Security-Policy written first into the
 * document, and the sandbox (no scripts, no same origin) that the page showing it must use.
 *
 * safeHtmlDocument needs a DOM (an extension page, not the service worker); parseMessage and textDocument
 * work anywhere.
 */
import PostalMime from "../vendor/postal-mime.js";
import createDOMPurify from "../vendor/purify.js";
import { bytesToBase64 } from "./base64.js";

/** The policy every generated document starts with: nothing may load except inline images and styles. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'";

/**
 * @typedef {object} MessageAttachment
 * @property {string} filename    decoded file name (RFC 2231 / encoded-words), never empty
 * @property {string} mimeType
 * @property {Uint8Array} content the exact bytes
 *
 * @typedef {object} ParsedMessage
 * @property {string} subject   "" when there is none
 * @property {string} from      "Name <address>" or the address; "" when there is none
 * @property {string[]} to
 * @property {string[]} cc
 * @property {string|null} date ISO-8601 when the Date header parses, else its raw text; null when absent
 * @property {string|null} text plain-text body
 * @property {string|null} html HTML body (unsafe: show it only through safeHtmlDocument); images it
 *   references by Content-ID are inlined as data: URLs, because a sandboxed document cannot reach them
 * @property {MessageAttachment[]} attachments every attachment, including inline images
 */

/** One address as a person reads it. */
function mailbox(m) {
  if (!m) return "";
  if (m.group) return m.group.map(mailbox).filter(Boolean).join(", ");
  return m.name ? `${m.name} <${m.address}>` : String(m.address ?? "");
}

function addressList(list) {
  return (list ?? []).flatMap((a) => (a.group ? a.group : [a])).map(mailbox).filter(Boolean);
}

/** A file name that is safe to offer for download: no folders, no control characters. */
function cleanFilename(name, index, mimeType) {
  const cleaned = String(name ?? "")
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
    .replace(/[\u0000-\u001f\u007f]/g, "")
    .replace(/[\\/]/g, "_")
    .trim();
  if (cleaned && cleaned !== "." && cleaned !== "..") return cleaned;
  const ext = { "text/plain": ".txt", "text/html": ".html", "application/pdf": ".pdf", "message/rfc822": ".eml" }[mimeType];
  return `attachment-${index + 1}${ext ?? (mimeType?.startsWith("image/") ? "." + mimeType.slice(6).replace(/\W.*$/, "") : "")}`;
}

function toBytes(content) {
  if (content instanceof Uint8Array) return content;
  if (content instanceof ArrayBuffer) return new Uint8Array(content);
  if (typeof content === "string") return new TextEncoder().encode(content);
  return new Uint8Array(content?.buffer ?? 0, content?.byteOffset ?? 0, content?.byteLength ?? 0);
}

const base64 = bytesToBase64;

/** `cid:` references in the HTML replaced by data: URLs of the inline images they name. */
function inlineContentIds(html, attachments) {
  let out = html;
  for (const a of attachments) {
    const id = a.contentId?.replace(/^<|>$/g, "").trim();
    if (!id || !a.mimeType.startsWith("image/")) continue;
    const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const url = `data:${a.mimeType};base64,${base64(toBytes(a.content))}`;
    out = out.replace(new RegExp(`cid:${escaped}(?=["'\\s)>]|$)`, "gi"), url);
  }
  return out;
}

/**
 * The parts of a decrypted message a recipient needs: headers, bodies and attachments (exact bytes).
 * @param {Uint8Array|ArrayBuffer|string} bytes a message/rfc822
 * @returns {Promise<ParsedMessage>}
 */
export async function parseMessage(bytes) {
  const email = await PostalMime.parse(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes);
  const attachments = email.attachments ?? [];
  return {
    subject: email.subject ?? "",
    from: mailbox(email.from),
    to: addressList(email.to),
    cc: addressList(email.cc),
    date: email.date ?? null,
    text: email.text ?? null,
    html: email.html ? inlineContentIds(email.html, attachments) : null,
    attachments: attachments.map((a, i) => ({
      filename: cleanFilename(a.filename, i, a.mimeType),
      mimeType: a.mimeType,
      content: toBytes(a.content),
    })),
  };
}

// ---- HTML -------------------------------------------------------------------------------------------------

/** Elements that could run code, submit data, embed other documents, change the base URL or refresh. */
const FORBID_TAGS = [
  "script", "noscript", "template", "iframe", "frame", "frameset", "object", "embed", "applet", "portal",
  "form", "input", "button", "select", "option", "optgroup", "textarea", "datalist", "output", "keygen",
  "meta", "base", "link", "audio", "video", "source", "track", "svg", "math", "dialog", "slot",
];
/** Attributes that fetch, submit or ping (URL attributes that are kept are checked one by one below). */
const FORBID_ATTR = [
  "action", "formaction", "ping", "srcset", "imagesrcset", "background", "poster", "lowsrc", "dynsrc",
  "longdesc", "manifest", "codebase", "archive", "profile", "autofocus", "http-equiv",
];

/** CSS functions that can fetch something other than through url(). */
const FETCHING_FUNCTION = /(?:^|[^a-z0-9_-])(?:-webkit-|-moz-)?(?:image-set|image|cross-fade|element|src|paint)\s*\(/i;

/** Whether a CSS value (as the browser serialises it) only refers to data: URLs, if to anything. */
function cssValueIsLocal(value) {
  const v = String(value);
  if (FETCHING_FUNCTION.test(v)) return false;
  const re = /url\(\s*(["']?)\s*([^"')\s]*)/gi;
  let m;
  while ((m = re.exec(v))) {
    if (!/^data:/i.test(m[2])) return false;
  }
  // A url( we could not read (e.g. split by an escape) counts as remote.
  return (v.match(/url\(/gi) ?? []).length === (v.match(/url\(\s*["']?\s*data:/gi) ?? []).length;
}

/** Removes every declaration that refers to anything but data: URLs. */
function cleanDeclarations(style) {
  for (let i = style.length - 1; i >= 0; i--) {
    const name = style.item(i);
    if (!cssValueIsLocal(style.getPropertyValue(name))) style.removeProperty(name);
  }
}

/** `<` can only end a style element early or hide markup; in CSS it is only ever needed inside strings. */
const escapeForStyleElement = (css) => css.replace(/</g, "\\3c ");

/** The rules that cannot fetch and do not import; each style's declarations cleaned. Recursive for groups. */
function cleanRules(ruleList, deleteRule) {
  for (let i = ruleList.length - 1; i >= 0; i--) {
    const rule = ruleList[i];
    const type = rule.constructor?.name ?? "";
    const keep = [
      "CSSStyleRule", "CSSMediaRule", "CSSSupportsRule", "CSSFontFaceRule", "CSSKeyframesRule", "CSSKeyframeRule",
      "CSSPageRule", "CSSLayerBlockRule", "CSSLayerStatementRule", "CSSContainerRule", "CSSNestedDeclarations",
    ].includes(type);
    if (!keep) {
      deleteRule(i);
      continue;
    }
    if (rule.style) cleanDeclarations(rule.style);
    // Grouping and nested style rules delete by index; a keyframes rule only ever holds keyframes (kept).
    if (rule.cssRules && type !== "CSSKeyframesRule") cleanRules(rule.cssRules, (j) => rule.deleteRule(j));
  }
}

/**
 * A style sheet's text with everything that could fetch removed (via the browser's own CSS parser, so
 * escapes and comments cannot hide a url()); "" where no CSS parser is available.
 */
function cleanStylesheet(css, win) {
  const Sheet = win.CSSStyleSheet;
  let sheet;
  try {
    sheet = new Sheet();
    // replaceSync ignores @import (not allowed in constructed sheets), so imports never load.
    sheet.replaceSync(String(css));
  } catch {
    return "";
  }
  cleanRules(sheet.cssRules, (i) => sheet.deleteRule(i));
  return escapeForStyleElement(Array.from(sheet.cssRules, (r) => r.cssText).join("\n"));
}

const isRemoteLink = (url) => /^(?:https?:|mailto:)/i.test(url);
const isInlineImage = (url) => /^(?:data:image\/|cid:)/i.test(url);

let purifier = null;

/** A DOMPurify instance of our own (bound to this page's window) with the hooks that remove fetching. */
function getPurifier() {
  if (purifier) return purifier;
  const win = globalThis.window;
  if (!win?.document) {
    throw new Error("Showing an HTML message needs a page with a DOM (an extension page), not a worker.");
  }
  const p = createDOMPurify(win);
  if (!p.isSupported) throw new Error("This browser cannot sanitise HTML safely, so the HTML message is not shown.");
  p.addHook("uponSanitizeElement", (node, data) => {
    if (data.tagName === "style") node.textContent = cleanStylesheet(node.textContent ?? "", win);
  });
  p.addHook("afterSanitizeAttributes", (node) => {
    if (node.hasAttribute?.("style")) {
      cleanDeclarations(node.style);
      const css = node.style.cssText;
      if (css.trim()) node.setAttribute("style", css);
      else node.removeAttribute("style");
    }
    const tag = node.nodeName?.toLowerCase();
    if (node.hasAttribute?.("src")) {
      const src = node.getAttribute("src").trim();
      if (tag !== "img" || !isInlineImage(src)) node.removeAttribute("src");
    }
    if (node.hasAttribute?.("href")) {
      const href = node.getAttribute("href").trim();
      if ((tag === "a" || tag === "area") && isRemoteLink(href)) {
        // A link stays readable and can be copied; following it opens a new browsing context (if the
        // viewer allows pop-ups at all) that gets neither the referrer nor a handle back to this document.
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
        if (!node.hasAttribute("title")) node.setAttribute("title", href);
      } else {
        node.removeAttribute("href");
      }
    }
    if (node.hasAttribute?.("target") && !node.hasAttribute("href")) node.removeAttribute("target");
  });
  purifier = p;
  return p;
}

/** The document every view starts from: charset, the CSP (first, before anything that could load) and
 * no referrer, then the viewer's own minimal styles. */
function shell(win, baseCss) {
  const doc = win.document.implementation.createHTMLDocument("");
  const head = doc.head;
  head.replaceChildren();
  const meta = (attrs) => {
    const m = doc.createElement("meta");
    for (const [k, v] of Object.entries(attrs)) m.setAttribute(k, v);
    head.append(m);
  };
  meta({ "http-equiv": "Content-Security-Policy", content: CONTENT_SECURITY_POLICY });
  meta({ charset: "utf-8" });
  meta({ name: "referrer", content: "no-referrer" });
  const style = doc.createElement("style");
  style.textContent = baseCss;
  head.append(style);
  return doc;
}

const BASE_CSS = "body{margin:8px;overflow-wrap:anywhere}img{max-width:100%;height:auto}";

/**
 * A complete HTML document for `<iframe sandbox srcdoc=…>` (no allow-scripts, no allow-same-origin):
 * the message's HTML sanitised, with no way left to run code or fetch anything.
 * @param {string} html
 * @returns {string}
 */
export function safeHtmlDocument(html) {
  const p = getPurifier();
  const win = globalThis.window;
  const root = p.sanitize(String(html ?? ""), {
    WHOLE_DOCUMENT: true,
    RETURN_DOM: true,
    USE_PROFILES: { html: true },
    FORBID_TAGS,
    FORBID_ATTR,
    ALLOW_UNKNOWN_PROTOCOLS: false,
  });
  const doc = shell(win, BASE_CSS);
  const srcHead = root.querySelector?.("head");
  const srcBody = root.querySelector?.("body") ?? root;
  // The message's own style sheets (already cleaned by the hook) follow the viewer's.
  for (const s of srcHead ? Array.from(srcHead.querySelectorAll("style")) : []) {
    const style = doc.createElement("style");
    style.textContent = s.textContent;
    doc.head.append(style);
  }
  for (const attr of Array.from(srcBody.attributes ?? [])) {
    if (!/^on/i.test(attr.name)) doc.body.setAttribute(attr.name, attr.value);
  }
  doc.body.replaceChildren(...Array.from(srcBody.childNodes, (n) => doc.importNode(n, true)));
  return "<!DOCTYPE html>\n" + doc.documentElement.outerHTML;
}

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

/**
 * The plain-text body as a complete document (escaped into a <pre>) with the same policy, for the same
 * sandboxed iframe. Works without a DOM.
 * @param {string} text
 * @returns {string}
 */
export function textDocument(text) {
  return [
    "<!DOCTYPE html>",
    "<html><head>",
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(CONTENT_SECURITY_POLICY)}">`,
    '<meta charset="utf-8"><meta name="referrer" content="no-referrer">',
    "<style>body{margin:8px}pre{white-space:pre-wrap;overflow-wrap:anywhere;font:inherit;margin:0}</style>",
    `</head><body><pre>${escapeHtml(text ?? "")}</pre></body></html>`,
  ].join("");
}
