"""Pages the gateway serves itself: static files shipped as package data (`gateway/web/<site>/`).

Pure apart from reading the package's own files: the set of files a site has, their content types, and the
Subresource Integrity check that every script and style sheet a page names carries the right hash — and that
every ES module its scripts import is listed with its hash in the page's import map (`"integrity"`), which is
what makes the browser check imported modules too (`<link rel=modulepreload integrity>` does not: Chromium
fetches the module again without it when the preload fails). The import map is the only inline script; the
gateway allows exactly it by its hash in the Content-Security-Policy (`inline_script_hashes`).

`python -m gateway.web` rewrites the integrity attributes and import maps of every page after its files
changed (the test `tests/test_open_page.py` fails until it has been run).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

#: The only kinds of file served; anything else in the folder (a stray editor file, a source map) is not.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

#: `<script src=… integrity=…>`, `<link href=… integrity=…>` (stylesheet or modulepreload), in either order.
_TAG = re.compile(r"<(script|link)\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r'\b(src|href|integrity|rel)="([^"]*)"', re.IGNORECASE)
#: The page's import map (the one inline script allowed, by its hash).
_IMPORTMAP = re.compile(r'(<script type="importmap">)(.*?)(</script>)', re.DOTALL)
#: Static `import … from "./x.js"` / `export … from "./x.js"` / `import "./x.js"` in an ES module.
_IMPORT = re.compile(r'^\s*(?:import|export)\b[^;"\']*?(?:from\s*)?["\'](\.{1,2}/[^"\']+)["\']', re.MULTILINE)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def sri(body: bytes) -> str:
    """The Subresource Integrity value for a file (SHA-384, as browsers and the SRI spec recommend)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _walk(node: Traversable, prefix: str = "") -> dict[str, Traversable]:
    out: dict[str, Traversable] = {}
    for child in node.iterdir():
        name = prefix + child.name
        if child.is_dir():
            out.update(_walk(child, name + "/"))
        elif Path(child.name).suffix in CONTENT_TYPES and not child.name.startswith("."):
            out[name] = child
    return out


def load_folder(folder: Path) -> dict[str, StaticFile]:
    """The servable files of a folder on disk (what load_site reads from the installed package)."""
    return {
        p.relative_to(folder).as_posix(): StaticFile(p.read_bytes(), CONTENT_TYPES[p.suffix])
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in CONTENT_TYPES and not p.name.startswith(".")
    }


def load_site(name: str) -> dict[str, StaticFile]:
    """Every servable file of `gateway/web/<name>/`, by path relative to it (read once, at start-up)."""
    root = resources.files("gateway").joinpath("web", name)
    return {path: StaticFile(node.read_bytes(), CONTENT_TYPES[Path(path).suffix]) for path, node in _walk(root).items()}


def _resolve(base: str, ref: str) -> str:
    parts = [p for p in base.split("/")[:-1] if p]
    for piece in ref.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if parts:
                parts.pop()
        else:
            parts.append(piece)
    return "/".join(parts)


def module_graph(files: dict[str, StaticFile], entry: str) -> list[str]:
    """Every module `entry` imports, directly or not (static relative imports), in a stable order."""
    seen: list[str] = []
    todo = [entry]
    while todo:
        path = todo.pop(0)
        if path in seen or path not in files:
            continue
        seen.append(path)
        text = files[path].body.decode("utf-8", "replace")
        todo.extend(_resolve(path, ref) for ref in _IMPORT.findall(text))
    return seen


def inline_script_hashes(html: str) -> list[str]:
    """CSP hash sources ('sha256-…') of the page's import maps, its only inline scripts."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(2).encode()).digest()).decode() + "'"
        for m in _IMPORTMAP.finditer(html)
    ]


def _import_map_integrity(html: str) -> dict[str, str]:
    maps = [m.group(2) for m in _IMPORTMAP.finditer(html)]
    if len(maps) != 1:
        return {}
    try:
        value = json.loads(maps[0]).get("integrity", {})
    except (ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def _import_map(page: str, files: dict[str, StaticFile], entries: list[str]) -> str:
    """The import map text for a page whose module scripts are `entries`: every imported module's hash."""
    base = "/".join(page.split("/")[:-1])
    integrity = {}
    for entry in entries:
        for module in module_graph(files, entry)[1:]:
            rel = module[len(base) + 1 :] if base else module
            integrity[f"./{rel}"] = sri(files[module].body)
    return json.dumps({"integrity": dict(sorted(integrity.items()))}, indent=2)


def sri_problems(files: dict[str, StaticFile]) -> list[str]:
    """What is wrong with Subresource Integrity in the site's pages (empty when all is right).

    Every script and style sheet a page names must carry the file's SHA-384; every module a page's scripts
    import, directly or not, must be in the page's import map `"integrity"` with its SHA-384."""
    problems: list[str] = []
    for page, f in sorted(files.items()):
        if not page.endswith(".html"):
            continue
        html = f.body.decode()
        mapped = _import_map_integrity(html)
        checked: set[str] = set()
        entries: list[str] = []
        for tag, attrs_text in _TAG.findall(html):
            attrs = {k.lower(): v for k, v in _ATTR.findall(attrs_text)}
            ref = attrs.get("src") if tag.lower() == "script" else attrs.get("href")
            if ref is None:
                if tag.lower() == "script" and 'type="importmap"' in attrs_text:
                    continue
                problems.append(f"{page}: a <{tag}> without a file (inline code is not allowed)")
                continue
            target = _resolve(page, ref)
            if target not in files:
                problems.append(f"{page}: {ref} does not exist")
                continue
            want = sri(files[target].body)
            if attrs.get("integrity") != want:
                problems.append(f"{page}: {ref} has integrity {attrs.get('integrity')!r}, the file's is {want}")
            checked.add(target)
            if tag.lower() == "script":
                entries.append(target)
        base = "/".join(page.split("/")[:-1])
        for entry in entries:
            for module in module_graph(files, entry)[1:]:
                rel = module[len(base) + 1 :] if base else module
                if mapped.get(f"./{rel}") != sri(files[module].body):
                    problems.append(f"{page}: {module} (imported by {entry}) is not in the import map with its hash")
    return problems


def write_integrity(folder: Path) -> list[str]:
    """Rewrite the integrity attribute of every script/link in the folder's pages; returns the pages changed."""
    changed = []
    for page in sorted(folder.rglob("*.html")):
        rel = page.relative_to(folder).as_posix()
        html = page.read_text()

        def fix(m: re.Match[str], rel: str = rel) -> str:
            tag, attrs_text = m.group(1), m.group(2)
            attrs = {k.lower(): v for k, v in _ATTR.findall(attrs_text)}
            ref = attrs.get("src") if tag.lower() == "script" else attrs.get("href")
            if ref is None:
                return m.group(0)
            target = folder / _resolve(rel, ref)
            if not target.is_file():
                return m.group(0)
            value = sri(target.read_bytes())
            if "integrity=" in attrs_text:
                attrs_text = re.sub(r'integrity="[^"]*"', f'integrity="{value}"', attrs_text)
            else:
                attrs_text = attrs_text.rstrip("/ ") + f' integrity="{value}"'
            return f"<{tag}{attrs_text}>"

        new = _TAG.sub(fix, html)
        files = load_folder(folder)
        entries = []
        for tag, attrs_text in _TAG.findall(new):
            attrs = {k.lower(): v for k, v in _ATTR.findall(attrs_text)}
            if tag.lower() == "script" and attrs.get("src"):
                entries.append(_resolve(rel, attrs["src"]))
        import_map = _import_map(rel, files, entries)

        def put_map(m: re.Match[str], text: str = import_map) -> str:
            return m.group(1) + text + m.group(3)

        new = _IMPORTMAP.sub(put_map, new)
        if new != html:
            page.write_text(new)
            changed.append(rel)
    return changed
