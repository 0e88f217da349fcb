"""Helpers of test_blocking.py: clients that come from a chosen loopback address, password-realm logins
and refresh exchanges from them, synchronised bursts, the attack-protection settings and user blocks
through the Management API, the unblock link of a `blocked_account` mail, and the hosted login (a
browser without JavaScript) for session checks.

The server counts failures per socket peer address. Linux routes all of 127.0.0.0/8 to loopback, so a
client bound to 127.0.0.2 (or any 127.x.y.z) is, to the server, another machine:

    s = client_from("127.0.0.2")              # a requests.Session whose connections leave from 127.0.0.2
    r = login_from(server, s, email, password)
    statuses = burst(server, email, "wrong", n=100, ip="127.0.3.1")   # 100 threads released by a barrier
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections import Counter
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from harness import CONNECTION, Roster, pkce_pair, submit_hosted_login
from mailsink import MailSink, Received
from resetkit import PASSWORD_REALM

BLOCKED_SUBJECT = "Your account has been blocked"  # crates/roster-mail/templates/blocked_account/subject.liquid
WRONG = {"error": "invalid_grant", "error_description": "Wrong email or password."}
USER_BLOCKED = {"error": "unauthorized", "error_description": "user is blocked"}
TOO_MANY = "Your account has been blocked after multiple consecutive login attempts."
SUSPICIOUS = "We have detected suspicious login behavior"
BF_DEFAULTS = {
    "enabled": True,
    "shields": ["block", "user_notification"],
    "mode": "count_per_identifier_and_ip",
    "allowlist": [],
    "max_attempts": 10,
}
SIT_DEFAULTS = {
    "enabled": True,
    "shields": ["block"],
    "allowlist": [],
    "stage": {
        "pre-login": {"max_attempts": 100, "rate": 864000},
        "pre-user-registration": {"max_attempts": 50, "rate": 24000},
    },
}
BF_PATH = "/attack-protection/brute-force-protection"
SIT_PATH = "/attack-protection/suspicious-ip-throttling"

_ip_counter = itertools.count(1)
_ip_base = secrets.randbelow(200) + 20


def fresh_ip() -> str:
    """A loopback address no other test of this process used (127.<random>.<n>.<n>)."""
    n = next(_ip_counter)
    return f"127.{_ip_base}.{n // 250}.{n % 250 + 1}"


# ---------------------------------------------------------------------------------------------
# clients from a chosen address


class _SourceAdapter(HTTPAdapter):
    def __init__(self, ip: str, **kw):
        self._ip = ip
        super().__init__(**kw)

    def init_poolmanager(self, connections, maxsize, block=False, **kw):
        kw["source_address"] = (self._ip, 0)
        super().init_poolmanager(connections, maxsize, block=block, **kw)


def client_from(ip: str, pool: int = 10) -> requests.Session:
    """A requests.Session whose connections leave from `ip` (a 127.x.y.z address)."""
    s = requests.Session()
    s.trust_env = False  # never through a proxy: the server must see this socket
    s.mount("http://", _SourceAdapter(ip, pool_connections=1, pool_maxsize=pool))
    return s


def _session(who: requests.Session | str | None) -> requests.Session:
    if isinstance(who, str):
        return client_from(who)
    return who or client_from("127.0.0.1")


def login_from(server: Roster, who: requests.Session | str | None, username: str, password: str, scope: str = "openid", headers: dict | None = None, tenant: str = "default") -> requests.Response:
    """POST /oauth/token (password-realm grant, default app) from a client address."""
    app = server.tenants[tenant]["default_app"]
    body = {
        "grant_type": PASSWORD_REALM,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "username": username,
        "password": password,
        "realm": CONNECTION,
        "scope": scope,
    }
    return _session(who).post(f"{server.tenant_url(tenant)}/oauth/token", data=body, headers=headers, timeout=60)


def refresh_from(server: Roster, who: requests.Session | str | None, refresh_token: str, tenant: str = "default") -> requests.Response:
    app = server.tenants[tenant]["default_app"]
    body = {"grant_type": "refresh_token", "client_id": app["client_id"], "client_secret": app["client_secret"], "refresh_token": refresh_token}
    return _session(who).post(f"{server.tenant_url(tenant)}/oauth/token", data=body, timeout=60)


def signup_from(server: Roster, who: requests.Session | str | None, email: str, password: str, tenant: str = "default") -> requests.Response:
    body = {"client_id": server.tenants[tenant]["default_app"]["client_id"], "email": email, "password": password, "connection": CONNECTION}
    return _session(who).post(f"{server.tenant_url(tenant)}/dbconnections/signup", json=body, timeout=60)


def outcome(r: requests.Response) -> str:
    """A short label of a token-endpoint answer: '200', '403 invalid_grant', '429 too_many_attempts', ..."""
    if r.status_code == 200:
        return "200"
    try:
        return f"{r.status_code} {r.json().get('error')}"
    except ValueError:
        return f"{r.status_code} <not json>"


def assert_too_many(r: requests.Response, text: str = TOO_MANY) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == "too_many_attempts" and body["error_description"].startswith(text), body


def burst(server: Roster | list[Roster], username: str, password: str, n: int, ip: str) -> list[requests.Response]:
    """`n` logins released together by a barrier, each on its own connection from `ip`; with a list of
    servers, request i goes to servers[i % len(servers)]. Connections are opened before the barrier so
    that the requests reach the server(s) as close together as possible."""
    servers = server if isinstance(server, list) else [server]
    sessions = [client_from(ip, pool=1) for _ in range(n)]
    # Open each connection first (a cheap GET on the node the request goes to), then wait together.
    for i, s in enumerate(sessions):
        assert s.get(servers[i % len(servers)].url + "/healthz", timeout=30).status_code == 200
    barrier = threading.Barrier(n)
    results: list[requests.Response | BaseException | None] = [None] * n

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = login_from(servers[i % len(servers)], sessions[i], username, password)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in sessions:
        s.close()
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, errors[:3]
    return results  # type: ignore[return-value]


def tally(responses: list[requests.Response]) -> Counter:
    return Counter(outcome(r) for r in responses)


# ---------------------------------------------------------------------------------------------
# Management API


def settings(server: Roster, path: str, **patch) -> dict:
    """GET (no `patch`) or PATCH the attack-protection settings at `path`; asserts 200."""
    api = server.api()
    r = api.patch(path, json=patch) if patch else api.get(path)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def blocks_for(server: Roster, identifier: str | None = None, user_id: str | None = None) -> list[dict]:
    api = server.api()
    if user_id is not None:
        r = api.get("/user-blocks/" + requests.utils.quote(user_id, safe=""))
    else:
        r = api.get("/user-blocks", params={"identifier": identifier})
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"blocked_for"}, body
    return body["blocked_for"]


def set_blocked(server: Roster, user_id: str, blocked: bool) -> dict:
    api = server.api()
    r = api.patch(api.user_path(user_id), json={"blocked": blocked})
    assert r.status_code == 200 and r.json()["blocked"] is blocked, (r.status_code, r.text)
    return r.json()


def admin_blocked(server: Roster, user_id: str) -> bool:
    api = server.api()
    r = api.get(api.user_path(user_id))
    assert r.status_code == 200, (r.status_code, r.text)
    return bool(r.json().get("blocked", False))


# ---------------------------------------------------------------------------------------------
# mail


def blocked_mails(sink: MailSink, address: str) -> list[Received]:
    a = address.lower()
    return [m for m in sink.messages() if a in (r.lower() for r in m.rcpt_tos) and m.msg["Subject"] == BLOCKED_SUBJECT]


def unblock_link(m: Received) -> str:
    """The one `/u/unblock?ticket=…` link of a blocked_account mail (the text and HTML parts agree)."""
    pattern = re.compile(r"https?://[^\s\"'<>]+/u/unblock\?ticket=[A-Za-z0-9_\-]+")
    text = set(pattern.findall(m.text or ""))
    html = set(pattern.findall(m.html or ""))
    assert len(text) == 1 and html == text, (text, html, m.text)
    return text.pop()


# ---------------------------------------------------------------------------------------------
# the hosted login (a browser without JavaScript)


def authorize_url(server: Roster, callback: str, tenant: str = "default", **extra) -> str:
    c = server.tenants[tenant]
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": c["default_app"]["client_id"],
        "redirect_uri": callback,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{c['issuer']}authorize?{urlencode(params)}"


def authorize(server: Roster, browser: requests.Session, callback: str, **extra) -> tuple[str, dict[str, str]]:
    """GET /authorize with the browser's cookies: (where it redirects, without query; the query)."""
    r = browser.get(authorize_url(server, callback, **extra), allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:1000])
    parts = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", q


def hosted_login(server: Roster, browser: requests.Session, callback: str, email: str, password: str) -> requests.Response:
    """/authorize → the hosted login page → POST the form; the answer to the POST (not followed)."""
    r = browser.get(authorize_url(server, callback), allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:1000])
    page = browser.get(r.headers["location"], allow_redirects=False, timeout=30)
    return submit_hosted_login(browser, page, email, password)


def node_behind_the_same_url(spawner, first: Roster, **settings) -> Roster:
    """Another `roster serve` on the first one's PostgreSQL database and with the same public URL (as
    nodes behind one load balancer are), listening on its own port: tokens either node issues name the
    same issuer and audience, so the Management API of each can be used with its own token."""
    import copy

    from harness import free_port

    db = copy.copy(first.db)
    db.data_dir = first.db.data_dir.parent / (first.db.data_dir.name + "-same-url")
    db.data_dir.mkdir(parents=True, exist_ok=True)
    db.pg_name = None  # the first node's Database drops it
    node = spawner.server(settings={**first.settings, **settings}, db=db, start=False)
    node.port = free_port()
    node.starts = 1  # not a first start: no credentials are printed for an existing database
    own = node.command

    def command() -> list[str]:
        cmd = own()
        cmd[cmd.index("--public-url") + 1] = first.url
        return cmd

    node.command = command  # type: ignore[method-assign]
    node.start(expect_credentials=False)
    node.tenants = first.tenants
    return node
