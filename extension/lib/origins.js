/** Web origins typed on the options page (pure). */

/** The origin of an http(s) address, or null. */
export function originOf(text) {
  try {
    const u = new URL(text.trim());
    return u.protocol === "https:" || u.protocol === "http:" ? u.origin : null;
  } catch {
    return null;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** The gateway receives the token: https only, except a gateway on this computer (loopback). */
export function gatewayOriginOf(text) {
  const origin = originOf(text);
  if (origin === null) return null;
  const u = new URL(origin);
  return u.protocol === "https:" || LOOPBACK.has(u.hostname) ? origin : null;
}

/**
 * The host-permission match pattern for an origin. Without the port: a pattern with a port is not covered by
 * the manifest's "http://127.0.0.1/*" in Firefox (so asking for it would prompt), and Chromium and Firefox
 * both match a pattern without a port on every port of that host.
 */
export function hostPermissionPattern(origin) {
  const u = new URL(origin);
  return `${u.protocol}//${u.hostname}/*`;
}
