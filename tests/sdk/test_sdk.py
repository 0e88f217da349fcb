"""The official Auth0 Python SDK (auth0-python 6.8.0) against Roster, unchanged.

Management: `auth0.management.Auth0(base_url=".../t/default/api/v2", token=...)`.
Authentication: `auth0.authentication.GetToken(domain, client_id, client_secret, protocol="http")`.
"""

from __future__ import annotations


import jwt
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError

from harness import CONNECTION, USER_ID_RE, thread_map, unique_email

NO_RETRY = {"max_retries": 0}


def sdk_get_token(server, tenant="default", secret=None):
    c = server.tenants[tenant]
    gt = GetToken(c["domain"], c["management_client"]["client_id"], secret or c["management_client"]["client_secret"], protocol="http")
    return gt.client_credentials(c["management_audience"])


def test_get_token_client_credentials(server):
    tok = sdk_get_token(server)
    assert tok["token_type"] == "Bearer"
    assert tok["expires_in"] == 86400
    for s in ("read:users", "create:users", "update:users", "delete:users"):
        assert s in tok["scope"].split()
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    c = server.tenants["default"]
    assert claims["sub"] == f"{c['management_client']['client_id']}@clients"
    assert claims["aud"] == c["management_audience"]
    assert claims["iss"] == c["issuer"]
    # The SDK's token works with the SDK's management client.
    client = Auth0(base_url=f"{server.tenant_url()}/api/v2", token=tok["access_token"])
    assert isinstance(list(client.users.list(per_page=1)), list)


def test_get_token_wrong_secret_raises_access_denied(server):
    with pytest.raises(Auth0Error) as ei:
        sdk_get_token(server, secret="not-the-secret")
    assert ei.value.status_code == 401
    assert ei.value.error_code == "access_denied"
    assert ei.value.message == "Unauthorized"


def test_create_and_get(sdk):
    email = unique_email("Create").replace("create", "CrEaTe")
    u = sdk.users.create(
        connection=CONNECTION,
        email=email,
        password="s3cret-passw0rd",
        name="Ada Lovelace",
        user_metadata={"lang": "en"},
        app_metadata={"plan": "pro"},
    )
    assert USER_ID_RE.match(u.user_id), u.user_id
    assert u.email == email.lower()
    assert u.email_verified is False
    assert u.name == "Ada Lovelace"
    assert u.user_metadata == {"lang": "en"} and u.app_metadata == {"plan": "pro"}
    assert u.created_at is not None and u.updated_at is not None
    assert len(u.identities) == 1
    ident = u.identities[0]
    assert (ident.connection, ident.provider, ident.user_id, ident.is_social) == (CONNECTION, "auth0", u.user_id.split("|", 1)[1], False)
    got = sdk.users.get(u.user_id)
    assert got.user_id == u.user_id and got.email == u.email
    assert got.user_metadata == {"lang": "en"}
    # Passwords are never returned.
    assert "password" not in got.model_dump()


def test_create_duplicate_email_other_case_raises_409(sdk):
    email = unique_email("dup")
    sdk.users.create(connection=CONNECTION, email=email, password="s3cret-passw0rd")
    with pytest.raises(ApiError) as ei:
        sdk.users.create(connection=CONNECTION, email=email.upper(), password="s3cret-passw0rd", request_options=NO_RETRY)
    assert ei.value.status_code == 409
    assert ei.value.body["errorCode"] == "auth0_idp_error"
    assert ei.value.body["message"] == "The user already exists."


def test_create_without_password_is_a_400(sdk):
    with pytest.raises(ApiError) as ei:
        sdk.users.create(connection=CONNECTION, email=unique_email("nopw"), request_options=NO_RETRY)
    assert ei.value.status_code == 400
    assert ei.value.body["errorCode"] == "invalid_body"


def test_list_with_totals(sdk):
    created = [sdk.users.create(connection=CONNECTION, email=unique_email("tot"), password="s3cret-passw0rd") for _ in range(3)]
    pager = sdk.users.list(page=0, per_page=2, include_totals=True, sort="created_at:1")
    resp = pager.response
    assert resp.start == 0 and resp.limit == 2 and resp.length == 2
    assert resp.total >= 3
    assert len(pager.items) == 2
    # The 6.x pager only understands the object form (include_totals=true, its default); a q search
    # through it finds exactly one user.
    one = sdk.users.list(page=0, per_page=1, q=f'user_id:"{created[0].user_id}"')
    assert [u.user_id for u in one] == [created[0].user_id]
    assert one.response.total == 1


def test_pager_walks_120_users_in_pages_of_50(server, sdk):
    # A separate tenant so the total is exactly the users made here.
    name = "pager"
    creds = server.create_tenant(name)
    api = server.api(name)

    def make(i):
        return api.create_user(unique_email(f"pg{i:03d}"))["user_id"]

    ids = thread_map(make, range(120), workers=8)
    client = Auth0(base_url=f"{server.tenant_url(name)}/api/v2", token=server.token(name))
    pager = client.users.list(per_page=50, include_totals=True, sort="created_at:1")
    pages = list(pager.iter_pages())
    assert [len(p.items) for p in pages] == [50, 50, 20]
    seen = [u.user_id for p in pages for u in p.items]
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == set(ids)
    assert pages[0].response.total == 120
    # Item iteration over the same pager yields the same users, in order.
    assert [u.user_id for u in client.users.list(per_page=50, sort="created_at:1")] == seen
    created = [u.created_at for p in pages for u in p.items]
    assert created == sorted(created)
    assert creds["tenant"] == name


def test_update_metadata_merge_null_delete_and_wipe(sdk):
    u = sdk.users.create(
        connection=CONNECTION,
        email=unique_email("meta"),
        password="s3cret-passw0rd",
        user_metadata={"a": 1, "b": {"y": 2}, "c": 3},
        app_metadata={"roles": ["x"], "tier": 1},
    )
    # One level deep: `b` is replaced, not merged.
    u2 = sdk.users.update(u.user_id, user_metadata={"b": {"x": 1}})
    assert u2.user_metadata == {"a": 1, "b": {"x": 1}, "c": 3}
    # null deletes a key, the others stay.
    u3 = sdk.users.update(u.user_id, user_metadata={"a": None, "d": "new"})
    assert u3.user_metadata == {"b": {"x": 1}, "c": 3, "d": "new"}
    # app_metadata merges independently.
    u4 = sdk.users.update(u.user_id, app_metadata={"tier": 2})
    assert u4.app_metadata == {"roles": ["x"], "tier": 2}
    assert u4.user_metadata == {"b": {"x": 1}, "c": 3, "d": "new"}
    # {} wipes.
    u5 = sdk.users.update(u.user_id, user_metadata={})
    assert u5.user_metadata == {}
    assert u5.app_metadata == {"roles": ["x"], "tier": 2}
    u6 = sdk.users.update(u.user_id, app_metadata={})
    assert u6.app_metadata == {}
    got = sdk.users.get(u.user_id)
    assert got.user_metadata == {} and got.app_metadata == {}


def test_update_root_fields_replace(sdk):
    u = sdk.users.create(connection=CONNECTION, email=unique_email("root"), password="s3cret-passw0rd", given_name="A")
    before = sdk.users.get(u.user_id)
    u2 = sdk.users.update(u.user_id, given_name="B", family_name="C", blocked=True)
    assert (u2.given_name, u2.family_name, u2.blocked) == ("B", "C", True)
    assert u2.updated_at >= before.updated_at  # millisecond resolution: may be equal
    assert u2.created_at == before.created_at
    got = sdk.users.get(u.user_id)
    assert (got.given_name, got.family_name, got.blocked) == ("B", "C", True)


def test_users_by_email_is_exact_and_case_sensitive(sdk):
    local = "ByMail-" + unique_email("x").split("@")[0]
    u = sdk.users.create(connection=CONNECTION, email=f"{local}@Example.COM", password="s3cret-passw0rd")
    stored = u.email
    assert stored == f"{local}@example.com".lower()
    found = sdk.users.list_users_by_email(email=stored)
    assert [x.user_id for x in found] == [u.user_id]
    assert sdk.users.list_users_by_email(email=f"{local}@Example.COM") == []
    assert sdk.users.list_users_by_email(email=stored.upper()) == []
    # Exact: a prefix does not match.
    assert sdk.users.list_users_by_email(email=stored[:-1]) == []
    # fields narrow the result.
    narrowed = sdk.users.list_users_by_email(email=stored, fields="user_id,email", include_fields=True)
    assert narrowed[0].user_id == u.user_id and narrowed[0].user_metadata is None
    # q search is case-insensitive on email (checklist 20).
    hits = list(sdk.users.list(q=f'email:"{stored.upper()}"'))
    assert [x.user_id for x in hits] == [u.user_id]


def test_delete_then_get_raises_404(sdk):
    u = sdk.users.create(connection=CONNECTION, email=unique_email("del"), password="s3cret-passw0rd")
    assert sdk.users.delete(u.user_id) is None
    with pytest.raises(ApiError) as ei:
        sdk.users.get(u.user_id)
    assert ei.value.status_code == 404
    assert ei.value.body == {"statusCode": 404, "error": "Not Found", "message": "The user does not exist.", "errorCode": "inexistent_user"}
    assert sdk.users.list_users_by_email(email=u.email) == []


def test_update_unknown_user_raises_404(sdk):
    with pytest.raises(ApiError) as ei:
        sdk.users.update("auth0|000000000000000000000000", name="x")
    assert ei.value.status_code == 404
    assert ei.value.body["errorCode"] == "inexistent_user"
