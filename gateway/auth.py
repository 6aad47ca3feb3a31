"""Bearer-JWT authentication and role authorisation.

Everything an attacker controls (the token) is treated as hostile until its signature has been checked
with a key and an algorithm that come *only* from our own configuration: the unverified ``iss`` claim
merely selects which configured issuer to try, and the unverified header only selects a key id within
that issuer's key set. This closes the classic JWT holes (``alg: none``, HMAC-with-public-key confusion,
attacker-supplied ``jku``/``jwk`` keys) by construction rather than by blacklist.

The module is deliberately free of aiohttp request handling: the middleware calls :func:`bearer_token`,
:meth:`TokenVerifier.verify` and :func:`require`, and turns :class:`AuthError` / :class:`Forbidden` into
responses. Tokens are never logged and never quoted in error messages, because error bodies end up in
logs and screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import math
import pathlib
import re
import secrets
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeVar

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

from . import keyfiles

__all__ = [
    "AUTH_ERROR_CODES",
    "MAX_TOKEN_BYTES",
    "ADVISER_ROLES",
    "ROLES",
    "SUPPORTED_ALGORITHMS",
    "AuthError",
    "EmbeddedIssuer",
    "EmbeddedIssuerConfig",
    "Forbidden",
    "OIDCIssuerConfig",
    "Principal",
    "TokenVerifier",
    "bearer_token",
    "load_or_create_ed25519_key",
    "require",
]

log = logging.getLogger(__name__)

#: A private key type that `load_or_create_private_key` can write and read back (PKCS#8 PEM).
K = TypeVar("K", Ed25519PrivateKey, MLDSA44PrivateKey)

#: `admin` and `auditor` act within the token's own organisation (`org`); `partnership_admin` and
#: `partnership_auditor` act across every organisation on the gateway and are granted separately, never implied
#: (see gateway/tenancy.py).
#: Advisers a practitioner may ask before deciding (issue 14): designated safeguarding lead, manager, data protection
#: officer, Caldicott Guardian, legal; each answers the questions put to its role within its own organisation.
ADVISER_ROLES: Final = ("dsl", "manager", "dpo", "caldicott_guardian", "legal")
ROLES: Final = frozenset(
    {"practitioner", "recipient", "auditor", "admin", "partnership_admin", "partnership_auditor", *ADVISER_ROLES}
)

AUTH_ERROR_CODES: Final = frozenset(
    {
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
)

#: Real tokens (even Entra ones with many roles) are 1-4 KiB; the cap bounds parsing work on hostile input.
MAX_TOKEN_BYTES: Final = 8 * 1024
#: A JWKS is a handful of keys; a multi-megabyte answer is a misconfiguration or an attack.
MAX_JWKS_BYTES: Final = 512 * 1024
JWKS_FETCH_TIMEOUT: Final = 5.0
MAX_TTL: Final = 30 * 24 * 3600
MAX_LEEWAY: Final = 300

_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS: Final[Mapping[str, type[ec.EllipticCurve]]] = MappingProxyType(
    {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
)
#: Asymmetric algorithms only: a symmetric (HS*) algorithm verified against a *public* key is the
#: key-confusion attack, and "none" is no signature at all, so neither can ever be configured.
SUPPORTED_ALGORITHMS: Final = frozenset(_RSA_ALGORITHMS | set(_EC_ALGORITHMS) | {"EdDSA"})
_EMBEDDED_ALGORITHMS: Final = frozenset({"EdDSA"})
_MIN_RSA_BITS: Final = 2048

#: This JWS instance does not even know "none" or HS*, as a second line of defence behind our allow-lists.
_JWS: Final = jwt.PyJWS(algorithms=sorted(SUPPORTED_ALGORITHMS), options={"enforce_minimum_key_length": True})

_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})

VerifyKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


# --------------------------------------------------------------------------------------------- errors


class AuthError(Exception):
    """Authentication failed (401). ``code`` is stable so clients branch on it rather than on prose."""

    status: int = 401

    def __init__(self, code: str, message: str) -> None:
        if code not in AUTH_ERROR_CODES:
            raise ValueError(f"unknown auth error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def www_authenticate(self) -> str:
        """RFC 6750 challenge; a request with no credentials gets no error attribute, per §3.1."""
        if self.code == "token_missing":
            return 'Bearer realm="safeshare"'
        return f'Bearer realm="safeshare", error="invalid_token", error_description="{self.code}"'


class Forbidden(Exception):
    """Authenticated but lacking a role (403); kept apart from AuthError so a client does not re-login."""

    code: str = "forbidden"
    status: int = 403

    def __init__(self, message: str = "You do not have a role that permits this action.") -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------------------------------ principal


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a verified token; immutable so it can be cached and shared."""

    sub: str
    roles: frozenset[str]
    org: str | None
    issuer: str
    expires_at: int
    #: Standard OIDC profile claims, when the token carries them (used for recipient self-enrolment).
    email: str | None = None
    name: str | None = None
    #: Who decided, in the record (issue 19): the practitioner's job title (``job_title``, or Entra's ``jobTitle``).
    job_title: str | None = None
    #: The kind of organisation (``org_type`` claim), which decides e.g. whether legitimate interests is available.
    org_type: str | None = None
    #: The organisation's name for people to read (``org_name`` claim), beside `org`, its identifier (issue 13).
    org_name: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles


def require(principal: Principal, *roles: str) -> None:
    """Raise Forbidden unless the principal holds at least one of ``roles``.

    An empty or misspelt role list is a programming error, not a denial: silently denying would hide the
    typo, silently allowing would be worse.
    """
    if not roles:
        raise ValueError("require() needs at least one role")
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
    if not any(principal.has(role) for role in roles):
        raise Forbidden(f"This action requires one of the roles: {', '.join(sorted(set(roles)))}.")


def bearer_token(authorization_header: str | None) -> str:
    """Extract the token from an ``Authorization: Bearer`` header, refusing anything we would not verify."""
    if authorization_header is None:
        raise AuthError("token_missing", "No Authorization header; send 'Authorization: Bearer <token>'.")
    if len(authorization_header) > MAX_TOKEN_BYTES + 64:
        raise AuthError("token_malformed", f"The Authorization header is larger than {MAX_TOKEN_BYTES} bytes.")
    value = authorization_header.strip()
    if not value:
        raise AuthError("token_missing", "The Authorization header is empty.")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("token_malformed", "The Authorization scheme must be 'Bearer'.")
    credentials = credentials.strip(" ")
    if not credentials:
        raise AuthError("token_missing", "The Bearer credentials are empty.")
    if len(credentials) > MAX_TOKEN_BYTES:
        raise AuthError("token_malformed", f"The token is larger than {MAX_TOKEN_BYTES} bytes.")
    if not _COMPACT_JWS.fullmatch(credentials):
        raise AuthError("token_malformed", "The token is not a compact JWT (three base64url segments).")
    return credentials


# -------------------------------------------------------------------------------------------- key file


def load_or_create_ed25519_key(path: pathlib.Path) -> Ed25519PrivateKey:
    """Load the signing key, creating it on first run.

    Creation is atomic and never replaces an existing file: the key is written to a private temporary
    file and hard-linked into place, so a crash never leaves a half-written key and two processes racing
    on first start end up sharing one key instead of each minting tokens the other cannot verify.
    """
    return load_or_create_private_key(path, Ed25519PrivateKey, Ed25519PrivateKey.generate)


def load_or_create_private_key(path: pathlib.Path, kind: type, generate: Callable[[], K]) -> K:
    """`load_or_create_ed25519_key` for any PKCS#8-serialisable key type (e.g. the ledger's ML-DSA-44 key).

    Created crash-safely by `keyfiles.load_or_create` (temp file, fsync, link, directory fsync)."""

    def make() -> bytes:
        return generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    return keyfiles.load_or_create(
        pathlib.Path(path), make, lambda data: _parse_private_key(path, data, kind, generate)
    )


def _key_kind(cls: type) -> str:
    """A key class in words, with its article: "an Ed25519 private key", "an MLDSA44 private key"."""
    name = cls.__name__.removesuffix("PrivateKey")
    return f"{'an' if name[:1] in 'AEFHILMNORSX' else 'a'} {name} private key"


def _parse_private_key(path: pathlib.Path, data: bytes, kind: type, _: Callable[[], K]) -> K:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, kind):
        raise ValueError(f"{path} holds {_key_kind(type(key))}, not {_key_kind(kind)}")
    return key  # type: ignore[return-value]  # checked by isinstance against the class `generate` makes


# ------------------------------------------------------------------------------------------- issuers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_kid(public_key: Ed25519PublicKey) -> str:
    """Key id derived from the key itself, so issuer and verifier agree without sharing state."""
    return hashlib.sha256(_raw_public_bytes(public_key)).hexdigest()[:16]


@dataclass(frozen=True)
class EmbeddedIssuerConfig:
    """What a verifier needs to trust the embedded issuer: the public key only, never the private key."""

    public_key: Ed25519PublicKey
    issuer: str
    audience: str

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, Ed25519PublicKey):
            raise TypeError("public_key must be an Ed25519PublicKey")
        _require_text("issuer", self.issuer)
        _require_text("audience", self.audience)

    @property
    def kid(self) -> str:
        return ed25519_kid(self.public_key)


class EmbeddedIssuer:
    """Mints EdDSA tokens for deployments without an external identity provider (and for tests/CLI)."""

    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, audience: str) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        _require_text("issuer", issuer)
        _require_text("audience", audience)
        self._private_key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.issuer = issuer
        self.audience = audience
        self.kid: str = ed25519_kid(self.public_key)

    def config(self) -> EmbeddedIssuerConfig:
        return EmbeddedIssuerConfig(self.public_key, self.issuer, self.audience)

    def issue(
        self,
        sub: str,
        roles: Iterable[str],
        org: str | None = None,
        ttl: int = 3600,
        now: int | None = None,
        email: str | None = None,
        name: str | None = None,
        extra: Mapping[str, str] | None = None,
        org_name: str | None = None,
    ) -> str:
        """Sign a token; roles are validated here so a typo fails at issue time, not as a silent denial.

        `extra`: further text claims that do not clash with the standard ones (e.g. `claim`: the share an
        e-mail claim token was issued for)."""
        _require_text("sub", sub)
        if isinstance(roles, str):
            raise ValueError("roles must be an iterable of role names, not a single string")
        role_set = frozenset(roles)
        unknown = role_set - ROLES
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(map(str, unknown)))}")
        if org is not None:
            _require_text("org", org)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"ttl must be an integer number of seconds between 1 and {MAX_TTL}")
        issued_at = int(time.time()) if now is None else int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "roles": sorted(role_set),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl,
            "jti": secrets.token_urlsafe(16),
        }
        if org is not None:
            claims["org"] = org
        for claim, value in (("email", email), ("name", name), ("org_name", org_name)):
            if value is not None:
                _require_text(claim, value)
                claims[claim] = value
        for claim, value in (extra or {}).items():
            if claim in claims or claim in ("roles", "org", "email", "name", "org_name"):
                raise ValueError(f"extra claim {claim!r} clashes with a standard one")
            _require_text(claim, value)
            claims[claim] = value
        return jwt.encode(claims, self._private_key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"})

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url(_raw_public_bytes(self.public_key)),
                    "kid": self.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                }
            ]
        }


@dataclass(frozen=True)
class OIDCIssuerConfig:
    """An external identity provider (e.g. Microsoft Entra ID) whose access tokens we accept.

    ``roles_claim`` and ``org_claim`` may be dotted paths into nested claims (``realm_access.roles``); a
    claim whose literal name contains dots (Auth0-style ``https://example.org/roles``) is matched first.
    With an empty ``role_map`` role names are taken as-is; with a non-empty one *only* mapped names count,
    so an IdP group that happens to be called "admin" cannot grant admin by accident.
    """

    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    roles_claim: str = "roles"
    role_map: Mapping[str, str] = field(default_factory=dict)
    org_claim: str | None = None
    default_org: str | None = None
    jwks_ttl: int = 3600
    jwks_min_refresh: int = 60
    #: For interactive sign-in by clients (the browser extension's OAuth authorization-code + PKCE flow).
    #: Public values only: no client secret is ever configured here.
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    client_id: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")

    def __post_init__(self) -> None:
        _require_text("issuer", self.issuer)
        _require_text("audience", self.audience)
        _require_text("jwks_url", self.jwks_url)
        url = urllib.parse.urlsplit(self.jwks_url)
        if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in _LOOPBACK_HOSTS)):
            raise ValueError(f"jwks_url for {self.issuer} must be https (plain http only for loopback)")
        algorithms = tuple(self.algorithms)
        if not algorithms:
            raise ValueError("algorithms must not be empty")
        refused = set(algorithms) - SUPPORTED_ALGORITHMS
        if refused:
            raise ValueError(
                f"algorithm(s) {', '.join(sorted(refused))} not allowed; choose from "
                f"{', '.join(sorted(SUPPORTED_ALGORITHMS))}"
            )
        object.__setattr__(self, "algorithms", algorithms)
        _require_text("roles_claim", self.roles_claim)
        bad_targets = {v for v in self.role_map.values() if v not in ROLES}
        if bad_targets:
            raise ValueError(f"role_map targets must be roles; got {', '.join(sorted(map(str, bad_targets)))}")
        object.__setattr__(self, "role_map", MappingProxyType(dict(self.role_map)))
        if self.org_claim is not None:
            _require_text("org_claim", self.org_claim)
        if self.default_org is not None:
            _require_text("default_org", self.default_org)
        if self.jwks_ttl < 1 or self.jwks_min_refresh < 0:
            raise ValueError("jwks_ttl must be >= 1 and jwks_min_refresh >= 0")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


# ------------------------------------------------------------------------------------- claim parsing


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e999" parses to inf and would make an exp check meaningless
        raise ValueError("non-finite number")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # parsers disagree on duplicates; refuse rather than pick one
        raise ValueError("duplicate key")
    return result


def _profile_text(value: Any, cap: int = 320) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() and len(value) <= cap else None


def _profile_email(claims: Mapping[str, Any]) -> str | None:
    """`email`, or Entra's `preferred_username` when it is an address (Entra omits `email` by default)."""
    for claim in ("email", "preferred_username"):
        value = _profile_text(claims.get(claim))
        if value is not None and "@" in value:
            return value.lower()
    return None


def _decode_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise AuthError("token_malformed", f"The token {what} is not valid base64url JSON.") from None
    if not isinstance(value, dict):
        raise AuthError("token_malformed", f"The token {what} is not a JSON object.")
    return value


def _claim_at(claims: Mapping[str, Any], path: str) -> Any:
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _numeric_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AuthError("token_claims_invalid", f"The token has no '{name}' claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError("token_claims_invalid", f"The token's '{name}' claim is not a number.")
    return value


def _role_names(value: Any, claim: str, *, allow_single: bool) -> list[str]:
    if value is None:
        return []
    if allow_single and isinstance(value, str):  # some IdPs emit a bare string when there is one role
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise AuthError("token_claims_invalid", f"The token's '{claim}' claim is not a list of strings.")


def _org_value(value: Any, claim: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    raise AuthError("token_claims_invalid", f"The token's '{claim}' claim is not a non-empty string.")


# ------------------------------------------------------------------------------------ issuer runtime


@dataclass(frozen=True)
class _Jwk:
    key: VerifyKey
    alg: str | None


def _key_fits(alg: str, key: VerifyKey) -> bool:
    """Whether ``key`` is the right family for ``alg``: this is what makes algorithm confusion impossible."""
    if alg in _RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS
    curve = _EC_ALGORITHMS.get(alg)
    if curve is not None:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _parse_jwks(document: Any, source: str) -> dict[str, _Jwk] | None:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        log.warning("JWKS from %s has no 'keys' list; ignoring it", source)
        return None
    keys: dict[str, _Jwk] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        key_ops = entry.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        if "d" in entry:
            log.warning("JWKS from %s publishes private key material for kid %s; ignoring that key", source, kid)
            continue
        alg = entry.get("alg")
        if alg is not None and alg not in SUPPORTED_ALGORITHMS:
            continue
        try:
            parsed = jwt.PyJWK(entry).key
        except Exception:  # one unusable key must not poison the whole set
            log.debug("skipping unusable JWK %s from %s", kid, source)
            continue
        if not isinstance(parsed, VerifyKey):
            continue
        keys[kid] = _Jwk(parsed, alg)
    return keys


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _EmbeddedState:
    def __init__(self, config: EmbeddedIssuerConfig) -> None:
        self.issuer = config.issuer
        self.audience = config.audience
        self.algorithms = _EMBEDDED_ALGORITHMS
        self._key = config.public_key
        self._kid = config.kid.encode("ascii")

    async def key_for(self, kid: str | None, alg: str) -> VerifyKey:
        if kid is None or not hmac.compare_digest(kid.encode("utf-8"), self._kid):
            raise AuthError("token_key_unknown", "The token was not signed by this service's current key.")
        return self._key

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(
            name for name in _role_names(claims.get("roles"), "roles", allow_single=False) if name in ROLES
        )

    def org(self, claims: Mapping[str, Any]) -> str | None:
        return _org_value(claims.get("org"), "org")


class _OIDCState:
    """JWKS cache for one external issuer, refreshed with aiohttp so the event loop never blocks."""

    def __init__(self, config: OIDCIssuerConfig, verifier: TokenVerifier) -> None:
        self.config = config
        self.issuer = config.issuer
        self.audience = config.audience
        self.algorithms = frozenset(config.algorithms)
        self._verifier = verifier
        self._keys: dict[str, _Jwk] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        #: The one fetch in flight, shared by every request that needs it (see _lookup).
        self._refreshing: asyncio.Task[None] | None = None

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self.config.jwks_ttl

    def _may_fetch(self, now: float) -> bool:
        # Failures are rate-limited too, so an unreachable IdP is not hammered once per request.
        return self._last_attempt is None or now - self._last_attempt >= self.config.jwks_min_refresh

    async def key_for(self, kid: str | None, alg: str) -> VerifyKey:
        if kid is None:
            raise AuthError("token_key_unknown", "The token has no 'kid' header to select a signing key.")
        jwk = await self._lookup(kid)
        if jwk is None:
            if self._fetched_at is None:
                raise AuthError(
                    "token_key_unknown",
                    "The token's signing key is unknown: the issuer's key set could not be fetched.",
                )
            raise AuthError("token_key_unknown", "The token's signing key is not in the issuer's key set.")
        if (jwk.alg is not None and jwk.alg != alg) or not _key_fits(alg, jwk.key):
            raise AuthError("token_algorithm_not_allowed", "The token's algorithm does not match its signing key.")
        return jwk.key

    async def _lookup(self, kid: str) -> _Jwk | None:
        """Find ``kid``, fetching the key set when it is missing or stale and the rate limit allows.

        A known but stale key is served at once while a background refresh runs (the IdP being slow or
        down must not stall every request). An unknown kid waits for the fetch: after a restart or a key
        rotation every request needs the new keys. All callers share one fetch task, shielded so that a
        client disconnecting does not cancel it for everyone else.
        """
        now = self._verifier.clock()
        known = self._keys.get(kid)
        if known is not None:
            if not self._fresh(now):
                self._start_refresh(now)
            return known
        self._start_refresh(now)
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
        return self._keys.get(kid)

    def _start_refresh(self, now: float) -> None:
        if self._refreshing is None and self._may_fetch(now):
            self._last_attempt = now  # set before any await, so concurrent callers see the attempt
            self._refreshing = asyncio.create_task(self._refresh(now))

    async def _refresh(self, started: float) -> None:
        try:
            fetched = await self._verifier._fetch_jwks(self.config.jwks_url)
            if fetched is not None:
                self._keys = fetched  # replace, so keys the IdP withdrew stop working
                self._fetched_at = started
        except Exception:  # a bug here must become a 401, never a crashed request
            log.exception("JWKS refresh for %s failed unexpectedly", self.issuer)
        finally:
            self._refreshing = None

    async def close(self) -> None:
        task = self._refreshing
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        claim = self.config.roles_claim
        names = _role_names(_claim_at(claims, claim), claim, allow_single=True)
        role_map = self.config.role_map
        if role_map:
            return frozenset(role_map[name] for name in names if name in role_map)
        return frozenset(name for name in names if name in ROLES)

    def org(self, claims: Mapping[str, Any]) -> str | None:
        if self.config.org_claim is None:
            return self.config.default_org
        value = _org_value(_claim_at(claims, self.config.org_claim), self.config.org_claim)
        return self.config.default_org if value is None else value


_IssuerState: TypeAlias = _EmbeddedState | _OIDCState


# ------------------------------------------------------------------------------------------ verifier


class TokenVerifier:
    """Verifies bearer tokens from the embedded issuer and/or configured OIDC issuers.

    Verified principals are cached (bounded LRU keyed by the token's SHA-256) because signature checks
    dominate request cost; a cached entry is only served while ``clock() < exp``, so caching can never
    extend a token's life. Pass ``http`` to share the application's ClientSession (it is then not closed
    here); otherwise one is created lazily and closed by :meth:`close`.
    """

    def __init__(
        self,
        embedded: EmbeddedIssuer | EmbeddedIssuerConfig | None = None,
        oidc: Sequence[OIDCIssuerConfig] = (),
        *,
        leeway: int = 30,
        cache_size: int = 10_000,
        http: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be an integer between 0 and {MAX_LEEWAY} seconds")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        states: list[_IssuerState] = []
        if isinstance(embedded, EmbeddedIssuer):
            embedded = embedded.config()
        if embedded is not None:
            states.append(_EmbeddedState(embedded))
        states.extend(_OIDCState(config, self) for config in oidc)
        if not states:
            raise ValueError("TokenVerifier needs the embedded issuer, at least one OIDC issuer, or both")
        self._issuers: dict[str, _IssuerState] = {}
        for state in states:
            if state.issuer in self._issuers:
                raise ValueError(f"issuer {state.issuer!r} is configured twice")
            self._issuers[state.issuer] = state
        self._algorithms = frozenset().union(*(state.algorithms for state in states))
        self.leeway = leeway
        self.clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, Principal] = OrderedDict()
        self._http = http
        self._owns_http = http is None
        self._closed = False

    async def verify(self, token: str) -> Principal:
        """Return the token's principal or raise AuthError; never an unverified or expired principal."""
        if not isinstance(token, str) or not token:
            raise AuthError("token_missing", "No token was presented.")
        encoded = token.encode("utf-8", "surrogatepass")
        if len(encoded) > MAX_TOKEN_BYTES:
            raise AuthError("token_malformed", f"The token is larger than {MAX_TOKEN_BYTES} bytes.")

        now = self.clock()
        cache_key = hashlib.sha256(encoded).digest()
        cached = self._cache.get(cache_key)
        if cached is not None:
            if now < cached.expires_at:
                self._cache.move_to_end(cache_key)
                return cached
            del self._cache[cache_key]  # fall through: full verification decides (leeway applies there)

        principal = await self._verify_uncached(token, now)
        if self._cache_size and now < principal.expires_at:
            self._cache[cache_key] = principal
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    async def _verify_uncached(self, token: str, now: float) -> Principal:
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthError("token_malformed", "The token is not a compact JWT (three base64url segments).")
        header_segment, payload_segment, _ = token.split(".")
        header = _decode_segment(header_segment, "header")
        claims = _decode_segment(payload_segment, "payload")

        alg = header.get("alg")
        if not isinstance(alg, str):
            raise AuthError("token_malformed", "The token header has no 'alg'.")
        if "crit" in header or "b64" in header:
            raise AuthError("token_malformed", "The token header uses JWS extensions this service does not accept.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("token_malformed", "The token header's 'kid' is not a string.")
        if kid is not None and (len(kid) > 256 or not kid.isprintable() or not _encodable(kid)):
            # JSON escapes can carry lone surrogates ("\ud800") or control characters; no key is named so.
            raise AuthError("token_malformed", "The token header's 'kid' is not a usable key identifier.")
        if alg not in self._algorithms:
            raise AuthError("token_algorithm_not_allowed", "The token's signing algorithm is not accepted.")

        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthError("token_claims_invalid", "The token has no 'iss' claim.")
        state = self._issuers.get(iss)
        if state is None:
            raise AuthError("token_issuer_invalid", "The token was issued by an issuer this service does not trust.")
        if alg not in state.algorithms:
            raise AuthError(
                "token_algorithm_not_allowed",
                "The token's signing algorithm is not accepted from its issuer.",
            )

        key = await state.key_for(kid, alg)
        _verify_signature(token, key, alg, payload_segment)
        return self._principal(state, claims, now)

    def _principal(self, state: _IssuerState, claims: Mapping[str, Any], now: float) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("token_claims_invalid", "The token has no 'sub' claim.")
        exp = _numeric_claim(claims, "exp", required=True)
        iat = _numeric_claim(claims, "iat", required=True)
        nbf = _numeric_claim(claims, "nbf", required=False)
        assert exp is not None and iat is not None
        aud = claims.get("aud")
        if aud is None:
            raise AuthError("token_claims_invalid", "The token has no 'aud' claim.")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
            raise AuthError("token_claims_invalid", "The token's 'aud' claim is not a string or list of strings.")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise AuthError("token_claims_invalid", "The token's 'jti' claim is not a string.")
        roles = state.roles(claims)
        org = state.org(claims)

        if state.audience not in audiences:
            raise AuthError("token_audience_invalid", "The token was issued for a different audience.")
        if exp <= now - self.leeway:
            raise AuthError("token_expired", "The token has expired; obtain a new one.")
        if nbf is not None and nbf > now + self.leeway:
            raise AuthError("token_not_yet_valid", "The token is not valid yet (nbf is in the future).")
        if iat > now + self.leeway:
            raise AuthError("token_not_yet_valid", "The token is not valid yet (iat is in the future).")
        return Principal(
            sub=sub,
            roles=roles,
            org=org,
            issuer=state.issuer,
            expires_at=math.floor(exp),
            email=_profile_email(claims),
            name=_profile_text(claims.get("name")),
            job_title=_profile_text(claims.get("job_title"), 200) or _profile_text(claims.get("jobTitle"), 200),
            org_type=_profile_text(claims.get("org_type"), 64),
            org_name=_profile_text(claims.get("org_name"), 200),
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _fetch_jwks(self, url: str) -> dict[str, _Jwk] | None:
        """Fetch and parse a JWKS; ``None`` on any failure so callers keep whatever keys they had."""
        if self._closed:
            return None
        try:
            async with self._session().get(
                url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=JWKS_FETCH_TIMEOUT),
                headers={"Accept": "application/json, application/jwk-set+json"},
            ) as response:
                if response.status != 200:
                    log.warning("JWKS fetch from %s failed: HTTP %d", url, response.status)
                    return None
                body = bytearray()
                async for chunk in response.content.iter_any():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        log.warning("JWKS from %s exceeds %d bytes; ignoring it", url, MAX_JWKS_BYTES)
                        return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("JWKS fetch from %s failed: %s", url, type(exc).__name__)
            return None
        try:
            document = json.loads(bytes(body))
        except (ValueError, RecursionError):
            log.warning("JWKS from %s is not JSON; ignoring it", url)
            return None
        return _parse_jwks(document, url)

    async def close(self) -> None:
        self._closed = True
        for state in self._issuers.values():
            if isinstance(state, _OIDCState):
                await state.close()
        if self._owns_http and self._http is not None:
            await self._http.close()
        self._http = None


def _verify_signature(token: str, key: VerifyKey, alg: str, payload_segment: str) -> None:
    """Signature check via pyjwt, pinned to the one algorithm our configuration allowed for this key."""
    try:
        verified = _JWS.decode_complete(token, key=key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise AuthError("token_signature_invalid", "The token's signature is not valid.") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("token_algorithm_not_allowed", "The token's signing algorithm is not accepted.") from None
    except (jwt.InvalidKeyError, TypeError, ValueError):
        raise AuthError("token_signature_invalid", "The token's signature cannot be checked with its key.") from None
    except jwt.InvalidTokenError:
        raise AuthError("token_malformed", "The token could not be parsed.") from None
    # Belt and braces: the claims we evaluate must be exactly the bytes the signature covered.
    if verified["payload"] != base64.urlsafe_b64decode(payload_segment + "=" * (-len(payload_segment) % 4)):
        raise AuthError("token_signature_invalid", "The token's signature does not cover its claims.")
