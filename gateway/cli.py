"""`safeshare`: the command line over the gateway library (init, serve, recipient, token, fetch, ledger).

Output meant for other programs (a token, a recipient list with --json) goes to stdout alone; guidance and
progress go to stderr, so `TOKEN=$(safeshare token issue ...)` just works.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import logging
import mimetypes
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__, envelope
from . import disclosure as disclosure_rules
from .auth import ROLES, EmbeddedIssuer, load_or_create_ed25519_key
from .cli_progress import counting, progress
from .config import Settings, load_settings, parse_workers, resolve_home
from .home import init_home, ledger_head_path, open_ledger_store
from .justification import PolicyRegistry
from .keyfiles import EmptyKeyFile
from .ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    open_note,
    split_note,
    verify_checkpoint,
)
from .ledger.entry import actor
from .ledger.signer import LedgerSigner
from .ledger.verify import document_problems, verify_remote
from .ledger.verify_parallel import verify_ranges
from .ledger.witness import Witness, WitnessRefusal
from .mail import parse_smtp_url
from .partnership import retirement
from .refusals import Refusal
from .service import Gateway
from .store import StoreError, describe, ledger_snapshot, migrate
from .store.models import Recipient

log = logging.getLogger("safeshare.cli")

DEV_TOKEN_TTL = 12 * 3600
DEMO_RECIPIENT = "demo-recipient"
DEMO_DETAILS = ("Demo Recipient", "Demo MASH", "demo@example.org")  # name, organisation, e-mail
#: The names `serve --dev`'s tokens carry (the recipient's is DEMO_DETAILS's), so what people read is a name.
DEV_NAMES = {
    "practitioner": "Demo Practitioner",
    "auditor": "Demo Auditor",
    "admin": "Demo Administrator",
    "partnership_admin": "Demo Partnership Administrator",
    "partnership_auditor": "Demo Partnership Auditor",
}


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(resolve_home(args.home))
    except ValueError as exc:  # safeshare.toml or the environment says something the gateway cannot use
        raise CliError(str(exc), 2) from None
    database = getattr(args, "database", None)
    settings = dataclasses.replace(settings, database=database) if database else settings
    workers = getattr(args, "workers", None)
    return dataclasses.replace(settings, workers=workers) if workers is not None else settings


class CliError(Exception):
    """Every command's failure: raised anywhere, caught once in `main`, printed one way by `_err` (exit `status`:
    1 refused or failed, 2 bad usage or input, 3 `ledger verify` found nothing signed to check against)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _err(msg: str) -> None:
    """The one error format of every command (argparse's own usage errors read the same way)."""
    print(f"safeshare: error: {msg}", file=sys.stderr)


def _warn(msg: str) -> None:
    print(f"safeshare: warning: {msg}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    init_home(settings)
    migrate(settings.database_url)
    print(f"SafeShare home ready at {settings.home}", file=sys.stderr)
    print(f"  keys: {settings.keys_dir}  (never commit these)", file=sys.stderr)
    print(f"  data: {settings.data_dir}", file=sys.stderr)
    return 0


async def _with_gateway(settings: Settings, fn: Any) -> Any:
    keys = init_home(settings)
    store = await open_ledger_store(settings, keys, LedgerSigner(settings.log_origin, keys.ledger_key).verifier())
    try:
        gw = Gateway(
            settings,
            store,
            PolicyRegistry.builtin(settings.default_policy, dict(settings.policies.org_default), settings.policies.dir),
            keys.digest_key,
            LedgerSigner(settings.log_origin, keys.ledger_key, keys.ledger_pq_key),
        )
        await gw.agreements.import_document_files()  # as `serve` does: documents from before the database had them
        return await fn(gw)
    finally:
        await store.close()


def _cli_actor() -> dict[str, Any]:
    """Administrative CLI actions are recorded as the local operating-system user."""
    try:
        user = os.getlogin()
    except OSError:
        user = os.environ.get("USER") or str(os.getuid())
    return actor(f"cli:{user}", "admin", None, "local-cli")


def _run_admin(args: argparse.Namespace, action: Any) -> Any:
    """Run one administrative use case against the home's store; a refusal reaches `main`, which prints it."""
    return asyncio.run(_with_gateway(_settings(args), action))


def cmd_recipient_add(args: argparse.Namespace) -> int:
    rec = Recipient(args.id, args.name, args.org, args.email, args.age_recipient)
    index = _run_admin(args, lambda gw: gw.directory.add_recipient(_cli_actor(), rec))
    print(f"recipient {args.id} added (ledger index {index})", file=sys.stderr)
    return 0


def cmd_recipient_list(args: argparse.Namespace) -> int:
    async def run(gw: Gateway) -> list[Recipient]:
        return await gw.store.list_recipients(None, include_disabled=True, limit=100000)

    found = asyncio.run(_with_gateway(_settings(args), run))
    if args.json:
        print(json.dumps([r.public() for r in found], indent=2))
        return 0
    for r in found:
        print(f"{r.id}\t{r.status}\t{r.org}\t{r.email}\t{r.name}\t{r.age_recipient}")
    return 0


def cmd_recipient_disable(args: argparse.Namespace) -> int:
    index = _run_admin(args, lambda gw: gw.directory.disable_recipient(_cli_actor(), args.id))
    print(f"recipient {args.id} disabled (ledger index {index})", file=sys.stderr)
    return 0


def cmd_recipient_decide(args: argparse.Namespace) -> int:
    approve = args.action == "approve"
    result = _run_admin(
        args, lambda gw: gw.decide_enrolment(_cli_actor(), args.id, approve, getattr(args, "reason", None))
    )
    e = result["enrolment"]
    print(
        f"enrolment {e['id']} for {args.id} {e['status']} (key {e['age_recipient']}, ledger index "
        f"{result['ledger_index']})",
        file=sys.stderr,
    )
    return 0


def cmd_recipient_pending(args: argparse.Namespace) -> int:
    async def run(gw: Gateway) -> list[Any]:
        return await gw.store.enrolments(status="pending")

    for e in asyncio.run(_with_gateway(_settings(args), run)):
        print(f"{e.recipient_id}\t{e.requested_at}\t{e.org}\t{e.email}\t{e.name}\t{e.age_recipient}")
    return 0


def cmd_team_add(args: argparse.Namespace) -> int:
    index = _run_admin(args, lambda gw: gw.directory.add_team(_cli_actor(), args.id, args.name, args.org, args.email))
    print(f"team {args.id} added (ledger index {index})", file=sys.stderr)
    return 0


def cmd_team_member(args: argparse.Namespace) -> int:
    add = args.action == "member-add"
    index = _run_admin(args, lambda gw: gw.directory.set_membership(_cli_actor(), args.team, args.member, add))
    print(f"{args.member} {'added to' if add else 'removed from'} {args.team} (ledger index {index})", file=sys.stderr)
    return 0


def cmd_team_members(args: argparse.Namespace) -> int:
    async def run(gw: Gateway) -> list[Recipient]:
        return (await gw.store.team_members([args.team]))[args.team]

    for m in asyncio.run(_with_gateway(_settings(args), run)):
        print(f"{m.id}\t{m.org}\t{m.email}\t{m.name}")
    return 0


# -- the partnership's agreements ----------------------------------------------------------------------


def cmd_agreement_add(args: argparse.Namespace) -> int:
    try:
        document = Path(args.document).read_bytes()
    except OSError as exc:
        _err(f"cannot read {args.document}: {exc.strerror}")
        return 2
    standard: Any = None
    if args.standard_answers is not None:
        standard = _read_json(args.standard_answers, "the standard answers")
        if standard is None:
            return 2
    fields = {
        "id": args.id,
        "title": args.title,
        "kind": args.kind,
        "scope": args.scope,
        "signatories": args.signatory,
        "purposes": args.purpose or [],
        "categories": args.category or [],
        "review_date": args.review_date,
        **({"standard_answers": standard} if standard is not None else {}),
    }
    result = _run_admin(
        args, lambda gw: gw.agreements.add_agreement(_cli_actor(), fields, document, Path(args.document).name)
    )
    a = result["agreement"]
    print(
        f"agreement {a['id']} version {a['version']} added (document sha256 {a['document']['sha256']}, "
        f"ledger index {result['ledger_index']})",
        file=sys.stderr,
    )
    return 0


def _agreement_line(a: dict[str, Any]) -> str:
    purposes = ",".join(a["purposes"]) or "all"
    categories = ",".join(a["categories"]) or "all"
    return (
        f"{a['id']}\tv{a['version']}\t{a['status']}\t{a['kind']}\t{a['scope']}\treview {a['review_date']}\t"
        f"{a['title']}\tsignatories: {'; '.join(a['signatories'])}\tpurposes: {purposes}\tcategories: "
        f"{categories}\t{a['document']['sha256']}"
        + "".join(f"\tstandard answers: {s['title']} ({s['policy']})" for s in a.get("standard_answers", []))
    )


def cmd_agreement_list(args: argparse.Namespace) -> int:
    async def run(gw: Gateway) -> list[dict[str, Any]]:
        return [a.public() for a in sorted((await gw.agreements.records.current()).values(), key=lambda a: a.id)]

    found = asyncio.run(_with_gateway(_settings(args), run))
    if args.json:
        print(json.dumps(found, indent=2))
    for a in found if not args.json else []:
        print(_agreement_line(a))
    return 0


def cmd_agreement_show(args: argparse.Namespace) -> int:
    async def run(gw: Gateway) -> list[dict[str, Any]]:
        return [a.public() for a in await gw.agreements.agreement_versions(args.id)]

    versions = asyncio.run(_with_gateway(_settings(args), run))
    if not versions:
        _err(f"no agreement {args.id!r}")
        return 2
    if args.json:
        print(json.dumps({"id": args.id, "current": versions[-1], "versions": versions}, indent=2))
        return 0
    for a in versions:
        print(_agreement_line(a))
    return 0


def cmd_agreement_retire(args: argparse.Namespace) -> int:
    result = _run_admin(args, lambda gw: gw.agreements.retire_agreement(_cli_actor(), args.id, retirement(args.reason)))
    a = result["agreement"]
    index = result["ledger_index"]
    print(f"agreement {a['id']} version {a['version']} retired (ledger index {index})", file=sys.stderr)
    return 0


#: The example pair `serve --dev` loads (clearly marked as examples in their own text); their purposes and
#: categories are the policy's codes, so they live beside the documents as data (examples.json), not in Python.
def _dev_agreements() -> list[dict[str, Any]]:
    folder = resources.files("gateway").joinpath("examples", "agreements")
    examples: list[dict[str, Any]] = json.loads(folder.joinpath("examples.json").read_text(encoding="utf-8"))
    return [{**a, "signatories": ["dev-org", DEMO_DETAILS[1]]} for a in examples]


async def _ensure_dev_agreements(gw: Gateway) -> None:
    current = await gw.agreements.records.current()
    for example in _dev_agreements():
        if example["id"] in current:
            continue
        fields = {k: v for k, v in example.items() if k != "file"}
        data = resources.files("gateway").joinpath("examples", "agreements", example["file"]).read_bytes()
        await gw.agreements.add_agreement(_cli_actor(), fields, data, example["file"])


def _issuer(settings: Settings) -> EmbeddedIssuer:
    keys = init_home(settings)
    return EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)


def cmd_token_issue(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        token = _issuer(settings).issue(
            args.sub, [args.role], org=args.org, ttl=args.ttl, email=args.email, name=args.name, org_name=args.org_name
        )
    except ValueError as exc:
        _err(str(exc))
        return 2
    print(token)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import AccessLogger, create_app
    from .server import install_repeat_filter, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings(args)
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except ValueError as exc:
            _err(str(exc))  # never the URL itself: it may carry the relay's password
            return 2
    if args.dev and not settings.smtp_url:
        settings = dataclasses.replace(settings, dev_mail=True)  # no relay: print the e-mail it would send
    keys = init_home(settings)
    migrate(settings.database_url)  # refuses a newer schema here, before the server starts
    if args.dev:
        _print_dev_banner(settings, args.host, args.port)
    install_repeat_filter()
    several = settings.workers > 1

    def worker(number: int) -> int:
        """One gateway process: the only one, or worker `number` of several (number 0 runs the periodic jobs)."""
        app = create_app(settings, keys, background=number == 0)
        limits = settings.limits
        asyncio.run(serve(app, args.host, args.port, limits, reuse_port=several, access_log_class=AccessLogger))
        return 0

    if not several:
        return worker(0)
    from .workers import WorkersError, check_port_free, run_workers

    try:
        check_port_free(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    # Orphaned envelope files from before this start, removed once here: each worker's own start-up sweep spares
    # young files, which another worker may be writing (a worker restarted while the others serve).
    asyncio.run(_with_gateway(settings, lambda gw: gw.sweep_orphans(min_age=0.0)))
    log.info("serving on %s:%s with %d worker processes", args.host, args.port, settings.workers)
    try:
        return run_workers(settings.workers, worker)
    except WorkersError as exc:
        raise CliError(str(exc)) from None


def _print_dev_banner(settings: Settings, host: str, port: int) -> None:
    """Everything a new user needs to try the gateway at once: a demo recipient and a token per role."""
    identity_path = settings.keys_dir / f"{DEMO_RECIPIENT}.agekey"
    if not identity_path.exists():
        new_identity = envelope.X25519Identity.generate()
        fd = os.open(identity_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# SafeShare demo recipient identity (development only)\n{new_identity}\n")
    identity: envelope.AgeIdentity = envelope.parse_identities(identity_path.read_text())[0]

    async def ensure(gw: Gateway) -> None:
        if not await gw.store.get_recipients([DEMO_RECIPIENT]):
            await gw.directory.add_recipient(
                _cli_actor(), Recipient(DEMO_RECIPIENT, *DEMO_DETAILS, str(identity.recipient()))
            )
        await _ensure_dev_agreements(gw)

    asyncio.run(_with_gateway(settings, ensure))
    issuer = _issuer(settings)
    url = f"http://{host}:{port}"
    subs = {
        "practitioner": "dev-practitioner",
        "recipient": DEMO_RECIPIENT,
        "auditor": "dev-auditor",
        "admin": "dev-admin",
        "partnership_admin": "dev-partnership-admin",
        "partnership_auditor": "dev-partnership-auditor",
    }
    lines = [
        "",
        "SafeShare gateway (development mode) — tokens valid for 12 hours:",
    ]
    name, org, email = DEMO_DETAILS
    for role, sub in subs.items():
        # The recipient's token carries the claims enrolment takes identity from, so the extension's
        # "Set up receiving" works with it as printed (its approval then rotates the demo recipient's key).
        # Everyone is in the demo recipient's organisation, so the (organisation-scoped) administrator approves
        # its enrolment and the auditor reads the demo shares; the partnership roles act across organisations.
        # Every token carries a name and the organisation's name, so shares read "From: Demo Practitioner (Demo
        # MASH)", not identifiers (issue 13).
        issued = issuer.issue(
            sub,
            [role],
            org=org,
            ttl=DEV_TOKEN_TTL,
            email=email if role == "recipient" else None,
            name=name if role == "recipient" else DEV_NAMES[role],
            org_name=org,
        )
        lines.append(f"  {role:<19} {issued}")
    lines += [
        f"  demo recipient '{DEMO_RECIPIENT}', identity file {identity_path}",
        "  example agreements (EXAMPLES ONLY, not any real partnership's): "
        + ", ".join(a["id"] for a in _dev_agreements())
        + " — `safeshare agreement list`",
        f"  API description: {url}/api/v1/openapi.json    health: {url}/healthz",
        f"  Try: safeshare fetch --gateway {url} --token <recipient token> --identity {identity_path} SHARE_ID",
        f"  Browser extension: build and load extension/ (extension/README.md), set the gateway to {url} on its",
        "  options page and paste the practitioner token (or the recipient token, for Receiving shares).",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _http_error(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(65536))
        return f"{exc.code} {body.get('error')}: {body.get('message')}"
    except (ValueError, AttributeError):
        return f"HTTP {exc.code}"


def _fetch_output_path(output: str | None, share_id: str, content_type: str) -> Path | None:
    """Where the plaintext goes: a file, a directory (named after the share, `.eml` for an e-mail message so
    any mail client opens it), or standard output (None) — except an e-mail message to a terminal."""
    suffix = ".eml" if content_type == "message/rfc822" else (mimetypes.guess_extension(content_type) or ".bin")
    if output is None:
        return Path(f"{share_id}{suffix}") if content_type == "message/rfc822" and sys.stdout.isatty() else None
    path = Path(output)
    return path / f"{share_id}{suffix}" if path.is_dir() else path


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the caller's envelope and decrypt it locally; the plaintext never exists at the gateway.

    The identity is checked against the envelope's header (an uncounted request) before the counted download,
    so a wrong key file uses up none of a share's `max_downloads`.
    """
    try:
        identities = envelope.parse_identities(Path(args.identity).read_text())
    except (OSError, envelope.EnvelopeError) as exc:
        raise CliError(f"cannot read identity file {args.identity}: {exc}", 2) from None
    if not identities:
        raise CliError(f"no age identity found in {args.identity}", 2)
    if args.output and not Path(args.output).is_dir():
        _refuse_overwrite(Path(args.output), args.force)
    base = args.gateway.rstrip("/")
    url = f"{base}/api/v1/shares/{urllib.parse.quote(args.share_id, safe='')}/envelope"
    _check_identity_opens(url + "/header", args.token, args.timeout, identities)
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {args.token}"})  # noqa: S310
    if args.output and Path(args.output).is_dir():
        out_dir = Path(args.output).resolve()
    else:
        out_dir = Path(args.output).resolve().parent if args.output else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".safeshare-fetch-") as tmp:
        env_path = Path(tmp) / "envelope.age"
        with urllib.request.urlopen(req, timeout=args.timeout) as resp, open(env_path, "wb") as fh:  # noqa: S310
            length = resp.headers.get("Content-Length")
            with progress(f"downloading {args.share_id}", int(length) if length else None) as advance:
                while block := resp.read(1024 * 1024):
                    fh.write(block)
                    advance(len(block))
            expected_sha = resp.headers.get("X-SafeShare-Envelope-SHA256")
            content_type = resp.headers.get("X-SafeShare-Payload-Content-Type", "application/octet-stream")
        if expected_sha:
            import hashlib

            h = hashlib.sha256()
            with open(env_path, "rb") as fh:
                while block := fh.read(1024 * 1024):
                    h.update(block)
            if h.hexdigest() != expected_sha:
                raise CliError("the envelope does not match the SHA-256 the gateway recorded for it; not decrypting")
        plain_path = Path(tmp) / "plaintext"
        try:
            with (
                open(env_path, "rb") as src,
                open(plain_path, "wb") as dst,
                progress("decrypting", env_path.stat().st_size) as advance,
            ):
                envelope.decrypt_stream(counting(src, advance), dst, identities)
        except envelope.EnvelopeError as exc:
            raise CliError(f"cannot decrypt the envelope: {exc}") from None
        output = _fetch_output_path(args.output, args.share_id, content_type)
        if output is not None:
            _refuse_overwrite(output, args.force)
            os.replace(plain_path, output)
            print(f"decrypted share {args.share_id} to {output}", file=sys.stderr)
        else:
            with open(plain_path, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
            sys.stdout.flush()
    return 0


def _refuse_overwrite(path: Path, force: bool) -> None:
    """`-o` never silently replaces a file: refused unless `--force`."""
    if path.exists() and not force:
        raise CliError(f"{path} already exists; not overwriting it (use --force to replace it)", 2)


def _check_identity_opens(header_url: str, token: str, timeout: float, identities: list[Any]) -> None:
    """Fetch the envelope's header (uncounted, unrecorded) and unwrap its file key with the identities."""
    header = _get(header_url, token, timeout)
    try:
        envelope.unwrap_header(header, identities)
    except envelope.EnvelopeError:
        raise CliError(
            "cannot decrypt: this identity does not open your envelope for the share (wrong key file?); nothing was "
            "downloaded and no download was used up",
            1,
        ) from None


def _print_refusal(exc: urllib.error.HTTPError) -> None:
    """The gateway's refusal, shown as a local use case's refusal is (`_show_refusal`)."""
    try:
        body = json.loads(exc.read(1024 * 1024))
    except ValueError:
        _err(f"the gateway refused: HTTP {exc.code}")
        return
    _show_refusal(body, f"the gateway refused ({exc.code} {body.get('error')})")


def _show_refusal(body: dict[str, Any], head: str) -> None:
    """A refusal in words a practitioner can act on: the field at fault beside the message, every golden-rule
    problem on its own line, then what was unknown, disabled or over the limit. Used for the gateway's refusals
    over HTTP and for the use cases' own (`refusals.Refusal`) when an administrative command runs them locally."""
    field = body.get("field")
    _err(f"{head}: {body.get('message')}" + (f" ({field})" if field else ""))
    for p in body.get("problems", []):
        rule = f"rule {p['rule']}" if p.get("rule") is not None else "general"
        print(f"  - {rule}, {p.get('field') or '(whole justification)'}: {p.get('message')}", file=sys.stderr)
    for key in ("unknown", "disabled", "limit"):
        if body.get(key):
            print(f"  {key}: {body[key]}", file=sys.stderr)


#: Attempts for a share or decision: a retry after a lost answer reuses the Idempotency-Key, so the gateway
#: answers it with the first response instead of recording a second share.
POST_ATTEMPTS = 3


def _post(
    url: str, token: str, data: Any, headers: dict[str, str], timeout: float, attempts: int = 1
) -> tuple[int, Any] | None:
    """POST once, or up to `attempts` times when no answer came back (or the first is still in progress, 409);
    `data` may be a function that makes the body afresh for each attempt."""
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(  # noqa: S310 - the operator chooses the gateway URL
            url,
            data=data() if callable(data) else data,
            method="POST",
            headers={"Authorization": f"Bearer {token}", **headers},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 409 and attempt < attempts:
                time.sleep(attempt)
                continue
            _print_refusal(exc)
            return None
        except (urllib.error.URLError, OSError) as exc:
            if attempt < attempts:
                _warn(f"no answer from the gateway ({exc}); retrying with the same Idempotency-Key")
                time.sleep(attempt)
                continue
            _err(f"cannot reach the gateway at {url}: {exc}")
    return None


def _read_json(path: str, what: str = "the justification") -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _err(f"cannot read {what} {path}: {exc}")
        return None


def cmd_share(args: argparse.Namespace) -> int:
    """Share a file: the payload is streamed from disk, never read whole into memory."""
    justification = _read_json(args.justification)
    if justification is None:
        return 2
    meta: dict[str, Any] = {
        "recipients": args.to,
        "justification": justification,
        "payload_content_type": args.content_type,
    }
    if args.expires_in is not None:
        meta["expires_in"] = args.expires_in
    if args.max_downloads is not None:
        meta["max_downloads"] = args.max_downloads
    if args.agreement_override is not None:
        meta["agreement_override"] = args.agreement_override
    if args.unenrolled is not None:
        meta["unenrolled"] = args.unenrolled
        if args.unenrolled == "passphrase":
            passphrase = _read_passphrase(args.passphrase_file)
            if passphrase is None:
                return 2
            meta["passphrase"] = passphrase
    elif args.passphrase_file:
        _err("--passphrase-file needs --unenrolled passphrase")
        return 2
    try:
        size = os.path.getsize(args.payload)
    except OSError as exc:
        _err(f"cannot read the payload {args.payload}: {exc}")
        return 2
    boundary = uuid.uuid4().hex
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="share"\r\nContent-Type: application/json\r\n\r\n'
        ).encode()
        + json.dumps(meta).encode()
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="payload"; filename="payload"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
    )
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Any:
        yield head
        with open(args.payload, "rb") as fh, progress(f"sending {Path(args.payload).name}", size) as advance:
            while block := fh.read(1024 * 1024):
                advance(len(block))
                yield block
        yield tail

    result = _post(
        f"{args.gateway.rstrip('/')}/api/v1/shares",
        args.token,
        body,
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
            "Idempotency-Key": uuid.uuid4().hex,
        },
        args.timeout,
        POST_ATTEMPTS,
    )
    if result is None:
        return 1
    print(json.dumps(result[1], indent=2))
    return 0


def _read_passphrase(path: str | None) -> str | None:
    """From a file (its first line), or prompted twice without echo on a terminal; never from the command line."""
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"cannot read the passphrase file {path}: {type(exc).__name__}")
            return None
        if not lines or not lines[0]:
            _err(f"the passphrase file {path} is empty")
            return None
        return lines[0]
    if not sys.stdin.isatty():
        _err("--unenrolled passphrase needs --passphrase-file FILE when not run from a terminal")
        return None
    import getpass

    first = getpass.getpass("Passphrase for the recipient (tell it to them by phone): ")
    if getpass.getpass("Repeat the passphrase: ") != first:
        _err("the passphrases differ")
        return None
    return first


def cmd_decide(args: argparse.Namespace) -> int:
    """Record a decision with no payload, golden rule 7: not to share, or a share made another way."""
    justification = _read_json(args.justification)
    if justification is None:
        return 2
    disclosure: dict[str, Any] | None = None
    if any(v is not None for v in (args.channel, args.with_, args.summary, args.at)):
        try:
            disclosure = {"with": [disclosure_rules.parse_with(w) for w in args.with_ or []]}
        except ValueError as exc:
            _err(str(exc))
            return 2
        for key, value in (("channel", args.channel), ("summary", args.summary), ("at", args.at)):
            if value is not None:
                disclosure[key] = value
    decision = justification.get("decision") if isinstance(justification, dict) else None
    # The same checks as the gateway's, before anything is sent (the gateway checks again, with its clock).
    problems = disclosure_rules.problems(disclosure, decision)
    if problems:
        for p in problems:
            _err(f"{p.field}: {p.message}")
        return 2
    result = _post(
        f"{args.gateway.rstrip('/')}/api/v1/decisions",
        args.token,
        json.dumps(
            justification if disclosure is None else {"justification": justification, "disclosure": disclosure}
        ).encode(),
        {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        args.timeout,
        POST_ATTEMPTS,
    )
    if result is None:
        return 1
    print(json.dumps(result[1], indent=2))
    return 0


def cmd_advice_list(args: argparse.Namespace) -> int:
    """An adviser's questions (to their roles, in their organisation), or a practitioner's own, with answers."""
    try:
        questions = json.loads(_get(f"{args.gateway.rstrip('/')}/api/v1/advice", args.token, args.timeout))["questions"]
    except urllib.error.HTTPError as exc:
        _print_refusal(exc)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _err(f"cannot read the questions from the gateway: {exc}")
        return 1
    if args.open:
        questions = [q for q in questions if q["answer"] is None]
    if args.json:
        print(json.dumps(questions, indent=2))
        return 0
    for q in questions:
        purpose = q.get("purpose") or {}
        categories = ", ".join(q.get("data_categories") or []) or "none given"
        answer = q.get("answer")
        status = "OPEN" if answer is None else f"answered by {answer['by'].get('sub')} ({answer['by'].get('role')})"
        print(f"{q['advice_id']} {q['asked_at']} to {q['to']}: {purpose.get('code')} — {purpose.get('description')}")
        print(f"    data categories: {categories}; {status}")
        if answer is not None:
            print(f"    answer: {answer.get('answer')}")
    print(f"{len(questions)} question(s)", file=sys.stderr)
    return 0


def cmd_advice_answer(args: argparse.Namespace) -> int:
    """Answer a question put to your adviser role; recorded in the ledger, then citable by the asker."""
    result = _post(
        f"{args.gateway.rstrip('/')}/api/v1/advice/{urllib.parse.quote(args.advice_id, safe='')}/answer",
        args.token,
        json.dumps({"answer": args.answer}).encode(),
        {"Content-Type": "application/json"},
        args.timeout,
    )
    if result is None:
        return 1
    print(json.dumps(result[1], indent=2))
    return 0


def cmd_not_shared_despite_risk(args: argparse.Namespace) -> int:
    """The DSL's or auditor's list of decisions not to share despite risk (every page), oldest page last."""
    params = {k: v for k, v in (("org", args.org), ("from", args.from_), ("to", args.to)) if v}
    decisions: list[Any] = []
    cursor: str | None = None
    with progress("reading decisions", None, unit="decisions") as advance:
        while True:
            query = urllib.parse.urlencode({**params, "limit": "200", **({"cursor": cursor} if cursor else {})})
            url = f"{args.gateway.rstrip('/')}/api/v1/decisions/not-shared-despite-risk?{query}"
            try:
                page = json.loads(_get(url, args.token, args.timeout))
            except urllib.error.HTTPError as exc:
                _print_refusal(exc)
                return 1
            except (urllib.error.URLError, OSError, ValueError) as exc:
                _err(f"cannot read the list from the gateway: {exc}")
                return 1
            decisions += page["decisions"]
            advance(len(page["decisions"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if args.json:
        print(json.dumps(decisions, indent=2))
        return 0
    for d in decisions:
        net = d.get("safety_net") or {}
        if "senior_signoff" in net:
            s = net["senior_signoff"]
            why = f"signed off by {s.get('name')} ({s.get('role')}) at {s.get('at')}"
        elif "already_protected" in net:
            s = net["already_protected"]
            why = f"already protected: {s.get('by')} since {s.get('at')}, ref {s.get('reference')}"
        else:
            why = "no other route or sign-off recorded"
        actor = d.get("actor") or {}
        print(
            f"#{d['index']} {d['time']} {actor.get('sub')} ({actor.get('org')}) subjects {', '.join(d['subjects'])}: "
            f"{d.get('risk_level')}, reason {d.get('not_shared_reason')}; {why}"
        )
    print(f"{len(decisions)} decision(s) not to share despite risk", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Recall a share (the sender's, or any as an administrator): envelopes destroyed, the reason recorded."""
    url = f"{args.gateway.rstrip('/')}/api/v1/shares/{urllib.parse.quote(args.share_id, safe='')}/revoke"
    body = json.dumps({"reason": args.reason}).encode()
    result = _post(url, args.token, body, {"Content-Type": "application/json"}, args.timeout)
    if result is None:
        return 1
    print(json.dumps(result[1], indent=2))
    print(f"share {args.share_id} revoked; its envelopes are destroyed", file=sys.stderr)
    return 0


def cmd_sent(args: argparse.Namespace) -> int:
    """The practitioner's Sent list: each share, and for each recipient whether and when they opened it."""
    shares: list[Any] = []
    cursor: str | None = None
    with progress("reading sent shares", None, unit="shares") as advance:
        while len(shares) < args.limit:
            query = {"limit": str(min(200, args.limit - len(shares))), **({"cursor": cursor} if cursor else {})}
            url = f"{args.gateway.rstrip('/')}/api/v1/shares?{urllib.parse.urlencode(query)}"
            page = json.loads(_get(url, args.token, args.timeout))
            shares += page["shares"]
            advance(len(page["shares"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if args.json:
        print(json.dumps(shares, indent=2))
        return 0
    for sh in shares:
        print(f"{sh['id']}\t{sh['created_at']}\t{sh['state']}\t{', '.join(sh.get('subjects') or [])}")
        for r in sh.get("recipients", []):
            last = f", last {r['last_downloaded_at']}" if r["downloads"] > 1 else ""
            opened = (
                f"opened {r['first_downloaded_at']}{last}"
                if r.get("first_downloaded_at")
                else ("opened" if r["downloads"] else "not opened")
            )
            ack = f"; actioned {r['acknowledged_at']}" if r.get("acknowledged_at") else ""
            via = f" (via {r['via']})" if r.get("via") else ""
            print(f"  {r['id']}{via}\t{r['org']}\t{r['state']}\t{opened} ({r['downloads']} download(s)){ack}")
        for h in sh.get("held", []):
            opened = "opened" if h.get("downloads") else "not opened"
            count = f"({h.get('downloads')} download(s))"
            print(f"  {h.get('recipient')}\t{h.get('mode')}\t{h.get('state')}\t{opened} {count}")
    print(f"{len(shares)} share(s)", file=sys.stderr)
    return 0


def _verifier(args: argparse.Namespace, fallback: str | None) -> NoteVerifier | None:
    vkey = args.vkey
    if vkey is None and args.vkey_file:
        vkey = Path(args.vkey_file).read_text().strip()
    vkey = vkey or fallback
    if vkey is None:
        return None
    try:
        return NoteVerifier.from_vkey(vkey)
    except CheckpointError as exc:
        _err(f"not a verifier key: {exc}")
        return None


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the schema steps this version knows (`store/migrations.py`); refuses a newer schema."""
    settings = _settings(args)
    keys = init_home(settings)
    first_time = not ledger_head_path(settings).exists()
    before, after = migrate(
        settings.database_url, ledger_mac_key=keys.ledger_mac_key or None, legacy_upgrade=first_time
    )
    where = describe(settings.database_url)
    if before == after:
        print(f"database {where}: schema version {after}, up to date")
    else:
        print(f"database {where}: schema migrated from version {before} to {after}")
    return 0


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    if args.gateway:
        return _verify_remote(args)
    settings = _settings(args)
    if settings.database is None and not settings.db_path.exists():
        _err(f"no ledger at {settings.db_path}")
        return 2
    keys = init_home(settings)
    verifier = _verifier(args, LedgerSigner(settings.log_origin, keys.ledger_key).vkey)
    if verifier is None:
        return 2
    # Checkpoints kept outside the database must still be in it: the auditor's (--since) and the gateway's own.
    saved: list[tuple[str, bytes]] = []
    head = ledger_head_path(settings)
    try:
        if args.since:
            saved.append((f"the saved checkpoint {args.since}", Path(args.since).read_bytes()))
        if head.exists() and head.stat().st_size:
            saved.append(("the gateway's last signed checkpoint (data/ledger-head.note)", head.read_bytes()))
    except OSError as exc:
        _err(f"cannot read a saved checkpoint: {exc}")
        return 2
    # One snapshot through the store (whichever database it is): entries, checkpoints and tree state agree in time.
    with ledger_snapshot(settings.database_url) as snap:
        checkpoints = snap.checkpoints
        # The per-entry work over every core (ledger/verify_parallel.py), each worker reading its own ranges.
        with progress("verifying the ledger", snap.total, unit="entries") as advance:
            report = verify_ranges(
                snap.reader(),
                snap.last_index,
                checkpoints,
                verifier,
                settings.log_origin,
                mac_key=keys.ledger_mac_key,
                mac_start=snap.mac_start,
                saved=saved,
                advance=advance,
            )
        stored = snap.tree
        if report.ok:  # the agreement documents the (now verified) entries name: each must be its digest's bytes
            for problem in document_problems(snap.documents(), snap.named_documents(), snap.document_chunks):
                report.fail(problem)
    if report.ok and report.entries:
        if stored.size != report.entries or stored.root() != report.root_hash:
            report.fail(f"the stored tree state (size {stored.size}) does not match the entries", stored.size)
    if not report.ok:
        where = f" (first bad index: {report.first_bad_index})" if report.first_bad_index is not None else ""
        _err(f"ledger verification FAILED{where}: {report.problems[0]}")
        return 1
    return _ledger_verdict(report, max((size for size, _ in checkpoints), default=0), len(saved))


#: `ledger verify` found the entries consistent but no signed checkpoint to check them against.
UNSIGNED_STATUS = 3


def _ledger_verdict(report: Any, signed_size: int, saved: int) -> int:
    """ "ledger OK" only when a signature vouches for the entries: with no signed checkpoint the tree and the MACs
    were recomputed but nothing was checked against a signature (whoever holds the database and the MAC key
    could have rewritten it all), said plainly, with its own exit status."""
    root = base64.b64encode(report.root_hash).decode()
    if not report.entries:
        print("ledger empty: no entries, nothing to verify")
        return 0
    if report.checkpoints == 0 and not saved:
        print(
            f"ledger NOT VERIFIED against a signature: {report.entries} entries consistent (tree and MACs "
            f"recomputed), root {root}, but no signed checkpoint exists, so nothing was checked against a signature"
        )
        _warn(
            "no signed checkpoint: run the gateway (it signs within a second of new entries) or verify against a "
            f"checkpoint you saved (--since); exit status {UNSIGNED_STATUS}"
        )
        return UNSIGNED_STATUS
    print(f"ledger OK: {report.entries} entries, {report.checkpoints} signed checkpoint(s) verified, root {root}")
    if report.entries > signed_size and report.checkpoints:
        _warn(
            f"the last {report.entries - signed_size} entr{'y is' if report.entries - signed_size == 1 else 'ies are'}"
            f" after the latest signed checkpoint (size {signed_size}): checked by MAC and tree, not yet by a signature"
        )
    return 0


def _get(url: str, token: str | None, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        body: bytes = resp.read(16 * 1024 * 1024)
    return body


def _consistency_proof(
    base: str, token: str | None, timeout: float, old_note: bytes, new_note: bytes
) -> list[bytes] | None:
    """The gateway's RFC 9162 proof that the newer checkpoint's tree extends the older one (None if not larger)."""
    old = Checkpoint.parse(split_note(old_note)[0])
    new = Checkpoint.parse(split_note(new_note)[0])
    if new.size <= old.size:
        return None
    body = json.loads(
        _get(f"{base}/api/v1/ledger/proof/consistency?first={old.size}&second={new.size}", token, timeout)
    )
    return [base64.b64decode(h) for h in body["hashes"]]


def _verify_remote(args: argparse.Namespace) -> int:
    """Catch a rollback or fork: the gateway's latest checkpoint must extend the one saved earlier."""
    base = args.gateway.rstrip("/")
    if not args.since:
        _err("--since CHECKPOINT_FILE is required with --gateway (save one with `safeshare ledger checkpoint`)")
        return 2
    try:
        saved = Path(args.since).read_bytes()
        witnessed = "?witnessed=1" if args.witness_vkey else ""
        latest = _get(f"{base}/api/v1/ledger/checkpoint{witnessed}", None, args.timeout)
        if args.witness_vkey:
            witnesses = [NoteVerifier.from_vkey(v) for v in args.witness_vkey]
            try:
                open_note(latest, witnesses, require=[w.name for w in witnesses])
            except CheckpointError as exc:
                names = ", ".join(w.name for w in witnesses)
                raise CheckpointError(f"the latest witnessed checkpoint is not co-signed by {names} ({exc})") from None
        verifier = _verifier(
            args,
            None
            if (args.vkey or args.vkey_file)
            else _get(f"{base}/api/v1/ledger/vkey", None, args.timeout).decode().strip(),
        )
        if verifier is None:
            return 2
        verify_checkpoint(saved, verifier)
        proof = _consistency_proof(base, args.token, args.timeout, saved, latest)
    except urllib.error.HTTPError as exc:
        _err(f"the gateway refused: {_http_error(exc)}")
        return 1
    except (urllib.error.URLError, OSError) as exc:
        _err(f"cannot reach the gateway or read {args.since}: {exc}")
        return 1
    except (CheckpointError, ValueError, KeyError) as exc:
        _err(f"verification FAILED: {exc}")
        return 1
    verdict = verify_remote(saved, latest, proof, verifier)
    if not verdict.ok:
        _err(f"verification FAILED: {verdict.message}")
        return 1
    print(f"ledger OK: {verdict.message}")
    if args.save:
        Path(args.save).write_bytes(latest)
        print(f"saved the latest checkpoint to {args.save}", file=sys.stderr)
    return 0


def cmd_ledger_verify_receipt(args: argparse.Namespace) -> int:
    """Check a C2SP tlog-proof receipt offline: every pinned key (--vkey, repeatable) must have signed its
    checkpoint and the entry must be included at its index. Without --vkey, the local home's ledger keys."""
    from .ledger.receipt import ReceiptError, verifier_from_vkey, verify_receipt

    vkeys = list(args.vkey or [])
    policy = None
    if args.policy:
        from .ledger.tlog_policy import PolicyError, parse_policy

        try:
            policy = parse_policy(Path(args.policy).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, PolicyError) as exc:
            _err(f"policy: {exc}")
            return 2
    if not vkeys and policy is None:
        settings = _settings(args)
        if not settings.ledger_key_path.exists():
            _err("give --vkey (the log's verifier key); there is no local ledger key")
            return 2
        keys = init_home(settings)
        signer = LedgerSigner(settings.log_origin, keys.ledger_key, keys.ledger_pq_key)
        vkeys = [signer.vkey, *([signer.pq_vkey] if signer.pq_vkey else [])]
    try:
        verifiers = [verifier_from_vkey(v) for v in vkeys]
        data = Path(args.file).read_bytes()
        receipt, cp, entry = verify_receipt(data, verifiers, origin=args.origin, policy=policy)
    except (ReceiptError, CheckpointError, OSError) as exc:
        print(f"receipt does NOT verify: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(entry.decode("utf-8", "replace") + "\n")
    names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers) or f"the policy's logs ({args.policy})"
    print(
        f"OK: entry {receipt.index} is in {cp.origin} at tree size {cp.size}, checkpoint signed by {names}",
        file=sys.stderr,
    )
    return 0


def cmd_ledger_checkpoint(args: argparse.Namespace) -> int:
    """Fetch, verify and save the latest checkpoint: the starting point for later `verify --since`."""
    base = args.gateway.rstrip("/")
    try:
        note = _get(f"{base}/api/v1/ledger/checkpoint", None, args.timeout)
        served_vkey = _get(f"{base}/api/v1/ledger/vkey", None, args.timeout).decode().strip()
    except urllib.error.HTTPError as exc:
        _err(f"the gateway refused: {_http_error(exc)}")
        return 1
    except (urllib.error.URLError, OSError) as exc:
        _err(f"cannot reach the gateway at {base}: {exc}")
        return 1
    verifier = _verifier(args, served_vkey)
    if verifier is None:
        return 2
    try:
        cp = verify_checkpoint(note, verifier)
    except CheckpointError as exc:
        _err(f"the checkpoint does not verify: {exc}")
        return 1
    if not (args.vkey or args.vkey_file):
        print(f"verifier key (pin it, e.g. --vkey-file): {served_vkey}", file=sys.stderr)
    if args.output:
        _refuse_overwrite(Path(args.output), args.force)
        Path(args.output).write_bytes(note)
        print(f"checkpoint for {cp.size} entries saved to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(note.decode())
    return 0


WITNESS_KEY = "witness.ed25519.pem"
WITNESS_NAME = "name"
WITNESS_LOG_VKEY = "log.vkey"
WITNESS_LAST = "last-checkpoint"


def cmd_witness_init(args: argparse.Namespace) -> int:
    """Set up a witness (held by a partner organisation): its key, its name, and the log key it watches."""
    wdir = Path(args.dir)
    wdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        NoteVerifier.from_vkey(args.log_vkey)
        signer = NoteSigner(args.name, load_or_create_ed25519_key(wdir / WITNESS_KEY))
    except (CheckpointError, ValueError) as exc:
        _err(str(exc))
        return 2
    (wdir / WITNESS_NAME).write_text(args.name + "\n")
    (wdir / WITNESS_LOG_VKEY).write_text(args.log_vkey.strip() + "\n")
    print(signer.vkey())
    print("give this verifier key to the gateway's administrator (safeshare.toml: witnesses = [...])", file=sys.stderr)
    return 0


def witness_serve_app(wdir: Path) -> tuple[Any, str]:
    """The tlog-witness app for a directory made by `witness init`, and its cosignature/v1 verifier key.

    The logs it trusts: each line of `log.vkey` (Ed25519 or ML-DSA-44), grouped by key name = log origin.
    """
    from .ledger.receipt import verifier_from_vkey
    from .ledger.tlog_witness import CosignatureV1Signer
    from .witness_http import witness_app

    name = (wdir / WITNESS_NAME).read_text().strip()
    signer = CosignatureV1Signer(name, load_or_create_ed25519_key(wdir / WITNESS_KEY))
    logs: dict[str, list[Any]] = {}
    for line in (wdir / WITNESS_LOG_VKEY).read_text().splitlines():
        if line.strip():
            v = verifier_from_vkey(line.strip())
            logs.setdefault(v.name, []).append(v)
    return witness_app(wdir, signer, {k: tuple(v) for k, v in logs.items()}), signer.vkey()


def cmd_witness_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    try:
        app, vkey = witness_serve_app(Path(args.dir))
    except (OSError, CheckpointError, ValueError) as exc:
        _err(str(exc))
        return 2
    host, _, port = args.listen.rpartition(":")
    print(vkey, flush=True)
    print(f"tlog-witness listening on http://{args.listen}/add-checkpoint", file=sys.stderr, flush=True)
    web.run_app(app, host=host or "127.0.0.1", port=int(port), print=None)
    return 0


def cmd_witness_cosign(args: argparse.Namespace) -> int:
    """Co-sign the gateway's latest checkpoint if it extends the last one this witness co-signed."""
    wdir = Path(args.dir)
    base = args.gateway.rstrip("/")
    try:
        name = (wdir / WITNESS_NAME).read_text().strip()
        witness = Witness(
            NoteSigner(name, load_or_create_ed25519_key(wdir / WITNESS_KEY)),
            NoteVerifier.from_vkey((wdir / WITNESS_LOG_VKEY).read_text().strip()),
        )
        previous = (wdir / WITNESS_LAST).read_bytes() if (wdir / WITNESS_LAST).exists() else None
        note = _get(f"{base}/api/v1/ledger/checkpoint", None, args.timeout)
        new = Checkpoint.parse(split_note(note)[0])
        proof = None if previous is None else _consistency_proof(base, args.token, args.timeout, previous, note)
        cosigned = witness.cosign(note, previous, proof)
        req = urllib.request.Request(  # noqa: S310 - the operator chooses the gateway URL
            f"{base}/api/v1/ledger/cosignatures",
            data=cosigned,
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:  # noqa: S310
            resp.read()
    except WitnessRefusal as exc:
        _err(f"REFUSED to co-sign: {exc}")
        return 1
    except urllib.error.HTTPError as exc:
        _err(f"the gateway refused: {_http_error(exc)}")
        return 1
    except (urllib.error.URLError, OSError, CheckpointError, ValueError, KeyError) as exc:
        _err(f"cannot co-sign: {exc}")
        return 1
    tmp = wdir / (WITNESS_LAST + ".tmp")
    tmp.write_bytes(cosigned)
    os.replace(tmp, wdir / WITNESS_LAST)
    print(f"co-signed checkpoint for {new.size} entries")
    return 0


DATABASE_HELP = (
    "the database: postgresql://… or sqlite:///path (default: $SAFESHARE_DATABASE, else SQLite in the home's data/)"
)
#: The commands that open the store themselves (the others talk to a gateway over HTTP): each takes --database
#: after its name too, as `safeshare serve --database …`.
DATABASE_COMMANDS = frozenset({"init", "serve", "recipient", "team", "agreement", "token", "ledger", "migrate"})
#: Subcommands of those that do not open the store (they read files or a remote gateway).
NO_DATABASE = frozenset({"checkpoint", "verify-receipt", "export"})


def _database_option(parser: argparse.ArgumentParser, names: frozenset[str] | None) -> None:
    """Add `--database` to every command (of `names`, at the top level) that opens the store."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if (names is not None and name not in names) or name in NO_DATABASE:
                    continue
                if any(isinstance(a, argparse._SubParsersAction) for a in child._actions):
                    _database_option(child, None)
                else:
                    child.add_argument("--database", default=argparse.SUPPRESS, help=DATABASE_HELP)


def _workers_arg(value: str) -> int:
    try:
        return parse_workers(value, "--workers")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safeshare", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"safeshare {__version__}")
    p.add_argument("--home", help="SafeShare home directory (default: $SAFESHARE_HOME or the current directory)")
    p.add_argument("--database", help=DATABASE_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("init", help="create keys/ and data/ in the home directory (idempotent)").set_defaults(func=cmd_init)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument(
        "--dev",
        action="store_true",
        help="print a token for every role and register a demo recipient (trying it out only)",
    )
    s.add_argument(
        "--workers",
        type=_workers_arg,
        default=None,
        help="gateway processes on this port, to use more cores (default: `workers` in safeshare.toml, "
        "$SAFESHARE_WORKERS, or 1)",
    )
    s.set_defaults(func=cmd_serve)

    r = sub.add_parser("recipient", help="manage the recipient directory").add_subparsers(dest="action", required=True)
    ra = r.add_parser("add", help="register a recipient's age public key")
    ra.add_argument("id")
    ra.add_argument("--name", required=True)
    ra.add_argument("--org", required=True)
    ra.add_argument("--email", required=True)
    ra.add_argument("--age-recipient", required=True, help="the recipient's age1… public key")
    ra.set_defaults(func=cmd_recipient_add)
    rl = r.add_parser("list", help="list recipients")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=cmd_recipient_list)
    rd = r.add_parser("disable", help="stop new shares to a recipient")
    rd.add_argument("id")
    rd.set_defaults(func=cmd_recipient_disable)
    rp = r.add_parser("pending", help="list enrolments waiting for approval")
    rp.set_defaults(func=cmd_recipient_pending)
    rap = r.add_parser("approve", help="approve a recipient's pending enrolment (its key becomes active)")
    rap.add_argument("id")
    rap.set_defaults(func=cmd_recipient_decide)
    rrj = r.add_parser("reject", help="reject a recipient's pending enrolment")
    rrj.add_argument("id")
    rrj.add_argument("--reason")
    rrj.set_defaults(func=cmd_recipient_decide)

    tm = sub.add_parser("team", help="team inboxes").add_subparsers(dest="action", required=True)
    ta = tm.add_parser("add", help="create a team address; shares to it go to each member's own key")
    ta.add_argument("id")
    ta.add_argument("--name", required=True)
    ta.add_argument("--org", required=True)
    ta.add_argument("--email", required=True)
    ta.set_defaults(func=cmd_team_add)
    for verb, helptext in (("member-add", "add a person to a team"), ("member-remove", "remove a person from a team")):
        tmm = tm.add_parser(verb, help=helptext)
        tmm.add_argument("team")
        tmm.add_argument("member")
        tmm.set_defaults(func=cmd_team_member)
    tml = tm.add_parser("members", help="list a team's current members")
    tml.add_argument("team")
    tml.set_defaults(func=cmd_team_members)

    ag = sub.add_parser("agreement", help="the partnership's protocol and data exchange agreements").add_subparsers(
        dest="action", required=True
    )
    aa = ag.add_parser("add", help="add an agreement, or a new version of one (never an edit)")
    aa.add_argument("id")
    aa.add_argument("--title", required=True)
    aa.add_argument("--kind", required=True, choices=["protocol", "data_exchange", "other"])
    aa.add_argument("--scope", required=True, choices=["children", "adults", "both"])
    aa.add_argument("--signatory", required=True, action="extend", nargs="+", metavar="ORG")
    aa.add_argument("--purpose", action="extend", nargs="+", metavar="CODE", help="default: every purpose")
    aa.add_argument("--category", action="extend", nargs="+", metavar="CODE", help="default: every category")
    aa.add_argument("--review-date", required=True, metavar="YYYY-MM-DD")
    aa.add_argument("--document", required=True, metavar="FILE", help="the document (.pdf .txt .md .odt .docx)")
    aa.add_argument(
        "--standard-answers",
        metavar="FILE",
        help="JSON list of the agreed answers for kinds of share ({title, policy, answers}); see the README",
    )
    aa.set_defaults(func=cmd_agreement_add)
    al = ag.add_parser("list", help="the current version of every agreement")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_agreement_list)
    ash = ag.add_parser("show", help="every version of one agreement")
    ash.add_argument("id")
    ash.add_argument("--json", action="store_true")
    ash.set_defaults(func=cmd_agreement_show)
    ar = ag.add_parser("retire", help="retire an agreement: shares can no longer rely on it")
    ar.add_argument("id")
    ar.add_argument("--reason", required=True)
    ar.set_defaults(func=cmd_agreement_retire)

    t = sub.add_parser("token", help="tokens from the embedded issuer").add_subparsers(dest="action", required=True)
    ti = t.add_parser("issue", help="print a signed JWT")
    ti.add_argument("--sub", required=True, help="subject; for a recipient, the recipient ID")
    ti.add_argument(
        "--role",
        required=True,
        choices=sorted(ROLES),
        help="practitioner, recipient; admin and auditor act within --org only; partnership_admin and "
        "partnership_auditor act across every organisation (grant them separately and sparingly)",
    )
    ti.add_argument("--org", help="organisation identifier claim (org), e.g. hereford-council")
    ti.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    ti.add_argument("--email", help="e-mail claim (a recipient enrolling from the extension needs it)")
    ti.add_argument(
        "--name", help="the person's name (name claim), shown to recipients instead of --sub, e.g. 'Pat Jones'"
    )
    ti.add_argument(
        "--org-name",
        help="the organisation's name (org_name claim), shown to recipients instead of --org, "
        "e.g. 'Hereford Primary School'",
    )
    ti.set_defaults(func=cmd_token_issue)

    sh = sub.add_parser("share", help="share a file with recipients, with a golden-rules justification")
    sh.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    sh.add_argument("--token", required=True, help="your practitioner token")
    sh.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="RECIPIENT_ID|ADDRESS",
        help="repeat for each recipient: a directory ID, or an e-mail address",
    )
    sh.add_argument(
        "--unenrolled",
        choices=("verify", "passphrase"),
        help="for addresses with no key: hold the share until they prove the address by e-mailed code (verify), "
        "or encrypt it to a passphrase you tell them by another channel (passphrase)",
    )
    sh.add_argument("--passphrase-file", help="with --unenrolled passphrase: read it from this file (else prompted)")
    sh.add_argument("--justification", required=True, help="justification JSON file (decision: share)")
    sh.add_argument("--content-type", default="application/octet-stream", help="the payload's media type")
    sh.add_argument("--expires-in", type=int, help="seconds until the envelopes are destroyed")
    sh.add_argument("--max-downloads", type=int, help="downloads allowed per recipient")
    sh.add_argument(
        "--agreement-override",
        metavar="REASON",
        help="share despite partnership-agreement problems, with this recorded reason (where your organisation allows)",
    )
    sh.add_argument("--timeout", type=float, default=3600.0)
    sh.add_argument("payload", help="the file to share")
    sh.set_defaults(func=cmd_share)

    dc = sub.add_parser("decide", help="record a decision without a payload (e.g. not to share)")
    dc.add_argument("--gateway", required=True)
    dc.add_argument("--token", required=True, help="your practitioner token")
    dc.add_argument("--justification", required=True, help="justification JSON file")
    dc.add_argument(
        "--channel",
        choices=disclosure_rules.CHANNELS,
        help="for a share made another way (decision: share): how it was shared",
    )
    dc.add_argument(
        "--with",
        dest="with_",
        action="append",
        metavar='"NAME, ROLE, ORG"',
        help="whom it was shared with (repeat for each person), or a directory recipient ID",
    )
    dc.add_argument("--summary", help="what was shared, in a sentence or two")
    dc.add_argument("--at", help="when it was shared (RFC 3339, e.g. 2026-12-03T09:30:00Z)")
    dc.add_argument("--timeout", type=float, default=60.0)
    dc.set_defaults(func=cmd_decide)

    nr = sub.add_parser(
        "not-shared-despite-risk",
        help="list decisions not to share although a child or adult at risk faced significant harm (auditor)",
    )
    nr.add_argument("--gateway", required=True)
    nr.add_argument("--token", required=True, help="an auditor token (e.g. the designated safeguarding lead's)")
    nr.add_argument("--org", help="only this organisation's practitioners")
    nr.add_argument("--from", dest="from_", help="only from this time (RFC 3339)")
    nr.add_argument("--to", help="only before this time (RFC 3339)")
    nr.add_argument("--json", action="store_true", help="print the decisions as JSON")
    nr.add_argument("--timeout", type=float, default=60.0)
    nr.set_defaults(func=cmd_not_shared_despite_risk)

    adv = sub.add_parser("advice", help="questions for advice before deciding (advisers: dsl, manager, dpo, …)")
    adv_sub = adv.add_subparsers(dest="advice_command", required=True)
    al = adv_sub.add_parser("list", help="the questions put to your adviser roles (or, as a practitioner, your own)")
    al.add_argument("--gateway", required=True)
    al.add_argument("--token", required=True)
    al.add_argument("--open", action="store_true", help="only questions not yet answered")
    al.add_argument("--json", action="store_true", help="print the questions as JSON")
    al.add_argument("--timeout", type=float, default=60.0)
    al.set_defaults(func=cmd_advice_list)
    aa = adv_sub.add_parser("answer", help="answer a question put to your adviser role (recorded in the ledger)")
    aa.add_argument("advice_id", help="the question's ID (adv_…)")
    aa.add_argument("answer", help="your advice, in words (no names are needed: the question has none)")
    aa.add_argument("--gateway", required=True)
    aa.add_argument("--token", required=True)
    aa.add_argument("--timeout", type=float, default=60.0)
    aa.set_defaults(func=cmd_advice_answer)

    f = sub.add_parser("fetch", help="download and decrypt your envelope for a share")
    f.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    f.add_argument("--token", required=True, help="your recipient token")
    f.add_argument("--identity", required=True, help="your age identity file (AGE-SECRET-KEY-…)")
    f.add_argument("-o", "--output", help="write the plaintext here (default: standard output)")
    f.add_argument("--force", action="store_true", help="replace the -o file if it exists (else refused)")
    f.add_argument("--timeout", type=float, default=300.0)
    f.add_argument("share_id")
    f.set_defaults(func=cmd_fetch)
    lg = sub.add_parser("ledger", help="verify the tamper-evident ledger").add_subparsers(dest="action", required=True)
    lv = lg.add_parser("verify", help="recompute the tree and check every signed checkpoint (local or remote)")
    lv.add_argument("--gateway", help="verify a remote gateway against a saved checkpoint instead")
    lv.add_argument("--token", help="auditor token (remote)")
    lv.add_argument(
        "--since",
        help="checkpoint file saved earlier: the ledger must extend it (remote, or local to catch a rollback)",
    )
    lv.add_argument("--save", help="after success, save the gateway's latest checkpoint here (remote)")
    lv.add_argument("--vkey", help="pinned verifier key (name+hash+key)")
    lv.add_argument("--vkey-file", help="file holding the pinned verifier key")
    lv.add_argument("--witness-vkey", action="append", help="require this witness's co-signature (remote; repeatable)")
    lv.add_argument("--timeout", type=float, default=60.0)
    lv.set_defaults(func=cmd_ledger_verify)
    lc = lg.add_parser("checkpoint", help="fetch, verify and save a gateway's latest signed checkpoint")
    lc.add_argument("--gateway", required=True)
    lc.add_argument("--vkey", help="pinned verifier key (name+hash+key)")
    lc.add_argument("--vkey-file", help="file holding the pinned verifier key")
    lc.add_argument("-o", "--output", help="write the checkpoint note here (default: standard output)")
    lc.add_argument("--force", action="store_true", help="replace the -o file if it exists (else refused)")
    lc.add_argument("--timeout", type=float, default=60.0)
    lc.set_defaults(func=cmd_ledger_checkpoint)
    lr = lg.add_parser("verify-receipt", help="check a C2SP tlog-proof receipt offline against the log's key(s)")
    lr.add_argument("file", help="the .tlog-proof file (GET /api/v1/ledger/entries/{index}/proof)")
    lr.add_argument("--vkey", action="append", help="log verifier key, Ed25519 or ML-DSA-44; repeat to require both")
    lr.add_argument("--origin", help="the log origin the checkpoint must carry")
    lr.add_argument("--policy", help="a C2SP tlog-policy file: trusted log keys, witnesses and the witness quorum")
    lr.set_defaults(func=cmd_ledger_verify_receipt)

    mg = sub.add_parser("migrate", help="bring the database's schema up to this version (start-up does it too)")
    mg.set_defaults(func=cmd_migrate)

    w = sub.add_parser("witness", help="co-sign a gateway's checkpoints (run by a partner organisation)")
    ws = w.add_subparsers(dest="action", required=True)
    wi = ws.add_parser("init", help="create the witness key; prints its verifier key")
    wi.add_argument("--dir", required=True, help="the witness's own directory (its private key lives here)")
    wi.add_argument("--name", required=True, help="witness key name, e.g. partner.example/witness")
    wi.add_argument("--log-vkey", required=True, help="the gateway's ledger verifier key to watch")
    wi.set_defaults(func=cmd_witness_init)
    wc = ws.add_parser("cosign", help="check and co-sign the gateway's latest checkpoint")
    wc.add_argument("--dir", required=True)
    wc.add_argument("--gateway", required=True)
    wc.add_argument("--token", help="auditor token (for consistency proofs)")
    wc.add_argument("--timeout", type=float, default=60.0)
    wc.set_defaults(func=cmd_witness_cosign)
    wsv = ws.add_parser("serve", help="serve C2SP tlog-witness: POST /add-checkpoint, cosignature/v1 (0x04) lines")
    wsv.add_argument("--dir", required=True, help="a directory set up by `witness init`")
    wsv.add_argument("--listen", default="127.0.0.1:7380", help="host:port to listen on")
    wsv.set_defaults(func=cmd_witness_serve)
    _add_recall_commands(sub)
    _add_export_command(lg)
    _add_credential_sources(p)
    _database_option(p, DATABASE_COMMANDS)
    return p


def _add_recall_commands(sub: Any) -> None:
    rv = sub.add_parser("revoke", help="recall a share: destroy its envelopes, with a reason recorded in the ledger")
    rv.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    rv.add_argument("--token", required=True, help="your practitioner token (or an administrator's)")
    rv.add_argument("--reason", required=True, help="why, in a sentence (e.g. sent to the wrong person)")
    rv.add_argument("--timeout", type=float, default=60.0)
    rv.add_argument("share_id")
    rv.set_defaults(func=cmd_revoke)
    se = sub.add_parser("sent", help="your sent shares, and for each recipient whether and when they opened it")
    se.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    se.add_argument("--token", required=True, help="your practitioner token")
    se.add_argument("--limit", type=_positive, default=50, help="at most this many shares, newest first (default 50)")
    se.add_argument("--json", action="store_true", help="print the shares as JSON")
    se.add_argument("--timeout", type=float, default=60.0)
    se.set_defaults(func=cmd_sent)


def _add_export_command(lg: Any) -> None:
    le = lg.add_parser("export", help="an auditor's export of matching entries (CSV or JSON Lines), streamed")
    le.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    le.add_argument("--token", required=True, help="an auditor token")
    le.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    for name in ("subject", "practitioner", "recipient", "org", "kind", "decision", "purpose"):
        le.add_argument(f"--{name}", help=f"only entries with this {name} (as GET /api/v1/ledger)")
    le.add_argument("--from", dest="from_", help="only from this time (RFC 3339)")
    le.add_argument("--to", help="only before this time (RFC 3339)")
    le.add_argument("-o", "--output", help="write the export here (default: standard output)")
    le.add_argument("--force", action="store_true", help="replace the -o file if it exists (else refused)")
    le.add_argument("--timeout", type=float, default=600.0)
    le.set_defaults(func=cmd_ledger_export)


def cmd_ledger_export(args: argparse.Namespace) -> int:
    """Stream `GET /api/v1/ledger?format=…` to a file (written whole, then renamed) or standard output."""
    names = ("subject", "practitioner", "recipient", "org", "kind", "decision", "purpose", "to")
    params = {"format": args.format, **{n: getattr(args, n) for n in names if getattr(args, n)}}
    if args.from_:
        params["from"] = args.from_
    output = Path(args.output) if args.output else None
    if output is not None:
        _refuse_overwrite(output, args.force)
    url = f"{args.gateway.rstrip('/')}/api/v1/ledger?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {args.token}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=args.timeout) as resp:  # noqa: S310
        size = resp.headers.get("X-SafeShare-Export-Size")
        if output is None:
            with progress("exporting", None) as advance:
                while block := resp.read(256 * 1024):
                    sys.stdout.buffer.write(block)
                    advance(len(block))
            sys.stdout.flush()
        else:
            fd, tmp_name = tempfile.mkstemp(dir=output.resolve().parent, prefix=".safeshare-export-")
            try:
                with os.fdopen(fd, "wb") as fh, progress("exporting", None) as advance:
                    while block := resp.read(256 * 1024):
                        fh.write(block)
                        advance(len(block))
                    fh.flush()
                    os.fsync(fh.fileno())
                _refuse_overwrite(output, args.force)
                os.replace(tmp_name, output)
            finally:
                if os.path.exists(tmp_name):
                    os.unlink(tmp_name)
            print(f"exported the ledger up to entry {size} to {output}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000000")
    return value


def _walk(parser: argparse.ArgumentParser) -> Any:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _walk(child)


def _add_credential_sources(root: argparse.ArgumentParser) -> None:
    """Every command that takes --token also takes --token-file FILE or $SAFESHARE_TOKEN (a token on the command
    line shows in `ps` and shell history); every command that needs --gateway also takes $SAFESHARE_GATEWAY.
    The options stop being required for argparse; `main` resolves them and says what is missing."""
    for parser in _walk(root):
        opts = {a.dest: a for a in parser._actions if a.option_strings}
        if "token" in opts:
            opts["token"].help = (opts["token"].help or "token") + " (or --token-file, or $SAFESHARE_TOKEN)"
            parser.add_argument("--token-file", metavar="FILE", help="read the token from this file (first line)")
            parser.set_defaults(_token_required=opts["token"].required)
            opts["token"].required = False
        if "gateway" in opts and opts["gateway"].required:
            opts["gateway"].help = (opts["gateway"].help or "gateway base URL") + " (or $SAFESHARE_GATEWAY)"
            parser.set_defaults(_gateway_required=True)
            opts["gateway"].required = False


def _resolve_credentials(args: argparse.Namespace) -> None:
    """--token, else --token-file, else $SAFESHARE_TOKEN; --gateway, else $SAFESHARE_GATEWAY (only where the
    command needs a gateway: `ledger verify` without --gateway stays a local check)."""
    if hasattr(args, "token_file"):
        if args.token is not None and args.token_file:
            raise CliError("give the token one way: --token or --token-file, not both", 2)
        if args.token_file:
            try:
                with open(args.token_file, encoding="utf-8") as fh:
                    args.token = fh.readline(64 * 1024).strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"cannot read the token file {args.token_file}: {type(exc).__name__}", 2) from None
            if not args.token:
                raise CliError(f"the token file {args.token_file} is empty", 2)
        elif args.token is None and os.environ.get("SAFESHARE_TOKEN", "").strip():
            args.token = os.environ["SAFESHARE_TOKEN"]
        if args.token is None and getattr(args, "_token_required", False):
            raise CliError("a token is needed: --token-file FILE, $SAFESHARE_TOKEN or --token", 2)
    if getattr(args, "_gateway_required", False) and not args.gateway:
        args.gateway = os.environ.get("SAFESHARE_GATEWAY", "").strip() or None
        if not args.gateway:
            raise CliError("the gateway's address is needed: --gateway URL or $SAFESHARE_GATEWAY", 2)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _resolve_credentials(args)
        token = getattr(args, "token", None)
        if token is not None:
            args.token = token.strip()
            if not args.token or any(c.isspace() for c in args.token) or not args.token.isascii():
                raise CliError(
                    "--token (or --token-file, $SAFESHARE_TOKEN) must be one token, as printed by "
                    "`safeshare token issue` (no spaces or line breaks)",
                    2,
                )
        return int(args.func(args))
    except CliError as exc:
        _err(exc.message)
        return exc.status
    except StoreError as exc:  # the database refused (unknown scheme, newer schema, unreachable): no traceback
        _err(str(exc))
        return 1
    except EmptyKeyFile as exc:  # left by a crash under an older release: the message says what to do
        _err(str(exc))
        return 1
    except Refusal as exc:  # an administrative use case run locally said no
        _show_refusal(exc.body(), f"refused ({exc.code})")
        return 2
    except urllib.error.HTTPError as exc:
        _print_refusal(exc)
        return 1
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        _err(f"cannot reach the gateway at {getattr(args, 'gateway', None)}: {exc}")
        return 1
    except OSError as exc:  # a local file: the message names it
        _err(str(exc))
        return 1
    except json.JSONDecodeError as exc:
        _err(f"the gateway's answer is not the JSON expected ({exc}); is --gateway a SafeShare gateway?")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
