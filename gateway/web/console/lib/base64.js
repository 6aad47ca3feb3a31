/**
 * Base64 (RFC 4648 §4) and base64url without padding (§5) for the whole extension: one encoder and one decoder
 * of each, so a fix (the slicing below, say) is made once. Pure; the /open/ page runs a byte-identical copy.
 */

/** Latin-1 string of bytes, in slices: a spread or `apply` of a large array would overflow the call stack. */
function binaryString(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 0x8000)));
  return s;
}

/** @param {Uint8Array} bytes @returns {string} */
export function bytesToBase64(bytes) {
  return btoa(binaryString(bytes));
}

/** @param {string} b64 @returns {Uint8Array} (throws on characters outside the alphabet, as `atob` does) */
export function base64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** base64url without padding, as PKCE and JWTs use it. @param {Uint8Array} bytes @returns {string} */
export function bytesToBase64url(bytes) {
  return bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** @param {string} s  base64url, padded or not @returns {Uint8Array} */
export function base64urlToBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return base64ToBytes(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
}
