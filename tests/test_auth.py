"""Tests for gateway.auth: every refusal is pinned to its stable code, and every token is hostile input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import stat
import urllib.request
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import auth
from gateway.auth import (
    MAX_TOKEN_BYTES,
    ROLES,
    AuthError,
    EmbeddedIssuer,
    EmbeddedIssuerConfig,
    Forbidden,
    OIDCIssuerConfig,
    Principal,
    TokenVerifier,
    bearer_token,
    load_or_create_ed25519_key,
    require,
)

ISS = "https://safeshare.test/embedded"
AUD = "safeshare"
OIDC_ISS = "https://login.example.test/tenant-1/v2.0"
OIDC_AUD = "api://safeshare"
T0 = 1_700_000_000
DROP = object()


class Clock:
    """Injected time source, so expiry and JWKS rate limits are tested without sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seg(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def craft(header: dict[str, Any], claims: dict[str, Any] | str, signer: Callable[[bytes], bytes] | None) -> str:
    payload = claims if isinstance(claims, str) else seg(claims)
    signing_input = f"{seg(header)}.{payload}"
    signature = signer(signing_input.encode("ascii")) if signer else b""
    return f"{signing_input}.{b64(signature)}"


def base_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "roles": ["practitioner"],
        "org": "council-a",
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 3600,
        "jti": "j-1",
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


async def refused(verifier: TokenVerifier, token: str, code: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    err = info.value
    assert err.code == code, err.message
    assert err.status == 401
    # The message must never echo the token or any sizeable piece of it.
    for piece in [token, *token.split(".")]:
        if len(piece) >= 8:
            assert piece not in err.message
            assert piece not in str(err)
    return err


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def other_ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rogue_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issuer(ed_key: Ed25519PrivateKey) -> EmbeddedIssuer:
    return EmbeddedIssuer(ed_key, ISS, AUD)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(issuer: EmbeddedIssuer, clock: Clock) -> TokenVerifier:
    return TokenVerifier(issuer, clock=clock)


@pytest.fixture
def ed_header(issuer: EmbeddedIssuer) -> dict[str, Any]:
    return {"alg": "EdDSA", "typ": "JWT", "kid": issuer.kid}


@pytest.fixture
def sign_count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real signature verifications, to tell cache hits from full verifications."""
    calls = [0]
    original = auth._verify_signature

    def counting(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        original(*args, **kwargs)

    monkeypatch.setattr(auth, "_verify_signature", counting)
    return calls


# ------------------------------------------------------------------------------------ embedded issuer


async def test_issue_verify_round_trip(issuer: EmbeddedIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", ["practitioner", "admin"], org="council-a", ttl=600, now=T0)
    principal = await verifier.verify(token)
    assert principal == Principal(
        sub="alice",
        roles=frozenset({"practitioner", "admin"}),
        org="council-a",
        issuer=ISS,
        expires_at=T0 + 600,
    )
    assert principal.has("admin") and not principal.has("auditor")

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == issuer.kid
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "aud", "exp", "iat", "nbf", "sub", "roles", "org", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 600


async def test_issue_without_org_and_unique_jti(issuer: EmbeddedIssuer, verifier: TokenVerifier) -> None:
    first = issuer.issue("bob", ["recipient"], now=T0)
    second = issuer.issue("bob", ["recipient"], now=T0)
    assert first != second  # distinct jti
    principal = await verifier.verify(first)
    assert principal.org is None and principal.roles == frozenset({"recipient"})


def test_kid_is_sha256_prefix_of_raw_public_key(issuer: EmbeddedIssuer, ed_key: Ed25519PrivateKey) -> None:
    raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert issuer.kid == hashlib.sha256(raw).hexdigest()[:16]
    assert issuer.config().kid == issuer.kid


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"roles": ["superuser"]}, "unknown role"),
        ({"roles": "admin"}, "not a single string"),
        ({"roles": [], "ttl": 0}, "ttl"),
        ({"roles": [], "ttl": 30 * 86400 + 1}, "ttl"),
        ({"roles": [], "ttl": True}, "ttl"),
        ({"roles": [], "sub": ""}, "sub"),
        ({"roles": [], "org": ""}, "org"),
    ],
)
def test_issue_validates_inputs(issuer: EmbeddedIssuer, kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"sub": "alice", **kwargs}
    with pytest.raises(ValueError, match=match):
        issuer.issue(**kwargs)


async def test_issue_accepts_maximum_ttl(issuer: EmbeddedIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", ["auditor"], ttl=30 * 86400, now=T0)
    assert (await verifier.verify(token)).expires_at == T0 + 30 * 86400


async def test_jwks_lets_others_verify(issuer: EmbeddedIssuer, clock: Clock) -> None:
    document = issuer.jwks()
    (jwk,) = document["keys"]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == issuer.kid
    assert "d" not in jwk
    token = issuer.issue("alice", ["admin"], now=T0)
    # An independent verifier (pyjwt alone) can use the published JWK.
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience=AUD, issuer=ISS, options={"verify_exp": False})
    assert claims["sub"] == "alice"
    # And our verifier needs only the public key, never the private one.
    public_only = TokenVerifier(EmbeddedIssuerConfig(public, ISS, AUD), clock=clock)
    assert (await public_only.verify(token)).roles == frozenset({"admin"})


async def test_unknown_roles_dropped_and_no_role_still_authenticates(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = craft(ed_header, base_claims(roles=["admin", "wizard", "Admin"]), ed_key.sign)
    assert (await verifier.verify(token)).roles == frozenset({"admin"})
    bare = craft(ed_header, base_claims(roles=DROP, sub="carol"), ed_key.sign)
    principal = await verifier.verify(bare)
    assert principal.sub == "carol" and principal.roles == frozenset()
    with pytest.raises(Forbidden):
        require(principal, "practitioner")


# ------------------------------------------------------------------------------------------ refusals


async def test_refuses_alg_none(issuer: EmbeddedIssuer, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        token = craft({"alg": alg, "typ": "JWT", "kid": issuer.kid}, base_claims(), None)
        await refused(verifier, token, "token_algorithm_not_allowed")


async def test_refuses_hs256_signed_with_public_key(
    issuer: EmbeddedIssuer, ed_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    public = ed_key.public_key()
    secrets_an_attacker_could_use = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ]
    for secret in secrets_an_attacker_could_use:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            header = {"alg": alg, "typ": "JWT", "kid": issuer.kid}
            token = craft(header, base_claims(), lambda m, s=secret, d=digest: hmac.new(s, m, d).digest())
            await refused(verifier, token, "token_algorithm_not_allowed")


async def test_refuses_rs256_for_embedded_issuer(
    issuer: EmbeddedIssuer, rogue_rsa_key: rsa.RSAPrivateKey, verifier: TokenVerifier
) -> None:
    token = jwt.encode(base_claims(), rogue_rsa_key, algorithm="RS256", headers={"kid": issuer.kid})
    await refused(verifier, token, "token_algorithm_not_allowed")


async def test_refuses_signature_by_other_key_with_our_kid(
    other_ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = craft(ed_header, base_claims(roles=["admin"]), other_ed_key.sign)
    await refused(verifier, token, "token_signature_invalid")


async def test_refuses_tampered_payload(
    issuer: EmbeddedIssuer, ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    genuine = issuer.issue("alice", ["recipient"], now=T0)
    header, _, signature = genuine.split(".")
    forged_payload = seg(base_claims(roles=["admin"]))
    await refused(verifier, f"{header}.{forged_payload}.{signature}", "token_signature_invalid")
    await refused(verifier, f"{header}.{genuine.split('.')[1]}.", "token_signature_invalid")


async def test_refuses_unknown_and_missing_kid(
    ed_key: Ed25519PrivateKey, other_ed_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    rotated_away = EmbeddedIssuer(other_ed_key, ISS, AUD)
    await refused(verifier, rotated_away.issue("alice", ["admin"], now=T0), "token_key_unknown")
    no_kid = craft({"alg": "EdDSA", "typ": "JWT"}, base_claims(), ed_key.sign)
    await refused(verifier, no_kid, "token_key_unknown")


async def test_expiry_honours_leeway(issuer: EmbeddedIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    token = issuer.issue("alice", ["practitioner"], ttl=60, now=T0)
    clock.now = T0 + 60 + 29
    assert (await verifier.verify(token)).sub == "alice"
    clock.now = T0 + 60 + 30
    err = await refused(verifier, token, "token_expired")
    assert "expired" in err.message


async def test_refuses_long_expired(issuer: EmbeddedIssuer, verifier: TokenVerifier) -> None:
    await refused(verifier, issuer.issue("alice", ["admin"], ttl=3600, now=T0 - 7200), "token_expired")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_refuses_not_yet_valid(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier, claim: str
) -> None:
    within_leeway = craft(ed_header, base_claims(**{claim: T0 + 29}), ed_key.sign)
    assert (await verifier.verify(within_leeway)).sub == "alice"
    future = craft(ed_header, base_claims(**{claim: T0 + 31}), ed_key.sign)
    await refused(verifier, future, "token_not_yet_valid")


async def test_refuses_wrong_issuer(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = craft(ed_header, base_claims(iss="https://evil.test"), ed_key.sign)
    await refused(verifier, token, "token_issuer_invalid")
    # Issuer matching is exact: no prefix, case or trailing-slash games.
    for near_miss in (ISS + "/", ISS.upper(), ISS[:-1]):
        await refused(verifier, craft(ed_header, base_claims(iss=near_miss), ed_key.sign), "token_issuer_invalid")


async def test_audience_checks(ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier) -> None:
    await refused(verifier, craft(ed_header, base_claims(aud="other-api"), ed_key.sign), "token_audience_invalid")
    await refused(verifier, craft(ed_header, base_claims(aud=["a", "b"]), ed_key.sign), "token_audience_invalid")
    listed = craft(ed_header, base_claims(aud=["other-api", AUD]), ed_key.sign)
    assert (await verifier.verify(listed)).sub == "alice"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": DROP},
        {"sub": ""},
        {"sub": 42},
        {"exp": DROP},
        {"exp": "tomorrow"},
        {"exp": True},
        {"iat": DROP},
        {"iat": [T0]},
        {"nbf": "now"},
        {"iss": DROP},
        {"iss": 7},
        {"aud": DROP},
        {"aud": []},
        {"aud": [AUD, 3]},
        {"roles": "practitioner admin"},
        {"roles": ["admin", 1]},
        {"org": 12},
        {"org": ""},
        {"jti": 5},
    ],
    ids=lambda o: "-".join(f"{k}={'DROP' if v is DROP else v!r}" for k, v in o.items()),
)
async def test_refuses_missing_or_mistyped_claims(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier, overrides: dict[str, Any]
) -> None:
    token = craft(ed_header, base_claims(**overrides), ed_key.sign)
    await refused(verifier, token, "token_claims_invalid")


@pytest.mark.parametrize(
    "raw_payload",
    [
        '{"exp": NaN}',
        '{"exp": Infinity}',
        '{"exp": 1e999}',
        '{"sub": "alice", "sub": "admin"}',
        "[1, 2, 3]",
        "not json",
        "\xff\xfe",
    ],
)
async def test_refuses_hostile_json(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier, raw_payload: str
) -> None:
    payload = b64(raw_payload.encode("latin-1"))
    token = craft(ed_header, payload, ed_key.sign)
    await refused(verifier, token, "token_malformed")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "....",
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.sig!",
        "eyJhbGciOiJFZERTQSJ9 .eyJzdWIiOiJ4In0.c2ln",
        "e30.e30.e30",  # {} header: no alg
        "bm90IGpzb24.e30.e30",
        "é.é.é",
    ],
)
async def test_refuses_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    await refused(verifier, token, "token_malformed")


async def test_refuses_empty_token(verifier: TokenVerifier) -> None:
    await refused(verifier, "", "token_missing")


async def test_refuses_crit_and_b64_headers(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    for extra in ({"crit": ["exp"], "exp": 1}, {"b64": False, "crit": ["b64"]}):
        await refused(verifier, craft({**ed_header, **extra}, base_claims(), ed_key.sign), "token_malformed")


async def test_refuses_non_string_kid(ed_key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    token = craft({"alg": "EdDSA", "kid": ["a"]}, base_claims(), ed_key.sign)
    await refused(verifier, token, "token_malformed")


async def test_refuses_oversize_token_even_if_validly_signed(
    ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = craft(ed_header, base_claims(padding="x" * MAX_TOKEN_BYTES), ed_key.sign)
    assert len(token) > MAX_TOKEN_BYTES
    err = await refused(verifier, token, "token_malformed")
    assert str(MAX_TOKEN_BYTES) in err.message


def test_auth_error_codes_are_stable() -> None:
    assert auth.AUTH_ERROR_CODES == {
        "token_missing",
        "token_malformed",
        "token_algorithm_not_allowed",
        "token_signature_invalid",
        "token_expired",
        "token_not_yet_valid",
        "token_issuer_invalid",
        "token_audience_invalid",
        "token_claims_invalid",
        "token_key_unknown",
    }
    with pytest.raises(ValueError):
        AuthError("made_up", "x")
    assert AuthError("token_missing", "x").www_authenticate() == 'Bearer realm="safeshare"'
    assert 'error="invalid_token"' in AuthError("token_expired", "x").www_authenticate()


# -------------------------------------------------------------------------------------------- cache


async def test_cache_hit_returns_same_principal(
    issuer: EmbeddedIssuer, verifier: TokenVerifier, sign_count: list[int]
) -> None:
    token = issuer.issue("alice", ["practitioner"], now=T0)
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert second is first
    assert sign_count[0] == 1
    other = await verifier.verify(issuer.issue("bob", ["auditor"], now=T0))
    assert other.sub == "bob" and sign_count[0] == 2


async def test_cached_token_past_exp_is_refused(
    issuer: EmbeddedIssuer, verifier: TokenVerifier, clock: Clock, sign_count: list[int]
) -> None:
    token = issuer.issue("alice", ["admin"], ttl=60, now=T0)
    await verifier.verify(token)
    clock.now = T0 + 59
    await verifier.verify(token)
    assert sign_count[0] == 1  # still served from cache
    clock.now = T0 + 60  # at exp: the cache must not answer; full verification (with leeway) does
    await verifier.verify(token)
    assert sign_count[0] == 2
    clock.now = T0 + 60 + 30
    await refused(verifier, token, "token_expired")


async def test_cached_token_refused_without_leeway(issuer: EmbeddedIssuer, clock: Clock) -> None:
    strict = TokenVerifier(issuer, leeway=0, clock=clock)
    token = issuer.issue("alice", ["admin"], ttl=10, now=T0)
    await strict.verify(token)
    clock.now = T0 + 10
    await refused(strict, token, "token_expired")


async def test_cache_is_bounded_lru(issuer: EmbeddedIssuer, clock: Clock, sign_count: list[int]) -> None:
    small = TokenVerifier(issuer, cache_size=2, clock=clock)
    a, b, c = (issuer.issue(name, ["recipient"], now=T0) for name in "abc")
    for token in (a, b, c):
        await small.verify(token)
    assert sign_count[0] == 3
    await small.verify(c)
    assert sign_count[0] == 3
    await small.verify(a)  # evicted as least recently used
    assert sign_count[0] == 4


async def test_cache_can_be_disabled(issuer: EmbeddedIssuer, clock: Clock, sign_count: list[int]) -> None:
    uncached = TokenVerifier(issuer, cache_size=0, clock=clock)
    token = issuer.issue("alice", ["recipient"], now=T0)
    await uncached.verify(token)
    await uncached.verify(token)
    assert sign_count[0] == 2


async def test_refusals_are_not_cached(
    other_ed_key: Ed25519PrivateKey, ed_header: dict[str, Any], verifier: TokenVerifier, sign_count: list[int]
) -> None:
    forged = craft(ed_header, base_claims(), other_ed_key.sign)
    await refused(verifier, forged, "token_signature_invalid")
    await refused(verifier, forged, "token_signature_invalid")
    assert sign_count[0] == 2


# --------------------------------------------------------------------------------- bearer + require


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_token_parses(scheme: str) -> None:
    assert bearer_token(f"{scheme} aaa.bbb.ccc") == "aaa.bbb.ccc"
    assert bearer_token(f"  {scheme}   aaa.bbb.ccc  ") == "aaa.bbb.ccc"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "token_missing"),
        ("", "token_missing"),
        ("   ", "token_missing"),
        ("Bearer", "token_missing"),
        ("Bearer   ", "token_missing"),
        ("Basic dXNlcjpwYXNz", "token_malformed"),
        ("Token aaa.bbb.ccc", "token_malformed"),
        ("Bearer aaa.bbb.ccc extra", "token_malformed"),
        ("Bearer aaa.bbb", "token_malformed"),
        ("Bearer aaa,bbb.ccc", "token_malformed"),
        ("Bearer " + "a" * MAX_TOKEN_BYTES + ".b.c", "token_malformed"),
        ("Bearer " + "a" * (MAX_TOKEN_BYTES * 4), "token_malformed"),
    ],
)
def test_bearer_token_refusals(header: str | None, code: str) -> None:
    with pytest.raises(AuthError) as info:
        bearer_token(header)
    assert info.value.code == code
    if header and len(header) > 20:
        assert header.split()[-1] not in info.value.message


def test_require() -> None:
    principal = Principal(sub="a", roles=frozenset({"practitioner"}), org=None, issuer=ISS, expires_at=T0)
    require(principal, "practitioner")
    require(principal, "admin", "practitioner")
    with pytest.raises(Forbidden) as info:
        require(principal, "admin", "auditor")
    assert info.value.status == 403 and info.value.code == "forbidden"
    with pytest.raises(ValueError):
        require(principal)
    with pytest.raises(ValueError):
        require(principal, "admn")
    advisers = {"dsl", "manager", "dpo", "caldicott_guardian", "legal"}  # issue 14: who answers advice
    assert (
        frozenset({"practitioner", "recipient", "auditor", "admin", "partnership_admin", "partnership_auditor"})
        | advisers
        == ROLES
    )


# ------------------------------------------------------------------------------------ property tests


_fuzz_key = Ed25519PrivateKey.generate()
_fuzz_issuer = EmbeddedIssuer(_fuzz_key, ISS, AUD)
_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_claim_names = st.sampled_from(["iss", "aud", "sub", "exp", "iat", "nbf", "roles", "org", "jti", "x"])


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text_only_raises_auth_error(text: str) -> None:
    verifier = TokenVerifier(_fuzz_issuer, clock=Clock())
    try:
        _run(verifier.verify(text))
    except AuthError:
        pass
    try:
        bearer_token(text)
    except AuthError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_claim_names, _json, max_size=10))
def test_fuzz_signed_claims_only_raise_auth_error(overrides: dict[str, Any]) -> None:
    """Correctly signed but arbitrarily typed claims must never crash the verifier or yield odd principals."""
    verifier = TokenVerifier(_fuzz_issuer, clock=Clock())
    claims = {**base_claims(), **overrides}
    token = craft({"alg": "EdDSA", "kid": _fuzz_issuer.kid}, claims, _fuzz_key.sign)
    try:
        principal = _run(verifier.verify(token))
    except AuthError:
        return
    assert isinstance(principal.sub, str) and principal.sub
    assert principal.roles <= ROLES
    assert isinstance(principal.expires_at, int)


# ------------------------------------------------------------------------------------------ key file


def test_key_file_created_0600_in_0700_dir(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / "token.pem"
    key = load_or_create_ed25519_key(path)
    assert isinstance(key, Ed25519PrivateKey)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = path.read_bytes()
    # PKCS8 PEM, unencrypted: loads without a password.
    assert data.startswith(b"-----BEGIN ") and b"ENCRYPTED" not in data
    assert serialization.load_pem_private_key(data, password=None).public_key() == key.public_key()
    assert os.listdir(path.parent) == ["token.pem"]  # no temporary file left behind


def test_key_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / "token.pem"
        load_or_create_ed25519_key(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_key_file_idempotent_and_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    first = load_or_create_ed25519_key(path)
    before = path.stat()
    content = path.read_bytes()
    second = load_or_create_ed25519_key(path)
    after = path.stat()
    assert _raw(first) == _raw(second)
    assert path.read_bytes() == content
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


@pytest.mark.parametrize("content", [b"not a key at all", b""])
def test_key_file_never_overwrites_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token.pem"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        load_or_create_ed25519_key(path)
    assert path.read_bytes() == content


def test_key_file_never_overwrites_other_key_type(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "token.pem"
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    with pytest.raises(ValueError, match="not an Ed25519"):
        load_or_create_ed25519_key(path)
    assert path.read_bytes() == pem


def test_key_file_loads_existing_key(tmp_path: Path, ed_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "token.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(
        fd,
        ed_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    os.close(fd)
    assert _raw(load_or_create_ed25519_key(path)) == _raw(ed_key)


def test_key_file_warns_when_group_readable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token.pem"
    load_or_create_ed25519_key(path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        load_or_create_ed25519_key(path)
    assert "chmod 600" in caplog.text


def test_key_file_concurrent_first_start_agrees(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token.pem"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: load_or_create_ed25519_key(path), range(16)))
    assert len({_raw(k) for k in keys}) == 1
    assert os.listdir(path.parent) == ["token.pem"]


# ------------------------------------------------------------------------------------------- OIDC


class JwksServer:
    """A real HTTP JWKS endpoint whose contents, status and latency the test controls."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.status = 200
        self.delay = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        return web.json_response({"keys": self.keys})


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    return {
        **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
        "kid": kid,
        "use": "sig",
        **extra,
    }


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig"}


def oidc_claims(**overrides: Any) -> dict[str, Any]:
    return base_claims(**{"iss": OIDC_ISS, "aud": OIDC_AUD, "org": DROP, **overrides})


@pytest.fixture
async def jwks(aiohttp_server: Any, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> JwksServer:
    server_state = JwksServer()
    server_state.keys = [rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")]
    app = web.Application()
    app.router.add_get("/jwks", server_state.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    server_state.url = str(server.make_url("/jwks"))
    return server_state


def oidc_config(jwks: JwksServer, **overrides: Any) -> OIDCIssuerConfig:
    params: dict[str, Any] = {
        "issuer": OIDC_ISS,
        "audience": OIDC_AUD,
        "jwks_url": jwks.url,
        "jwks_ttl": 300,
        "jwks_min_refresh": 60,
        **overrides,
    }
    return OIDCIssuerConfig(**params)


@pytest.fixture
async def oidc_verifier(jwks: JwksServer, clock: Clock) -> AsyncIterator[TokenVerifier]:
    verifier = TokenVerifier(None, [oidc_config(jwks)], clock=clock)
    yield verifier
    await verifier.close()


def rs256(key: rsa.RSAPrivateKey, kid: str, **overrides: Any) -> str:
    return jwt.encode(oidc_claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def es256(key: ec.EllipticCurvePrivateKey, kid: str, **overrides: Any) -> str:
    return jwt.encode(oidc_claims(**overrides), key, algorithm="ES256", headers={"kid": kid})


async def test_oidc_rsa_and_ec_tokens_verify(
    jwks: JwksServer,
    oidc_verifier: TokenVerifier,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    rsa_principal = await oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="rsa-user"))
    ec_principal = await oidc_verifier.verify(es256(ec_key, "ec-1", sub="ec-user", roles=["auditor"]))
    assert rsa_principal == Principal("rsa-user", frozenset({"practitioner"}), None, OIDC_ISS, T0 + 3600)
    assert ec_principal.roles == frozenset({"auditor"}) and ec_principal.issuer == OIDC_ISS
    assert jwks.requests == 1  # the key set is cached, not fetched per token


async def test_oidc_role_map_and_org_claim(jwks: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    config = oidc_config(
        jwks,
        role_map={"SafeShare.Practitioner": "practitioner", "SafeShare.Admin": "admin"},
        org_claim="tid",
        default_org="default-org",
    )
    verifier = TokenVerifier(None, [config], clock=clock)
    try:
        token = rs256(rsa_key, "rsa-1", roles=["SafeShare.Practitioner", "Other.Role", "admin"], tid="tenant-9")
        principal = await verifier.verify(token)
        # "admin" is not mapped, so it must not count when a role map is configured.
        assert principal.roles == frozenset({"practitioner"})
        assert principal.org == "tenant-9"
        without_tid = await verifier.verify(rs256(rsa_key, "rsa-1", roles=["SafeShare.Admin"], sub="b"))
        assert without_tid.roles == frozenset({"admin"}) and without_tid.org == "default-org"
        await refused(verifier, rs256(rsa_key, "rsa-1", tid=5, sub="c"), "token_claims_invalid")
    finally:
        await verifier.close()


@pytest.mark.parametrize(
    ("roles_claim", "extra_claims", "expected"),
    [
        ("realm_access.roles", {"realm_access": {"roles": ["auditor", "offline_access"]}}, {"auditor"}),
        ("realm_access.roles", {"realm_access": ["auditor"]}, set()),
        ("realm_access.roles", {}, set()),
        ("groups", {"groups": ["recipient", "practitioner"]}, {"recipient", "practitioner"}),
        ("groups", {"groups": "recipient"}, {"recipient"}),
        ("https://safeshare.test/roles", {"https://safeshare.test/roles": ["admin"]}, {"admin"}),
    ],
)
async def test_oidc_roles_claim_paths(
    jwks: JwksServer,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
    roles_claim: str,
    extra_claims: dict[str, Any],
    expected: set[str],
) -> None:
    verifier = TokenVerifier(None, [oidc_config(jwks, roles_claim=roles_claim, default_org="org-x")], clock=clock)
    try:
        principal = await verifier.verify(rs256(rsa_key, "rsa-1", roles=DROP, **extra_claims))
        assert principal.roles == frozenset(expected)
        assert principal.org == "org-x"
    finally:
        await verifier.close()


async def test_oidc_unknown_kid_refetches_once_then_rotated_key_works(
    jwks: JwksServer, oidc_verifier: TokenVerifier, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    await oidc_verifier.verify(rs256(rsa_key, "rsa-1"))
    assert jwks.requests == 1

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated = rs256(new_key, "rsa-2", sub="rotated")

    clock.advance(61)
    await refused(oidc_verifier, rotated, "token_key_unknown")
    assert jwks.requests == 2  # exactly one refetch for the unknown kid
    await refused(oidc_verifier, rotated, "token_key_unknown")
    assert jwks.requests == 2  # rate-limited: no second refetch within jwks_min_refresh

    jwks.keys.append(rsa_jwk(new_key, "rsa-2"))
    clock.advance(30)
    await refused(oidc_verifier, rotated, "token_key_unknown")
    assert jwks.requests == 2  # still inside the window
    clock.advance(31)
    assert (await oidc_verifier.verify(rotated)).sub == "rotated"
    assert jwks.requests == 3


async def test_oidc_unknown_kid_within_min_refresh_does_not_fetch(
    jwks: JwksServer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    await oidc_verifier.verify(rs256(rsa_key, "rsa-1"))
    for i in range(5):
        await refused(oidc_verifier, rs256(rsa_key, f"unknown-{i}"), "token_key_unknown")
    assert jwks.requests == 1


async def test_oidc_concurrent_unknown_kids_share_one_fetch(
    jwks: JwksServer, oidc_verifier: TokenVerifier, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.delay = 0.05
    tokens = [rs256(rsa_key, f"nope-{i}") for i in range(20)]
    results = await asyncio.gather(*(oidc_verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, AuthError) and r.code == "token_key_unknown" for r in results)
    assert jwks.requests == 1
    clock.advance(61)
    await asyncio.gather(*(oidc_verifier.verify(t) for t in tokens), return_exceptions=True)
    assert jwks.requests == 2


async def test_oidc_jwks_server_error_is_a_401_not_a_crash(
    jwks: JwksServer, oidc_verifier: TokenVerifier, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.status = 500
    token = rs256(rsa_key, "rsa-1")
    err = await refused(oidc_verifier, token, "token_key_unknown")
    assert "could not be fetched" in err.message
    await refused(oidc_verifier, token, "token_key_unknown")
    assert jwks.requests == 1  # failures are rate-limited too: a down IdP is not hammered
    jwks.status = 200
    clock.advance(61)
    assert (await oidc_verifier.verify(token)).sub == "alice"
    assert jwks.requests == 2


async def test_oidc_jwks_unreachable(clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = OIDCIssuerConfig(issuer=OIDC_ISS, audience=OIDC_AUD, jwks_url=f"http://127.0.0.1:{port}/jwks")
    verifier = TokenVerifier(None, [config], clock=clock)
    try:
        await refused(verifier, rs256(rsa_key, "rsa-1"), "token_key_unknown")
    finally:
        await verifier.close()


@pytest.mark.parametrize("body", [b"not json", b'{"no_keys": []}', b"[]", b'{"keys": "x"}'])
async def test_oidc_jwks_garbage_is_a_401(
    aiohttp_server: Any, clock: Clock, rsa_key: rsa.RSAPrivateKey, body: bytes
) -> None:
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/jwks", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    config = OIDCIssuerConfig(issuer=OIDC_ISS, audience=OIDC_AUD, jwks_url=str(server.make_url("/jwks")))
    verifier = TokenVerifier(None, [config], clock=clock)
    try:
        await refused(verifier, rs256(rsa_key, "rsa-1"), "token_key_unknown")
    finally:
        await verifier.close()


async def settle(verifier: TokenVerifier) -> None:
    """Wait for background JWKS refreshes, so a test can observe their outcome deterministically."""
    for state in verifier._issuers.values():
        task = getattr(state, "_refreshing", None)
        if task is not None:
            await task


async def test_oidc_stale_keys_served_while_idp_down(
    jwks: JwksServer, oidc_verifier: TokenVerifier, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    await oidc_verifier.verify(rs256(rsa_key, "rsa-1"))
    jwks.status = 503
    clock.advance(301)  # past jwks_ttl
    assert (await oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="later"))).sub == "later"
    await settle(oidc_verifier)
    assert jwks.requests == 2  # a refresh was attempted, and failed
    assert (await oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="later2"))).sub == "later2"
    await settle(oidc_verifier)
    assert jwks.requests == 2  # and is not retried within jwks_min_refresh


async def test_oidc_stale_key_does_not_wait_for_slow_idp(
    jwks: JwksServer, oidc_verifier: TokenVerifier, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    await oidc_verifier.verify(rs256(rsa_key, "rsa-1"))
    jwks.delay = 2.0
    clock.advance(301)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="quick"))).sub == "quick"
    assert loop.time() - started < 0.5  # served from the stale key set, refresh runs in the background
    await asyncio.sleep(0.1)
    assert jwks.requests == 2  # the background refresh is now waiting on the slow IdP
    started = loop.time()
    await oidc_verifier.close()  # cancels the pending refresh rather than waiting for the slow IdP
    assert loop.time() - started < 0.5


async def test_oidc_withdrawn_key_stops_working_after_refresh(
    jwks: JwksServer,
    oidc_verifier: TokenVerifier,
    clock: Clock,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    await oidc_verifier.verify(rs256(rsa_key, "rsa-1"))
    jwks.keys = [ec_jwk(ec_key, "ec-1")]
    clock.advance(301)
    await oidc_verifier.verify(es256(ec_key, "ec-1"))  # triggers the TTL refresh
    await settle(oidc_verifier)
    assert jwks.requests == 2
    await refused(oidc_verifier, rs256(rsa_key, "rsa-1", sub="fresh"), "token_key_unknown")


async def test_oidc_concurrent_first_requests_all_wait_for_one_fetch(
    jwks: JwksServer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.delay = 0.05
    tokens = [rs256(rsa_key, "rsa-1", sub=f"user-{i}") for i in range(20)]
    principals = await asyncio.gather(*(oidc_verifier.verify(t) for t in tokens))
    assert [p.sub for p in principals] == [f"user-{i}" for i in range(20)]
    assert jwks.requests == 1


async def test_oidc_cancelled_request_does_not_cancel_shared_fetch(
    jwks: JwksServer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.delay = 0.1
    first = asyncio.create_task(oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="gone")))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(oidc_verifier.verify(rs256(rsa_key, "rsa-1", sub="stays")))
    await asyncio.sleep(0)
    first.cancel()  # the client that triggered the fetch disconnects
    assert (await second).sub == "stays"
    assert first.cancelled()
    assert jwks.requests == 1


async def test_oidc_event_loop_never_blocked(
    jwks: JwksServer,
    oidc_verifier: TokenVerifier,
    rsa_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("blocking urllib used on the event loop")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", forbidden)
    jwks.delay = 0.3  # the JWKS server runs on this very loop: a blocking fetch could never complete
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        principal = await asyncio.wait_for(oidc_verifier.verify(rs256(rsa_key, "rsa-1")), timeout=5)
    finally:
        task.cancel()
    assert principal.sub == "alice"
    assert ticks >= 10  # the loop kept running other work during the 0.3 s fetch


async def test_oidc_algorithm_allow_list_is_per_issuer(
    jwks: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(None, [oidc_config(jwks, algorithms=("RS256",))], clock=clock)
    try:
        await refused(verifier, es256(ec_key, "ec-1"), "token_algorithm_not_allowed")
        assert (await verifier.verify(rs256(rsa_key, "rsa-1"))).sub == "alice"
    finally:
        await verifier.close()


async def test_oidc_algorithm_must_match_key(
    jwks: JwksServer,
    oidc_verifier: TokenVerifier,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # ES256 token pointing at the RSA key, and RS256 pointing at the EC key.
    await refused(oidc_verifier, es256(ec_key, "rsa-1"), "token_algorithm_not_allowed")
    await refused(oidc_verifier, rs256(rsa_key, "ec-1"), "token_algorithm_not_allowed")


async def test_oidc_jwk_declared_alg_is_binding(jwks: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks.keys = [rsa_jwk(rsa_key, "rsa-1", alg="RS256")]
    verifier = TokenVerifier(None, [oidc_config(jwks, algorithms=("RS256", "RS512"))], clock=clock)
    try:
        rs512 = jwt.encode(oidc_claims(), rsa_key, algorithm="RS512", headers={"kid": "rsa-1"})
        await refused(verifier, rs512, "token_algorithm_not_allowed")
    finally:
        await verifier.close()


async def test_oidc_refuses_hs256_with_rsa_public_key(
    jwks: JwksServer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = craft(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        oidc_claims(),
        lambda m: hmac.new(pem, m, hashlib.sha256).digest(),
    )
    await refused(oidc_verifier, token, "token_algorithm_not_allowed")
    assert jwks.requests == 0  # refused before any key lookup


async def test_oidc_rogue_rsa_key(
    jwks: JwksServer, oidc_verifier: TokenVerifier, rogue_rsa_key: rsa.RSAPrivateKey
) -> None:
    await refused(oidc_verifier, rs256(rogue_rsa_key, "rsa-1"), "token_signature_invalid")
    await refused(oidc_verifier, rs256(rogue_rsa_key, "rogue"), "token_key_unknown")


async def test_oidc_claims_checked(jwks: JwksServer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    await refused(oidc_verifier, rs256(rsa_key, "rsa-1", aud="api://other"), "token_audience_invalid")
    await refused(oidc_verifier, rs256(rsa_key, "rsa-1", exp=T0 - 100), "token_expired")
    await refused(oidc_verifier, rs256(rsa_key, "rsa-1", nbf=T0 + 100), "token_not_yet_valid")
    await refused(oidc_verifier, rs256(rsa_key, "rsa-1", sub=DROP), "token_claims_invalid")
    no_kid = jwt.encode(oidc_claims(), rsa_key, algorithm="RS256")
    await refused(oidc_verifier, no_kid, "token_key_unknown")


async def test_oidc_jwks_hygiene(aiohttp_server: Any, clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    """Encryption keys, keys leaking private parts and sub-2048-bit RSA keys are never used to verify."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key))
    keys = [
        rsa_jwk(rsa_key, "enc", use="enc"),
        {**private_jwk, "kid": "leaky"},
        rsa_jwk(weak, "weak"),
        {"kty": "oct", "k": b64(b"secret"), "kid": "oct"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        "not-a-dict",
    ]
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"keys": keys})

    app.router.add_get("/jwks", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    config = OIDCIssuerConfig(issuer=OIDC_ISS, audience=OIDC_AUD, jwks_url=str(server.make_url("/jwks")))
    verifier = TokenVerifier(None, [config], clock=clock)
    try:
        for kid in ("enc", "leaky", "oct", "broken"):
            await refused(verifier, rs256(rsa_key, kid), "token_key_unknown")
        signing_input = f"{seg({'alg': 'RS256', 'kid': 'weak'})}.{seg(oidc_claims())}".encode()
        weak_sig = weak.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        await refused(verifier, f"{signing_input.decode()}.{b64(weak_sig)}", "token_algorithm_not_allowed")
    finally:
        await verifier.close()


async def test_embedded_and_oidc_together_keep_keys_apart(
    jwks: JwksServer,
    clock: Clock,
    issuer: EmbeddedIssuer,
    ed_key: Ed25519PrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = TokenVerifier(issuer, [oidc_config(jwks)], clock=clock)
    try:
        assert (await verifier.verify(issuer.issue("local", ["admin"], now=T0))).issuer == ISS
        assert (await verifier.verify(rs256(rsa_key, "rsa-1"))).issuer == OIDC_ISS
        # An OIDC-signed token claiming the embedded issuer: embedded accepts EdDSA only.
        await refused(verifier, rs256(rsa_key, "rsa-1", iss=ISS, aud=AUD), "token_algorithm_not_allowed")
        # An embedded-key token claiming the OIDC issuer: that issuer's JWKS does not hold our key.
        cross = craft({"alg": "EdDSA", "kid": issuer.kid}, oidc_claims(), ed_key.sign)
        await refused(verifier, cross, "token_key_unknown")
    finally:
        await verifier.close()


async def test_shared_session_is_not_closed(jwks: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    async with aiohttp.ClientSession() as session:
        verifier = TokenVerifier(None, [oidc_config(jwks)], http=session, clock=clock)
        assert (await verifier.verify(rs256(rsa_key, "rsa-1"))).sub == "alice"
        await verifier.close()
        assert not session.closed


async def test_owned_session_closed(jwks: JwksServer, clock: Clock, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(None, [oidc_config(jwks)], clock=clock)
    await verifier.verify(rs256(rsa_key, "rsa-1"))
    session = verifier._http
    assert session is not None
    await verifier.close()
    assert session.closed
    # After close no new session is opened; tokens whose keys are cached still verify.
    assert (await verifier.verify(rs256(rsa_key, "rsa-1", sub="after"))).sub == "after"


# ----------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"algorithms": ("none",)}, "not allowed"),
        ({"algorithms": ("RS256", "HS256")}, "not allowed"),
        ({"algorithms": ()}, "empty"),
        ({"jwks_url": "http://idp.example.test/jwks"}, "https"),
        ({"jwks_url": "file:///etc/passwd"}, "https"),
        ({"role_map": {"Ext.Admin": "superuser"}}, "role_map"),
        ({"issuer": ""}, "issuer"),
        ({"roles_claim": ""}, "roles_claim"),
        ({"jwks_ttl": 0}, "jwks_ttl"),
    ],
)
def test_oidc_config_validation(overrides: dict[str, Any], match: str) -> None:
    params: dict[str, Any] = {
        "issuer": OIDC_ISS,
        "audience": OIDC_AUD,
        "jwks_url": "https://login.example.test/keys",
        **overrides,
    }
    with pytest.raises(ValueError, match=match):
        OIDCIssuerConfig(**params)


def test_oidc_config_defaults_and_freezing() -> None:
    config = OIDCIssuerConfig(
        issuer=OIDC_ISS,
        audience=OIDC_AUD,
        jwks_url="https://login.example.test/keys",
        algorithms=["RS256"],  # type: ignore[arg-type]  # TOML gives lists
        role_map={"A": "admin"},
    )
    assert config.algorithms == ("RS256",)
    assert OIDCIssuerConfig(OIDC_ISS, OIDC_AUD, "https://x.test/k").algorithms == ("RS256", "ES256", "EdDSA")
    with pytest.raises(TypeError):
        config.role_map["B"] = "admin"  # type: ignore[index]


def test_verifier_configuration_errors(issuer: EmbeddedIssuer) -> None:
    with pytest.raises(ValueError, match="needs"):
        TokenVerifier(None)
    duplicate = OIDCIssuerConfig(issuer=ISS, audience=AUD, jwks_url="https://x.test/keys")
    with pytest.raises(ValueError, match="twice"):
        TokenVerifier(issuer, [duplicate])
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier(issuer, leeway=-1)
    with pytest.raises(ValueError, match="cache_size"):
        TokenVerifier(issuer, cache_size=-1)
