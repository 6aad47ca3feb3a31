"""Signing in with the organisation's identity provider from the options page: the OAuth authorization-code
flow with PKCE through Chromium's real `chrome.identity.launchWebAuthFlow`, against a real (tiny) OpenID
provider on 127.0.0.1 and a real `safeshare serve` that trusts it; the token then works for the panel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Browser, Gateway
from tests.e2e.oidc_idp import AUDIENCE, CLIENT_ID, IdP, s256, serve_idp
from tests.e2e.panel import open_panel
from tests.e2e.webmail import Webmail
from tests.test_cli import call, serve


@dataclass
class OidcGateway:
    url: str
    idp: IdP


@pytest.fixture(scope="module")
def oidc_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcGateway]:
    tmp = tmp_path_factory.mktemp("oidc-gateway")
    home = tmp / "home"
    home.mkdir()
    with serve_idp() as idp:
        (home / "safeshare.toml").write_text(idp.toml())
        with serve(home, tmp / "server.log") as url:
            yield OidcGateway(url, idp)


@pytest.fixture
def options(browser: Browser, oidc_gateway: OidcGateway) -> Iterator[Any]:
    """The options page, signed out, pointed at the gateway that trusts the provider (as a user would set it)."""
    oidc_gateway.idp.mode = "ok"
    browser.sign_in(None)
    tab = browser.context.new_page()
    tab.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
    tab.locator("#signed-in").get_by_text("Not signed in.").wait_for()
    tab.get_by_label("Gateway address").fill(oidc_gateway.url)
    tab.get_by_role("button", name="Save settings").click()
    tab.get_by_text("Settings saved.").wait_for()
    yield tab
    tab.close()
    browser.sign_in(None)


def sign_in_button(options: Any) -> Any:
    button = options.get_by_role("button", name="Sign in with your organisation")
    button.wait_for()
    return button


def session_storage(browser: Browser) -> dict[str, Any]:
    return browser.worker.evaluate("() => chrome.storage.session.get(null)")


def test_auth_config_advertises_the_provider(oidc_gateway: OidcGateway) -> None:
    status, body = call(oidc_gateway.url + "/api/v1/auth/config")
    assert status == 200
    [o] = json.loads(body)["oidc"]
    assert o["issuer"] == oidc_gateway.idp.issuer and o["client_id"] == CLIENT_ID
    assert o["token_endpoint"] == oidc_gateway.idp.url + "/token"


def test_sign_in_with_your_organisation(
    options: Any, browser: Browser, oidc_gateway: OidcGateway, webmail: Webmail
) -> None:
    idp = oidc_gateway.idp
    before = len(idp.issued)
    redirect = browser.worker.evaluate("() => chrome.identity.getRedirectURL()")
    assert redirect == f"https://{browser.extension_id}.chromiumapp.org/"
    assert redirect in options.locator("#redirect-hint").text_content()

    sign_in_button(options).click()
    options.locator("#signed-in").get_by_text(
        "Signed in as pat.oidc@council.example (SafeShare.Practitioner, e2e-council)"
    ).wait_for()

    # The provider saw a PKCE S256 request for our redirect address, and the exchange carried the verifier.
    auth = idp.authorize_requests[-1]
    assert auth["redirect_uri"] == redirect and auth["client_id"] == CLIENT_ID
    assert auth["code_challenge_method"] == "S256" and auth["scope"] == f"openid {AUDIENCE}/Share"
    exchange = idp.token_requests[-1]
    assert s256(exchange["code_verifier"]) == auth["code_challenge"]
    assert exchange["redirect_uri"] == redirect and "client_secret" not in exchange

    # The access token sits exactly where a pasted token goes, and nowhere else.
    assert len(idp.issued) == before + 1
    token = idp.issued[-1]
    assert session_storage(browser) == {"token": token}
    assert token not in json.dumps(browser.worker.evaluate("() => chrome.storage.local.get(null)"))
    assert options.get_by_role("alert").is_hidden()

    # The gateway accepts it: through the service worker (as the panel asks) and directly.
    answer = options.evaluate("() => chrome.runtime.sendMessage({type: 'policy'})")
    assert answer["ok"], answer
    assert answer["value"]["policy"]["properties"], answer
    status, _ = call(oidc_gateway.url + "/api/v1/policy", token)
    assert status == 200

    # And the share panel in a webmail renders the gateway's form with it.
    mail = browser.context.new_page()
    try:
        mail.goto(webmail.gmail_url())
        panel = open_panel(mail)
        assert panel.get_by_role("radio", name="Share", exact=True).count() == 1
    finally:
        mail.close()

    options.get_by_role("button", name="Sign out").click()
    options.locator("#signed-in").get_by_text("Not signed in.").wait_for()
    assert session_storage(browser) == {}


def expect_alert(options: Any, text: str) -> str:
    alert = options.get_by_role("alert")
    alert.get_by_text(text, exact=False).wait_for()
    assert alert.get_attribute("aria-live") == "assertive"
    return alert.text_content()


def test_a_wrong_code_verifier_is_refused_and_said_plainly(
    options: Any, browser: Browser, oidc_gateway: OidcGateway
) -> None:
    idp = oidc_gateway.idp
    idp.mode = "wrong_challenge"
    before = len(idp.token_requests)
    sign_in_button(options).click()
    said = expect_alert(options, "would not complete the sign-in (invalid_grant)")
    assert "PKCE verification failed." in said and "You are not signed in" in said
    assert len(idp.token_requests) == before + 1
    assert session_storage(browser) == {}
    assert options.locator("#signed-in").text_content() == "Not signed in."
    assert sign_in_button(options).is_enabled()


def test_a_forged_state_is_not_used(options: Any, browser: Browser, oidc_gateway: OidcGateway) -> None:
    idp = oidc_gateway.idp
    idp.mode = "forge_state"
    before = len(idp.token_requests)
    sign_in_button(options).click()
    expect_alert(options, "did not match the sign-in SafeShare started")
    assert len(idp.token_requests) == before, "the code of a forged answer must not be exchanged"
    assert session_storage(browser) == {}


def test_a_refused_sign_in_is_said_plainly(options: Any, browser: Browser, oidc_gateway: OidcGateway) -> None:
    oidc_gateway.idp.mode = "deny"
    sign_in_button(options).click()
    said = expect_alert(options, "The sign-in was cancelled or not allowed.")
    assert "The user declined." in said
    assert session_storage(browser) == {}


def test_closing_the_sign_in_window(options: Any, browser: Browser, oidc_gateway: OidcGateway) -> None:
    oidc_gateway.idp.mode = "login_page"
    # Chromium opens the provider's page in a window of its own; the practitioner closes it.
    with browser.context.expect_page() as opened:
        sign_in_button(options).click()
    window = opened.value
    window.wait_for_url(oidc_gateway.idp.url + "/authorize?*")
    window.get_by_text("Sign in to your organisation").wait_for()
    options.get_by_text("Finish signing in in the window that opened").wait_for()
    window.close()
    expect_alert(options, "The sign-in window was closed before the sign-in finished.")
    assert options.locator("#oidc-progress").text_content() == ""
    assert session_storage(browser) == {}


def test_no_organisation_button_when_the_gateway_offers_no_provider(options: Any, gateway: Gateway) -> None:
    sign_in_button(options)
    assert options.locator("#oidc").is_visible()
    options.get_by_label("Gateway address").fill(gateway.url)
    options.get_by_role("button", name="Save settings").click()
    options.get_by_role("button", name="Sign in with your organisation").wait_for(state="detached")
    assert options.locator("#oidc").is_hidden()
    assert options.get_by_label("Token", exact=True).is_visible()
