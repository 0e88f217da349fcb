"""Helpers of the black-box suite: real `roster serve` processes on free ports, one fresh database each.

Backends: every test that takes the `backend` fixture runs on SQLite and, when
`ROSTER_TEST_POSTGRES_URL` is set (an admin URL such as postgres://postgres@127.0.0.1:5432/postgres),
on PostgreSQL too, in a database `roster_sdk_<random>` created for the server and dropped afterwards.
Without that variable the PostgreSQL runs are skipped, unless `CI` is set: then they fail.

Binary: `ROSTER_BIN`, default `<repo>/target/debug/roster`.

Server settings are passed as `ROSTER_<KEY>` environment variables (e.g. ROSTER_ARGON2_MEMORY_KIB=1024
for fast hashing), or, with `via="config"`, written to a TOML file given with `--config`. The child's
environment is otherwise stripped of `ROSTER_*`, so the developer's shell cannot leak settings in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
ROSTER_BIN = os.environ.get("ROSTER_BIN") or str(REPO_ROOT / "target" / "debug" / "roster")
PG_ADMIN_URL = os.environ.get("ROSTER_TEST_POSTGRES_URL") or None
CONNECTION = "Username-Password-Authentication"
BACKENDS = ("sqlite", "postgres")
USER_ID_RE = re.compile(r"^auth0\|[0-9a-f]{24}$")

# Fast hashing for tests; `warn` keeps per-request log lines out of the way.
FAST_SETTINGS: dict[str, Any] = {"argon2_memory_kib": 1024, "log_level": "warn"}

_ALL_PROCS: list[subprocess.Popen] = []
_ALL_PG_DBS: set[str] = set()


# ---------------------------------------------------------------------------------------------
# small utilities


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polling: remember and retry
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env.update(extra or {})
    return env


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items()))
    return path


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.com"


# ---------------------------------------------------------------------------------------------
# databases


def psql(url: str, sql: str, timeout: float = 30) -> str:
    r = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def pg_url_for(admin_url: str, dbname: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class Database:
    """A fresh database for one server (and its restarts): a SQLite file in `data_dir`, or a new
    PostgreSQL database."""

    def __init__(self, backend: str, data_dir: Path):
        self.backend = backend
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.url: str | None = None
        self.pg_name: str | None = None
        if backend == "postgres":
            assert PG_ADMIN_URL, "postgres backend without ROSTER_TEST_POSTGRES_URL"
            self.pg_name = "roster_sdk_" + secrets.token_hex(6)
            psql(PG_ADMIN_URL, f'CREATE DATABASE "{self.pg_name}"')
            _ALL_PG_DBS.add(self.pg_name)
            self.url = pg_url_for(PG_ADMIN_URL, self.pg_name)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "roster.db"

    def cli_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.url:
            args += ["--database-url", self.url]
        return args

    def drop(self) -> None:
        if self.pg_name:
            psql(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            _ALL_PG_DBS.discard(self.pg_name)
            self.pg_name = None

    def current_signing_key(self, tenant: str) -> tuple[str, bytes]:
        """(kid, PKCS#8 DER) of a tenant's current signing key, read straight from the database.
        White-box: lets the JWT tests forge tokens signed with the *real* key whose only defect is
        the claim under test."""
        if self.backend == "sqlite":
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
            try:
                row = con.execute(
                    "SELECT k.kid, k.private_key FROM signing_keys k JOIN tenants t ON t.id = k.tenant_id "
                    "WHERE t.name = ? AND k.status = 'current'",
                    (tenant,),
                ).fetchone()
            finally:
                con.close()
            assert row, f"no current key for tenant {tenant}"
            return row[0], bytes(row[1])
        out = psql(
            self.url,
            "SELECT k.kid || '|' || encode(k.private_key, 'hex') FROM signing_keys k JOIN tenants t "
            f"ON t.id = k.tenant_id WHERE t.name = '{tenant}' AND k.status = 'current'",
        ).strip()
        assert out, f"no current key for tenant {tenant}"
        kid, hexkey = out.split("|", 1)
        return kid, bytes.fromhex(hexkey)

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """Read-only white-box query; values come back as strings. No parameters: test-made SQL only."""
        if self.backend == "sqlite":
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
            try:
                return [tuple("" if v is None else str(v) for v in row) for row in con.execute(sql).fetchall()]
            finally:
                con.close()
        out = psql(self.url, sql)
        return [tuple(line.split("|")) for line in out.splitlines() if line]

    def sqlite_integrity(self) -> str:
        r = subprocess.run(["sqlite3", str(self.sqlite_path), "PRAGMA integrity_check"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()


# ---------------------------------------------------------------------------------------------
# the server process


class Api:
    """Raw HTTP client for one tenant's Management API (requests)."""

    def __init__(self, base: str, token: str | None):
        self.base = base.rstrip("/")
        self.token = token
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            if self.token:
                s.headers["Authorization"] = f"Bearer {self.token}"
            self._local.s = s
        return s

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        r = self.session.request(method, self.base + path, **kw)
        if r.status_code >= 400 and ("json" in kw or "data" in kw):
            # Workaround for a server bug (test_http_connection.py): after refusing a request without
            # reading its body, the server may close the keep-alive connection without saying so, and
            # the next request on it fails. Start a fresh connection so unrelated tests stay stable.
            self.session.close()
            self._local.s = None
        return r

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def create_user(self, email: str | None = None, password: str = "correct-horse-9", **fields) -> dict:
        body = {"connection": CONNECTION, "email": email or unique_email(), "password": password, **fields}
        r = self.post("/users", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()

    def user_path(self, user_id: str) -> str:
        return "/users/" + requests.utils.quote(user_id, safe="")


class Roster:
    """One `roster serve` process (restartable on the same database)."""

    def __init__(self, db: Database, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None, via: str = "env"):
        self.db = db
        # A value of None removes a setting (e.g. to run with the server's own default).
        self.settings = {k: v for k, v in {**FAST_SETTINGS, **(settings or {})}.items() if v is not None}
        self.extra_env = env or {}
        assert via in ("env", "config")
        self.via = via
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.tenants: dict[str, dict] = {}
        self._tokens: dict[str, str] = {}
        self.stderr_path: Path | None = None

    # -- addresses
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tenant_url(self, tenant: str = "default") -> str:
        return f"{self.url}/t/{tenant}"

    # -- lifecycle
    def command(self) -> list[str]:
        cmd = [ROSTER_BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--public-url", self.url]
        if self.via == "config":
            cmd += ["--config", str(write_config(self.db.data_dir / "roster.toml", self.settings))]
        return cmd + self.db.cli_args()

    def environment(self) -> dict[str, str]:
        env = {}
        if self.via == "env":
            env = {f"ROSTER_{k.upper()}": (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in self.settings.items()}
        return child_env({**env, **self.extra_env})

    def start(self, expect_credentials: bool | None = None, timeout: float = 60) -> "Roster":
        """Start and wait for /healthz. On the first start the credentials JSON is read from stdout."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        first = self.starts == 0
        if expect_credentials is None:
            expect_credentials = first
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self.port = free_port()
            self.starts += 1
            out_path = self.db.data_dir / f"serve-{self.starts}.stdout"
            self.stderr_path = self.db.data_dir / f"serve-{self.starts}.stderr"
            with open(out_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.environment())
            _ALL_PROCS.append(self.proc)
            try:
                self._wait_ready(out_path, expect_credentials, timeout)
                return self
            except PortInUse:
                if attempt == attempts - 1:
                    raise
        return self

    def _wait_ready(self, out_path: Path, expect_credentials: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        creds = None
        while True:
            if self.proc.poll() is not None:
                err = self.stderr()
                if "cannot listen" in err:
                    raise PortInUse(err)
                raise RuntimeError(f"roster serve exited with {self.proc.returncode} before becoming healthy:\n{err[-3000:]}")
            if expect_credentials and creds is None:
                text = out_path.read_text()
                if text.strip():
                    try:
                        creds = json.loads(text)
                    except json.JSONDecodeError:
                        creds = None  # still being written: read again
                if creds is not None:
                    self.tenants[creds["tenant"]] = creds
            if creds is not None or not expect_credentials:
                try:
                    r = requests.get(self.url + "/healthz", timeout=2)
                    if r.status_code == 200:
                        return
                except requests.ConnectionError:
                    pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"roster serve not ready after {timeout}s; stdout={out_path.read_text()!r}\n{self.stderr()[-3000:]}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path and self.stderr_path.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        """Send `sig` and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def restart(self, timeout: float = 60) -> "Roster":
        if self.running():
            self.stop()
        return self.start(expect_credentials=False, timeout=timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    # -- tenants and tokens
    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_cli(*args, db=self.db, public_url=self.url, timeout=timeout)

    def create_tenant(self, name: str) -> dict:
        r = self.cli("tenant", "create", name)
        assert r.returncode == 0, r.stderr
        creds = json.loads(r.stdout)
        self.tenants[name] = creds
        return creds

    def token_response(self, tenant: str = "default", client: str = "management_client", **overrides) -> requests.Response:
        c = self.tenants[tenant]
        body = {
            "grant_type": "client_credentials",
            "client_id": c[client]["client_id"],
            "client_secret": c[client]["client_secret"],
            "audience": c["management_audience"],
            **overrides,
        }
        return requests.post(f"{self.tenant_url(tenant)}/oauth/token", data=body, timeout=30)

    def token(self, tenant: str = "default") -> str:
        if tenant not in self._tokens:
            r = self.token_response(tenant)
            assert r.status_code == 200, (r.status_code, r.text)
            self._tokens[tenant] = r.json()["access_token"]
        return self._tokens[tenant]

    def api(self, tenant: str = "default", token: str | None = ...) -> Api:  # type: ignore[assignment]
        if token is ...:
            token = self.token(tenant)
        return Api(f"{self.tenant_url(tenant)}/api/v2", token)


class PortInUse(RuntimeError):
    pass


def run_cli(*args: str, db: Database, public_url: str | None = None, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # Global options first, so that `--` in `args` ends option parsing for the subcommand only.
    cmd = [ROSTER_BIN, *db.cli_args()]
    if public_url:
        cmd += ["--public-url", public_url]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(env), stdin=subprocess.DEVNULL)


def assert_mgmt_error(r: requests.Response, status: int, error_code: str | None = ..., message: str | None = None) -> dict:  # type: ignore[assignment]
    """Auth0 Management error shape: {statusCode, error, message[, errorCode]}."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body["statusCode"] == status, body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if error_code is None:
        assert "errorCode" not in body, body
    elif error_code is not ...:
        assert body.get("errorCode") == error_code, body
    if message is not None:
        assert body["message"] == message, body
    return body


class Spawner:
    """Creates databases and servers and cleans all of them up."""

    def __init__(self, root: Path, backend: str):
        self.root = root
        self.backend = backend
        self.servers: list[Roster] = []
        self.dbs: list[Database] = []
        self.n = 0

    def database(self) -> Database:
        self.n += 1
        db = Database(self.backend, self.root / f"db{self.n}")
        self.dbs.append(db)
        return db

    def server(self, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None, db: Database | None = None, start: bool = True, **kw) -> Roster:
        srv = Roster(db or self.database(), settings=settings, env=env, **kw)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def close(self) -> None:
        errors = []
        for s in self.servers:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        for d in self.dbs:
            try:
                d.drop()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        if errors:
            raise errors[0]



def thread_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 16) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items))


# ---------------------------------------------------------------------------------------------
# OIDC code flow helpers (test_oidc_rp.py, test_browser.py)


def configure_app_urls(server: "Roster", callbacks: list[str], logout_urls: list[str], tenant: str = "default") -> dict:
    """Register callback and logout URLs on the tenant's default application (Management API PATCH)."""
    client_id = server.tenants[tenant]["default_app"]["client_id"]
    r = server.api(tenant).patch(f"/clients/{client_id}", json={"callbacks": callbacks, "allowed_logout_urls": logout_urls})
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body["callbacks"] == callbacks and body["allowed_logout_urls"] == logout_urls, body
    return body


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    import base64
    import hashlib

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")
    return verifier, challenge


def form_fields(html_text: str, action_suffix: str | None = None) -> dict[str, str]:
    """The named <input> values of the first <form> (whose action ends with `action_suffix`, if given)."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.forms: list[tuple[str, dict[str, str]]] = []
            self.current: dict[str, str] | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "form":
                self.current = {}
                self.forms.append((a.get("action") or "", self.current))
            elif tag == "input" and self.current is not None and a.get("name"):
                self.current[a["name"]] = a.get("value") or ""

        def handle_endtag(self, tag):
            if tag == "form":
                self.current = None

    p = P()
    p.feed(html_text)
    for action, fields in p.forms:
        if action_suffix is None or action.endswith(action_suffix):
            return dict(fields, _action=action)
    raise AssertionError(f"no form (action ending {action_suffix!r}) in page: {html_text[:2000]}")


def submit_hosted_login(session: requests.Session, login_page: requests.Response, email: str, password: str) -> requests.Response:
    """POST the hosted login form of `login_page` (a fetched /u/login page) as a browser without
    JavaScript would: its hidden `csrf` and `req` fields, the cookies of `session`, a same-origin
    `Origin`. Redirects are not followed."""
    assert login_page.status_code == 200, (login_page.status_code, login_page.text[:2000])
    fields = form_fields(login_page.text, "u/login")
    action = fields.pop("_action")
    assert set(fields) >= {"csrf", "req"}, fields
    fields.update(username=email, password=password)
    parts = urlsplit(action)
    origin = f"{parts.scheme}://{parts.netloc}"
    return session.post(action, data=fields, headers={"Origin": origin}, allow_redirects=False, timeout=30)


class CallbackServer:
    """A tiny HTTP server on 127.0.0.1 (a thread) standing in for the relying party: it records every
    request's path and query and answers with a small HTML page. Extra pages can be served from
    `pages` (path -> HTML)."""

    def __init__(self, pages: dict[str, str] | None = None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        self.hits: list[tuple[str, dict[str, list[str]]]] = []
        self.pages = dict(pages or {})
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                parts = urlsplit(self.path)
                with outer._lock:
                    outer.hits.append((parts.path, parse_qs(parts.query, keep_blank_values=True)))
                body = outer.pages.get(parts.path)
                if body is None:
                    body = f"<!doctype html><title>Callback</title><h1 id=\"cb\">Back at the app: {parts.path}</h1>"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="callback-server", daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits_at(self, path: str) -> list[dict[str, list[str]]]:
        with self._lock:
            return [q for p, q in self.hits if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
