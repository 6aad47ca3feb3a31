"""`safeshare serve --workers N`: N gateway processes on one port and one home, kept running by a small parent.

Why processes: one gateway process is bound by Python's global interpreter lock, not by the machine. A share's
event-loop work (HTTP, the multipart parse, the justification check, the X25519 wraps) and its writer-thread work
take turns on one core however many the machine has (issue 15: about 700 durable shares a second on a 2-core
machine). Several processes on the same database are what the several-nodes design (README) already makes safe:
every write is one `BEGIN IMMEDIATE` transaction that takes the ledger's index and tree from the database itself,
a checkpoint is signed only for a size larger than any signed, and per-user state lives in the database. On
SQLite the processes share the file; the writer's cross-process lock (`store/sqlite/writer.py`) hands the write
transaction from one to the next as soon as it is free.

Each worker binds its own listening socket with `SO_REUSEPORT`, so the kernel spreads new connections evenly over
the workers (a socket shared by all would let whichever woke first take a whole burst of kept-alive connections).
The parent serves nothing: it starts the workers, restarts one that dies (a worker killed mid-share loses
nothing acknowledged: its transaction either committed or did not), passes SIGTERM/SIGINT on, and gives up if
workers keep dying at start (a port in use, a broken home) rather than loop for ever.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("safeshare.workers")

#: A worker that dies this many times within `CRASH_WINDOW_SECONDS` is a broken start, not bad luck: stop.
CRASH_LIMIT = 5
CRASH_WINDOW_SECONDS = 30.0
#: After SIGTERM, how long the workers get to finish their requests before they are killed.
STOP_GRACE_SECONDS = 30.0
_POLL_SECONDS = 0.2


class WorkersError(RuntimeError):
    """The workers could not be started or kept running (the message says why)."""


def check_port_free(host: str, port: int) -> None:
    """Fail now, with a clear message, if anything holds the port: another program (a worker that cannot bind
    would die at start, be restarted and die again until the crash limit), or another `serve --workers` of the
    same user, whose `SO_REUSEPORT` group the workers would otherwise join silently, splitting the traffic between
    two gateways. The probe binds without `SO_REUSEPORT`, which any socket already on the port refuses."""
    probe = socket.create_server((host, port), reuse_port=False)
    probe.close()


def run_workers(count: int, worker: Callable[[int], int]) -> int:
    """Fork `count` processes, each running `worker(number)` (which serves until SIGTERM) and exiting with its
    result. A worker that dies is replaced by one with the same number (number 0 runs the periodic jobs).

    Returns 0 after a clean stop (SIGTERM or SIGINT to this process), 1 when workers kept dying."""
    if count < 1:
        raise WorkersError("--workers must be at least 1")
    _wait_for_threads()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: dict[int, int] = {}  # pid -> worker number, for the log
    deaths: deque[float] = deque(maxlen=CRASH_LIMIT)
    try:
        for number in range(count):
            children[_start(worker, number, previous)] = number
        log.info("started %d workers (pids %s)", count, ", ".join(map(str, children)))
        while not stopping.is_set():
            pid, status = _reap()
            if pid == 0:
                stopping.wait(_POLL_SECONDS)
                continue
            if pid not in children:
                continue
            number = children.pop(pid)
            log.warning("worker %d (pid %d) %s; starting another", number, pid, _describe(status))
            deaths.append(time.monotonic())
            if len(deaths) == CRASH_LIMIT and deaths[-1] - deaths[0] < CRASH_WINDOW_SECONDS:
                log.error("workers died %d times in %.0f s; stopping", CRASH_LIMIT, CRASH_WINDOW_SECONDS)
                _stop(children)
                return 1
            children[_start(worker, number, previous)] = number
        _stop(children)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_threads(timeout: float = 5.0) -> None:
    """Forking copies only the calling thread: any other (a closed store's reader finishing) must have ended, or
    a worker could inherit a lock it held. The parent's own set-up (the sweep, `--dev`'s demo data) has closed
    everything it opened; its threads are given a moment to end."""
    deadline = time.monotonic() + timeout
    while threading.active_count() > 1:
        if time.monotonic() > deadline:
            names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
            raise WorkersError(f"cannot start the workers while other threads run ({names})")
        time.sleep(0.01)


def _start(worker: Callable[[int], int], number: int, handlers: Mapping[signal.Signals, Any]) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: its own signal handling (the server installs its own), never back into the parent's loop.
    code = 1
    try:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        code = worker(number)
    except BaseException:  # a worker's crash is logged here; the parent starts another
        log.exception("worker %d failed", number)
    finally:
        logging.shutdown()
        os._exit(code)


def _reap() -> tuple[int, int]:
    try:
        return os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return 0, 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _stop(children: dict[int, int]) -> None:
    """SIGTERM every worker, wait for them to finish their requests, SIGKILL any still running after the grace."""
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while children:
        pid, status = _reap()
        if pid:
            children.pop(pid, None)
            continue
        if time.monotonic() > deadline:
            for left in list(children):
                log.warning("worker pid %d did not stop in %.0f s; killing it", left, STOP_GRACE_SECONDS)
                _signal(left, signal.SIGKILL)
                os.waitpid(left, 0)
                children.pop(left)
            return
        time.sleep(_POLL_SECONDS / 4)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
