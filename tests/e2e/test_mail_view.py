"""The recipient's libraries in real Chromium, inside the loaded extension: the mail view's sanitised HTML
shown in a sandboxed iframe loads nothing and runs nothing, and the keyring decrypts what rage encrypted.

Every remote reference in the hostile message points at a local HTTP server that records each request, so
"nothing was fetched" is measured, not assumed; the same message rendered without sanitising (a control)
must reach that server, which shows the check can fail."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyrage
import pytest

from tests.e2e.conftest import Browser

CSP = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'"
# A 1×1 PNG: harmless inline content that must survive sanitising.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class Recorder:
    """A loopback HTTP server that records every request path and serves a few fixed bodies."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: dict[str, bytes] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API
                recorder.paths.append(self.path)
                body = recorder.bodies.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            do_POST = do_GET  # a form submission is recorded the same way

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hits(self, exclude: tuple[str, ...] = ()) -> list[str]:
        return [p for p in self.paths if p not in exclude]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.fixture
def ext_page(browser: Browser) -> Iterator[Any]:
    """An extension page (the options page), where the extension's modules can be imported."""
    tab = browser.context.new_page()
    tab.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
    yield tab
    tab.close()


def hostile_html(origin: str) -> str:
    """A message that tries every way we know to run code or fetch from `origin`."""
    return f"""<!DOCTYPE html><html><head>
<meta http-equiv="refresh" content="0; url={origin}/meta-refresh">
<base href="{origin}/base/">
<link rel="stylesheet" href="{origin}/link.css">
<style>
@import url("{origin}/import-url.css");
@import "{origin}/import-string.css";
body {{ background-image: url({origin}/style-element-bg.png); color: #123456; }}
.esc {{ background: u\\72 l({origin}/escaped-url.png); }}
@font-face {{ font-family: Remote; src: url({origin}/font.woff); }}
p.styled {{ font-family: Remote, serif; font-weight: normal; }}
@media screen {{ .m {{ background: url({origin}/media-bg.png) }} .keep {{ margin-left: 3px }} }}
</style>
<script>fetch("{origin}/head-script")</script>
</head>
<body onload="fetch('{origin}/onload')" background="{origin}/body-background.png">
<p class="styled esc m keep" id="kept"><b>Bold</b> <i>italic</i> <u>underlined</u>
  <span id="red" style="color: rgb(255, 0, 0); background: url('{origin}/inline-style.png')">red</span></p>
<script>fetch("{origin}/body-script")</script>
<img id="remote" alt="remote" src="{origin}/remote.png">
<img id="protocol-relative" alt="pr" src="//{origin.split("//")[1]}/protocol-relative.png">
<img id="onerror" alt="onerror" src="x" onerror="fetch('{origin}/onerror')">
<img id="srcset" alt="srcset" srcset="{origin}/srcset.png 1x">
<img id="inline" alt="inline image" src="{PIXEL}">
<a id="js-link" href="javascript:fetch('{origin}/js-link')">a javascript link</a>
<a id="web-link" href="https://example.org/page">a web link</a>
<a id="relative-link" href="/relative">a relative link</a>
<iframe src="{origin}/iframe"></iframe>
<object data="{origin}/object"></object>
<embed src="{origin}/embed">
<video src="{origin}/video.mp4" poster="{origin}/poster.png" autoplay></video>
<audio src="{origin}/audio.mp3" autoplay></audio>
<table background="{origin}/table-bg.png"><tr><td id="cell">cell</td></tr></table>
<form action="{origin}/form" method="post"><input name="q" value="x" autofocus><button>Send</button></form>
<svg><image href="{origin}/svg-image.png" width="10" height="10"/></svg>
<div id="image-set" style="background-image: image-set('{origin}/image-set.png' 1x); font-style: italic">is</div>
<ul><li>first</li><li>second</li></ul>
<style>ul {{ list-style-image: url("{origin}/body-style.png"); --later: url({origin}/custom-property.png) }}</style>
</body></html>"""


def render(page: Any, doc: str, sandbox: str) -> None:
    """Show `doc` in an `<iframe sandbox srcdoc>` on the extension page and wait until it has loaded."""
    page.evaluate(
        """([doc, sandbox]) => new Promise((resolve) => {
            const f = document.createElement('iframe');
            f.setAttribute('sandbox', sandbox);
            f.addEventListener('load', () => resolve(), { once: true });
            f.srcdoc = doc;
            document.body.append(f);
        })""",
        [doc, sandbox],
    )


def wait_for_hits(recorder: Recorder, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not recorder.hits():
        time.sleep(0.05)
    time.sleep(0.5)  # let any stragglers arrive
    return recorder.hits()


def test_safe_html_document_strips_everything_that_runs_or_fetches(ext_page: Any, recorder: Recorder) -> None:
    page = ext_page
    html = hostile_html(recorder.origin)
    out = page.evaluate(
        """async (html) => {
            const mv = await import('/lib/mail-view.js');
            const doc = mv.safeHtmlDocument(html);
            const parsed = new DOMParser().parseFromString(doc, 'text/html');
            const q = (s) => parsed.querySelector(s);
            const all = Array.from(parsed.querySelectorAll('*'));
            return {
                doc,
                firstHead: parsed.head.firstElementChild?.outerHTML,
                csp: parsed.head.firstElementChild?.getAttribute('content'),
                forbidden: all.map(e => e.localName).filter(n => [
                    'script', 'iframe', 'object', 'embed', 'form', 'input', 'button', 'video', 'audio', 'svg',
                    'base', 'link', 'image'].includes(n)),
                metas: Array.from(parsed.querySelectorAll('meta')).map(m => m.getAttribute('http-equiv')),
                handlers: all.flatMap(e => e.getAttributeNames().filter(a => a.startsWith('on'))),
                styles: Array.from(parsed.querySelectorAll('style'), s => s.textContent).join('\\n'),
                bodyAttrs: parsed.body.getAttributeNames(),
                bold: q('#kept b')?.textContent, italic: q('#kept i')?.textContent, under: q('#kept u')?.textContent,
                redStyle: q('#red')?.getAttribute('style'),
                imageSetStyle: q('#image-set')?.getAttribute('style'),
                inline: q('#inline')?.getAttribute('src'),
                remote: q('#remote')?.getAttribute('src'), remoteExists: !!q('#remote'),
                pr: q('#protocol-relative')?.getAttribute('src'),
                srcset: q('#srcset')?.getAttribute('srcset'),
                jsLink: [q('#js-link')?.getAttribute('href'), q('#js-link')?.textContent],
                relLink: q('#relative-link')?.getAttribute('href'),
                webLink: ['href', 'target', 'rel'].map(a => q('#web-link')?.getAttribute(a)),
                tableBg: q('table')?.getAttribute('background'), cell: q('#cell')?.textContent,
                list: Array.from(parsed.querySelectorAll('li'), li => li.textContent),
            };
        }""",
        html,
    )
    doc: str = out["doc"]
    assert doc.startswith("<!DOCTYPE html>")
    # The policy is the first thing in <head>, before any style that could load something.
    assert out["csp"] == CSP and 'http-equiv="Content-Security-Policy"' in out["firstHead"]
    assert out["metas"] == ["Content-Security-Policy", None, None], "no refresh (only charset and referrer)"
    assert out["forbidden"] == []
    assert out["handlers"] == []
    assert "javascript:" not in doc.lower()
    # Not one reference to the server survives, in any attribute or style, escaped or not.
    assert recorder.origin.split("//")[1] not in doc, doc
    assert "@import" not in out["styles"] and "url(" not in out["styles"]
    assert out["bodyAttrs"] == []
    # Harmless formatting and inline (data:) images stay.
    assert (out["bold"], out["italic"], out["under"]) == ("Bold", "italic", "underlined")
    # (Removing the image from a `background` shorthand leaves its other parts as `initial`: harmless.)
    assert out["redStyle"].startswith("color: rgb(255, 0, 0);") and "image" not in out["redStyle"]
    assert out["imageSetStyle"] == "font-style: italic;"
    assert "color: rgb(18, 52, 86)" in out["styles"] and "margin-left: 3px" in out["styles"]
    assert "font-family: Remote, serif" in out["styles"]
    assert out["inline"] == PIXEL
    assert out["remoteExists"] and out["remote"] is None and out["pr"] is None and out["srcset"] is None
    assert out["jsLink"] == [None, "a javascript link"]
    assert out["relLink"] is None
    assert out["webLink"] == ["https://example.org/page", "_blank", "noopener noreferrer"]
    assert out["tableBg"] is None and out["cell"] == "cell"
    assert out["list"] == ["first", "second"]

    # Shown the way the viewer must show it, nothing reaches the network and nothing runs.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    recorder.paths.clear()
    render(page, doc, "")
    # Even with scripts allowed by the sandbox, the sanitised document has nothing to run and its policy
    # would block it anyway.
    render(page, doc, "allow-scripts")
    # The plain-text view of the same message shows it as text.
    text_doc = page.evaluate("(h) => import('/lib/mail-view.js').then(mv => mv.textDocument(h))", html)
    assert "<pre>&lt;!DOCTYPE html&gt;" in text_doc
    render(page, text_doc, "")
    assert wait_for_hits(recorder, 2.0) == []
    assert [u for u in requests if recorder.origin in u or u.startswith("https://example.org")] == []

    # Control: the same message unsanitised in a sandbox that allows scripts does reach the server, so the
    # check above can fail.
    render(page, html, "allow-scripts")
    hits = wait_for_hits(recorder, 5.0)
    assert "/remote.png" in hits and len(set(hits)) >= 5, f"the unsanitised control fetched too little: {hits}"


def test_safe_html_document_of_fragments_plain_text_and_nothing(ext_page: Any) -> None:
    """Mail HTML is often a fragment, or a style block before the content; an empty body still gives a document."""
    out = ext_page.evaluate(
        """async () => {
            const mv = await import('/lib/mail-view.js');
            const body = (html) => {
                const d = new DOMParser().parseFromString(mv.safeHtmlDocument(html), 'text/html');
                return [d.head.firstElementChild.getAttribute('http-equiv'), d.body.innerHTML,
                        Array.from(d.querySelectorAll('style'), s => s.textContent).slice(1).join('')];
            };
            return [body(''), body('just text & more'), body('<p>only a <em>fragment</em></p>'),
                    body('<style>p { color: red }</style><p>styled</p>'), body(null)];
        }"""
    )
    assert out == [
        ["Content-Security-Policy", "", ""],
        ["Content-Security-Policy", "just text &amp; more", ""],
        ["Content-Security-Policy", "<p>only a <em>fragment</em></p>", ""],
        ["Content-Security-Policy", "<p>styled</p>", "p { color: red; }"],
        ["Content-Security-Policy", "", ""],
    ]


@pytest.fixture
def envelopes(recorder: Recorder) -> dict[str, Any]:
    """Envelopes made by rage for a key the test holds, served to the page by the recorder."""
    old = pyrage.x25519.Identity.generate()
    new = pyrage.x25519.Identity.generate()
    small = os.urandom(200_000)  # several 64 KiB STREAM chunks
    big = os.urandom(10 * 1024 * 1024)
    recorder.bodies["/small.age"] = pyrage.encrypt(small, [old.to_public()])
    recorder.bodies["/big.age"] = pyrage.encrypt(big, [new.to_public()])
    recorder.bodies["/stranger.age"] = pyrage.encrypt(b"x", [pyrage.x25519.Identity.generate().to_public()])
    return {
        "keys": [
            {"identity": str(new), "recipient": str(new.to_public()), "created": None},
            {"identity": str(old), "recipient": str(old.to_public()), "created": None},
        ],
        "small": small,
        "big_sha256": hashlib.sha256(big).hexdigest(),
        "big_len": len(big),
    }


def test_keyring_in_the_browser_decrypts_rage_envelopes_and_locks_keys(
    ext_page: Any, recorder: Recorder, envelopes: dict[str, Any]
) -> None:
    out = ext_page.evaluate(
        """async ({origin, keys}) => {
            const kr = await import('/lib/keyring.js');
            const get = async (p) => new Uint8Array(await (await fetch(origin + p)).arrayBuffer());
            const hex = async (b) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', b)),
                                                x => x.toString(16).padStart(2, '0')).join('');
            const small = await kr.decrypt(await get('/small.age'), keys);  // the older of the two keys
            const big = await get('/big.age');
            let t = performance.now();
            const bigPlain = await kr.decrypt(big, keys);
            const decryptMs = performance.now() - t;
            let stranger = null;
            try { await kr.decrypt(await get('/stranger.age'), keys); } catch (e) { stranger = e.code; }
            const made = await kr.generateKey();
            t = performance.now();
            const armored = await kr.lock([made, ...keys], 'plum orbit kettle lantern 47');
            const lockMs = performance.now() - t;
            t = performance.now();
            const back = await kr.unlock(armored, 'plum orbit kettle lantern 47');
            const unlockMs = performance.now() - t;
            let wrong = null;
            try { await kr.unlock(armored, 'plum orbit kettle lantern 48'); } catch (e) { wrong = e.code; }
            let weak = null;
            try { await kr.lock(keys, 'password1234'); } catch (e) { weak = e.code; }
            let b64 = '';
            for (let i = 0; i < small.length; i += 0x8000) b64 += String.fromCharCode(...small.subarray(i, i + 0x8000));
            return {
                small: btoa(b64), bigSha256: await hex(bigPlain), bigLen: bigPlain.length, decryptMs,
                stranger, made, armored, back, lockMs, unlockMs, wrong, weak,
            };
        }""",
        {"origin": recorder.origin, "keys": envelopes["keys"]},
    )
    assert base64.b64decode(out["small"]) == envelopes["small"]
    assert (out["bigSha256"], out["bigLen"]) == (envelopes["big_sha256"], envelopes["big_len"])
    assert out["stranger"] == "no_matching_key"
    assert out["wrong"] == "wrong_passphrase" and out["weak"] == "weak_passphrase"
    assert out["back"] == [out["made"], *envelopes["keys"]]
    # The backup made in the browser opens with rage, and its key is one rage agrees with.
    identity_file = pyrage.passphrase.decrypt(out["armored"].encode(), "plum orbit kettle lantern 47").decode()
    assert out["made"]["identity"] in identity_file.splitlines()
    made_id = pyrage.x25519.Identity.from_str(out["made"]["identity"])
    assert str(made_id.to_public()) == out["made"]["recipient"]
    print(
        f"\nChromium: lock (scrypt 2^18) {out['lockMs']:.0f} ms, unlock {out['unlockMs']:.0f} ms, "
        f"decrypt 10 MiB {out['decryptMs']:.0f} ms"
    )
