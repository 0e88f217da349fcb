"""Fixtures of the black-box suite (see harness.py for the process and database helpers).

Backends: every test that takes the `backend` fixture runs on SQLite and, when
`ROSTER_TEST_POSTGRES_URL` is set (an admin URL such as postgres://postgres@127.0.0.1:5432/postgres),
on PostgreSQL too, in a database `roster_sdk_<random>` created per server and dropped afterwards.
Without that variable the PostgreSQL runs are skipped, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import os

import pytest

import browserkit
from mailsink import MailSink
from resetkit import mail_settings

from harness import _ALL_PG_DBS, _ALL_PROCS, BACKENDS, PG_ADMIN_URL, ROSTER_BIN, Api, Roster, Spawner, psql



@pytest.fixture(scope="session", autouse=True)
def _binary_and_cleanup():
    if not (os.path.isfile(ROSTER_BIN) and os.access(ROSTER_BIN, os.X_OK)):
        pytest.exit(f"roster binary not found at {ROSTER_BIN}: run `cargo build` or set ROSTER_BIN", returncode=2)
    yield
    # Safety net: no server outlives the session, no test database is left behind.
    for p in _ALL_PROCS:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=15)
    for name in list(_ALL_PG_DBS):
        psql(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pg_checked: dict[str, bool] = {}


def _require_backend(name: str) -> None:
    if name != "postgres":
        return
    if not PG_ADMIN_URL:
        if os.environ.get("CI"):
            pytest.fail("CI is set but ROSTER_TEST_POSTGRES_URL is not: the PostgreSQL runs are mandatory in CI")
        pytest.skip("ROSTER_TEST_POSTGRES_URL is not set")
    if "ok" not in _pg_checked:
        try:
            psql(PG_ADMIN_URL, "SELECT 1", timeout=10)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"ROSTER_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
        _pg_checked["ok"] = True


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    _require_backend(request.param)
    return request.param


@pytest.fixture(scope="module")
def module_spawner(backend, tmp_path_factory):
    sp = Spawner(tmp_path_factory.mktemp(f"roster-{backend}"), backend)
    yield sp
    sp.close()


@pytest.fixture
def spawner(backend, tmp_path):
    sp = Spawner(tmp_path, backend)
    yield sp
    sp.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per module (each test makes its own context: fresh cookies)."""
    yield from browserkit.launch()


@pytest.fixture(scope="module")
def sink():
    """A real SMTP server (aiosmtpd) the module's mail goes to."""
    s = MailSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv(module_spawner, sink) -> Roster:
    """The module's server: mail to the sink, fast relay pacing, and a reset limit high enough for
    tests that repeat requests (the default limit has tests of its own)."""
    return module_spawner.server(settings=mail_settings(sink, reset_requests_per_hour=1000))


@pytest.fixture(scope="module")
def server(module_spawner) -> Roster:
    """A running server with the bootstrapped `default` tenant, shared by one test module."""
    return module_spawner.server()


@pytest.fixture(scope="module")
def api(server) -> Api:
    return server.api("default")


@pytest.fixture(scope="module")
def sdk(server):
    from auth0.management import Auth0

    return Auth0(base_url=f"{server.tenant_url('default')}/api/v2", token=server.token("default"))


