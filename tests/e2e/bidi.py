"""A small WebDriver BiDi client for Debian's Firefox ESR, enough to drive the extension like a user.

Playwright's Firefox needs Playwright's own patched build (downloading browsers is not allowed here), but
Firefox speaks WebDriver BiDi natively: `firefox-esr --remote-debugging-port=0` prints the WebSocket address
on stderr, and the protocol can install a temporary add-on (`webExtension.install`), navigate, run scripts in
any frame (extension pages included) and send real pointer and keyboard input. aiohttp (a gateway dependency)
is the WebSocket client.

The Firefox process gets its own process group, which is ended on the way out, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

FIREFOX_CANDIDATES = ("/usr/bin/firefox-esr", "firefox-esr", "firefox")
#: Without it WebDriver BiDi refuses to open moz-extension:// pages (the options page a user opens from
#: about:addons, or by typing its address). It gives the harness, not the web pages, chrome access.
SYSTEM_ACCESS = ("--remote-allow-system-access",)
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")

#: A quiet, offline profile: no first-run pages, no update or telemetry traffic, no default-browser prompt.
QUIET_PREFS: dict[str, Any] = {
    "remote.active-protocols": 1,  # BiDi only (no CDP)
    "xpinstall.signatures.required": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",  # Remote Settings: nowhere (loopback discard port)
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.tabs.warnOnClose": False,
}


def firefox_path() -> str | None:
    for c in FIREFOX_CANDIDATES:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    return None


class BiDiError(AssertionError):
    """A command the browser refused (its error code and message), or a script that threw."""


def _pref_line(name: str, value: Any) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"


class BiDi:
    """One WebDriver BiDi connection: commands with ids, and the events that arrive in between."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self._waiting.pop(data.get("id"), None) if "id" in data else None
            if fut is not None and not fut.done():
                fut.set_result(data)
            elif data.get("type") == "event":
                self.events.append(data)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(BiDiError("the browser closed the WebDriver BiDi connection"))

    async def send(self, method: str, params: dict[str, Any] | None = None, within: float = 30.0) -> dict[str, Any]:
        cid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = fut
        await self.ws.send_str(json.dumps({"id": cid, "method": method, "params": params or {}}))
        try:
            answer = await asyncio.wait_for(fut, within)
        except TimeoutError:
            raise BiDiError(f"{method}: no answer from Firefox within {within} s") from None
        finally:
            self._waiting.pop(cid, None)
        if answer.get("type") == "error":
            raise BiDiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return answer["result"]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.ws.close()


@dataclass
class Firefox:
    """A running headless Firefox with a BiDi session; `tab()` gives a page to drive."""

    bidi: BiDi
    process: subprocess.Popen[bytes]
    log: Path

    async def tab(self) -> Tab:
        ctx = (await self.bidi.send("browsingContext.create", {"type": "tab"}))["context"]
        return Tab(self.bidi, ctx)

    async def install_extension(self, path: Path) -> str:
        """Install an unpacked extension as a temporary add-on, as about:debugging's *Load Temporary Add-on*."""
        result = await self.bidi.send("webExtension.install", {"extensionData": {"type": "path", "path": str(path)}})
        return str(result["extension"])

    def log_tail(self, chars: int = 4000) -> str:
        return _read(self.log)[-chars:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End Firefox and every process it started (its own process group), politely first."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> Callable[[], None] | None:
    """For the browser's process, run before exec: Linux kills it if the test process dies first (e.g. the e2e
    watchdog interrupts a hung run), so no Firefox outlives the test run. Looked up here, in the parent."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _start(exe: str, profile: Path, prefs: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    """Write the profile's prefs and start Firefox in its own process group, its output going to a log file
    (a pipe nobody reads could fill up and stall the browser)."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text("".join(_pref_line(k, v) for k, v in {**QUIET_PREFS, **prefs}.items()))
    log = profile.parent / f"{profile.name}-firefox.log"
    env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "--headless", "--no-remote", "--remote-debugging-port=0", *SYSTEM_ACCESS, "--profile", str(profile)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    return proc, log


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def launch(
    exe: str, profile: Path, prefs: dict[str, Any], startup_seconds: float = 45.0
) -> AsyncIterator[Firefox]:
    """Start `exe` headless on a fresh profile with `prefs`, open a BiDi session that accepts the throwaway
    certificate of the local webmail stand-ins, and always stop the browser afterwards."""
    proc, log = await asyncio.to_thread(_start, exe, profile, prefs)
    session: aiohttp.ClientSession | None = None
    bidi: BiDi | None = None
    try:
        deadline = time.monotonic() + startup_seconds
        url = None
        while url is None:
            m = LISTENING.search(_read(log))
            if m:
                url = m.group(1)
            elif proc.poll() is not None:
                raise BiDiError(f"Firefox exited ({proc.returncode}) before listening:\n{_read(log)[-3000:]}")
            elif time.monotonic() > deadline:
                raise BiDiError(f"Firefox did not start WebDriver BiDi in {startup_seconds} s:\n{_read(log)[-3000:]}")
            else:
                await asyncio.sleep(0.1)
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url.rstrip("/") + "/session", max_msg_size=64 * 1024 * 1024)
        bidi = BiDi(ws)
        await bidi.send("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        yield Firefox(bidi, proc, log)
    finally:
        if bidi is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bidi.send("browser.close", within=5), 6)
            await bidi.close()
        if session is not None:
            await session.close()
        await asyncio.to_thread(_stop, proc)


def _js(value: Any) -> str:
    return json.dumps(value)


@dataclass
class Tab:
    """A browsing context (a tab, or a frame inside one): navigation, scripts and real input."""

    bidi: BiDi
    context: str

    async def navigate(self, url: str, wait: str = "complete") -> None:
        await self.bidi.send("browsingContext.navigate", {"context": self.context, "url": url, "wait": wait})

    async def url(self) -> str:
        tree = await self.bidi.send("browsingContext.getTree", {"root": self.context, "maxDepth": 0})
        return str(tree["contexts"][0]["url"])

    async def call(self, function: str, *args: Any) -> Any:
        """Run `function(...args)` in the page (awaited) and return its result as JSON-decoded Python."""
        expression = f"(async () => JSON.stringify(await ({function})(...{_js(list(args))}) ?? null))()"
        r = await self.bidi.send(
            "script.evaluate",
            {"expression": expression, "target": {"context": self.context}, "awaitPromise": True},
        )
        if r["type"] == "exception":
            details = r["exceptionDetails"]
            raise BiDiError(f"script failed in {self.context}: {details.get('text')}")
        value = r["result"]
        return json.loads(value["value"]) if value.get("type") == "string" else None

    async def wait_for(self, function: str, *args: Any, within: float = 15.0, what: str = "") -> Any:
        """Poll `function(...args)` until it returns something truthy; that value is returned."""
        deadline = time.monotonic() + within
        last_error: Exception | None = None
        while True:
            try:
                value = await self.call(function, *args)
                if value:
                    return value
            except BiDiError as e:  # e.g. the document is being replaced
                last_error = e
            if time.monotonic() > deadline:
                why = f" ({last_error})" if last_error else ""
                raise AssertionError(f"timed out waiting for {what or function}{why}")
            await asyncio.sleep(0.1)

    async def wait_for_url(self, url: str, within: float = 15.0) -> None:
        """Wait until this context's address is exactly `url` (e.g. after the page or the browser moved it)."""
        deadline = time.monotonic() + within
        while (now := await self.url()) != url:
            if time.monotonic() > deadline:
                raise AssertionError(f"the tab stayed on {now!r}, not {url!r}")
            await asyncio.sleep(0.1)

    async def frame(self, url_part: str, within: float = 15.0) -> Tab:
        """A child frame whose address contains `url_part` (e.g. the share panel)."""
        deadline = time.monotonic() + within
        while True:
            tree = await self.bidi.send("browsingContext.getTree", {"root": self.context})
            stack = list(tree["contexts"][0].get("children") or [])
            while stack:
                c = stack.pop()
                if url_part in c["url"]:
                    return Tab(self.bidi, c["context"])
                stack.extend(c.get("children") or [])
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame with {url_part!r} appeared")
            await asyncio.sleep(0.1)

    async def _node(self, css: str) -> dict[str, Any]:
        nodes = (
            await self.bidi.send(
                "browsingContext.locateNodes",
                {"context": self.context, "locator": {"type": "css", "value": css}, "maxNodeCount": 2},
            )
        )["nodes"]
        if len(nodes) != 1:
            raise AssertionError(f"expected exactly one {css!r}, found {len(nodes)}")
        return {"sharedId": nodes[0]["sharedId"]}

    async def click(self, css: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        element = await self._node(css)
        # Scrolled at once (never animated) and again on each try, until the element is what sits under its own
        # centre in a rendered frame: a click aimed while the page's layout still moved once landed on the field
        # above Save, and Save never happened (the options-page "hang" of earlier runs); another found its target
        # outside the viewport.
        await self.wait_for(
            """css => new Promise((done) => {
                const el = document.querySelector(css);
                el.scrollIntoView({block: 'center', behavior: 'instant'});
                requestAnimationFrame(() => {
                    const r = el.getBoundingClientRect();
                    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                    done(hit !== null && (hit === el || el.contains(hit)));
                });
            })""",
            css,
            within=5.0,
            what=f"{css} to be in view and uncovered",
        )
        await self.bidi.send(
            "input.performActions",
            {
                "context": self.context,
                "actions": [
                    {
                        "type": "pointer",
                        "id": "mouse",
                        "parameters": {"pointerType": "mouse"},
                        "actions": [
                            {"type": "pointerMove", "x": 0, "y": 0, "origin": {"type": "element", "element": element}},
                            {"type": "pointerDown", "button": 0},
                            {"type": "pointerUp", "button": 0},
                        ],
                    }
                ],
            },
        )

    async def keys(self, *keys: str) -> None:
        """Press keys one after the other (each a character or a WebDriver key code such as "\\ue007" Enter)."""
        actions: list[dict[str, str]] = []
        for k in keys:
            actions += [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]
        await self._key_actions(actions)

    async def type(self, text: str) -> None:
        """Type `text` into the focused element, key by key."""
        await self.keys(*text)

    async def select_all(self) -> None:
        ctrl = "\ue009"
        await self._key_actions(
            [{"type": "keyDown", "value": ctrl}, {"type": "keyDown", "value": "a"}, {"type": "keyUp", "value": "a"}]
            + [{"type": "keyUp", "value": ctrl}]
        )

    async def _key_actions(self, actions: list[dict[str, str]]) -> None:
        await self.bidi.send(
            "input.performActions",
            {"context": self.context, "actions": [{"type": "key", "id": "keyboard", "actions": actions}]},
            within=60,
        )

    async def fill(self, css: str, text: str) -> None:
        """Click into a field, select what is there and type `text` over it, as a user would."""
        await self.click(css)
        await self.select_all()
        await self.type(text)
