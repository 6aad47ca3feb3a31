"""A real SMTP server (aiosmtpd) on loopback that keeps every message it receives, for the e-mail tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


class Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(bytes(envelope.content))
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def wait_for(self, to: str, count: int = 1, timeout: float = 10.0) -> EmailMessage:
        """The `count`-th message to `to` (waits for it: the gateway may send just after answering)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [m for m in self.messages if m["To"] == to]
            if len(mine) >= count:
                return mine[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"no message {count} to {to}; got {[m['To'] for m in self.messages]}")

    async def arrival(self, to: str, count: int = 1) -> EmailMessage:
        """`wait_for` for tests whose gateway runs on their own event loop (it sends after answering)."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            mine = [m for m in self.messages if m["To"] == to]
            if len(mine) >= count:
                return mine[count - 1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no message {count} to {to}; got {[m['To'] for m in self.messages]}")

    def sent_to(self, to: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == to]


def code_in(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"Your code: ([0-9]{6})", body.get_content())
    assert found, "no code in the message body"
    return found.group(1)


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, str]]:
    sink = Sink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
