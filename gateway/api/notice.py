"""The page behind the link in a practitioner's notification e-mail, for a recipient without the extension.

It says how to get set up and repeats the reference, nothing else: no lookup, so it reveals neither whether
the share exists nor anything about it. With the extension installed, the extension opens the share instead;
without it, the prominent link leads to the gateway's own recipient page, `/open/#/s/<id>` (the ID in the
fragment, so it reaches no log).
"""

from __future__ import annotations

import html

from aiohttp import web

from ..service import SHARE_ID_RE

routes = web.RouteTableDef()

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>SafeShare: information shared with you securely</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}}
code{{background:#f2f2f2;padding:.1rem .3rem}}h1{{font-size:1.4rem}}
.open-here{{display:inline-block;margin:.5rem 0 1rem;padding:.6rem 1rem;background:#00703c;color:#fff;
font-weight:700;text-decoration:none}}.open-here:focus{{background:#fd0;color:#0b0c0c;outline:3px solid #0b0c0c}}
</style></head>
<body><main>
<h1>Information has been shared with you securely</h1>
<p>A safeguarding practitioner has shared information with you through SafeShare. It is encrypted so that
only you can open it, and it is not attached to the e-mail.</p>
{reference}
{open_here}
<h2>Or open it with the SafeShare extension</h2>
<ol>
<li>Install the SafeShare browser extension provided by your organisation.</li>
<li>Choose <strong>Set up receiving</strong> in the extension and follow the steps; your administrator approves
your key once.</li>
<li>Open this link again, or find the share in the extension's inbox.</li>
</ol>
<p>Once the extension is set up in this browser, opening this link takes you straight to the share in the
extension, where it is decrypted on your computer.</p>
<p>If you did not expect this, contact the sender's organisation by a route you already know, not by replying
with personal information.</p>
</main></body></html>
"""


@routes.get("/s/{share_id}")
async def notice(request: web.Request) -> web.Response:
    share_id = request.match_info["share_id"]
    valid = SHARE_ID_RE.match(share_id) is not None
    reference = f"<p>Reference: <code>{html.escape(share_id)}</code></p>" if valid else ""
    target = f"/open/#/s/{html.escape(share_id)}" if valid else "/open/"
    open_here = (
        f'<p><a class="open-here" id="open-here" href="{target}">Open it in this browser</a></p>'
        "<p>No installation needed: the page decrypts it in your browser. It is only as trustworthy as the "
        "gateway that serves it; where you can, the extension below is the higher-assurance way.</p>"
    )
    return web.Response(
        text=PAGE.format(reference=reference, open_here=open_here),
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
        },
    )
