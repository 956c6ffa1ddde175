"""Fake delivery endpoints for the out-of-band code tests: a real SMTP server and a Pushover API.

No tests here: the e2e tests import these helpers. Both listen on 127.0.0.1 only, on a free port,
with a throw-away self-signed certificate (generated with ``openssl req`` into a private temp
dir), have bounded timeouts, and clean up on ``stop()`` / leaving the ``with`` block, also when
the test failed::

    from delivery_servers import SmtpServer, PushoverServer

    with SmtpServer(username="mailer", password="pw") as smtp:
        settings = smtp.settings(from_addr="twofa@example.com")   # TOML for twofa-deliver
        ... run a login that mails a code ...
        [mail] = smtp.wait_for_messages(1)
        assert mail.rcpt_tos == ["alice@example.com"] and code in mail.body

    with PushoverServer(token=TOKEN, user_keys=[USER_KEY]) as api:
        ... ; [req] = api.requests(); req.form["message"]

``cert_path`` is the PEM certificate to give twofa-deliver as ``ca_file``. Its directory is
0755 and the file 0644, so the unprivileged delivery user can read it; the private key stays
0600 (only the server reads it).

SmtpServer is Debian's aiosmtpd (package python3-aiosmtpd, in tests/apt-packages): STARTTLS
(required before MAIL by default), implicit TLS or plaintext, and AUTH PLAIN/LOGIN with one
username and password (AUTH only after TLS, as real relays do). PushoverServer is http.server +
ssl and answers like https://api.pushover.net/1/messages.json (https://pushover.net/api):
HTTP 200 ``{"status":1,"request":"<uuid>"}``, or HTTP 400 with ``"status":0`` and an ``errors``
list naming the bad field.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Iterable, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# How long a start, a stop or one client connection may take.
TIMEOUT = 10.0

# aiosmtpd warns on every connection when AUTH is required without STARTTLS: intended here for
# tls="none" (a loopback relay) and tls="implicit" (see SmtpServer.start).
warnings.filterwarnings(
    "ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning
)


class SelfSignedCertificate:
    """A self-signed certificate for 127.0.0.1 and localhost, in a private temp dir."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twofa-e2e-cert-"))
        os.chmod(self.dir, 0o755)
        self.cert_path = self.dir / "cert.pem"
        self.key_path = self.dir / "key.pem"
        # CA:FALSE and serverAuth: rustls (webpki) refuses a CA certificate used as a server's
        # own, and accepts a self-signed end-entity certificate as a trust anchor.
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature",
                "-addext", "extendedKeyUsage=serverAuth",
                "-keyout", str(self.key_path), "-out", str(self.cert_path),
            ],
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        os.chmod(self.key_path, 0o600)
        os.chmod(self.cert_path, 0o644)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


# ---------------------------------------------------------------------------------------------
# SMTP


@dataclass
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    login: Optional[str]  # the AUTH user name, None without AUTH
    message: EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        """The text body, transfer encoding (7bit, base64, ...) undone, LF line ends."""
        return self.message.get_content().replace("\r\n", "\n")


class _Handler:
    def __init__(self, server: "SmtpServer") -> None:
        self._server = server

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        auth = session.auth_data
        login = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else None
        # session.ssl is set after STARTTLS only; implicit TLS shows on the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            tls=tls,
            login=login,
            message=email.message_from_bytes(raw, policy=email.policy.default),
        )
        self._server._record(mail)
        return "250 2.0.0 OK queued"


class SmtpServer:
    """An SMTP server on 127.0.0.1 (aiosmtpd in a thread).

    tls: "starttls" (offered, and required before MAIL), "implicit" (TLS from the first byte),
    or "none". With username and password, AUTH PLAIN and LOGIN are offered (after TLS unless
    tls="none") and required before MAIL.
    """

    def __init__(
        self,
        *,
        tls: str = "starttls",
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls must be starttls, implicit or none, not {tls!r}")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.tls = tls
        self.username = username
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        self._certificate: Optional[SelfSignedCertificate] = None
        self._controller: Optional[Controller] = None
        self._messages: list[ReceivedMail] = []
        self._failed_logins = 0
        self._lock = threading.Lock()

    @property
    def cert_path(self) -> Path:
        if self._certificate is None:
            raise RuntimeError("SmtpServer not started")
        return self._certificate.cert_path

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode(errors="replace") == self.username
            and auth_data.password.decode(errors="replace") == self.password
        )
        if not ok:
            with self._lock:
                self._failed_logins += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def start(self) -> "SmtpServer":
        self._certificate = SelfSignedCertificate()
        context = self._certificate.server_context()
        kwargs = dict(
            hostname=self.host,
            ready_timeout=TIMEOUT,
            server_hostname="fake-relay.test",
            timeout=TIMEOUT,  # per-command idle timeout of a client
        )
        if self.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif self.tls == "implicit":
            kwargs.update(ssl_context=context)
        if self.username is not None:
            # aiosmtpd 1.4 counts only STARTTLS as TLS for auth_require_tls: with implicit TLS
            # the whole session is encrypted anyway, so the check is left to STARTTLS.
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls == "starttls",
            )
        last_error: Optional[Exception] = None
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            controller = Controller(_Handler(self), port=self.port, **kwargs)
            try:
                controller.start()
            except OSError as error:
                last_error = error
                controller.stop(no_assert=True)
                continue
            self._controller = controller
            return self
        self._certificate.remove()
        raise RuntimeError(f"SMTP server did not start: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._certificate is not None:
            self._certificate.remove()
            self._certificate = None

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def messages(self) -> list[ReceivedMail]:
        """Every message accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def failed_logins(self) -> int:
        with self._lock:
            return self._failed_logins

    def wait_for_messages(self, count: int, timeout: float = TIMEOUT) -> list[ReceivedMail]:
        """Waits until at least ``count`` messages arrived; raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} mail(s), got {len(self.messages())}")

    def settings(self, *, from_addr: str = "twofa@example.com", **extra: object) -> str:
        """The TOML document twofa-deliver email reads on stdin, pointed at this server."""
        lines = {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "tls": self.tls,
            "from": from_addr,
        }
        if self.tls != "none":
            lines["ca_file"] = str(self.cert_path)
        if self.username is not None:
            lines["username"] = self.username
            lines["password"] = self.password
        lines.update(extra)
        return "".join(
            f"{key} = {value if isinstance(value, int) else _toml_string(str(value))}\n"
            for key, value in lines.items()
        )


# ---------------------------------------------------------------------------------------------
# Pushover


API_PATH = "/1/messages.json"
MAX_MESSAGE = 1024
MAX_TITLE = 250


@dataclass
class PushoverRequest:
    """One request the fake API received, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]
    status: int
    answer: dict


class _PushoverHandler(http.server.BaseHTTPRequestHandler):
    server_version = "fake-pushover/1"
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        pass  # keep pytest output clean

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        return self.rfile.read(min(max(length, 0), 64 * 1024))

    def _handle(self) -> None:
        api: PushoverServer = self.server.api  # type: ignore[attr-defined]
        body = self._body() if self.command == "POST" else b""
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        form: dict[str, str] = {}
        if content_type == "application/x-www-form-urlencoded":
            parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {name: values[0] for name, values in parsed.items()}
        status, answer = api._answer(self.command, self.path, content_type, form)
        api._record(
            PushoverRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                form=form,
                status=status,
                answer=answer,
            )
        )
        payload = json.dumps(answer, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Limit-App-Limit", "10000")
        self.send_header("X-Limit-App-Remaining", "9999")
        self.send_header("X-Limit-App-Reset", str(int(time.time()) + 86400))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    do_POST = _handle  # noqa: N815 (http.server API)
    do_GET = _handle  # noqa: N815
    do_PUT = _handle  # noqa: N815


class _TlsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self._context = context

    def get_request(self):
        sock, address = self.socket.accept()
        sock.settimeout(TIMEOUT)
        # Handshake in the handler's thread (first read), so a stalled client blocks no one.
        return self._context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request, client_address) -> None:
        pass  # a client that drops the connection (a refused certificate) is expected


class PushoverServer:
    """The Pushover Messages API on https://127.0.0.1:PORT/1/messages.json.

    token: the application token the API accepts. user_keys: the user keys it knows (any
    30-character key if None). force_status: answer every request with this HTTP status (e.g.
    500) and a matching error body, to test failures.
    """

    def __init__(
        self,
        *,
        token: str,
        user_keys: Optional[Iterable[str]] = None,
        force_status: Optional[int] = None,
    ) -> None:
        self.token = token
        self.user_keys = None if user_keys is None else set(user_keys)
        self.force_status = force_status
        self._certificate: Optional[SelfSignedCertificate] = None
        self._httpd: Optional[_TlsHttpServer] = None
        self._thread: Optional[threading.Thread] = None
        self._requests: list[PushoverRequest] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def cert_path(self) -> Path:
        if self._certificate is None:
            raise RuntimeError("PushoverServer not started")
        return self._certificate.cert_path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{API_PATH}"

    def _answer(self, method: str, path: str, content_type: str, form: dict) -> tuple[int, dict]:
        request_id = str(uuid.uuid4())

        def refuse(status: int, errors: list[str], **fields: str) -> tuple[int, dict]:
            return status, {**fields, "errors": errors, "status": 0, "request": request_id}

        if self.force_status is not None:
            return refuse(self.force_status, [f"forced failure {self.force_status}"])
        if path.split("?")[0] != API_PATH:
            return refuse(404, ["resource not found"])
        if method != "POST":
            return refuse(405, ["method not allowed"])
        if content_type != "application/x-www-form-urlencoded":
            return refuse(400, ["unsupported content type"])
        if form.get("token") != self.token:
            return refuse(400, ["application token is invalid"], token="invalid")
        user = form.get("user", "")
        known = self.user_keys is None or user in self.user_keys
        if not (len(user) == 30 and user.isalnum() and known):
            return refuse(400, ["user identifier is invalid"], user="invalid")
        message = form.get("message", "")
        if not message:
            return refuse(400, ["message cannot be blank"], message="cannot be blank")
        if len(message) > MAX_MESSAGE:
            return refuse(
                400, [f"message cannot be longer than {MAX_MESSAGE} characters"], message="is too long"
            )
        if len(form.get("title", "")) > MAX_TITLE:
            return refuse(
                400, [f"title cannot be longer than {MAX_TITLE} characters"], title="is too long"
            )
        return 200, {"status": 1, "request": request_id}

    def _record(self, request: PushoverRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> "PushoverServer":
        self._certificate = SelfSignedCertificate()
        self._httpd = _TlsHttpServer(
            ("127.0.0.1", 0), _PushoverHandler, self._certificate.server_context()
        )
        self._httpd.api = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(TIMEOUT)
            self._thread = None
        if self._certificate is not None:
            self._certificate.remove()
            self._certificate = None

    def __enter__(self) -> "PushoverServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests(self) -> list[PushoverRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def settings(self, **extra: object) -> str:
        """The TOML document twofa-deliver pushover reads on stdin, pointed at this server."""
        lines = {"api_url": self.url, "token": self.token, "ca_file": str(self.cert_path)}
        lines.update(extra)
        return "".join(
            f"{key} = {value if isinstance(value, int) else _toml_string(str(value))}\n"
            for key, value in lines.items()
        )
