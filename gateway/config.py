"""Settings: one frozen object built from the home directory's optional `safeshare.toml` and the environment.

Everything that differs between a laptop trial and a council deployment lives here, so that handlers never
read the environment themselves.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import OIDCIssuerConfig
from .justification import ORG_TYPES

MiB = 1024 * 1024
DAY = 86400


@dataclass(frozen=True)
class Limits:
    """Size limits on every input; each one is reported back in the 413/422 that enforces it."""

    max_payload_bytes: int = 2 * 1024 * MiB
    max_json_bytes: int = 1 * MiB
    max_recipients: int = 50
    default_expiry_seconds: int = 30 * DAY
    max_expiry_seconds: int = 365 * DAY
    max_downloads_cap: int = 1000
    page_size_max: int = 500
    #: Connection guards (gateway/server.py). A request's headers must arrive within this many seconds.
    header_timeout_seconds: float = 10.0
    #: An idle kept-alive connection is closed after this long.
    keepalive_timeout_seconds: float = 15.0
    #: A request body that sends nothing for this long, while the gateway waits for it, is dropped.
    body_idle_timeout_seconds: float = 30.0
    #: Minimum upload rate, averaged over the window below (only while the gateway waits for bytes): 1 KiB/s
    #: over 60 s lets a large share over a slow, congested council line through and drops a trickle.
    min_upload_bytes_per_second: int = 1024
    min_upload_rate_window_seconds: float = 60.0
    #: Open connections at most; lowered automatically to stay below the open-file limit (RLIMIT_NOFILE).
    max_connections: int = 1000
    #: How long a client is asked to wait (Retry-After) when the gateway's storage is full.
    storage_full_retry_after_seconds: int = 300
    #: How long an Idempotency-Key is remembered (seconds).
    idempotency_key_ttl_seconds: int = DAY


@dataclass(frozen=True)
class PolicySettings:
    """`[policies]` in safeshare.toml: which edition of the golden rules each organisation works to.

    `org_default` maps an organisation (the token's `org` claim) to a policy id, e.g.
    `org_default = { "Northshire Children's Services" = "dfe-2024" }`; others get `default_policy`.
    `dir` names a folder of further editions (`<id>.json` each) loaded beside the packaged ones.
    """

    org_default: tuple[tuple[str, str], ...] = ()
    dir: str | None = None
    #: `org_type = { "Northshire Children's Services" = "public_authority" }`: what kind of organisation each is
    #: (a token's `org_type` claim takes precedence), so legitimate interests is refused to public authorities.
    org_type: tuple[tuple[str, str], ...] = ()
    #: `policy_document = { "Northshire Children's Services" = "APD-7@3" }`: the appropriate policy document
    #: (id@version) each organisation relies on for the Schedule 1 conditions that need one (DPA 2018 Sch 1 Part 4).
    policy_document: tuple[tuple[str, str], ...] = ()
    #: `emergency_complete_within_hours = { "Northshire Children's Services" = 12 }`: an organisation's own
    #: deadline for completing an emergency share's justification, instead of the policy's `x-emergency` one.
    emergency_hours: tuple[tuple[str, int], ...] = ()
    #: Dual control (issue 14): per organisation, the purposes and risk levels whose shares wait for a second
    #: person's approval, and the roles that may approve: `[policies.dual_control."Org"]` with `purposes`,
    #: `risk_levels` and `approvers` lists. Each item: (org, purposes, risk levels, approver roles).
    dual_control: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class AgreementSettings:
    """`[agreements]`: how shares are checked against the partnership's agreements (gateway/agreements.py)."""

    #: Must every share name an agreement (or say why none applies)? Off by default, so that justifications written
    #: without agreements (the shared contract examples, tools outside a partnership) keep working; a partnership
    #: turns it on once its agreements are loaded. Agreements a justification names are checked either way.
    required: bool = False
    #: What an agreement problem does by default: "refuse", or "override" (allowed with a recorded reason).
    on_problem: str = "refuse"
    #: Per sending organisation (the token's `org`), the same choice: {"Example Council" = "override"}.
    organisations: tuple[tuple[str, str], ...] = ()

    def overridable(self, org: str | None) -> bool:
        for name, choice in self.organisations:
            if org is not None and " ".join(name.split()).casefold() == " ".join(org.split()).casefold():
                return choice == "override"
        return self.on_problem == "override"


def _agreement_settings(raw: dict[str, Any], path: Path) -> AgreementSettings:
    unknown = set(raw) - {"required", "on_problem", "organisations"}
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) in [agreements]: {', '.join(sorted(unknown))}")
    orgs = raw.get("organisations", {})
    choices = [raw.get("on_problem", "refuse"), *orgs.values()]
    if any(c not in ("refuse", "override") for c in choices):
        raise ValueError(f'{path}: [agreements] choices must be "refuse" or "override"')
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise ValueError(f"{path}: [agreements] required must be true or false")
    return AgreementSettings(required, raw.get("on_problem", "refuse"), tuple(sorted(orgs.items())))


@dataclass(frozen=True)
class Settings:
    home: Path
    issuer: str = "safeshare-embedded"
    audience: str = "safeshare"
    #: Name used in the ledger's signed checkpoints (C2SP origin line and signed-note key name).
    log_origin: str = "safeshare.local/ledger"
    default_policy: str = "hmg-2018"
    limits: Limits = field(default_factory=Limits)
    agreements: AgreementSettings = field(default_factory=AgreementSettings)
    policies: PolicySettings = field(default_factory=PolicySettings)
    oidc: tuple[OIDCIssuerConfig, ...] = ()
    #: Accept tokens from the embedded issuer; a deployment on Entra ID alone turns this off.
    embedded_issuer: bool = True
    #: Origins allowed to call the API cross-origin (browser-extension origins, e.g. chrome-extension://ID).
    cors_origins: tuple[str, ...] = ()
    #: Organisational recovery key (age1…): when set, every share is also encrypted to it in a separate envelope
    #: that an administrator can release, with a recorded reason (court order, subject access request).
    escrow_recipient: str | None = None
    #: Verifier keys (C2SP vkey) of witnesses whose co-signatures on checkpoints the gateway accepts.
    witnesses: tuple[str, ...] = ()
    #: C2SP tlog-witnesses the gateway submits each checkpoint to: "<submission URL> <cosignature/v1 vkey>".
    tlog_witnesses: tuple[str, ...] = ()
    #: How often the checkpointer looks for new entries to sign (a new entry is covered within about this).
    checkpoint_interval_seconds: float = 0.5
    #: How often expired shares are looked for and crypto-shredded.
    expiry_sweep_seconds: float = 30.0
    #: How often a retention review is recorded in the ledger (issue 14); 0 turns the periodic review off.
    retention_review_seconds: float = 86400.0
    #: Public base URL, used in notification texts; defaults to the listening address.
    public_url: str | None = None
    #: SMTP relay for one-time claim codes (`smtp://[user:pass@]host:port[?starttls=1]` or `smtps://…`);
    #: the environment's SAFESHARE_SMTP_URL wins over safeshare.toml.
    smtp_url: str | None = None
    #: The From header of the gateway's e-mail.
    mail_from: str = "SafeShare <safeshare@localhost>"
    #: A key enrolled after an e-mail claim waits for an administrator's approval before shares are re-wrapped to it.
    claim_requires_approval: bool = False
    #: Also send a "a share is waiting for you" notice (no content) to each address a share is held for.
    notify_held: bool = False
    #: No relay: print the e-mail the gateway would send to standard output (set by `serve --dev`).
    dev_mail: bool = False
    #: The store (gateway/store/__init__.py): `postgresql://…`, `sqlite:///path` or a path; unset, SQLite in the
    #: home's data/ (`db_path`). `SAFESHARE_DATABASE` wins over safeshare.toml, `--database` over both.
    database: str | None = None
    #: Where envelopes live (store/envelopes.py): unset, in the database on PostgreSQL (every node reads them)
    #: and in the home's data/envelopes on SQLite; a path, that directory (on PostgreSQL: one every node mounts).
    #: `SAFESHARE_ENVELOPES` wins over safeshare.toml.
    envelopes: str | None = None
    #: Gateway processes `serve` runs on this home and port (gateway/workers.py): more use more cores. Each is a
    #: writer of the same database, as several nodes are (README, "Several nodes"). `SAFESHARE_WORKERS` wins over
    #: safeshare.toml, `serve --workers` over both.
    workers: int = 1

    #: Organisations (the `org` of a recipient, compared ignoring case and spacing; "*" for all) whose new
    #: keys must be post-quantum (age1pq1…): enrolments and recipients added with a classic age1… key are
    #: refused with `post_quantum_required`. Keys already in the directory keep working.
    post_quantum_required: tuple[str, ...] = ()

    def requires_post_quantum(self, org: str | None) -> bool:
        """Whether `org`'s new keys must be post-quantum (see `post_quantum_required`)."""
        wanted = {" ".join(name.split()).casefold() for name in self.post_quantum_required}
        return "*" in wanted or (org is not None and " ".join(org.split()).casefold() in wanted)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "safeshare.sqlite3"

    @property
    def database_url(self) -> str:
        """The database every command opens: `database` if set, else the home's SQLite file."""
        return self.database or f"sqlite://{self.db_path}"

    @property
    def envelopes_dir(self) -> Path:
        return Path(self.envelopes) if self.envelopes else self.data_dir / "envelopes"

    @property
    def envelopes_in_database(self) -> bool:
        """Envelopes in PostgreSQL: the default there, unless `envelopes` names a shared directory."""
        return self.envelopes is None and self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def token_key_path(self) -> Path:
        return self.keys_dir / "token-issuer.ed25519.pem"

    @property
    def ledger_key_path(self) -> Path:
        return self.keys_dir / "ledger-signing.ed25519.pem"

    @property
    def digest_key_path(self) -> Path:
        return self.keys_dir / "payload-digest.hmac"

    @property
    def holding_key_path(self) -> Path:
        """The gateway's holding key (age X25519): envelopes held for addresses that have no key yet."""
        return self.keys_dir / "holding.agekey"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """`--home`, then `SAFESHARE_HOME`, then the current directory (so a checkout's own `keys/` is used)."""
    chosen = home or os.environ.get("SAFESHARE_HOME") or os.getcwd()
    return Path(chosen).expanduser().resolve()


def load_settings(home: Path) -> Settings:
    """Read `home/safeshare.toml` if present; unknown keys are refused so typos do not silently weaken policy."""
    path = home / "safeshare.toml"
    raw: dict[str, Any] = {}
    if path.exists():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    limits_raw = raw.pop("limits", {})
    oidc_raw = raw.pop("oidc", [])
    agreements = _agreement_settings(raw.pop("agreements", {}), path)
    policies = _policies(path, raw.pop("policies", {}))
    known = {f for f in Settings.__dataclass_fields__ if f not in {"home", "limits", "oidc", "agreements", "policies"}}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
    for key in ("cors_origins", "witnesses", "tlog_witnesses", "post_quantum_required"):
        if key in raw:
            raw[key] = tuple(raw[key])
    oidc = tuple(_oidc_issuer(path, item) for item in oidc_raw)
    if os.environ.get("SAFESHARE_SMTP_URL"):
        raw["smtp_url"] = os.environ["SAFESHARE_SMTP_URL"]
    if os.environ.get("SAFESHARE_DATABASE"):
        raw["database"] = os.environ["SAFESHARE_DATABASE"]
    if os.environ.get("SAFESHARE_ENVELOPES"):
        raw["envelopes"] = os.environ["SAFESHARE_ENVELOPES"]
    if os.environ.get("SAFESHARE_WORKERS"):
        raw["workers"] = os.environ["SAFESHARE_WORKERS"]
    if "workers" in raw:
        raw["workers"] = parse_workers(raw["workers"], "workers")
    return Settings(home=home, limits=Limits(**limits_raw), policies=policies, oidc=oidc, agreements=agreements, **raw)


#: More workers than this is a typo: each is a whole gateway process with its own memory and connections.
MAX_WORKERS = 64


def parse_workers(value: object, where: str) -> int:
    """A worker count from safeshare.toml, the environment or the command line: a whole number, 1 to 64."""
    try:
        count = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else 0
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"{where} must be a whole number from 1 to {MAX_WORKERS}, not {value!r}")
    return count


def _policies(path: Path, table: Any) -> PolicySettings:
    """The `[policies]` table; unknown keys and non-text values refused (a typo must not change the rules)."""
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [policies] must be a table")
    unknown = set(table) - {
        "org_default",
        "dir",
        "org_type",
        "policy_document",
        "emergency_complete_within_hours",
        "dual_control",
    }
    if unknown:
        raise ValueError(f"{path}: unknown [policies] setting(s): {', '.join(sorted(unknown))}")
    mapped: dict[str, tuple[tuple[str, str], ...]] = {}
    for name, what in (
        ("org_default", "policy ids"),
        ("org_type", "organisation types"),
        ("policy_document", "id@version"),
    ):
        value = table.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"{path}: [policies] {name} must map organisation names to {what}")
        mapped[name] = tuple(sorted(value.items()))
    for org, kind in mapped["org_type"]:
        if kind not in ORG_TYPES:
            raise ValueError(f"{path}: [policies] org_type for {org!r} must be one of {', '.join(ORG_TYPES)}")
    for org, ref in mapped["policy_document"]:
        if ref.count("@") != 1 or not all(part.strip() for part in ref.split("@")):
            raise ValueError(f"{path}: [policies] policy_document for {org!r} must be 'id@version'")
    folder = table.get("dir")
    if folder is not None and not isinstance(folder, str):
        raise ValueError(f"{path}: [policies] dir must be a folder path")
    if folder is not None and not Path(folder).is_absolute():
        folder = str(path.parent / folder)
    hours = table.get("emergency_complete_within_hours", {})
    if not isinstance(hours, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 24 * 14
        for k, v in hours.items()
    ):
        raise ValueError(
            f"{path}: [policies] emergency_complete_within_hours must map organisation names to hours (1 to 336)"
        )
    return PolicySettings(
        org_default=mapped["org_default"],
        dir=folder,
        org_type=mapped["org_type"],
        policy_document=mapped["policy_document"],
        emergency_hours=tuple(sorted(hours.items())),
        dual_control=_dual_control(path, table.get("dual_control", {})),
    )


def _dual_control(path: Path, table: Any) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]:
    """`[policies.dual_control."Org"]`: lists of text only, approvers required (a rule nobody can approve would
    hold shares for ever)."""
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [policies.dual_control] must map organisation names to tables")
    out = []
    for org, rule in sorted(table.items()):
        if not isinstance(rule, dict) or set(rule) - {"purposes", "risk_levels", "approvers"}:
            raise ValueError(f"{path}: [policies.dual_control.{org!r}] takes purposes, risk_levels and approvers")
        lists = [rule.get(k, []) for k in ("purposes", "risk_levels", "approvers")]
        if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists) or not lists[2]:
            raise ValueError(f"{path}: [policies.dual_control.{org!r}] needs lists of text, and at least one approver")
        out.append((org, tuple(lists[0]), tuple(lists[1]), tuple(lists[2])))
    return tuple(out)


def _oidc_issuer(path: Path, item: dict[str, Any]) -> OIDCIssuerConfig:
    """One `[[oidc]]` table: unknown keys refused like the top-level ones, TOML arrays made tuples."""
    unknown = set(item) - set(OIDCIssuerConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown [[oidc]] setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {k: tuple(v) if k in ("algorithms", "scopes") else v for k, v in item.items()}
    return OIDCIssuerConfig(**values)
