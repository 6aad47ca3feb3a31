"""A tiny but real OpenID provider for the end-to-end tests, on 127.0.0.1: an authorization endpoint that
approves at once (302 back to the redirect_uri with the code and state), a token endpoint that checks the
authorization code, the redirect_uri, the client_id and the PKCE code_verifier (S256) before it signs an RS256
access token, and the JWKS the gateway verifies that token with.

`mode` lets a test make the provider misbehave the ways the extension must survive: "ok", "wrong_challenge"
(it remembers a different PKCE challenge, so the exchange fails as a wrong code_verifier would), "forge_state",
"deny" (error=access_denied), and "login_page" (no redirect: the sign-in window stays open)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "api://safeshare-e2e"
CLIENT_ID = "safeshare-extension-e2e"
KID = "e2e-key-1"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass
class IdP:
    url: str = ""
    mode: str = "ok"
    sub: str = "pat.oidc@council.example"
    #: What the access token's `roles` claim holds (the gateway maps SafeShare.Recipient to recipient).
    roles: tuple[str, ...] = ("SafeShare.Practitioner",)
    #: An origin allowed to call the token endpoint from a web page (CORS), as for a single-page app client.
    cors_origin: str | None = None
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.url + "/tenant-e2e"

    def toml(self) -> str:
        """The gateway's `[[oidc]]` block naming this provider."""
        return f"""
[[oidc]]
issuer = "{self.issuer}"
audience = "{AUDIENCE}"
jwks_url = "{self.url}/jwks"
algorithms = ["RS256"]
roles_claim = "roles"
role_map = {{ "SafeShare.Practitioner" = "practitioner", "SafeShare.Recipient" = "recipient" }}
org_claim = "org"
authorization_endpoint = "{self.url}/authorize"
token_endpoint = "{self.url}/token"
client_id = "{CLIENT_ID}"
scopes = ["openid", "{AUDIENCE}/Share"]
"""

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def access_token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": self.sub,
            "roles": list(self.roles),
            "org": "e2e-council",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})


def _handler(idp: IdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def log_message(self, format: str, *args: object) -> None:  # stdlib signature
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            if idp.cors_origin:
                self.send_header("Access-Control-Allow-Origin", idp.cors_origin)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            u = urllib.parse.urlsplit(self.path)
            if u.path == "/jwks":
                return self._json(200, idp.jwks())
            if u.path != "/authorize":
                return self._json(404, {"error": "not_found"})
            q = dict(urllib.parse.parse_qsl(u.query))
            idp.authorize_requests.append(q)
            if idp.mode == "login_page":
                page = b"<!doctype html><title>Sign in</title><p>Sign in to your organisation"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return None
            ok = (
                q.get("response_type") == "code"
                and q.get("client_id") == CLIENT_ID
                and q.get("code_challenge_method") == "S256"
                and len(q.get("code_challenge", "")) == 43
                and (
                    q.get("redirect_uri", "").startswith("https://")
                    or q.get("redirect_uri", "").startswith("http://127.0.0.1:")  # a gateway's page on loopback
                )
            )
            if not ok:
                return self._json(400, {"error": "invalid_request"})
            back: dict[str, str] = {"state": q["state"]}
            if idp.mode == "deny":
                back["error"] = "access_denied"
                back["error_description"] = "The user declined."
            else:
                code = secrets.token_urlsafe(24)
                challenge = q["code_challenge"]
                if idp.mode == "wrong_challenge":
                    challenge = s256(secrets.token_urlsafe(32))
                with idp.lock:
                    idp.codes[code] = {
                        "challenge": challenge,
                        "redirect_uri": q["redirect_uri"],
                        "client_id": CLIENT_ID,
                    }
                back["code"] = code
                if idp.mode == "forge_state":
                    back["state"] = secrets.token_urlsafe(32)
            self.send_response(302)
            self.send_header("Location", q["redirect_uri"] + "?" + urllib.parse.urlencode(back))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

        def do_POST(self) -> None:
            if urllib.parse.urlsplit(self.path).path != "/token":
                return self._json(404, {"error": "not_found"})
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                return self._json(400, {"error": "invalid_request", "error_description": "form body expected"})
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()))
            idp.token_requests.append(form)
            with idp.lock:
                grant = idp.codes.pop(form.get("code", ""), None)  # single use
            if form.get("grant_type") != "authorization_code" or grant is None:
                return self._json(400, {"error": "invalid_grant", "error_description": "Unknown or used code."})
            if form.get("redirect_uri") != grant["redirect_uri"] or form.get("client_id") != grant["client_id"]:
                return self._json(
                    400, {"error": "invalid_grant", "error_description": "redirect_uri or client_id differs."}
                )
            if "client_secret" in form:
                return self._json(
                    400, {"error": "invalid_client", "error_description": "A public client has no secret."}
                )
            if s256(form.get("code_verifier", "")) != grant["challenge"]:
                return self._json(400, {"error": "invalid_grant", "error_description": "PKCE verification failed."})
            token = idp.access_token()
            idp.issued.append(token)
            return self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 600})

    return Handler


@contextmanager
def serve_idp() -> Iterator[IdP]:
    idp = IdP()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(idp))
    server.daemon_threads = True
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
