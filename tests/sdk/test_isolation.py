"""Cross-tenant probes (security T21, scaled): tenant `other`, created with `roster tenant create`
on the same database while the server runs, must never reach `default`'s users, and vice versa."""

from __future__ import annotations

import pytest
import requests

from harness import CONNECTION, Api, assert_mgmt_error, unique_email, wait_until


@pytest.fixture(scope="module")
def tenants(server):
    creds = server.create_tenant("other")
    # Served within seconds by the running server.
    wait_until(lambda: requests.get(f"{server.tenant_url('other')}/.well-known/openid-configuration", timeout=5).status_code == 200, 10, what="tenant 'other' served")
    d, o = server.api("default"), server.api("other")
    users = {
        "default": [d.create_user(unique_email("dflt")) for _ in range(3)],
        "other": [o.create_user(unique_email("oth")) for _ in range(3)],
    }
    return {"creds": creds, "api": {"default": d, "other": o}, "users": users}


def probes(api: Api, victim: dict) -> list[tuple[str, requests.Response]]:
    path = api.user_path(victim["user_id"])
    return [
        ("list", api.get("/users")),
        ("search", api.get("/users", params={"q": f'email:"{victim["email"]}"'})),
        ("get", api.get(path)),
        ("by-email", api.get("/users-by-email", params={"email": victim["email"]})),
        ("patch", api.patch(path, json={"user_metadata": {"pwned": True}, "blocked": True})),
        ("create", api.post("/users", json={"connection": CONNECTION, "email": unique_email("x"), "password": "s3cret-passw0rd"})),
        ("delete", api.delete(path)),
    ]


@pytest.mark.parametrize("attacker,victim", [("other", "default"), ("default", "other")])
def test_token_of_one_tenant_is_refused_by_the_other(server, tenants, attacker, victim):
    # The attacker tenant's valid token, sent to the victim tenant's URLs.
    cross = Api(f"{server.tenant_url(victim)}/api/v2", server.token(attacker))
    for target in tenants["users"][victim]:
        for what, r in probes(cross, target):
            assert not (200 <= r.status_code < 300), (what, r.status_code, r.text[:200])
            assert_mgmt_error(r, 401, None)
    # Nothing changed on the victim's side.
    own = tenants["api"][victim]
    for target in tenants["users"][victim]:
        got = own.get(own.user_path(target["user_id"])).json()
        assert got["user_metadata"] == {} and got["blocked"] is False


@pytest.mark.parametrize("attacker,victim", [("other", "default"), ("default", "other")])
def test_own_tenant_urls_never_show_the_other_tenants_users(tenants, attacker, victim):
    api = tenants["api"][attacker]
    own_ids = {u["user_id"] for u in tenants["users"][attacker]}
    listed = api.get("/users", params={"per_page": 100}).json()
    assert {u["user_id"] for u in listed} == own_ids
    for target in tenants["users"][victim]:
        assert_mgmt_error(api.get(api.user_path(target["user_id"])), 404, "inexistent_user")
        assert api.get("/users-by-email", params={"email": target["email"]}).json() == []
        assert api.get("/users", params={"q": f'email:"{target["email"]}"'}).json() == []
        assert api.get("/users", params={"q": f'user_id:"{target["user_id"]}"'}).json() == []
        assert_mgmt_error(api.patch(api.user_path(target["user_id"]), json={"name": "x"}), 404, "inexistent_user")
        r = api.delete(api.user_path(target["user_id"]))
        assert r.status_code in (204, 404)
    victim_api = tenants["api"][victim]
    for target in tenants["users"][victim]:
        assert victim_api.get(victim_api.user_path(target["user_id"])).status_code == 200


def test_same_email_may_exist_in_both_tenants(tenants):
    email = unique_email("both")
    a = tenants["api"]["default"].create_user(email)
    b = tenants["api"]["other"].create_user(email)
    assert a["user_id"] != b["user_id"]
    assert [u["user_id"] for u in tenants["api"]["default"].get("/users-by-email", params={"email": email}).json()] == [a["user_id"]]


def test_token_endpoint_is_tenant_scoped(server, tenants):
    d = server.tenants["default"]
    o = tenants["creds"]
    # default's client on other's token endpoint.
    r = requests.post(
        f"{server.tenant_url('other')}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": d["management_client"]["client_id"], "client_secret": d["management_client"]["client_secret"], "audience": o["management_audience"]},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["error"] == "access_denied"
    # default's client asking for other's audience on its own endpoint.
    r = server.token_response("default", audience=o["management_audience"])
    assert r.status_code == 403 and "access_token" not in r.json()


def test_keys_and_issuers_differ(server, tenants):
    jd = requests.get(f"{server.tenant_url('default')}/.well-known/jwks.json", timeout=10).json()
    jo = requests.get(f"{server.tenant_url('other')}/.well-known/jwks.json", timeout=10).json()
    assert {k["kid"] for k in jd["keys"]}.isdisjoint({k["kid"] for k in jo["keys"]})
    assert {k["n"] for k in jd["keys"]}.isdisjoint({k["n"] for k in jo["keys"]})
    assert tenants["creds"]["issuer"] == f"{server.url}/t/other/"
