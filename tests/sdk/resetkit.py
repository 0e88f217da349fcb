"""Helpers of test_reset.py: password-reset and verification links in mails, the hosted link pages
driven like a browser without JavaScript (requests), password-realm logins, and raw HTTP requests with
hand-made request lines and headers (for the Host-header checks).

    link = reset_link(mail)                   # the one reset link of a Received message (text and HTML agree)
    form = LinkPage.open(link)                # GET the page (own cookie jar): .status, .fields, .text, .response
    r = form.set_password("new password 1")   # POST password + confirm with the csrf field and cookie
    login(server, email, password)            # POST /oauth/token, password-realm grant, default app
"""

from __future__ import annotations

import re
import socket
import statistics
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests

from harness import CONNECTION, Roster, form_fields
from mailsink import MailSink, Received

MAIL_FROM = "Roster Tests <no-reply@roster.test>"
# Quick relay polling and retries (as in test_mail.py) so that mail arrives in a fraction of a second.
FAST_MAIL = {"mail_retry_base_ms": 100, "mail_retry_max_secs": 1, "mail_poll_interval_ms": 50, "mail_from": MAIL_FROM}
SENT = "We've just sent you an email to reset your password."
RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Verify your email address"
CHANGED_SUBJECT = "Your password was changed"
TOKEN_RE = re.compile(r"^[A-Za-z0-9]{43}$")
PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"


def mail_settings(sink: MailSink, **settings) -> dict:
    return {**FAST_MAIL, "smtp_url": sink.url, **settings}


# ---------------------------------------------------------------------------------------------
# mail


def mails(sink: MailSink, address: str, subject: str, n: int = 1, timeout: float = 20) -> list[Received]:
    """Wait until `n` messages with `subject` reached `address`; all of them, in arrival order."""
    a = address.lower()
    return sink.wait_for(n, timeout, predicate=lambda m: a in (r.lower() for r in m.rcpt_tos) and m.msg["Subject"] == subject)


def _links(m: Received, path: str) -> list[str]:
    pattern = re.compile(r"https?://[^\s\"'<>]+/" + re.escape(path) + r"\?ticket=[A-Za-z0-9]+")
    text = pattern.findall(m.text or "")
    html = pattern.findall(m.html or "")
    assert text, f"no {path} link in the text part:\n{m.text}"
    assert set(html) <= set(text) and html, (text, html)
    assert len(set(text)) == 1, text
    return text


def reset_link(m: Received) -> str:
    return _links(m, "u/reset-password")[0]


def verify_link(m: Received) -> str:
    return _links(m, "u/email-verification")[0]


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["ticket"][0]


# ---------------------------------------------------------------------------------------------
# the hosted link pages


class _Refs(HTMLParser):
    """Every URL-bearing attribute of a page (src, href, action, srcset, poster, data, formaction) and
    the tags seen, to prove a page loads nothing from elsewhere."""

    ATTRS = {"src", "href", "action", "srcset", "poster", "data", "formaction", "background", "cite"}

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in self.ATTRS and v is not None:
                self.refs.append((tag, k, v))


def page_refs(html_text: str) -> tuple[list[tuple[str, str, str]], set[str]]:
    p = _Refs()
    p.feed(html_text)
    return p.refs, p.tags


def alert_text(html_text: str) -> str:
    """The text of the page's role=alert box ('' when none)."""
    m = re.search(r'<div class="error" role="alert">(.*?)</div>', html_text, re.S)
    return _unescape(m.group(1)) if m else ""


def status_text(html_text: str) -> str:
    m = re.search(r'<div class="info" role="status">(.*?)</div>', html_text, re.S)
    return _unescape(m.group(1)) if m else ""


def rules_shown(html_text: str) -> list[str]:
    m = re.search(r'<ul class="rules">(.*?)</ul>', html_text, re.S)
    return [_unescape(x) for x in re.findall(r"<li>(.*?)</li>", m.group(1))] if m else []


def _unescape(s: str) -> str:
    import html

    return html.unescape(s).strip()


@dataclass
class LinkPage:
    """A hosted page opened from a link, with its own cookie jar (one browser)."""

    session: requests.Session
    response: requests.Response

    @classmethod
    def open(cls, link: str, session: requests.Session | None = None) -> "LinkPage":
        s = session or requests.Session()
        return cls(s, s.get(link, allow_redirects=False, timeout=30))

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def fields(self) -> dict[str, str]:
        return form_fields(self.text)

    def post(self, data: dict[str, str], headers: dict[str, str] | None = None) -> requests.Response:
        """POST the page's form with `data` added to its fields, as the browser would (same-origin
        Origin header, the csrf cookie). Redirects are not followed."""
        fields = self.fields
        action = fields.pop("_action")
        fields.update(data)
        parts = urlsplit(action)
        h = {"Origin": f"{parts.scheme}://{parts.netloc}", **(headers or {})}
        return self.session.post(action, data=fields, headers=h, allow_redirects=False, timeout=60)

    def set_password(self, password: str, confirm: str | None = None) -> requests.Response:
        return self.post({"password": password, "confirm": password if confirm is None else confirm})

    def confirm(self) -> requests.Response:
        return self.post({})


def redirect_query(r: requests.Response) -> tuple[str, dict[str, str]]:
    """(location without query, its query as a flat dict) of a 302."""
    assert r.status_code == 302, (r.status_code, r.text[:2000])
    loc = r.headers["location"]
    parts = urlsplit(loc)
    q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", q


# ---------------------------------------------------------------------------------------------
# the Authentication API


def change_password(server: Roster, email: str, tenant: str = "default", session: requests.Session | None = None, headers: dict | None = None, **fields) -> requests.Response:
    body = {"client_id": server.tenants[tenant]["default_app"]["client_id"], "email": email, "connection": CONNECTION, **fields}
    return (session or requests).post(f"{server.tenant_url(tenant)}/dbconnections/change_password", json=body, headers=headers, timeout=30)


def login(server: Roster, email: str, password: str, scope: str = "openid", tenant: str = "default") -> requests.Response:
    app = server.tenants[tenant]["default_app"]
    body = {
        "grant_type": PASSWORD_REALM,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "username": email,
        "password": password,
        "realm": CONNECTION,
        "scope": scope,
    }
    return requests.post(f"{server.tenant_url(tenant)}/oauth/token", data=body, timeout=30)


def refresh(server: Roster, refresh_token: str, tenant: str = "default") -> requests.Response:
    app = server.tenants[tenant]["default_app"]
    body = {"grant_type": "refresh_token", "client_id": app["client_id"], "client_secret": app["client_secret"], "refresh_token": refresh_token}
    return requests.post(f"{server.tenant_url(tenant)}/oauth/token", data=body, timeout=30)


def signup(server: Roster, email: str, password: str, tenant: str = "default", **fields) -> requests.Response:
    body = {"client_id": server.tenants[tenant]["default_app"]["client_id"], "email": email, "password": password, "connection": CONNECTION, **fields}
    return requests.post(f"{server.tenant_url(tenant)}/dbconnections/signup", json=body, timeout=30)


def connection(server: Roster, tenant: str = "default") -> dict:
    r = server.api(tenant).get("/connections")
    assert r.status_code == 200, (r.status_code, r.text)
    [c] = [c for c in r.json() if c["name"] == CONNECTION]
    return c


def set_policy(server: Roster, tenant: str = "default", **options) -> dict:
    """PATCH the database connection's options (they replace the stored object wholesale: the current
    options are sent back with `options` merged in)."""
    c = connection(server, tenant)
    new = {**c["options"], **options}
    r = server.api(tenant).patch(f"/connections/{c['id']}", json={"options": new})
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json()["options"] == new, r.json()
    return r.json()


def log_types(server: Roster, user_name: str) -> list[str]:
    """White-box: the log event types recorded for `user_name` (an email), oldest first."""
    u = user_name.replace("'", "''")
    return [row[0] for row in server.db.rows(f"SELECT type FROM logs WHERE user_name = '{u}' ORDER BY date, log_id")]


# ---------------------------------------------------------------------------------------------
# raw HTTP


def raw_request(port: int, request_line: str, headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request exactly as given (request line and headers are not normalized) and
    read the answer (Connection: close). Returns (status, lower-cased headers, body)."""
    lines = [request_line] + [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def second_node(spawner, first: Roster, **settings) -> Roster:
    """Another `roster serve` on the first one's PostgreSQL database (own data dir, log files, port and
    public URL); give both the same `master_key` so that either can open the other's sealed mail links."""
    import copy

    from harness import free_port

    db = copy.copy(first.db)
    db.data_dir = first.db.data_dir.parent / (first.db.data_dir.name + "-node2")
    db.data_dir.mkdir(parents=True, exist_ok=True)
    db.pg_name = None  # the first node's Database drops it
    node = spawner.server(settings={**first.settings, **settings}, db=db, start=False)
    node.port = free_port()
    node.starts = 1  # not a first start: no credentials are printed for an existing database
    node.start(expect_credentials=False)
    node.tenants = first.tenants
    return node
