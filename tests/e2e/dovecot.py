"""A real Dovecot IMAP server for tests: a guard object, not a test file.

    from dovecot import Dovecot

    with Dovecot(tmp_path) as imap:                  # free 127.0.0.1 ports
        imap.deliver(Path("bug.eml").read_bytes())   # lands unseen in INBOX
        # IMAP + STARTTLS on imap.imap_port, IMAPS on imap.imaps_port,
        # user imap.user / imap.password, server certificate signed by imap.ca_file

What it starts: Debian's `dovecot-imapd` (2.3) in the foreground, `dovecot -F
-c CONF`, with a private config that reads no system file: its own
`base_dir` and `state_dir`, `mail_location = maildir:...`, a `passwd-file`
passdb/userdb with `{PLAIN}` passwords, and two listeners on 127.0.0.1: plain
IMAP offering STARTTLS, and IMAPS. Plaintext LOGIN is allowed on the plain
port (Dovecot counts 127.0.0.1 as secured anyway, so it would never announce
LOGINDISABLED there). Its log is `<workdir>/dovecot.log` (`log()` returns it).

The certificate comes from a small CA made with `openssl` for this server
only: `ca.pem` (CA:TRUE, exposed as `ca_file`) signs a P-256 leaf with
CA:FALSE, serverAuth and SANs `localhost` and `127.0.0.1`, which both
OpenSSL-based clients and rustls accept.

`deliver(eml)` writes the mail into the user's Maildir `tmp/` and renames it
into `new/` (atomic, as an MDA does): Dovecot shows it as unseen, and an IDLE
client gets `* N EXISTS` within about a second (`mailbox_idle_check_interval
= 1 secs` backs up inotify). `stop()` sends SIGTERM to the PID it started
(never a process found by name), waits, and kills only if it must.

Running as root (as on CI machines) needs four things, all set here:
- `imap-login` refuses to run as root ("This process must not be run as
  root"), so `default_login_user` stays an unprivileged user: Debian's
  `dovenull` (created by dovecot-core), else `nobody`. Login processes chroot
  into `base_dir/login`, so they need no access to the work dir.
- Mail processes refuse uid 0 ("Mail access not allowed for root", also with
  `first_valid_uid = 0`), so the mail user is `nobody` (uid/gid in the
  passwd-file), and `deliver()` chowns each mail to it.
- `nobody` cannot enter pytest's 0700 temp dirs, so the Maildirs and
  `base_dir` live in a short private dir from `tempfile.mkdtemp()` made 0711
  (only the mail user's own dir is readable by it); it is removed by
  `stop()`. A short path also keeps Dovecot's unix sockets under the 108-byte
  limit, which pytest's long `tmp_path` names can pass.
- `default_internal_user = root` (and group `root`, not Debian's `dovecot`),
  so auth can read the passwd-file in the 0700 work dir.
As an ordinary user everything runs as that user and its group (internal,
login and mail user; no login chroot): Dovecot then needs
`default_internal_group` set to that group too, or it fails to chown its
stats/dict sockets to group `dovecot`. Both ways were run here (root, and
`setpriv --reuid=nobody`).
"""

from __future__ import annotations

import os
import grp
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from itertools import count
from pathlib import Path

HOST = "127.0.0.1"
_deliveries = count()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_test_ca(directory: Path, hosts: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = (HOST,)) -> dict:
    """A CA and a CA:FALSE leaf it signed, with the given SANs (openssl).

    Returns the paths: ca (certificate), cert (leaf), key (leaf's key).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "7",
            "-subj", "/CN=Firehose test IMAP CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0] if hosts else ips[0]}")
    sans = ",".join([f"DNS:{h}" for h in hosts] + [f"IP:{i}" for i in ips])
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   f"subjectAltName={sans}\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "7", "-extfile", str(ext))
    key.chmod(0o600)
    return {"ca": ca, "cert": cert, "key": key}


class Dovecot:
    """One private Dovecot; see the module docstring.

    `users` maps user names to passwords (default: one user, `lpmqtt`).
    Ports default to free ones. `start()` returns once both ports greet.
    """

    def __init__(self, workdir: Path, imap_port: int | None = None, imaps_port: int | None = None,
                 users: dict[str, str] | None = None, binary: str = "dovecot"):
        self.workdir = Path(workdir) / "dovecot"
        self.imap_port = imap_port or free_port()
        self.imaps_port = imaps_port or free_port()
        self.users = dict(users or {"lpmqtt": "lpmqtt-Secret-42"})
        for name, password in self.users.items():
            for value in (name, password):
                if not value or any(c in value for c in ":\r\n\0"):
                    raise ValueError(f"user {name!r}: names and passwords must be non-empty, without ':', CR, LF, NUL")
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.rundir: Path | None = None
        self.ca_file: Path | None = None
        self.root = os.geteuid() == 0

    @property
    def user(self) -> str:
        """The first user's name."""
        return next(iter(self.users))

    @property
    def password(self) -> str:
        """The first user's password."""
        return self.users[self.user]

    @property
    def log_file(self) -> Path:
        return self.workdir / "dovecot.log"

    def log(self) -> str:
        """Dovecot's log so far (and what it printed before logging started)."""
        parts = [p.read_text(errors="replace") for p in (self.workdir / "stderr.log", self.log_file) if p.exists()]
        return "".join(parts)

    def maildir(self, user: str | None = None) -> Path:
        """The user's Maildir (INBOX)."""
        assert self.rundir is not None, "not started"
        return self.rundir / "mail" / (user or self.user)

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 20) -> "Dovecot":
        if shutil.which(self.binary) is None and not Path(self.binary).exists():
            raise FileNotFoundError(f"{self.binary} not found: apt-get install dovecot-imapd")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        tls = make_test_ca(self.workdir / "tls")
        self.ca_file = tls["ca"]
        self.rundir = Path(tempfile.mkdtemp(prefix="fh-dovecot-"))
        self.rundir.chmod(0o711)
        (self.rundir / "mail").mkdir()
        (self.rundir / "mail").chmod(0o711)
        uid, gid = self._mail_ids()
        lines = []
        for name, password in self.users.items():
            home = self.maildir(name)
            for sub in ("", "cur", "new", "tmp"):
                (home / sub).mkdir(exist_ok=True)
                os.chown(home / sub, uid, gid)
            lines.append(f"{name}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        users_file = self.workdir / "users"
        users_file.write_text("".join(lines))
        users_file.chmod(0o600)
        conf = self.workdir / "dovecot.conf"
        conf.write_text(self._config(tls, users_file))
        stderr = open(self.workdir / "stderr.log", "wb")
        try:
            self.proc = subprocess.Popen([self.binary, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=stderr, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            stderr.close()
        try:
            deadline = time.monotonic() + timeout
            self._wait_greeting(self.imap_port, deadline, tls=False)
            self._wait_greeting(self.imaps_port, deadline, tls=True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stops the Dovecot this object started (by its PID) and removes its run dir."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self.rundir is not None:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    # --------------------------------------------------------------- mail
    def deliver(self, eml: bytes, user: str | None = None) -> Path:
        """Drops one mail into the user's Maildir: written to tmp/, renamed into new/.

        Line ends are stored as given; Dovecot serves them as CRLF either way.
        """
        maildir = self.maildir(user)
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(_deliveries)}.firehose-test"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        with open(tmp, "wb") as f:
            f.write(eml)
            f.flush()
            os.fsync(f.fileno())
        uid, gid = self._mail_ids()
        os.chown(tmp, uid, gid)
        os.rename(tmp, new)
        return new

    # ------------------------------------------------------------ internals
    def _mail_ids(self) -> tuple[int, int]:
        if not self.root:
            return os.getuid(), os.getgid()
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid

    def _users_setting(self) -> str:
        if not self.root:
            me = pwd.getpwuid(os.getuid()).pw_name
            my_group = grp.getgrgid(os.getgid()).gr_name
            return (f"default_internal_user = {me}\n"
                    f"default_internal_group = {my_group}\n"
                    f"default_login_user = {me}\n")
        login_user = "dovenull"
        try:
            pwd.getpwnam(login_user)
        except KeyError:
            login_user = "nobody"
        return ("default_internal_user = root\n"
                "default_internal_group = root\n"
                f"default_login_user = {login_user}\n")

    def _config(self, tls: dict, users_file: Path) -> str:
        assert self.rundir is not None
        run = self.rundir / "run"
        state = self.workdir / "state"
        state.mkdir(exist_ok=True)
        chroot = "" if self.root else "  chroot =\n"
        return f"""# Written by tests/e2e/dovecot.py: a private, test-only Dovecot.
base_dir = {run}
state_dir = {state}
instance_name = firehose-test-{self.imap_port}
log_path = {self.log_file}
info_log_path = {self.log_file}
{self._users_setting()}
protocols = imap
listen = {HOST}
shutdown_clients = yes

ssl = yes
ssl_cert = <{tls['cert']}
ssl_key = <{tls['key']}
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes

mail_location = maildir:{self.rundir / 'mail'}/%u
mailbox_idle_check_interval = 1 secs

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users_file}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users_file}
}}

service imap-login {{
{chroot}  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
"""

    def _wait_greeting(self, port: int, deadline: float, tls: bool) -> None:
        context = None
        if tls:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        last = None
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"dovecot exited ({code}) before port {port} greeted:\n{self.log()}")
            try:
                with socket.create_connection((HOST, port), timeout=2) as raw:
                    sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
                    greeting = sock.recv(200)
                    if greeting.startswith(b"* OK"):
                        return
                    last = greeting
            except OSError as e:
                last = e
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot port {port} did not greet in time ({last!r}):\n{self.log()}")
            time.sleep(0.1)
