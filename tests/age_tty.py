"""Drive the `age` CLI's passphrase prompt: it reads passphrases only from a terminal, so give it a pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def age_with_passphrase(
    args: list[str], passphrase: str, prompts: int = 1, timeout: float = 120.0
) -> tuple[int, bytes]:
    """Run `age` with a pseudo-terminal as its controlling terminal and answer `prompts` passphrase prompts.

    Returns (exit status, stderr). Each answer waits for the prompt and a moment more, because age flushes
    pending terminal input when it turns echo off.
    """
    master, slave = pty.openpty()
    name = os.ttyname(slave)

    def become_session_leader() -> None:
        os.setsid()
        os.close(os.open(name, os.O_RDWR))  # the first terminal a session leader opens becomes its own

    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=become_session_leader,
    )
    seen = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                seen += os.read(master, 1024)  # the slave stays open here, so no EIO before age opens it
            if answered < prompts and seen.lower().count(b"passphrase") > answered:
                time.sleep(0.3)
                os.write(master, passphrase.encode() + b"\n")
                answered += 1
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        os.close(slave)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err
