"""`python -m gateway.web`: rewrite the Subresource Integrity attributes of the gateway's own pages."""

from __future__ import annotations

from pathlib import Path

from . import write_integrity

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for site in sorted(p for p in here.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for page in write_integrity(site):
            print(f"updated {site.name}/{page}")
