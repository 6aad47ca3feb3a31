"""The page behind the link in a practitioner's notification e-mail, for a recipient without the extension.

It says how to get set up and repeats the reference, nothing else: no lookup, so it reveals neither whether
the share exists nor anything about it. With the extension installed, the extension opens the share instead.
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
code{{background:#f2f2f2;padding:.1rem .3rem}}h1{{font-size:1.4rem}}</style></head>
<body><main>
<h1>Information has been shared with you securely</h1>
<p>A safeguarding practitioner has shared information with you through SafeShare. It is encrypted so that
only you can open it, and it is not attached to the e-mail.</p>
{reference}
<h2>To open it</h2>
<ol>
<li>Install the SafeShare browser extension provided by your organisation.</li>
<li>Choose <strong>Set up receiving</strong> in the extension and follow the steps; your administrator approves
your key once.</li>
<li>Open this link again, or find the share in the extension's inbox.</li>
</ol>
<p>Once the extension is set up in this browser, opening this link takes you straight to the share in the
extension, where it is decrypted on your computer.</p>
<p>If you did not expect this, or cannot install the extension, contact the sender's organisation by a route
you already know, not by replying with personal information.</p>
</main></body></html>
"""


@routes.get("/s/{share_id}")
async def notice(request: web.Request) -> web.Response:
    share_id = request.match_info["share_id"]
    reference = f"<p>Reference: <code>{html.escape(share_id)}</code></p>" if SHARE_ID_RE.match(share_id) else ""
    return web.Response(
        text=PAGE.format(reference=reference),
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
        },
    )
