"""Local stand-ins for the webmails: saved compose pages served over HTTPS on their real hostnames (Chromium
maps the names to loopback with --host-resolver-rules) and a saved Roundcube page over plain HTTP."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).resolve().parents[2] / "extension" / "test" / "fixtures"
GMAIL = "mail.google.com"
OUTLOOK = ("outlook.office.com", "outlook.office365.com", "outlook.live.com")


def self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A throwaway certificate and key for `names`, written into `directory` (a test's tmp dir, never the repo)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "webmail-cert.pem", directory / "webmail-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass
class Webmail:
    """What the fixture webmails serve; tests read `attachments` to compare with what the recipient decrypts."""

    https_port: int = 0
    http_port: int = 0
    attachments: dict[str, Attachment] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    @property
    def roundcube_origin(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def gmail_url(self) -> str:
        return f"https://{GMAIL}/mail/u/0/#inbox?compose=new"

    def outlook_url(self, host: str = OUTLOOK[0]) -> str:
        return f"https://{host}/mail/deeplink/compose"

    def roundcube_url(self) -> str:
        return f"{self.roundcube_origin}/?_task=mail&_action=compose&_id=186f2c5a0d1e2"

    def host_rules(self) -> str:
        return ", ".join(f"MAP {h}:443 127.0.0.1:{self.https_port}" for h in (GMAIL, *OUTLOOK))


def _handler(mail: Webmail) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stalled connection ends instead of holding a thread

        def log_message(self, format: str, *args: object) -> None:  # stdlib signature
            pass

        def send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def attachment(self, key: str) -> None:
            att = mail.attachments.get(key)
            if att is None:
                self.send(404, b"no such attachment", "text/plain")
                return
            mail.fetched.append(key)
            self.send(200, att.data, att.content_type)

        def do_GET(self) -> None:  # stdlib name
            host = (self.headers.get("Host") or "").split(":")[0]
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            if host == GMAIL:
                if "attid" in q:
                    return self.attachment(f"gmail:{q['attid'][0]}")
                if url.path.startswith("/mail/"):
                    return self.send(200, (FIXTURES / "gmail-compose.html").read_bytes(), "text/html; charset=utf-8")
            elif host in OUTLOOK:
                if url.path == "/owa/service.svc/s/GetFileAttachment":
                    return self.attachment(f"outlook:{q.get('id', [''])[0]}")
                if url.path.startswith("/mail/"):
                    return self.send(200, (FIXTURES / "outlook-compose.html").read_bytes(), "text/html; charset=utf-8")
            elif host == "127.0.0.1" and self.server.server_port == mail.http_port:  # type: ignore[attr-defined]
                if q.get("_action") == ["display-attachment"]:
                    return self.attachment(f"roundcube:{q.get('_file', [''])[0]}")
                if q.get("_action") == ["compose"]:
                    return self.send(
                        200, (FIXTURES / "roundcube-compose.html").read_bytes(), "text/html; charset=utf-8"
                    )
            self.send(404, b"not found", "text/plain")

    return Handler


class TLSServer(ThreadingHTTPServer):
    """HTTPS with the TLS handshake in each connection's own thread (with a timeout), so a browser's idle
    preconnect can never stall the accept loop, nor shutdown."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], ctx: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.ctx = ctx

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(tls, client_address)


@contextmanager
def serve_webmail(tmp: Path, attachments: dict[str, Attachment]) -> Iterator[Webmail]:
    mail = Webmail(attachments=attachments)
    handler = _handler(mail)
    cert, key = self_signed(tmp, [GMAIL, *OUTLOOK])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    https = TLSServer(("127.0.0.1", 0), handler, ctx)
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    mail.https_port = https.server_port
    mail.http_port = http.server_port
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (https, http)]
    for t in threads:
        t.start()
    try:
        yield mail
    finally:
        for s in (https, http):
            s.shutdown()
            s.server_close()
