"""Token endpoint, discovery/JWKS (checklist 32, 36, 37) and forged-token negatives (security T20).

The forged tokens that must fail on a single defect are signed with the tenant's *real* private key,
read from the test database (white-box), so each one differs from a valid token only in the defect
under test; a control test proves a correctly forged token is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import Api, assert_mgmt_error, unique_email


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def unverified(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p)))


def hs256(header: dict, payload: dict, secret: bytes) -> str:
    signing_input = f"{b64u_json(header)}.{b64u_json(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(sig)}"


class Forge:
    """Signs arbitrary tokens with the tenant's real key or an attacker key."""

    def __init__(self, server, tenant="default"):
        self.server = server
        self.tenant = tenant
        self.kid, der = server.db.current_signing_key(tenant)
        self.key = serialization.load_der_private_key(der, password=None)
        self.attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.real_token = server.token(tenant)
        self.header, self.claims = unverified(self.real_token)

    def payload(self, **changes) -> dict:
        now = int(time.time())
        p = {**self.claims, "iat": now, "exp": now + 3600}
        for k, v in changes.items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
        return p

    def rs(self, payload: dict | None = None, key=None, alg="RS256", headers: dict | None = None) -> str:
        hdr = {"kid": self.kid, **(headers or {})}
        return jwt.encode(payload or self.payload(), key or self.key, algorithm=alg, headers=hdr)

    def status(self, token: str, path="/users", method="GET", **kw) -> requests.Response:
        return requests.request(method, f"{self.server.tenant_url(self.tenant)}/api/v2{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)


@pytest.fixture(scope="module")
def forge(server) -> Forge:
    return Forge(server)


# ---------------------------------------------------------------------------------------------
# token endpoint (32, 36)


def test_token_claims_and_response(server):  # 36
    r = server.token_response()
    assert r.status_code == 200, r.text
    assert r.headers.get("cache-control") == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    header, claims = unverified(body["access_token"])
    c = server.tenants["default"]
    cid = c["management_client"]["client_id"]
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["sub"] == f"{cid}@clients"
    assert claims["gty"] == "client-credentials"
    assert claims["azp"] == cid
    assert claims["aud"] == c["management_audience"] == f"{server.url}/t/default/api/v2/"
    assert claims["iss"] == c["issuer"] == f"{server.url}/t/default/"
    assert claims["exp"] - claims["iat"] == 86400
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["scope"] == body["scope"]


def test_token_accepts_form_and_json_with_nulls(server):  # 32
    c = server.tenants["default"]
    base = {
        "grant_type": "client_credentials",
        "client_id": c["management_client"]["client_id"],
        "client_secret": c["management_client"]["client_secret"],
        "audience": c["management_audience"],
    }
    url = f"{server.tenant_url()}/oauth/token"
    form = requests.post(url, data=base, timeout=10)
    js = requests.post(url, json={**base, "organization": None, "scope": None, "realm": None}, timeout=10)
    assert form.status_code == 200 and js.status_code == 200, (form.text, js.text)
    for r in (form, js):
        tok = r.json()["access_token"]
        assert Api(f"{server.tenant_url()}/api/v2", tok).get("/users", params={"per_page": 1}).status_code == 200
    # HTTP Basic client authentication works too.
    basic = requests.post(url, data={"grant_type": "client_credentials", "audience": c["management_audience"]}, auth=(base["client_id"], base["client_secret"]), timeout=10)
    assert basic.status_code == 200, basic.text


@pytest.mark.parametrize("override", [{"client_secret": "wrong"}, {"client_id": "no-such-client"}, {"client_secret": ""}])
def test_token_bad_client_is_401_access_denied(server, override):
    r = server.token_response(**override)
    assert r.status_code == 401
    assert r.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_token_wrong_audience_is_refused(server):
    r = server.token_response(audience=f"{server.url}/t/other/api/v2/")
    assert r.status_code == 403
    assert r.json()["error"] == "access_denied"
    assert "access_token" not in r.json()


def test_token_unsupported_and_unauthorized_grants(server):
    r = server.token_response(grant_type="bogus")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = server.token_response(client="default_app")
    assert r.status_code == 403 and r.json()["error"] == "unauthorized_client"


def test_token_bad_bodies(server):
    url = f"{server.tenant_url()}/oauth/token"
    r = requests.post(url, data="grant_type=client_credentials", headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415 and r.json()["error"] == "invalid_request"
    r = requests.post(url, data="{", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(url, data="[" * 10000 + "]" * 10000, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400
    r = requests.post(url, data="x" * (2 * 1024 * 1024), headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert r.status_code in (400, 413), r.status_code


# ---------------------------------------------------------------------------------------------
# discovery and JWKS (37)


def test_discovery_issuer_matches_token_and_jwks_holds_kid(server):  # 37
    disc = requests.get(f"{server.tenant_url()}/.well-known/openid-configuration", timeout=10)
    assert disc.status_code == 200
    d = disc.json()
    header, claims = unverified(server.token())
    assert d["issuer"] == claims["iss"]
    assert d["issuer"].endswith("/")
    assert d["jwks_uri"] == f"{server.tenant_url()}/.well-known/jwks.json"
    jwks = requests.get(d["jwks_uri"], timeout=10).json()
    keys = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in keys
    k = keys[header["kid"]]
    assert k["kty"] == "RSA" and k["alg"] == "RS256"
    for private in ("d", "p", "q", "dp", "dq", "qi"):
        assert all(private not in key for key in jwks["keys"]), "JWKS leaks private key material"
    # The published key verifies the token (a real relying party's check).
    pub = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(k))
    decoded = jwt.decode(server.token(), pub, algorithms=["RS256"], audience=claims["aud"], issuer=d["issuer"])
    assert decoded["sub"] == claims["sub"]


# ---------------------------------------------------------------------------------------------
# forged tokens (T20)


def test_control_forged_with_real_key_is_accepted(forge):
    r = forge.status(forge.rs())
    assert r.status_code == 200, r.text


def _assert_401(r: requests.Response) -> dict:
    return assert_mgmt_error(r, 401, None)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(forge, alg):
    unsigned = f"{b64u_json({'alg': alg, 'typ': 'JWT', 'kid': forge.kid})}.{b64u_json(forge.payload())}"
    _assert_401(forge.status(unsigned + "."))
    _assert_401(forge.status(unsigned + "." + forge.real_token.split(".")[2]))


@pytest.mark.parametrize("encoding", ["spki-pem", "pkcs1-pem", "jwk-json", "spki-der"])
def test_hs256_with_public_key_as_secret_is_rejected(forge, encoding):
    pub = forge.key.public_key()
    secret = {
        "spki-pem": lambda: pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "pkcs1-pem": lambda: pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "spki-der": lambda: pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": lambda: json.dumps(requests.get(f"{forge.server.tenant_url()}/.well-known/jwks.json", timeout=10).json()["keys"][0]).encode(),
    }[encoding]()
    _assert_401(forge.status(hs256({"alg": "HS256", "typ": "JWT", "kid": forge.kid}, forge.payload(), secret)))


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_algorithms_with_the_real_key_are_rejected(forge, alg):
    # A valid signature by the tenant's own key, but not with the pinned algorithm.
    _assert_401(forge.status(forge.rs(alg=alg)))


def test_unknown_kid_is_rejected(forge):
    _assert_401(forge.status(forge.rs(key=forge.attacker, headers={"kid": "attacker-kid"})))


def test_missing_kid_is_rejected(forge):
    tok = jwt.encode(forge.payload(), forge.key, algorithm="RS256")
    _assert_401(forge.status(tok))


@pytest.mark.parametrize("kid", ["../../../../dev/null", "' OR '1'='1", "x" * 5000, ""])
def test_injected_kid_is_rejected(forge, kid):
    _assert_401(forge.status(forge.rs(key=forge.attacker, headers={"kid": kid})))


def test_attacker_key_with_real_kid_is_rejected(forge):
    _assert_401(forge.status(forge.rs(key=forge.attacker)))


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_header_supplied_key_is_not_trusted(forge, member):
    pub_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(forge.attacker.public_key()))
    value = {
        "jwk": pub_jwk,
        "jku": "http://127.0.0.1:1/jwks.json",
        "x5u": "http://127.0.0.1:1/cert.pem",
        "x5c": [b64u(b"not-a-cert")],
    }[member]
    _assert_401(forge.status(forge.rs(key=forge.attacker, headers={member: value})))


def test_expired_token_is_rejected(forge):
    now = int(time.time())
    body = _assert_401(forge.status(forge.rs(forge.payload(iat=now - 7200, exp=now - 120))))
    assert body["message"] == "Expired token received for JSON Web Token validation"


def test_token_without_exp_is_rejected(forge):
    _assert_401(forge.status(forge.rs(forge.payload(exp=None))))


def test_not_yet_valid_token_is_rejected(forge):
    _assert_401(forge.status(forge.rs(forge.payload(nbf=int(time.time()) + 3600))))


@pytest.mark.parametrize("aud", ["https://example.com/api/v2/", "{other}", "{aud_noslash}", ["https://example.com/"]])
def test_wrong_audience_is_rejected(forge, aud):
    good = forge.claims["aud"]
    if aud == "{other}":
        aud = good.replace("/t/default/", "/t/other/")
    elif aud == "{aud_noslash}":
        aud = good.rstrip("/")
    _assert_401(forge.status(forge.rs(forge.payload(aud=aud))))


@pytest.mark.parametrize("iss", ["https://evil.example/", "{other}", "{noslash}", None])
def test_wrong_issuer_is_rejected(forge, iss):
    good = forge.claims["iss"]
    if iss == "{other}":
        iss = good.replace("/t/default/", "/t/other/")
    elif iss == "{noslash}":
        iss = good.rstrip("/")
    payload = forge.payload(iss=iss) if iss else forge.payload(iss=None)
    _assert_401(forge.status(forge.rs(payload)))


def test_tampered_payload_is_rejected(forge):
    h, p, s = forge.real_token.split(".")
    _, claims = unverified(forge.real_token)
    for change in ({"scope": claims["scope"] + " read:everything"}, {"sub": "auth0|aaaaaaaaaaaaaaaaaaaaaaaa"}, {"exp": claims["exp"] + 1}):
        _assert_401(forge.status(f"{h}.{b64u_json({**claims, **change})}.{s}"))
    # Flipped signature bit.
    sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    sig[-1] ^= 1
    _assert_401(forge.status(f"{h}.{p}.{b64u(bytes(sig))}"))
    # Stripped signature.
    _assert_401(forge.status(f"{h}.{p}."))
    _assert_401(forge.status(f"{h}.{p}"))


def test_forged_tokens_never_reach_writes(forge, server):
    api = server.api()
    u = api.create_user(unique_email("forge"))
    bad = forge.rs(key=forge.attacker)
    path = api.user_path(u["user_id"])
    _assert_401(forge.status(bad, path, "PATCH", json={"name": "pwned"}))
    _assert_401(forge.status(bad, path, "DELETE"))
    _assert_401(forge.status(bad, "/users", "POST", json={"connection": "Username-Password-Authentication", "email": unique_email(), "password": "s3cret-passw0rd"}))
    assert api.get(path).json()["name"] == u["name"]


# ---------------------------------------------------------------------------------------------
# scopes (25) and subjects


def test_token_without_scope_is_403_insufficient_scope(forge):  # 25
    r = forge.status(forge.rs(forge.payload(scope="")))
    body = assert_mgmt_error(r, 403, "insufficient_scope")
    assert body["message"].startswith("Insufficient scope, expected any of: ")
    assert "read:users" in body["message"]


def test_read_only_token_cannot_write(forge, server):
    api = server.api()
    u = api.create_user(unique_email("ro"))
    tok = forge.rs(forge.payload(scope="read:users"))
    path = api.user_path(u["user_id"])
    assert forge.status(tok, path).status_code == 200
    assert forge.status(tok, "/users").status_code == 200
    assert_mgmt_error(forge.status(tok, path, "PATCH", json={"name": "x"}), 403, "insufficient_scope")
    assert_mgmt_error(forge.status(tok, path, "DELETE"), 403, "insufficient_scope")
    assert_mgmt_error(
        forge.status(tok, "/users", "POST", json={"connection": "Username-Password-Authentication", "email": unique_email(), "password": "s3cret-passw0rd"}),
        403,
        "insufficient_scope",
    )
    assert api.get(path).json()["name"] == u["name"]


def test_app_metadata_only_token_cannot_change_root_fields(forge, server):  # 10
    api = server.api()
    u = api.create_user(unique_email("appmeta"))
    tok = forge.rs(forge.payload(scope="update:users_app_metadata"))
    path = api.user_path(u["user_id"])
    r = forge.status(tok, path, "PATCH", json={"app_metadata": {"k": 1}})
    assert r.status_code == 200 and r.json()["app_metadata"] == {"k": 1}
    assert_mgmt_error(forge.status(tok, path, "PATCH", json={"name": "x"}), 403, "insufficient_scope")


@pytest.mark.parametrize("scope,method", [("read:current_user", "GET"), ("delete:current_user", "DELETE")])
def test_current_user_scopes_do_not_empower_machine_clients(forge, server, scope, method):
    """`*:current_user` scopes act on the token's own user. A client-credentials token has no user,
    so such a scope must not let it read or delete arbitrary users."""
    api = server.api()
    u = api.create_user(unique_email("cur"))
    path = api.user_path(u["user_id"])
    r = forge.status(forge.rs(forge.payload(scope=scope)), path, method)
    assert r.status_code == 403, (r.status_code, r.text)
    assert api.get(path).status_code == 200


def test_user_token_reaches_only_its_own_user(forge, server):  # 11 (object level)
    api = server.api()
    me = api.create_user(unique_email("me"))
    other = api.create_user(unique_email("other"))
    tok = forge.rs(forge.payload(sub=me["user_id"], gty=None, scope="read:current_user update:current_user_metadata delete:current_user"))
    assert forge.status(tok, api.user_path(me["user_id"])).status_code == 200
    assert forge.status(tok, api.user_path(other["user_id"])).status_code == 403
    assert forge.status(tok, api.user_path(other["user_id"]), "PATCH", json={"user_metadata": {"x": 1}}).status_code == 403
    assert forge.status(tok, api.user_path(other["user_id"]), "DELETE").status_code == 403
    assert forge.status(tok, "/users").status_code == 403
    r = forge.status(tok, api.user_path(me["user_id"]), "PATCH", json={"password": "n3w-passw0rd!"})
    assert_mgmt_error(r, 403, "insufficient_scope")
    assert r.json()["message"].startswith("You cannot update the following fields:")
    r = forge.status(tok, api.user_path(me["user_id"]), "PATCH", json={"app_metadata": {"role": "admin"}, "user_metadata": {"x": 1}})
    assert r.status_code == 403
    r = forge.status(tok, api.user_path(me["user_id"]), "PATCH", json={"user_metadata": {"x": 1}})
    assert r.status_code == 200 and r.json()["user_metadata"] == {"x": 1}
    assert api.get(api.user_path(other["user_id"])).json()["user_metadata"] == {}
    assert api.get(api.user_path(me["user_id"])).json()["app_metadata"] == {}
