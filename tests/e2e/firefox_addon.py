"""What the Firefox tests share about the add-on itself: its ID and the options page's sign-in as a user does it
(address saved, token typed, Sign in). The `firefox_exe` fixture is in conftest.py."""

from __future__ import annotations

from tests.e2e.bidi import Tab

ADDON_ID = "safeshare@safeshare.example"  # browser_specific_settings.gecko.id in the manifest


async def options_sign_in(tab: Tab, base: str, gateway_url: str, token: str) -> str:
    """The options page: the gateway address saved, then the token typed in and Sign in. Returns the
    "Signed in as …" line, so that each test checks the identity it expects."""
    await tab.navigate(f"{base}/options/options.html")
    await tab.wait_for(
        "() => document.querySelector('#signed-in').textContent === 'Not signed in.'", what="the options page to load"
    )
    await tab.fill("#gateway-url", gateway_url)
    await tab.click("#save")
    saved = await tab.wait_for(
        "() => document.querySelector('#saved').textContent || (!document.querySelector('#alert').hidden "
        "&& 'ALERT: ' + document.querySelector('#alert').textContent)",
        what="the settings to be saved",
    )
    assert saved.startswith("Settings saved."), saved
    await tab.fill("#token", token)
    await tab.click("#sign-in")
    signed_in = await tab.wait_for(
        "() => { const t = document.querySelector('#signed-in').textContent; return t.startsWith('Signed in') && t; }",
        what="the sign-in",
    )
    return str(signed_in)
