"""Configuration layers (`ROSTER_*` environment, `--config` TOML), the Management rate limit, the
bootstrap switch, and the default password-hash parameters."""

from __future__ import annotations

import json
import time

import pytest
import requests

from harness import assert_mgmt_error, run_cli, unique_email

NUMERIC_AND_BOOL_ENV = {
    "ROSTER_ARGON2_MEMORY_KIB": "1024",
    "ROSTER_MANAGEMENT_RATE_LIMIT": "0.5",
    "ROSTER_MANAGEMENT_RATE_BURST": "5",
    "ROSTER_BOOTSTRAP_DEFAULT_TENANT": "false",
    "ROSTER_SHUTDOWN_TIMEOUT_SECS": "5",
}


@pytest.mark.parametrize("var", sorted(NUMERIC_AND_BOOL_ENV))
def test_numeric_and_boolean_env_settings_are_accepted(spawner, var):
    """The documented way to configure a deployment: ROSTER_<KEY>=value."""
    db = spawner.database()
    r = run_cli("tenant", "list", db=db, env={var: NUMERIC_AND_BOOL_ENV[var]})
    assert r.returncode == 0, f"{var}={NUMERIC_AND_BOOL_ENV[var]} refused: {r.stderr.strip()}"


def test_invalid_env_value_is_a_one_line_error(spawner):
    db = spawner.database()
    r = run_cli("tenant", "list", db=db, env={"ROSTER_LISTEN": "not-an-address"})
    assert r.returncode != 0
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error:"), r.stderr


def _burst_then_429(server) -> None:
    api = server.api()
    statuses, headers = [], []
    for _ in range(6):
        r = api.get("/users", params={"per_page": 1})
        statuses.append(r.status_code)
        headers.append(r.headers)
    assert statuses == [200] * 5 + [429], statuses
    remaining = [int(h["x-ratelimit-remaining"]) for h in headers[:5]]
    assert remaining == [4, 3, 2, 1, 0], remaining
    assert all(h["x-ratelimit-limit"] == "5" for h in headers)
    last = headers[5]
    retry_after = int(last["retry-after"])
    assert 1 <= retry_after <= 3, retry_after  # one token at 0.5/s takes 2 s
    assert int(last["x-ratelimit-reset"]) >= int(time.time())
    r = api.get("/users")
    assert_mgmt_error(r, 429, "too_many_requests", "Global limit has been reached")
    assert r.json()["error"] == "Too Many Requests"
    # The token endpoint and health checks are not part of the Management bucket.
    assert server.token_response().status_code == 200
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    # The bucket refills: after Retry-After a request is admitted again.
    from harness import wait_until

    wait_until(lambda: api.get("/users", params={"per_page": 1}).status_code == 200, timeout=retry_after + 3, interval=0.25, what="bucket refill")


def test_rate_limit_from_config_file(spawner):
    server = spawner.server(settings={"management_rate_burst": 5, "management_rate_limit": 0.5}, via="config")
    server.token()  # before the burst; the token endpoint is not rate limited anyway
    _burst_then_429(server)


def test_rate_limit_from_environment(spawner):
    server = spawner.server(env={"ROSTER_MANAGEMENT_RATE_BURST": "5", "ROSTER_MANAGEMENT_RATE_LIMIT": "0.5", "ROSTER_ARGON2_MEMORY_KIB": "1024"}, start=False)
    assert "ROSTER_MANAGEMENT_RATE_BURST=5" in " ".join(f"{k}={v}" for k, v in server.environment().items())
    try:
        server.start(timeout=20)
    except RuntimeError as e:
        pytest.fail(f"server refused ROSTER_MANAGEMENT_RATE_* from the environment: {str(e).splitlines()[0][:300]} | {server.stderr().strip()[:300]}")
    _burst_then_429(server)


def test_rate_limit_buckets_are_per_tenant(spawner):
    server = spawner.server(settings={"management_rate_burst": 3, "management_rate_limit": 0.5})
    server.create_tenant("second")
    d, s = server.api("default"), server.api("second")
    assert [d.get("/users").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [s.get("/users").status_code for _ in range(3)] == [200, 200, 200]


def test_unauthenticated_requests_do_not_drain_the_tenant_bucket(spawner):
    """Anyone can reach /t/{tenant}/api/v2 without a token. If those 401s spend the tenant's
    Management quota, an anonymous client can lock the tenant's real back end out with 429s."""
    server = spawner.server(settings={"management_rate_burst": 5, "management_rate_limit": 0.5})
    from harness import Api

    api = server.api()
    anon = Api(api.base, None)
    forged = Api(api.base, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    statuses = [anon.get("/users").status_code for _ in range(10)] + [forged.get("/users").status_code for _ in range(10)]
    assert set(statuses) <= {401, 429}
    r = api.get("/users")
    assert r.status_code == 200, f"the tenant's own client got {r.status_code} after 20 anonymous requests: {r.text[:200]}"


@pytest.mark.parametrize("via", ["env", "config"])
def test_bootstrap_can_be_disabled(spawner, via):
    server = spawner.server(settings={"bootstrap_default_tenant": False}, via=via, start=False)
    server.start(expect_credentials=False)
    assert server.tenants == {}
    out = (server.db.data_dir / "serve-1.stdout").read_text()
    assert out == "", out
    assert requests.get(f"{server.url}/t/default/.well-known/openid-configuration", timeout=5).status_code == 404
    r = run_cli("tenant", "list", db=server.db)
    assert r.returncode == 0 and r.stdout == ""


def test_restart_does_not_bootstrap_again(spawner):
    server = spawner.server()
    first = server.tenants["default"]
    server.restart()
    out = (server.db.data_dir / f"serve-{server.starts}.stdout").read_text()
    assert out == "", "credentials must be shown only once"
    # The credentials printed at the first start still work.
    server._tokens.clear()
    assert server.api().get("/users").status_code == 200
    assert server.token_response().json()["access_token"]
    assert first == server.tenants["default"]
    rows = [json.loads(line) for line in run_cli("tenant", "list", db=server.db, public_url=server.url).stdout.splitlines()]
    assert [r["tenant"] for r in rows] == ["default"]


def test_default_password_hash_parameters(spawner):
    """Without an override, new hashes are argon2id with OWASP parameters (m=19456, t=2, p=1)."""
    server = spawner.server(settings={"argon2_memory_kib": None})
    assert "argon2_memory_kib" not in server.settings
    fast = spawner.server()
    u = server.api().create_user(unique_email("hash"))
    v = fast.api().create_user(unique_email("hash"))
    (h,) = server.db.rows(f"SELECT password_hash FROM credentials WHERE user_id = '{u['user_id']}'")[0]
    (hf,) = fast.db.rows(f"SELECT password_hash FROM credentials WHERE user_id = '{v['user_id']}'")[0]
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), h[:40]
    assert hf.startswith("$argon2id$v=19$m=1024,t=2,p=1$"), hf[:40]
    assert "hash" not in h and v["email"] not in hf
