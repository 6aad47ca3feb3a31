"""The real Roundcube from Debian's packages (roundcube-core, roundcube-sqlite3, php-cli, dovecot-imapd), started
for the test run: Dovecot on a loopback port with a passwd-file user, Roundcube under `php -S` with its own
configuration (ROUNDCUBE_CONFIG_DIR) and SQLite database in a temporary directory. Under a second once the
packages are installed. The mailbox is read back over IMAP (`Roundcube.drafts`), so a test can check what
Roundcube itself stored, not only what its page shows."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import grp
import imaplib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.test_cli import free_port

PUBLIC_HTML = Path("/var/lib/roundcube/public_html")
ROUNDCUBE_ETC = Path("/etc/roundcube")
SCHEMA = Path("/usr/share/roundcube/SQL/sqlite.initial.sql")
PACKAGES = "roundcube-core roundcube-sqlite3 php8.2-cli php8.2-sqlite3 dovecot-imapd"


def missing() -> str | None:
    """What is not installed (or cannot be used here), if anything."""
    if os.geteuid() != 0:
        return "root, to give Dovecot's passwd-file to the dovecot group"
    for tool in ("php", "dovecot", "doveadm"):
        if shutil.which(tool) is None:
            return tool
    for path in (PUBLIC_HTML, ROUNDCUBE_ETC / "defaults.inc.php", SCHEMA):
        if not path.exists():
            return str(path)
    probe = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=30)
    if "pdo_sqlite" not in probe.stdout:
        return "php pdo_sqlite"
    return None


@dataclass
class Roundcube:
    url: str
    user: str
    password: str
    imap_port: int

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def drafts(self) -> list[email.message.EmailMessage]:
        """Every message in the user's Drafts folder, as Dovecot stores it: what Roundcube would send."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10) as imap:
            imap.login(self.user, self.password)
            status, _ = imap.select("Drafts", readonly=True)
            if status != "OK":
                return []
            _, found = imap.search(None, "ALL")
            out = []
            for num in found[0].split():
                _, data = imap.fetch(num, "(RFC822)")
                raw = next(part[1] for part in data if isinstance(part, tuple))
                out.append(email.message_from_bytes(raw, policy=email.policy.default))
            return out


def _dovecot_conf(d: Path, port: int) -> str:
    return f"""
base_dir = {d / "run"}
state_dir = {d / "run"}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d / "dovecot.log"}
first_valid_uid = 1
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d / "passwd"}
}}
userdb {{
  driver = passwd-file
  args = {d / "passwd"}
}}
"""


@contextlib.contextmanager
def run_roundcube(html_editor: bool = False) -> Iterator[Roundcube]:
    """Roundcube and Dovecot for one test module; `html_editor` makes new messages open in Roundcube's HTML
    editor (TinyMCE), as users who choose "compose HTML messages" in their settings have it."""
    # Not pytest's tmp_path: that is private to root (0700), and Dovecot's auth process (user dovecot) and
    # mail processes (user nobody) must reach their files.
    tmp = Path(tempfile.mkdtemp(prefix="safeshare-roundcube-"))
    tmp.chmod(0o711)
    try:
        with _running(tmp, html_editor) as rc:
            yield rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _running(tmp: Path, html_editor: bool) -> Iterator[Roundcube]:
    imap_port, web_port = free_port(), free_port()
    dv = tmp / "dovecot"
    (dv / "run").mkdir(parents=True)
    (dv / "mail").mkdir()
    dv.chmod(0o755)
    (dv / "mail").chmod(0o777)  # the mail user is nobody
    passwd = dv / "passwd"
    passwd.write_text(f"pat:{{PLAIN}}e2e-only-password:65534:65534::{dv / 'mail' / 'pat'}::\n")
    # Dovecot's auth process reads it as the dovecot group (root:dovecot 640), never world-readable.
    os.chown(passwd, 0, grp.getgrnam("dovecot").gr_gid)
    passwd.chmod(0o640)
    conf = dv / "dovecot.conf"
    conf.write_text(_dovecot_conf(dv, imap_port))
    subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=30)

    rc = tmp / "roundcube"
    for sub in ("config", "logs", "temp"):
        (rc / sub).mkdir(parents=True)
    for name in ("defaults.inc.php", "mimetypes.php"):
        if (ROUNDCUBE_ETC / name).exists():
            shutil.copy(ROUNDCUBE_ETC / name, rc / "config" / name)
    db = rc / "roundcube.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.executescript(SCHEMA.read_text())
    (rc / "config" / "config.inc.php").write_text(
        f"""<?php
$config = [];
$config['db_dsnw'] = 'sqlite:///{db}?mode=0600';
$config['imap_host'] = '127.0.0.1:{imap_port}';
$config['smtp_host'] = '';
$config['des_key'] = '{os.urandom(12).hex()}';
$config['plugins'] = [];
$config['skin'] = 'elastic';
$config['log_dir'] = '{rc / "logs"}/';
$config['temp_dir'] = '{rc / "temp"}/';
$config['enable_spellcheck'] = false;
$config['enable_installer'] = false;
$config['htmleditor'] = {1 if html_editor else 0};
// Drafts and Sent are created at the first login, so that Save (a draft) works on a fresh mailbox
$config['create_default_folders'] = true;
$config['mail_domain'] = 'council.example';
"""
    )
    log = open(rc / "php.log", "w")
    php = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{web_port}", "-t", str(PUBLIC_HTML)],
        env={**os.environ, "ROUNDCUBE_CONFIG_DIR": str(rc / "config")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # php -S workers outlive the parent: stop the whole group
    )
    url = f"http://127.0.0.1:{web_port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if php.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((rc / "php.log").read_text()) from None
                time.sleep(0.05)
        yield Roundcube(url, "pat", "e2e-only-password", imap_port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(php.pid, signal.SIGTERM)
        php.wait(10)
        log.close()
        subprocess.run(["doveadm", "-c", str(conf), "stop"], timeout=30, check=False, capture_output=True)
