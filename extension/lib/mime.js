/**
 * MIME packaging of a webmail draft as one RFC 5322 message (pure: no DOM, no extension APIs).
 *
 * The result is `multipart/mixed`: the body (text/plain, or multipart/alternative with text/plain and
 * text/html) followed by every attachment with its original file name and media type, all base64-encoded,
 * so the bytes a recipient decrypts open in any mail client and every line is 7-bit ASCII.
 */
import { base64ToBytes, bytesToBase64 } from "./base64.js";

const CRLF = "\r\n";
const B64_LINE = 76;

/**
 * @typedef {object} Attachment
 * @property {string} name   original file name
 * @property {string} [type] media type (application/octet-stream when unknown)
 * @property {Uint8Array} data
 *
 * @typedef {object} Draft
 * @property {string[]} [to]
 * @property {string[]} [cc]
 * @property {string} [from]
 * @property {string} [subject]
 * @property {string} [text] plain-text body
 * @property {string} [html] HTML body (optional)
 * @property {Attachment[]} [attachments]
 */

/** MIME's base64 is the extension's one (lib/base64.js), under the names the MIME code uses. */
export const base64 = bytesToBase64;
export const unbase64 = base64ToBytes;

/** Base64 wrapped at 76 characters per line (RFC 2045 §6.8). @param {Uint8Array} bytes */
export function base64Lines(bytes) {
  const b = base64(bytes);
  const lines = [];
  for (let i = 0; i < b.length; i += B64_LINE) lines.push(b.slice(i, i + B64_LINE));
  return lines.join(CRLF);
}

const utf8 = (/** @type {string} */ s) => new TextEncoder().encode(s);
const isAscii = (/** @type {string} */ s) => /^[\x20-\x7e]*$/.test(s);

/** An unstructured header value: ASCII as is, anything else as RFC 2047 encoded-words. @param {string} value */
export function encodeHeaderValue(value) {
  const clean = String(value).replace(/[\r\n]+/g, " ");
  if (isAscii(clean)) return clean;
  // Encoded-words of at most 75 characters: split on code points so no UTF-8 sequence is cut.
  const words = [];
  let chunk = "";
  for (const ch of clean) {
    if (utf8(chunk + ch).length > 45) {
      words.push(chunk);
      chunk = "";
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${base64(utf8(w))}?=`).join(CRLF + " ");
}

/** A quoted MIME parameter, with an RFC 2231 extended form for non-ASCII names. */
function param(name, value) {
  const v = String(value).replace(/[\r\n]+/g, " ");
  if (isAscii(v)) return `${name}="${v.replace(/["\\]/g, "\\$&")}"`;
  const pct = Array.from(utf8(v), (b) =>
    /[A-Za-z0-9!#$&+.^_`|~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : "%" + b.toString(16).toUpperCase().padStart(2, "0"),
  ).join("");
  return `${name}*=UTF-8''${pct}`;
}

/** An address list header value (addresses only; display names are not needed for delivery). */
function addresses(list) {
  return list.map((a) => String(a).replace(/[\r\n<>,]+/g, "")).filter(Boolean).join(", ");
}

/** A boundary that cannot occur in base64 content or headers we write. @param {() => string} [rand] */
export function newBoundary(rand) {
  const r = rand ? rand() : Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `=_safeshare_${r}`;
}

function textPart(subtype, content) {
  return [
    `Content-Type: text/${subtype}; charset=UTF-8`,
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(utf8(content)),
  ].join(CRLF);
}

function bodyPart(draft, boundary) {
  const text = draft.text ?? "";
  if (!draft.html) return textPart("plain", text);
  const alt = "alt" + boundary; // not prefixed by the outer boundary, so no parser can confuse them
  return [
    `Content-Type: multipart/alternative; boundary="${alt}"`,
    "",
    `--${alt}`,
    textPart("plain", text),
    `--${alt}`,
    textPart("html", draft.html),
    `--${alt}--`,
  ].join(CRLF);
}

/** A safe media type: the attachment's own when well-formed, application/octet-stream otherwise. */
export function mediaType(type) {
  const t = String(type || "").trim().toLowerCase();
  return /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(t) ? t : "application/octet-stream";
}

function attachmentPart(att) {
  const name = att.name || "attachment";
  return [
    `Content-Type: ${mediaType(att.type)};${CRLF} ${param("name", name)}`,
    `Content-Disposition: attachment;${CRLF} ${param("filename", name)}`,
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(att.data),
  ].join(CRLF);
}

/**
 * The draft as an RFC 5322 multipart/mixed message.
 * @param {Draft} draft
 * @param {{date?: Date, boundary?: string}} [opts]
 * @returns {string} ASCII text with CRLF line ends
 */
export function buildMime(draft, opts = {}) {
  const boundary = opts.boundary ?? newBoundary();
  const date = opts.date ?? new Date();
  const headers = ["MIME-Version: 1.0", `Date: ${date.toUTCString().replace("GMT", "+0000")}`];
  if (draft.from) headers.push(`From: ${addresses([draft.from])}`);
  if (draft.to?.length) headers.push(`To: ${addresses(draft.to)}`);
  if (draft.cc?.length) headers.push(`Cc: ${addresses(draft.cc)}`);
  headers.push(`Subject: ${encodeHeaderValue(draft.subject ?? "")}`);
  headers.push(`Content-Type: multipart/mixed; boundary="${boundary}"`);
  const parts = [bodyPart(draft, boundary), ...(draft.attachments ?? []).map(attachmentPart)];
  return [
    ...headers,
    "",
    "This is a multi-part message in MIME format.",
    ...parts.flatMap((p) => [`--${boundary}`, p]),
    `--${boundary}--`,
    "",
  ].join(CRLF);
}
