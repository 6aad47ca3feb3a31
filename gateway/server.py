"""The HTTP server around the application: connection limits, read timeouts and the API's own error shape.

aiohttp alone waits for ever on a client that opens a connection and says nothing (slowloris), answers
malformed HTTP in plain text (quoting the offending bytes back, e.g. the start of an Authorization header),
and accepts connections until the process runs out of file descriptors. `GuardedServer` adds:

- a header timeout: a request's headers must be complete within `header_timeout_seconds` of the
  connection opening (or of the first byte of a later request on a kept-alive connection);
- a body idle timeout and a minimum upload rate, both measured only while the handler is waiting for body
  bytes (a handler busy encrypting is not the client's fault) and the rate averaged over a window, so that
  a large upload on a slow but steady line succeeds and a stalled one is dropped;
- a cap on open connections below the open-file limit: at the cap, the connection that has waited longest
  without sending a complete request is dropped to make room, and when every connection is busy the new
  one is refused at once (accepted and closed, which costs nothing but the accept);
- malformed HTTP (over-long request line or header, too many headers, bad syntax) answered with the API's
  JSON error shape, quoting nothing of the request, and logged by exception type only.

`RepeatFilter` rate-limits repeated warning/error log lines (e.g. the event loop's "Too many open files"):
one line per interval, then a count of what was suppressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse
from aiohttp.web_server import Server

from .config import Limits

log = logging.getLogger("safeshare.server")

#: File descriptors kept back from the connection cap for the database, envelope spool files and logs.
FD_HEADROOM_MIN = 32
FD_HEADROOM_MAX = 128
#: The kernel's queue of connections waiting to be accepted (they hold no descriptor of ours until accepted).
LISTEN_QUEUE = 1024


def open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fd_headroom(nofile: int | None = None) -> int:
    nofile = open_file_limit() if nofile is None else nofile
    return max(FD_HEADROOM_MIN, min(FD_HEADROOM_MAX, nofile // 8))


def connection_cap(limits: Limits, nofile: int | None = None) -> int:
    """The configured cap, lowered to stay under the process's open-file limit (RLIMIT_NOFILE minus headroom)."""
    nofile = open_file_limit() if nofile is None else nofile
    return max(1, min(limits.max_connections, nofile - fd_headroom(nofile)))


@dataclass(frozen=True)
class Guard:
    header_timeout: float
    body_idle_timeout: float
    min_rate: float
    rate_window: float
    cap: int
    accept_backlog: int = 64

    @property
    def tick(self) -> float:
        return max(0.05, min(1.0, self.header_timeout / 4, self.body_idle_timeout / 4, self.rate_window / 4))

    @classmethod
    def from_limits(cls, limits: Limits) -> Guard:
        return cls(
            header_timeout=limits.header_timeout_seconds,
            body_idle_timeout=limits.body_idle_timeout_seconds,
            min_rate=float(limits.min_upload_bytes_per_second),
            rate_window=limits.min_upload_rate_window_seconds,
            cap=connection_cap(limits),
            accept_backlog=max(4, fd_headroom() // 4),
        )


def _json_error(status: int, code: str, message: str) -> Response:
    body = {"error": code, "message": message}
    resp = Response(status=status, text=json.dumps(body), content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.force_close()
    return resp


def protocol_error(status: int, exc: BaseException | None) -> Response:
    """The API's JSON shape for errors raised below the application; the request is never quoted."""
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        if isinstance(line, (bytes, bytearray, str)) and line[:1] in (b"/", "/", b"*", "*"):
            return _json_error(414, "request_line_too_long", "The request line is longer than this gateway accepts.")
        return _json_error(431, "request_header_too_large", "A request header is larger than this gateway accepts.")
    if isinstance(exc, HttpProcessingError) and "Too many headers" in str(exc.message):
        return _json_error(431, "too_many_headers", "The request has more headers than this gateway accepts.")
    if isinstance(exc, HttpProcessingError) or status == 400:
        return _json_error(400, "malformed_request", "The request is not well-formed HTTP.")
    if status == 504:
        return _json_error(504, "timeout", "The gateway timed out handling this request.")
    return _json_error(500, "internal_error", "The gateway could not complete this request.")


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with read timeouts, a rate floor and JSON protocol errors."""

    def __init__(self, manager: GuardedServer, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._opened = time.monotonic()
        self._header_started: float | None = None
        self._tick_bytes = 0
        self._idle_run = 0.0
        self._samples: deque[int] = deque(maxlen=max(1, round(guard.rate_window / guard.tick)))
        self._sampled_request: object = None
        self.dropped = False

    # -- protocol-level errors ----------------------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        # Port scanners and TLS on the HTTP port, and clients gone (or dropped by the guard): not worth a line.
        if not isinstance(exc, (BadHttpMethod, ConnectionError)) and not self.dropped:
            log.warning("protocol error %s (%s)", status, type(exc).__name__ if exc else "no exception")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        return protocol_error(status, exc)

    # -- timeouts --------------------------------------------------------------------------------------

    def awaiting_headers(self) -> bool:
        return not self._request_in_progress and not self._messages

    def data_received(self, data: bytes) -> None:
        self._tick_bytes += len(data)
        if self.awaiting_headers() and self._header_started is None:
            self._header_started = time.monotonic()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._header_started = None

    def _drop(self, why: str) -> None:
        self.dropped = True
        log.warning("dropping connection: " + why)  # one template per reason, so RepeatFilter counts them
        self.force_close()

    def guard_tick(self, now: float) -> None:
        if self.dropped or self.transport is None:
            return
        got, self._tick_bytes = self._tick_bytes, 0
        g = self._guard
        if self.awaiting_headers():
            started = self._opened if self._request_count == 0 else self._header_started
            if started is not None and now - started > g.header_timeout:
                self._drop("request headers not received in time")
            return
        request = self._current_request
        payload = request.content if request is not None else None
        if payload is None or payload.is_eof():
            self._idle_run = 0.0
            return
        if request is not self._sampled_request:
            self._sampled_request = request
            self._samples.clear()
            self._idle_run = 0.0
        if getattr(payload, "_waiter", None) is None:
            self._idle_run = 0.0  # the handler is busy, not waiting on the client
            return
        self._idle_run = self._idle_run + g.tick if got == 0 else 0.0
        if self._idle_run >= g.body_idle_timeout:
            self._drop("request body stalled")
            return
        self._samples.append(got)
        if len(self._samples) == self._samples.maxlen and sum(self._samples) < g.min_rate * g.rate_window:
            self._drop("request body slower than the minimum upload rate")


class GuardedServer(Server):
    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._ticker: asyncio.TimerHandle | None = None
        self.refused = 0

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, self.guard, loop=self._loop, **self._kwargs)

    def _tick(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections):
            if isinstance(conn, GuardedRequestHandler):
                conn.guard_tick(now)
        self._ticker = self._loop.call_later(self.guard.tick, self._tick)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if self._ticker is None:
            self._ticker = self._loop.call_later(self.guard.tick, self._tick)
        live = [c for c in self._connections if not getattr(c, "dropped", False)]
        if len(live) >= self.guard.cap:
            victim = next((c for c in live if isinstance(c, GuardedRequestHandler) and c.awaiting_headers()), None)
            if victim is not None:
                victim._drop("connection limit reached; it had sent no complete request")
            else:
                self.refused += 1
                log.warning("connection limit (%d) reached; refusing new connections", self.guard.cap)
                if isinstance(handler, GuardedRequestHandler):
                    handler.dropped = True
                transport.abort()
                return
        super().connection_made(handler, transport)

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - aiohttp's signature
        if self._ticker is not None:
            self._ticker.cancel()
        await super().shutdown(timeout)


class GuardedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, guard: Guard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard

    async def _make_server(self) -> Server:
        app = self.app
        loop = asyncio.get_running_loop()
        app._set_loop(loop)
        app.on_startup.freeze()
        await app.startup()
        app.freeze()
        kwargs = dict(self._kwargs)
        kwargs["debug"] = app._debug
        kwargs.update(app._handler_args or {})
        return GuardedServer(app._handle, request_factory=app._make_request, loop=loop, guard=self._guard, **kwargs)


class RepeatFilter(logging.Filter):
    """Let one warning-or-worse line of each kind through per `interval` seconds; count the rest.

    "Kind" is the logger and the message's first line before formatting, so lines that differ only in a
    file descriptor or an address are one kind. Lines below WARNING (the access log) are never held back.
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg).split("\n", 1)[0][:120])
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} similar line(s) suppressed in the last {now - last[0]:.0f}s]"
        self._seen[key] = (now, 0)
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval}
        return True


def install_repeat_filter(interval: float = 10.0) -> RepeatFilter:
    flt = RepeatFilter(interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
    return flt


async def serve(
    app: web.Application, host: str, port: int, limits: Limits, reuse_port: bool = False, **runner_args: Any
) -> None:
    """Run `app` on host:port until SIGINT/SIGTERM, with the guards above.

    `reuse_port`: one of several worker processes on the same port (gateway/workers.py); the kernel spreads the
    connections over them. The connection cap is each worker's own (it guards that process's descriptors)."""
    guard = Guard.from_limits(limits)
    runner = GuardedAppRunner(app, guard, keepalive_timeout=limits.keepalive_timeout_seconds, **runner_args)
    await runner.setup()
    # asyncio accepts up to `backlog` sockets in one go before any protocol runs, so that batch must fit in the
    # file-descriptor headroom (or a burst hits EMFILE before the cap can act); the kernel's queue of pending
    # connections is then widened again on the same socket, so bursts wait in it instead of being dropped.
    sock = socket.create_server((host, port), backlog=guard.accept_backlog, reuse_port=reuse_port)
    site = web.SockSite(runner, sock, backlog=guard.accept_backlog)
    await site.start()
    sock.listen(LISTEN_QUEUE)
    log.info("listening on %s:%s (at most %d connections)", host, port, guard.cap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
