"""A browser test that hangs fails instead of stalling the run.

Some Playwright calls (evaluate, keyboard, a service worker's evaluate) have no timeout of their own: if the
browser never answers, the test waits for ever. The first watchdog (faulthandler's `exit=True`) ended the
worker process, which made things worse under pytest-xdist: `--dist loadgroup` puts the crashed test's whole
group back in the queue, a fresh worker runs the same test again, and once the workers are used up the
controller waits for ever with work still pending (seen in CI: the run stalled until it was killed).

So this watchdog never ends the process. When a test runs past its limit it
1. writes which test hung, every thread's traceback and every greenlet's (sync Playwright runs the test's code in
   one greenlet and its event loop in another, so a thread dump alone hides the test's own frames), then
2. kills the browsers this process started (Chromium, Firefox, with their own child processes): Playwright's
   pending call then fails with "Target closed", so the test fails and says where;
3. if the test is still running a while later, kills every process this one started (the Playwright driver too);
4. and as a last resort interrupts the main thread (SIGINT), which ends the run with a report, never a stall.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

#: The names Linux gives the browsers' processes (`/proc/PID/comm`, at most 15 characters).
BROWSER_NAMES = ("chromium", "chrome", "headless_shell", "firefox", "firefox-esr")


def _processes() -> dict[int, tuple[int, str]]:
    """Every process's parent and name, read from /proc (pid -> (ppid, comm))."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may itself hold spaces and parentheses, so split at the last ")".
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry)] = (int(fields[1]), comm)
    return found


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[tuple[int, str]]:
    """The processes started, directly or not, by `root`, parents before their children."""
    table = _processes() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _comm) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: list[tuple[int, str]] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        out.append((pid, table[pid][1]))
        queue.extend(children.get(pid, []))
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_browsers(root: int) -> list[tuple[int, str]]:
    """Kill every browser process under `root`, and what each of them started; returns what was killed."""
    table = _processes()
    doomed: dict[int, str] = {}
    for pid, comm in descendants(root, table):  # parents first: a browser's helpers (renderers, "Web Content",
        if comm.startswith(BROWSER_NAMES) or table[pid][0] in doomed:  # zygotes) go with it, whatever their names
            doomed[pid] = comm
    _kill(list(doomed))
    return list(doomed.items())


def dump_stacks(out: TextIO) -> None:
    """Every thread's traceback, then every suspended greenlet's (the test's own frames under sync Playwright)."""
    out.write("Threads:\n")
    out.flush()
    faulthandler.dump_traceback(out, all_threads=True)
    try:
        import greenlet
    except ImportError:
        return
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            out.write(f"\nGreenlet {obj!r} (most recent call last):\n")
            out.write("".join(traceback.format_stack(obj.gr_frame)))
    out.flush()


class Watchdog:
    """One per process; `watch(test_id)` wraps one test. Steps after the limit: kill the browsers, then (after
    `grace` more seconds) everything this process started, then (after `grace` more) interrupt the run."""

    def __init__(self, log: Path, limit: float, grace: float = 60.0, root: int | None = None) -> None:
        self.log = log
        self.limit = limit
        self.grace = grace
        #: Whose browsers and processes to kill: this process unless told (the watchdog's own tests).
        self.root = root
        #: What the watchdog did during the current test, for the test's report.
        self.fired: list[str] = []
        #: How many times it has killed browsers: a fixture holding a browser started before the last kill starts
        #: another (tests/e2e/conftest.py).
        self.kills = 0

    @contextlib.contextmanager
    def watch(self, test_id: str) -> Iterator[None]:
        self.fired = []
        done = threading.Event()
        thread = threading.Thread(target=self._run, args=(test_id, done), name="e2e-watchdog", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _run(self, test_id: str, done: threading.Event) -> None:
        if done.wait(self.limit):
            return
        me = self.root or os.getpid()
        with open(self.log, "a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {test_id} still running after {self.limit:.0f} s\n")
            dump_stacks(out)
            killed = kill_browsers(me)
            self.kills += 1
            out.write(f"Killed the browsers: {killed}\n")
            self.fired.append(f"the e2e watchdog killed the browsers after {self.limit:.0f} s: {killed}")
        if done.wait(self.grace):
            return
        with open(self.log, "a") as out:
            tree = descendants(me)
            _kill([pid for pid, _ in tree])
            out.write(f"{test_id} still running {self.grace:.0f} s later; killed everything it started: {tree}\n")
            dump_stacks(out)
            self.fired.append("then killed every process the test run had started")
        if done.wait(self.grace):
            return
        with open(self.log, "a") as out:
            out.write(f"{test_id} still running; interrupting the run (SIGINT)\n")
        os.kill(os.getpid(), signal.SIGINT)
