"""A real SMTP server for the mail tests: aiosmtpd in a thread of the test process.

    sink = MailSink().start()                 # 127.0.0.1, a free port (sink.port, sink.url)
    ... the server under test delivers to smtp://127.0.0.1:{sink.port} ...
    sink.wait_for(1, timeout=20)              # poll until one message arrived (AssertionError otherwise)
    m = sink.messages()[0]                    # Received: .mail_from, .rcpt_tos, .raw (bytes), .msg, .auth
    m.msg["Subject"], m.text, m.html          # parsed with email.policy.default
    sink.stop(); sink.start()                 # down, then up again on the same port

It speaks plain SMTP (no STARTTLS offered, so "opportunistic" TLS towards it stays plain) and can:
- `reject`: refuse every recipient with this reply, e.g. "550 5.7.1 Rejected by the sink" (permanent) or
  "451 4.3.0 Try again later" (transient); settable while running; `None` accepts. Each refusal is
  recorded in `rejections()`.
- `delay`: seconds to hold each DATA before answering 250 (a slow server), settable while running.
- `auth`: `(user, password)` to advertise AUTH PLAIN/LOGIN without TLS and require exactly those
  credentials (others get 535); what each session authenticated with is kept in `Received.auth`.
- be created for a given `port` (e.g. one where nothing listened while the server under test queued
  mail), and stopped and started again on the same port.

Messages are kept in arrival order in a list guarded by a lock (aiosmtpd's loop runs in its own thread).
`by_message_id()` groups them by Message-ID, to count duplicates.
"""

from __future__ import annotations

import asyncio
import email
import socket
import logging
import threading
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd warns (log and UserWarning) that AUTH without TLS is unsafe, and logs its own deprecations:
# deliberate here (a loopback test sink), so keep them out of the test output.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """One message as the sink accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    msg: EmailMessage
    auth: tuple[str, str] | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def message_id(self) -> str:
        return str(self.msg["Message-ID"] or "").strip()

    def part(self, subtype: str) -> str | None:
        """The decoded text/<subtype> part (plain or html), or None."""
        for p in self.msg.walk():
            if p.get_content_type() == f"text/{subtype}" and not p.is_multipart():
                return p.get_content()
        return None

    @property
    def text(self) -> str | None:
        return self.part("plain")

    @property
    def html(self) -> str | None:
        return self.part("html")

    def header_block(self) -> bytes:
        """The raw header section (up to the first empty line)."""
        return self.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]


class _Handler:
    def __init__(self, sink: "MailSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        reply = self.sink.reject
        if reply:
            with self.sink._lock:
                self.sink._rejections.append((address, reply))
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=policy.default)
        auth = None
        if isinstance(session.auth_data, LoginPassword):
            auth = (session.auth_data.login.decode(), session.auth_data.password.decode())
        rec = Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), raw=raw, msg=msg, auth=auth)
        with self.sink._cond:
            self.sink._messages.append(rec)
            self.sink._cond.notify_all()
        return "250 Message accepted for delivery"


class _QuietController(Controller):
    def factory(self):
        # The SMTP object is made in the server thread, at the first connection.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


class MailSink:
    def __init__(self, port: int | None = None, reject: str | None = None, delay: float = 0.0, auth: tuple[str, str] | None = None):
        self.port = port or _free_port()
        self.reject = reject
        self.delay = delay
        self.auth_credentials = auth
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._messages: list[Received] = []
        self._rejections: list[tuple[str, str]] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.auth_credentials is not None and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == tuple(self.auth_credentials)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self, timeout: float = 10) -> "MailSink":
        assert self._controller is None, "sink already running"
        kwargs = {}
        if self.auth_credentials is not None:
            kwargs = dict(authenticator=self._authenticator, auth_required=True, auth_require_tls=False)
        deadline = time.monotonic() + timeout
        while True:
            c = _QuietController(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=timeout, **kwargs)
            try:
                c.start()
                break
            except OSError:
                # The port may still be held for a moment after a stop (or by a closing client socket).
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        self._controller = c
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> "MailSink":
        return self if self.running else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what arrived
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def rejections(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._rejections)

    def to(self, address: str) -> list[Received]:
        """Messages whose envelope names `address` (case-insensitive)."""
        a = address.lower()
        return [m for m in self.messages() if a in (r.lower() for r in m.rcpt_tos)]

    def by_message_id(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = defaultdict(list)
        for m in self.messages():
            out[m.message_id].append(m)
        return dict(out)

    def wait_for(self, n: int, timeout: float = 30, predicate=None) -> list[Received]:
        """Wait until at least `n` messages (matching `predicate`, if given) arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self._messages if predicate is None or predicate(m)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"mail sink: {len(got)} of {n} messages after {timeout}s")
                self._cond.wait(min(left, 0.5))
