/**
 * Options: gateway address, sign-in (a token pasted for the embedded issuer, or "Sign in with your
 * organisation" for each external issuer the gateway advertises), Roundcube origins, default expiry.
 */
import { issuerLabel } from "../lib/oidc.js";
import { gatewayOriginOf, hostPermissionPattern, originOf } from "../lib/origins.js";
import { $, api, asker, showAlert } from "../lib/page.js";

const ask = asker({ advice: "Reload this page and try again." });

/** "https://host[:port]" from what was typed, or null. */
function describeSignIn(status) {
  if (!status.signedIn) {
    $("signed-in").textContent = "Not signed in.";
    return;
  }
  const c = status.claims ?? {};
  const until = c.exp ? new Date(c.exp * 1000).toUTCString() : "unknown";
  const who = c.preferred_username ?? c.email ?? c.sub;
  const roles = Array.isArray(c.roles) ? c.roles : [];
  $("signed-in").textContent = `Signed in as ${who} (${roles.join(", ")}${typeof c.org === "string" && c.org ? ", " + c.org : ""}); the sign-in expires ${until}.`;
}

/** One "Sign in with your organisation" button per external issuer the gateway offers (none if it cannot be reached). */
async function loadSignInChoices() {
  const box = $("oidc-buttons");
  box.replaceChildren();
  $("oidc").hidden = true;
  let config;
  try {
    config = await ask("auth-config");
  } catch {
    return; // the gateway is unreachable or not set: pasting a token still works
  }
  if (!config.issuers.length) return;
  const hosts = config.issuers.map((o) => issuerLabel(o.issuer));
  config.issuers.forEach((o, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "govuk-button oidc-sign-in";
    b.textContent = config.issuers.length === 1 ? "Sign in with your organisation" : `Sign in with your organisation (${hosts[i]})`;
    b.setAttribute("aria-describedby", "oidc-hint");
    b.addEventListener("click", () => oidcSignIn(o));
    box.append(b);
  });
  if (config.redirectUri) {
    $("redirect-hint").textContent = `For administrators: the sign-in return address to register for this browser is ${config.redirectUri}`;
    $("redirect-hint").hidden = false;
  }
  $("oidc").hidden = false;
}

async function oidcSignIn(issuer) {
  showAlert("");
  const buttons = [...document.querySelectorAll(".oidc-sign-in")];
  buttons.forEach((b) => (b.disabled = true));
  $("oidc-progress").textContent = "Finish signing in in the window that opened…";
  // The service worker waits for the sign-in window; pings keep the browser from stopping it meanwhile.
  const keepalive = setInterval(() => ask("keepalive").catch(() => {}), 20000);
  try {
    // The token endpoint is called from the service worker: it needs a host permission, asked in this click
    // before anything is awaited (Firefox refuses permissions.request otherwise; granted ones need no prompt).
    const pattern = hostPermissionPattern(issuer.tokenOrigin);
    if (!(await api.permissions.request({ origins: [pattern] }))) {
      throw new Error(`SafeShare needs your permission to reach your organisation's sign-in service (${issuer.tokenOrigin}). You are not signed in.`);
    }
    await ask("oidc-sign-in", { issuer: issuer.issuer });
    $("oidc-progress").textContent = "";
    describeSignIn(await ask("status"));
  } catch (e) {
    $("oidc-progress").textContent = "";
    showAlert(e.message);
  } finally {
    clearInterval(keepalive);
    buttons.forEach((b) => (b.disabled = false));
  }
}

async function load() {
  const status = await ask("status");
  $("gateway-url").value = status.settings.gatewayUrl;
  $("expiry-days").value = String(status.settings.defaultExpiryDays);
  $("origins").value = status.settings.webmailOrigins.join("\n");
  describeSignIn(status);
  await loadSignInChoices();
}

async function save(ev) {
  ev.preventDefault();
  showAlert("");
  $("saved").textContent = "";
  const gatewayUrl = gatewayOriginOf($("gateway-url").value);
  if (!gatewayUrl) return showAlert("The gateway address must start with https:// (or http:// for a gateway on this computer).");
  const days = Number($("expiry-days").value);
  if (!Number.isInteger(days) || days < 1 || days > 365) return showAlert("The default number of days must be a whole number from 1 to 365.");
  const lines = $("origins").value.split("\n").map((l) => l.trim()).filter(Boolean);
  const origins = [];
  for (const line of lines) {
    const o = originOf(line);
    if (!o) return showAlert(`"${line}" is not a web address. Write it like https://webmail.council.example`);
    if (!origins.includes(o)) origins.push(o);
  }
  // Host permissions for the gateway and each Roundcube origin: asked for in this click, before anything is
  // awaited (Firefox refuses permissions.request after an await); those already granted need no prompt.
  const wanted = [...new Set([gatewayUrl, ...origins].map(hostPermissionPattern))];
  let granted;
  try {
    granted = await api.permissions.request({ origins: wanted });
  } catch (e) {
    // The browser refused to ask (Firefox, when it no longer counts the click as the user's): say so, rather
    // than leave the page as if Save had not been pressed.
    return showAlert(`SafeShare could not ask for permission to reach these addresses (${e?.message ?? e}). Nothing was saved: press Save settings again.`);
  }
  if (!granted) {
    return showAlert("SafeShare needs your permission to reach these addresses; nothing was saved.");
  }
  try {
    const r = await ask("save-settings", { settings: { gatewayUrl, defaultExpiryDays: days, webmailOrigins: origins } });
    $("saved").textContent = `Settings saved.${r.registered.length ? ` SafeShare now works on ${r.registered.join(", ")}.` : ""}`;
    await loadSignInChoices();
  } catch (e) {
    showAlert(e.message);
  }
}

async function signIn(ev) {
  ev.preventDefault();
  showAlert("");
  try {
    await ask("sign-in", { token: $("token").value });
    $("token").value = "";
    describeSignIn(await ask("status"));
  } catch (e) {
    showAlert(e.message);
  }
}

async function signOut() {
  await ask("sign-out");
  describeSignIn(await ask("status"));
}

$("settings-form").addEventListener("submit", save);
$("token-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
load().catch((e) => showAlert(e.message));

// The panel phrase: kept by the worker where web pages and content scripts cannot read it (lib/private-store.js).
async function loadPhrase() {
  $("panel-phrase").value = (await ask("phrase")).phrase;
}
async function savePhrase(ev) {
  ev.preventDefault();
  const { phrase } = await ask("set-phrase", { phrase: $("panel-phrase").value });
  $("phrase-saved").textContent = phrase ? "Saved. The SafeShare panel now shows this phrase at its top." : "Phrase removed.";
}
$("phrase-form").addEventListener("submit", (ev) => savePhrase(ev).catch((e) => showAlert(e.message)));
loadPhrase().catch(() => {});
