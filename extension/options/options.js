/** Options: gateway address, sign-in (token pasted for the embedded issuer), Roundcube origins, default expiry. */
const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);

async function ask(type, payload = {}) {
  const answer = await api.runtime.sendMessage({ type, ...payload });
  if (!answer?.ok) throw new Error(answer?.error?.message ?? "SafeShare did not answer.");
  return answer.value;
}

function showAlert(message) {
  $("alert").textContent = message;
  $("alert").hidden = !message;
}

/** "https://host[:port]" from what was typed, or null. */
export function originOf(text) {
  try {
    const u = new URL(text.trim());
    return u.protocol === "https:" || u.protocol === "http:" ? u.origin : null;
  } catch {
    return null;
  }
}

function describeSignIn(status) {
  if (!status.signedIn) {
    $("signed-in").textContent = "Not signed in.";
    return;
  }
  const c = status.claims ?? {};
  const until = c.exp ? new Date(c.exp * 1000).toUTCString() : "unknown";
  $("signed-in").textContent = `Signed in as ${c.sub} (${(c.roles ?? []).join(", ")}${c.org ? ", " + c.org : ""}); the token expires ${until}.`;
}

async function load() {
  const status = await ask("status");
  $("gateway-url").value = status.settings.gatewayUrl;
  $("expiry-days").value = String(status.settings.defaultExpiryDays);
  $("origins").value = status.settings.webmailOrigins.join("\n");
  describeSignIn(status);
}

async function save(ev) {
  ev.preventDefault();
  showAlert("");
  $("saved").textContent = "";
  const gatewayUrl = originOf($("gateway-url").value);
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
  // Host permissions for the gateway and each Roundcube origin: asked for in this click, as browsers require.
  const wanted = [gatewayUrl, ...origins].map((o) => `${o}/*`);
  const missing = [];
  for (const pattern of wanted) if (!(await api.permissions.contains({ origins: [pattern] }))) missing.push(pattern);
  if (missing.length && !(await api.permissions.request({ origins: missing }))) {
    return showAlert("SafeShare needs your permission to reach these addresses; nothing was saved.");
  }
  try {
    const r = await ask("save-settings", { settings: { gatewayUrl, defaultExpiryDays: days, webmailOrigins: origins } });
    $("saved").textContent = `Settings saved.${r.registered.length ? ` SafeShare now works on ${r.registered.join(", ")}.` : ""}`;
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
