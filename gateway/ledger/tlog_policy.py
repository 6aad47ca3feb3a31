"""C2SP tlog-policy files: which logs and witnesses a verifier trusts, and the witness quorum. Pure, no I/O.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <member>...
    quorum <name>|none

A checkpoint satisfies the policy when a signature by any listed log key verifies (our two log keys, Ed25519
and ML-DSA-44, may both be listed: either is then enough) and the witnesses whose cosignatures verify make
the quorum true.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checkpoint import AnyVerifier, Checkpoint, CheckpointError, _split_note

MAX_ENTRIES = 32 * 3


class PolicyError(ValueError):
    pass


@dataclass
class Policy:
    logs: list[AnyVerifier] = field(default_factory=list)
    witnesses: dict[str, AnyVerifier] = field(default_factory=dict)
    groups: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    quorum: str | None = None

    def _witnessed(self, name: str, cosigned: set[str]) -> bool:
        if name == "none":
            return True
        if name in self.witnesses:
            return name in cosigned
        k, members = self.groups[name]
        return sum(self._witnessed(m, cosigned) for m in members) >= k

    def check(self, note: bytes) -> tuple[Checkpoint, list[str]]:
        """Verify a checkpoint note against the policy; return it and the witnesses that cosigned it."""
        body, sigs = _split_note(note)
        log_ok = False
        for s in sigs:
            for v in self.logs:
                if (s.name, s.key_id) == (v.name, v.key_id):
                    if not v.verify(body, s.signature):
                        raise CheckpointError(f"invalid log signature for {s.name}+{s.key_id.hex()}")
                    log_ok = True
        if not log_ok:
            raise CheckpointError("no signature by a log the policy lists")
        cp = Checkpoint.parse(body)
        if not any(v.name == cp.origin for v in self.logs):
            raise CheckpointError(f"checkpoint origin {cp.origin!r} names no log key of the policy")
        cosigned: set[str] = set()
        for s in sigs:
            for wname, w in self.witnesses.items():
                if (s.name, s.key_id) == (w.name, w.key_id) and w.verify(body, s.signature):
                    cosigned.add(wname)
        assert self.quorum is not None
        if not self._witnessed(self.quorum, cosigned):
            raise CheckpointError(f"witness quorum {self.quorum!r} not met (cosigned by: {sorted(cosigned) or 'none'})")
        return cp, sorted(cosigned)


def parse_policy(text: str) -> Policy:
    from .receipt import verifier_from_vkey
    from .tlog_witness import CosignatureV1Verifier

    p = Policy()
    names: set[str] = {"none"}
    lines = text.split("\n")
    if len(lines) > 10 * MAX_ENTRIES:
        raise PolicyError("policy file too long")
    for n, raw in enumerate(lines, 1):
        if any(ord(c) < 0x20 and c != "\t" for c in raw) or "\x7f" in raw:
            raise PolicyError(f"line {n}: control character")
        words = raw.replace("\t", " ").split()
        if not words or words[0].startswith("#"):
            continue
        kind, args = words[0], words[1:]
        try:
            if kind == "log" and 1 <= len(args) <= 2:
                p.logs.append(verifier_from_vkey(args[0]))
            elif kind == "witness" and 2 <= len(args) <= 3:
                if args[0] in names:
                    raise PolicyError(f"line {n}: name {args[0]!r} defined twice")
                p.witnesses[args[0]] = CosignatureV1Verifier.from_vkey(args[1])
                names.add(args[0])
            elif kind == "group" and len(args) >= 3:
                name, k_text, members = args[0], args[1], args[2:]
                if name in names:
                    raise PolicyError(f"line {n}: name {name!r} defined twice")
                if len(set(members)) != len(members) or any(m not in names or m == "none" for m in members):
                    raise PolicyError(f"line {n}: group members must be distinct names defined earlier")
                k = len(members) if k_text == "all" else 1 if k_text == "any" else int(k_text)
                if not 1 <= k <= len(members) or (k_text not in ("all", "any") and k_text != str(k)):
                    raise PolicyError(f"line {n}: threshold must be all, any or 1..{len(members)}")
                p.groups[name] = (k, members)
                names.add(name)
            elif kind == "quorum" and len(args) == 1:
                if p.quorum is not None:
                    raise PolicyError(f"line {n}: more than one quorum line")
                if args[0] not in names:
                    raise PolicyError(f"line {n}: quorum names {args[0]!r}, not defined earlier")
                p.quorum = args[0]
            else:
                raise PolicyError(f"line {n}: not a log, witness, group or quorum line")
        except (CheckpointError, ValueError) as exc:
            if isinstance(exc, PolicyError):
                raise
            raise PolicyError(f"line {n}: {exc}") from None
    if p.quorum is None:
        raise PolicyError("the policy has no quorum line")
    if not p.logs:
        raise PolicyError("the policy lists no log")
    return p
