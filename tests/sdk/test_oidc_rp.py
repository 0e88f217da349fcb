"""A real OpenID Connect relying party (Authlib 1.9, its requests `OAuth2Session`, its OIDC claim classes and
joserfc, Authlib's own JOSE library) against Roster's authorization-code flow.

The "browser" is plain `requests` without JavaScript: it follows `/authorize` to the hosted login page,
posts the form with its hidden `csrf` and `req` fields and the cookies, and stops at the redirect to the
callback (nothing listens there: the test reads `code` and `state` from the `Location`). Everything the
RP does — discovery, the authorization URL with PKCE S256 + state + nonce, the code exchange, ID-token
validation against the JWKS (signature, issuer, audience, nonce, expiry), userinfo, refresh — is the
library's code.
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken, UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError, InvalidClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from harness import configure_app_urls, form_fields, free_port, submit_hosted_login, unique_email

PASSWORD = "correct horse battery staple"
SCOPE = "openid profile email offline_access"


@pytest.fixture(scope="module")
def rp(server):
    """The relying party's configuration: the default app with a callback and a logout URL registered
    (on a port where nothing listens: redirects to it are read, never followed), and the provider's
    discovery document and JWKS as the library fetched them."""
    base = f"http://127.0.0.1:{free_port()}"
    callback, bye = base + "/callback", base + "/bye"
    configure_app_urls(server, [callback], [bye])
    app = server.tenants["default"]["default_app"]
    meta = requests.get(server.tenant_url() + "/.well-known/openid-configuration", timeout=30)
    assert meta.status_code == 200, meta.text
    metadata = meta.json()
    jwks = requests.get(metadata["jwks_uri"], timeout=30)
    assert jwks.status_code == 200, jwks.text
    return SimpleNamespace(
        server=server,
        callback=callback,
        bye=bye,
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        meta=metadata,
        jwks=jwks.json(),
        issuer=server.tenants["default"]["issuer"],
        session_cookie="rs_default",
    )


@pytest.fixture(scope="module")
def user(server):
    """A user of the default database connection (made with the Management API)."""
    email = unique_email("rp")
    u = server.api().create_user(email, password=PASSWORD, name="Grace Hopper", given_name="Grace")
    return SimpleNamespace(email=email, user_id=u["user_id"], name="Grace Hopper")


def oauth_client(rp, auth_method: str = "client_secret_post", **kw) -> OAuth2Session:
    return OAuth2Session(
        client_id=rp.client_id,
        client_secret=rp.client_secret,
        scope=kw.pop("scope", SCOPE),
        redirect_uri=kw.pop("redirect_uri", rp.callback),
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
        **kw,
    )


def begin(rp, client: OAuth2Session, **params) -> SimpleNamespace:
    """The library's authorization URL with PKCE S256, state and nonce."""
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = client.create_authorization_url(rp.meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params)
    q = parse_qs(urlsplit(url).query)
    assert q["code_challenge_method"] == ["S256"] and q["code_challenge"][0] and q["nonce"] == [nonce] and q["state"] == [state]
    return SimpleNamespace(url=url, state=state, nonce=nonce, verifier=verifier)


def callback_params(rp, r: requests.Response) -> dict[str, str]:
    """The query of a redirect to the callback (asserting it is one)."""
    assert r.status_code in (302, 303), (r.status_code, r.text[:2000])
    loc = r.headers["location"]
    assert loc.split("?", 1)[0] == rp.callback, loc
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query, keep_blank_values=True).items()}


def login(rp, browser: requests.Session, auth: SimpleNamespace, email: str, password: str = PASSWORD) -> requests.Response:
    """`/authorize` → hosted login page → posted form; returns the answer to the post (not followed)."""
    r = browser.get(auth.url, allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:2000])
    login_url = r.headers["location"]
    assert login_url.startswith(rp.issuer + "u/login?"), login_url
    page = browser.get(login_url, allow_redirects=False, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"], (page.status_code, page.text[:1000])
    return submit_hosted_login(browser, page, email, password)


def validate_id_token(rp, id_token: str, nonce: str | None, access_token: str | None = None, client_id: str | None = None) -> CodeIDToken:
    """Validate as Authlib's OpenID client does (`OpenIDMixin.parse_id_token`): signature against the
    JWKS with the advertised algorithms, then the OIDC claim rules, plus issuer and audience."""
    key_set = KeySet.import_key_set(rp.jwks)
    token = jose_jwt.decode(
        id_token,
        key_set,
        registry=JWSRegistry(algorithms=rp.meta["id_token_signing_alg_values_supported"], strict_check_header=False),
    )
    params = {"nonce": nonce, "client_id": client_id or rp.client_id}
    if access_token:
        params["access_token"] = access_token
    options = {
        "iss": {"essential": True, "value": rp.meta["issuer"]},
        "aud": {"essential": True, "value": client_id or rp.client_id},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    claims = CodeIDToken(token.claims, token.header, options, params)
    claims.validate(leeway=60)
    return claims


def test_discovery_is_valid_provider_metadata(rp, monkeypatch):
    # Authlib's own validation of OpenID Provider Metadata (http allowed only because this is a test).
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    OpenIDProviderMetadata(rp.meta).validate()
    base = rp.server.tenant_url() + "/"
    assert rp.meta["issuer"] == base == rp.issuer
    assert rp.meta["authorization_endpoint"] == base + "authorize"
    assert rp.meta["token_endpoint"] == base + "oauth/token"
    assert rp.meta["userinfo_endpoint"] == base + "userinfo"
    assert rp.meta["jwks_uri"] == base + ".well-known/jwks.json"
    assert rp.meta["end_session_endpoint"] == base + "v2/logout"
    assert "code" in rp.meta["response_types_supported"]
    assert rp.meta["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in rp.meta["id_token_signing_alg_values_supported"]
    assert {"client_secret_post", "client_secret_basic"} <= set(rp.meta["token_endpoint_auth_methods_supported"])
    assert all(k["kty"] == "RSA" and k.get("kid") for k in rp.jwks["keys"]), rp.jwks


def test_code_flow_id_token_userinfo_and_refresh_rotation(rp, user):
    client = oauth_client(rp)
    auth = begin(rp, client)
    browser = requests.Session()
    r = login(rp, browser, auth, user.email)
    cb = callback_params(rp, r)
    assert cb["state"] == auth.state and cb["code"], cb
    assert set(cb) == {"code", "state"}, cb
    # The SSO session cookie was set on the provider's host.
    assert browser.cookies.get(rp.session_cookie, domain="127.0.0.1"), browser.cookies

    # The library exchanges the code (it checks the returned state against its own).
    callback_url = r.headers["location"]
    token = dict(client.fetch_token(rp.meta["token_endpoint"], authorization_response=callback_url, state=auth.state, code_verifier=auth.verifier))
    assert token["token_type"] == "Bearer" and token["access_token"] and token["refresh_token"] and token["id_token"], token
    assert set(token["scope"].split()) == set(SCOPE.split()), token

    claims = validate_id_token(rp, token["id_token"], auth.nonce, access_token=token["access_token"])
    assert claims["sub"] == user.user_id
    assert claims["iss"] == rp.issuer and claims["aud"] == rp.client_id and claims["nonce"] == auth.nonce
    assert claims["email"] == user.email and claims["email_verified"] is False
    assert claims["name"] == user.name and claims["given_name"] == "Grace"
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert claims.header["alg"] == "RS256" and claims.header["kid"] in {k["kid"] for k in rp.jwks["keys"]}

    # The library's validation is real: the same token fails for another nonce, audience or a bad signature.
    with pytest.raises(InvalidClaimError):
        validate_id_token(rp, token["id_token"], "another-nonce")
    with pytest.raises(InvalidClaimError):
        validate_id_token(rp, token["id_token"], auth.nonce, client_id="another-client")
    head, body, sig = token["id_token"].split(".")
    forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(BadSignatureError):
        validate_id_token(rp, ".".join((head, body, forged_sig)), auth.nonce)

    # userinfo with the library's bearer session.
    info = client.get(rp.meta["userinfo_endpoint"], timeout=30)
    assert info.status_code == 200, info.text
    ui = UserInfo(info.json())
    assert ui["sub"] == user.user_id and ui["email"] == user.email and ui["name"] == user.name

    # The code is single use: the library's second exchange is refused.
    with pytest.raises(OAuthError) as ei:
        oauth_client(rp).fetch_token(rp.meta["token_endpoint"], authorization_response=callback_url, state=auth.state, code_verifier=auth.verifier)
    assert ei.value.error == "invalid_grant", ei.value

    # Refresh with the library: a new refresh token (rotation), a new ID token without the login nonce.
    old_rt = token["refresh_token"]
    refreshed = dict(client.refresh_token(rp.meta["token_endpoint"], refresh_token=old_rt))
    assert refreshed["refresh_token"] != old_rt, "refresh token not rotated"
    again = validate_id_token(rp, refreshed["id_token"], None, access_token=refreshed["access_token"])
    assert again["sub"] == user.user_id and again["auth_time"] == claims["auth_time"]
    info = client.get(rp.meta["userinfo_endpoint"], timeout=30)
    assert info.status_code == 200 and info.json()["sub"] == user.user_id, info.text

    # Re-using the rotated token is refused and revokes the whole family, the newest token included.
    with pytest.raises(OAuthError) as ei:
        oauth_client(rp).refresh_token(rp.meta["token_endpoint"], refresh_token=old_rt)
    assert ei.value.error == "invalid_grant", ei.value
    with pytest.raises(OAuthError) as ei:
        oauth_client(rp).refresh_token(rp.meta["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert ei.value.error == "invalid_grant", ei.value


def test_client_secret_basic_and_scope_without_offline_access(rp, user):
    client = oauth_client(rp, auth_method="client_secret_basic", scope="openid email")
    auth = begin(rp, client)
    r = login(rp, requests.Session(), auth, user.email)
    token = client.fetch_token(rp.meta["token_endpoint"], authorization_response=r.headers["location"], state=auth.state, code_verifier=auth.verifier)
    assert "refresh_token" not in token, token  # no offline_access, no refresh token
    assert token["scope"].split() == ["openid", "email"] or set(token["scope"].split()) == {"openid", "email"}, token
    claims = validate_id_token(rp, token["id_token"], auth.nonce, access_token=token["access_token"])
    assert claims["email"] == user.email and "name" not in claims  # no profile scope, no profile claims


def test_sso_session_prompt_none_and_prompt_login(rp, user):
    browser = requests.Session()
    first_client = oauth_client(rp)
    first = begin(rp, first_client)
    r = login(rp, browser, first, user.email)
    t1 = first_client.fetch_token(rp.meta["token_endpoint"], authorization_response=r.headers["location"], state=first.state, code_verifier=first.verifier)
    c1 = validate_id_token(rp, t1["id_token"], first.nonce)

    # With the session cookie, /authorize answers at once (no page), even with prompt=none.
    for extra in ({}, {"prompt": "none"}):
        client = oauth_client(rp)
        auth = begin(rp, client, **extra)
        r = browser.get(auth.url, allow_redirects=False, timeout=30)
        cb = callback_params(rp, r)
        assert cb["state"] == auth.state and cb["code"], (extra, cb)
        tok = client.fetch_token(rp.meta["token_endpoint"], authorization_response=r.headers["location"], state=auth.state, code_verifier=auth.verifier)
        c = validate_id_token(rp, tok["id_token"], auth.nonce)  # the new request's nonce
        assert c["sub"] == user.user_id and c["auth_time"] == c1["auth_time"], (extra, c)

    # prompt=login shows the login page despite the session.
    auth = begin(rp, oauth_client(rp), prompt="login")
    r = browser.get(auth.url, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["location"].startswith(rp.issuer + "u/login?"), (r.status_code, r.headers)

    # Another browser (no cookie) with prompt=none gets login_required back at the callback, with its state.
    auth = begin(rp, oauth_client(rp), prompt="none")
    cb = callback_params(rp, requests.get(auth.url, allow_redirects=False, timeout=30))
    assert cb["error"] == "login_required" and cb["state"] == auth.state and "code" not in cb, cb


def test_logout_ends_the_session_and_its_refresh_tokens(rp, user):
    browser = requests.Session()
    client = oauth_client(rp)
    auth = begin(rp, client)
    r = login(rp, browser, auth, user.email)
    token = client.fetch_token(rp.meta["token_endpoint"], authorization_response=r.headers["location"], state=auth.state, code_verifier=auth.verifier)
    session_value = browser.cookies.get(rp.session_cookie, domain="127.0.0.1")
    assert session_value

    # A returnTo that is not an allowed logout URL: an error page, no redirect, the session lives on.
    bad = browser.get(rp.meta["end_session_endpoint"], params={"client_id": rp.client_id, "returnTo": rp.bye + "x"}, allow_redirects=False, timeout=30)
    assert bad.status_code == 400 and "location" not in bad.headers, (bad.status_code, bad.headers)
    auth = begin(rp, oauth_client(rp), prompt="none")
    assert "code" in callback_params(rp, browser.get(auth.url, allow_redirects=False, timeout=30))

    out = browser.get(rp.meta["end_session_endpoint"], params={"client_id": rp.client_id, "returnTo": rp.bye}, allow_redirects=False, timeout=30)
    assert out.status_code == 302 and out.headers["location"] == rp.bye, (out.status_code, out.headers)
    assert not browser.cookies.get(rp.session_cookie, domain="127.0.0.1"), "session cookie not cleared"

    # The old cookie value is dead on the server too (replayed by hand), and so is the session's refresh token.
    replay = requests.Session()
    replay.cookies.set(rp.session_cookie, session_value, domain="127.0.0.1", path="/")
    auth = begin(rp, oauth_client(rp), prompt="none")
    cb = callback_params(rp, replay.get(auth.url, allow_redirects=False, timeout=30))
    assert cb.get("error") == "login_required", cb
    with pytest.raises(OAuthError) as ei:
        client.refresh_token(rp.meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert ei.value.error == "invalid_grant", ei.value


def test_code_exchange_refusals(rp, user):
    browser = requests.Session()

    def fresh_code(client):
        auth = begin(rp, client)
        r = browser.get(auth.url, allow_redirects=False, timeout=30)
        if r.headers.get("location", "").startswith(rp.issuer + "u/login"):
            r = login(rp, browser, auth, user.email)
        return auth, r.headers["location"]

    # A wrong verifier is refused, and burns the code: the right one then fails too.
    client = oauth_client(rp)
    auth, loc = fresh_code(client)
    with pytest.raises(OAuthError) as ei:
        client.fetch_token(rp.meta["token_endpoint"], authorization_response=loc, state=auth.state, code_verifier=generate_token(48))
    assert ei.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as ei:
        client.fetch_token(rp.meta["token_endpoint"], authorization_response=loc, state=auth.state, code_verifier=auth.verifier)
    assert ei.value.error == "invalid_grant"

    # No verifier at all, for a code bound to a challenge.
    client = oauth_client(rp)
    auth, loc = fresh_code(client)
    with pytest.raises(OAuthError) as ei:
        client.fetch_token(rp.meta["token_endpoint"], authorization_response=loc, state=auth.state)
    assert ei.value.error == "invalid_grant"

    # Another redirect_uri at the token endpoint than at /authorize.
    client = oauth_client(rp)
    auth, loc = fresh_code(client)
    with pytest.raises(OAuthError) as ei:
        client.fetch_token(
            rp.meta["token_endpoint"], authorization_response=loc, state=auth.state, code_verifier=auth.verifier, redirect_uri=rp.callback + "/other"
        )
    assert ei.value.error == "invalid_grant"

    # A wrong client secret.
    client = oauth_client(rp)
    auth, loc = fresh_code(client)
    with pytest.raises(OAuthError) as ei:
        OAuth2Session(client_id=rp.client_id, client_secret="not-the-secret", redirect_uri=rp.callback).fetch_token(
            rp.meta["token_endpoint"], authorization_response=loc, state=auth.state, code_verifier=auth.verifier
        )
    assert ei.value.error in ("access_denied", "invalid_client"), ei.value


def test_authorize_refusals(rp):
    ep = rp.meta["authorization_endpoint"]
    verifier, nonce = generate_token(48), generate_token(20)
    # An unregistered redirect URI (even one differing only by a trailing slash): an error page, never a redirect.
    for uri in (rp.callback + "/", "http://evil.example/callback"):
        url, _ = oauth_client(rp, redirect_uri=uri).create_authorization_url(ep, code_verifier=verifier, nonce=nonce)
        r = requests.get(url, allow_redirects=False, timeout=30)
        assert r.status_code == 400 and "location" not in r.headers, (uri, r.status_code, r.headers)
        assert "text/html" in r.headers["content-type"]
    # PKCE `plain` is refused, back at the (registered) callback with the state.
    url, state = oauth_client(rp).create_authorization_url(ep, nonce=nonce, code_challenge="x" * 43, code_challenge_method="plain")
    cb = callback_params(rp, requests.get(url, allow_redirects=False, timeout=30))
    assert cb["error"] == "invalid_request" and cb["state"] == state, cb
    # response_type=token is not supported.
    url, state = oauth_client(rp).create_authorization_url(ep, nonce=nonce, response_type="token")
    cb = callback_params(rp, requests.get(url, allow_redirects=False, timeout=30))
    assert cb["error"] == "unsupported_response_type" and cb["state"] == state, cb


def test_hosted_login_form_refuses_forged_posts(rp, user):
    """CSRF on the hosted form: a missing or wrong token, or a foreign Origin, is refused (403) and no
    session or code is issued; the same form posted correctly works."""
    browser = requests.Session()
    auth = begin(rp, oauth_client(rp))
    r = browser.get(auth.url, allow_redirects=False, timeout=30)
    page = browser.get(r.headers["location"], timeout=30)
    fields = form_fields(page.text, "u/login")
    action = fields.pop("_action")
    good = dict(fields, username=user.email, password=PASSWORD)
    origin = rp.server.url
    for data, headers in (
        ({k: v for k, v in good.items() if k != "csrf"}, {"Origin": origin}),
        (dict(good, csrf=generate_token(43)), {"Origin": origin}),
        (good, {"Origin": "http://evil.example"}),
        (good, {"Origin": origin, "Sec-Fetch-Site": "cross-site"}),
    ):
        bad = browser.post(action, data=data, headers=headers, allow_redirects=False, timeout=30)
        assert bad.status_code == 403 and "location" not in bad.headers, (headers, bad.status_code, bad.headers)
        assert not browser.cookies.get(rp.session_cookie, domain="127.0.0.1")
    # The token without its cookie (another browser) is refused too.
    other = requests.post(action, data=good, headers={"Origin": origin}, allow_redirects=False, timeout=30)
    assert other.status_code == 403, other.status_code
    ok = browser.post(action, data=good, headers={"Origin": origin}, allow_redirects=False, timeout=30)
    assert callback_params(rp, ok)["state"] == auth.state


def test_wrong_password_and_unknown_user_on_the_hosted_page(rp, user):
    for email, pw in ((user.email, "not the password"), (unique_email("nobody"), PASSWORD)):
        browser = requests.Session()
        r = login(rp, browser, begin(rp, oauth_client(rp)), email, pw)
        assert r.status_code in (400, 401, 403) and "location" not in r.headers, (r.status_code, r.headers)
        assert "Wrong email or password." in r.text
        assert not browser.cookies.get(rp.session_cookie, domain="127.0.0.1")
