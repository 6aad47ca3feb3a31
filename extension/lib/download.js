/**
 * Files a recipient receives are offered as downloads only, never rendered: a shared HTML or SVG file opened in
 * a tab would run (or load remote content, redirect, draw a fake form) on a page of *our* origin — the
 * extension's `chrome-extension://` / `moz-extension://` address, or the gateway's recipient web page.
 *
 * The rule, for every page that hands a received file to the user (the extension's inbox; the gateway's
 * recipient page should load this same module):
 * - the bytes go into a Blob of type `application/octet-stream`, whatever type the sender gave them, so that
 *   opening the link in a tab (middle click, "Open link in new tab") downloads it instead of rendering it;
 * - the link carries `download` with the original (cleaned) file name, so a click saves it under that name.
 * Pure apart from Blob/URL; `downloadName` is pure.
 */
export const DOWNLOAD_TYPE = "application/octet-stream";

/** A file name safe to save: no folders, no control characters, never empty, "." or "..". */
export function downloadName(name, fallback = "attachment") {
  const cleaned = String(name ?? "")
    // eslint-disable-next-line no-control-regex -- removing control characters is the point
    .replace(/[\u0000-\u001f\u007f]/g, "")
    .replace(/[\\/]/g, "_")
    .trim();
  return cleaned && cleaned !== "." && cleaned !== ".." ? cleaned : fallback;
}

/** A blob: URL for `bytes` that a browser saves and never renders. The caller revokes it. */
export function downloadUrl(bytes) {
  return URL.createObjectURL(new Blob([bytes], { type: DOWNLOAD_TYPE }));
}

/** An <a> that saves `bytes` as `name`: {link, url}; revoke `url` when the link goes. */
export function downloadLink(doc, name, bytes, text = name) {
  const url = downloadUrl(bytes);
  const link = doc.createElement("a");
  link.href = url;
  link.download = downloadName(name);
  link.type = DOWNLOAD_TYPE;
  link.rel = "noopener";
  link.textContent = text;
  return { link, url };
}
