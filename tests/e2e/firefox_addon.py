"""What the Firefox tests share about the add-on itself: its ID and the options page's sign-in as a user does it
(address saved, token typed, Sign in). The `firefox_exe` fixture is in conftest.py."""

from __future__ import annotations

from tests.e2e.bidi import Tab

ADDON_ID = "safeshare@safeshare.example"  # browser_specific_settings.gecko.id in the manifest

#: Records, in the options page, each step of pressing Save: the click, then each browser call it makes and
#: whether it settled (wrapped where the page calls them; the page's own code is unchanged).
TRACE_SAVE = """() => {
  const trace = (window.__saveTrace = []);
  const at = (step) => trace.push(`${step}@${Math.round(performance.now())}`);
  document.addEventListener("click", (e) => at(`click:${e.target.id || e.target.tagName}`), true);
  document.querySelector("#settings-form").addEventListener("submit", () => at("submit"), true);
  const wrap = (owner, name) => {
    const real = owner[name].bind(owner);
    owner[name] = (...args) => {
      const label = `${name}${args[0]?.type ? ":" + args[0].type : ""}`;
      at(`${label}>`);
      return real(...args).then(
        (v) => (at(`${label}<`), v),
        (e) => (at(`${label}!${e?.message ?? e}`), Promise.reject(e)),
      );
    };
  };
  wrap(browser.permissions, "request");
  wrap(browser.runtime, "sendMessage");
  return trace.length;
}"""


async def options_sign_in(tab: Tab, base: str, gateway_url: str, token: str) -> str:
    """The options page: the gateway address saved, then the token typed in and Sign in. Returns the
    "Signed in as …" line, so that each test checks the identity it expects."""
    await tab.navigate(f"{base}/options/options.html")
    await tab.wait_for(
        "() => document.querySelector('#signed-in').textContent === 'Not signed in.'", what="the options page to load"
    )
    await tab.fill("#gateway-url", gateway_url)
    await tab.call(TRACE_SAVE)
    await tab.click("#save")
    try:
        saved = await tab.wait_for(
            "() => document.querySelector('#saved').textContent || (!document.querySelector('#alert').hidden "
            "&& 'ALERT: ' + document.querySelector('#alert').textContent)",
            what="the settings to be saved",
        )
    except AssertionError as e:
        # Which step of Save never finished (a rare hang under parallel load): the click, the permission
        # request, or the background's answer.
        raise AssertionError(f"{e}; steps: {await tab.call('() => window.__saveTrace')}") from None
    assert saved.startswith("Settings saved."), saved
    await tab.fill("#token", token)
    await tab.click("#sign-in")
    signed_in = await tab.wait_for(
        "() => { const t = document.querySelector('#signed-in').textContent; return t.startsWith('Signed in') && t; }",
        what="the sign-in",
    )
    return str(signed_in)
