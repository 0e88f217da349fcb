"""The official SDK's authentication classes (auth0-python 6.8.0, `protocol="http"`) against Roster:
signup, password-realm login, refresh, userinfo, and a user-scoped Management client that may edit only
its own `user_metadata`.
"""

from __future__ import annotations

import jwt
import pytest
from auth0.authentication import Database, GetToken, Users
from auth0.authentication.exceptions import Auth0Error
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError

from harness import CONNECTION, unique_email

PASSWORD = "correct horse battery staple"


def app_clients(server):
    c = server.tenants["default"]
    app = c["default_app"]
    return (
        c,
        Database(c["domain"], app["client_id"], app["client_secret"], protocol="http"),
        GetToken(c["domain"], app["client_id"], app["client_secret"], protocol="http"),
    )


def test_signup_login_refresh_userinfo(server):
    c, db, gt = app_clients(server)
    email = unique_email()
    created = db.signup(email=email, password=PASSWORD, connection=CONNECTION, given_name="Ann", user_metadata={"lang": "fr"})
    assert created["email"] == email and created["email_verified"] is False
    user_id = f"auth0|{created['_id']}"

    tokens = gt.login(username=email, password=PASSWORD, realm=CONNECTION, scope="openid profile email offline_access")
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_token["sub"] == user_id and id_token["email"] == email and id_token["iss"] == c["issuer"]

    info = Users(c["domain"], protocol="http").userinfo(tokens["access_token"])
    assert info["sub"] == user_id and info["email"] == email and info["given_name"] == "Ann"

    refreshed = gt.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"] and refreshed["refresh_token"] != tokens["refresh_token"]
    # Re-using the rotated token is refused and revokes the family.
    with pytest.raises(Auth0Error) as ei:
        gt.refresh_token(tokens["refresh_token"])
    assert ei.value.status_code == 403 and ei.value.error_code == "invalid_grant"
    with pytest.raises(Auth0Error):
        gt.refresh_token(refreshed["refresh_token"])


def test_wrong_password_and_unknown_user_look_the_same(server):
    _, db, gt = app_clients(server)
    email = unique_email()
    db.signup(email=email, password=PASSWORD, connection=CONNECTION)
    errors = []
    for user, pw in [(email, "not the password"), (unique_email(), PASSWORD)]:
        with pytest.raises(Auth0Error) as ei:
            gt.login(username=user, password=pw, realm=CONNECTION)
        errors.append((ei.value.status_code, ei.value.error_code, ei.value.message))
    assert errors[0] == errors[1] == (403, "invalid_grant", "Wrong email or password.")


def test_signup_with_a_taken_address_answers_like_a_new_one(server):
    _, db, _ = app_clients(server)
    email = unique_email()
    first = db.signup(email=email, password=PASSWORD, connection=CONNECTION)
    second = db.signup(email=email.upper(), password="another long password", connection=CONNECTION)
    assert sorted(first) == sorted(second) and first["_id"] != second["_id"]


def test_weak_password_at_signup(server):
    _, db, _ = app_clients(server)
    with pytest.raises(Auth0Error) as ei:
        db.signup(email=unique_email(), password="short", connection=CONNECTION)
    assert ei.value.status_code == 400 and ei.value.error_code == "invalid_password"


def test_user_scoped_management_client_edits_only_its_own_user_metadata(server):
    c, db, gt = app_clients(server)
    me, other = unique_email(), unique_email()
    my_id = "auth0|" + db.signup(email=me, password=PASSWORD, connection=CONNECTION)["_id"]
    other_id = "auth0|" + db.signup(email=other, password=PASSWORD, connection=CONNECTION)["_id"]
    tokens = gt.login(username=me, password=PASSWORD, realm=CONNECTION, audience=c["management_audience"], scope="openid")
    mine = Auth0(base_url=f"{server.tenant_url()}/api/v2", token=tokens["access_token"], max_retries=0)

    updated = mine.users.update(my_id, user_metadata={"theme": "dark"})
    assert updated.user_metadata == {"theme": "dark"}
    assert mine.users.get(my_id).email == me

    with pytest.raises(ApiError) as ei:
        mine.users.update(my_id, app_metadata={"plan": "pro"})
    assert ei.value.status_code == 403
    with pytest.raises(ApiError) as ei:
        mine.users.get(other_id)
    assert ei.value.status_code == 403
    with pytest.raises(ApiError) as ei:
        mine.users.update(other_id, user_metadata={"x": 1})
    assert ei.value.status_code == 403
