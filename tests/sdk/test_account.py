"""The self-service account portal (/t/{tenant}/account) end to end, on SQLite and PostgreSQL.

Chromium (Playwright, Debian's /usr/bin/chromium, screenshots in target/screenshots) walks every
feature as a user would: log in through the hosted login, edit the profile and preferences, change
the password, change the email with both mails read from the SMTP sink (and "this wasn't me"), end
a session, accept new terms at login, download the data, delete the account. The security
catalogue (../shared/reference/security.md): mass assignment through the forms (T24), one user's
session ids in another's forms (T25), 50 stored-XSS polyglots in every displayed field of the
portal, the hosted pages and an HTML mail, in Chromium (T26), headers, cookie flags and framing
(T33), cross-site posts (T34), email change without re-authentication (T35), and export and
erasure (T36). The JSON API (/me) has its own suite in crates/roster-testkit/tests/account_api.rs.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import requests

import browserkit
from harness import CONNECTION, CallbackServer, configure_app_urls, form_fields, psql, submit_hosted_login, unique_email, wait_until
from resetkit import RESET_SUBJECT, change_password, login, mail_settings, mails, refresh

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "violet lantern drifts 4417"
THIRD_PASSWORD = "amber quarry whistles 2093"
VERIFY_NEW = "Confirm your new email address"
NOTICE_OLD = "Your email address is being changed"
CHANGED = "Your password was changed"
DELETED = "Your account has been deleted"
# 50 stored-XSS polyglots (T26): markup, attribute breakouts, URLs, template syntax, encodings.
_PAYLOADS = [
    "<script>window.__xss=1;alert(1)</script>",
    "\"><img src=x onerror=\"window.__xss=1;alert(1)\">",
    "'--></style></script><svg onload=alert(1)>",
    "javascript:alert(1)//",
    "{{7*7}}<iframe srcdoc=\"<script>parent.__xss=1</script>\"></iframe>",
    "<details open ontoggle=alert(1)>",
    "<body onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "jaVasCript:/*-/*`/*\\`/*'/*\"/**/(/* */oNcliCk=alert(1) )//%0D%0A%0d%0a//</stYle/</titLe/</teXtarEa/</scRipt/--!>\\x3csVg/<sVg/oNloAd=alert(1)//>\\x3e",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
]
POLYGLOTS = [f"{p}#{i}" if i >= len(_PAYLOADS) else p for i, p in enumerate((_PAYLOADS * 5)[:50])]


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def app(srv):
    cb = CallbackServer()
    configure_app_urls(srv, [cb.url("/callback")], [cb.url("/bye")])
    c = srv.tenants["default"]
    yield SimpleNamespace(cb=cb, callback=cb.url("/callback"), client_id=c["default_app"]["client_id"], issuer=c["issuer"])
    cb.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(accept_downloads=True)
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context):
    p = context.new_page()
    p.dialogs = []
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.dismiss()))
    return p


def new_user(server, tag: str = "acct", password: str = PASSWORD, **fields) -> tuple[str, str]:
    email = unique_email(tag)
    fields.setdefault("verify_email", False)
    u = server.api().create_user(email, password=password, **fields)
    return u["user_id"], email


def get_user(server, user_id: str) -> dict:
    api = server.api()
    r = api.get(api.user_path(user_id))
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def settings(server, **body) -> dict:
    r = server.api().patch("/tenants/settings", json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def db_exec(server, sql: str) -> None:
    """White-box write (test set-up only): e.g. age a session past the re-authentication window."""
    db = server.db
    if db.backend == "sqlite":
        con = sqlite3.connect(str(db.sqlite_path), timeout=30)
        try:
            con.execute(sql)
            con.commit()
        finally:
            con.close()
    else:
        psql(db.url, sql)


def shot(page, backend: str, name: str) -> None:
    browserkit.shot(page, "account", backend, name)


def portal_url(server) -> str:
    return f"{server.tenant_url()}/account"


def browser_login(page, server, email: str, password: str) -> None:
    """Open the portal: the hosted login, then back to the portal."""
    page.goto(portal_url(server))
    assert "/u/login" in page.url, page.url
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/account(\?.*)?$"))


def submit(page, button: str, status: int | None = 303):
    """Click a form button; the POST's response (a 303 back to the portal, or the page with errors)."""
    with page.expect_response(lambda r: r.request.method == "POST") as info:
        page.get_by_role("button", name=button).click()
    resp = info.value
    assert resp.status != 403, f"the portal's own form was refused: {resp.text()[:500]}"
    if status is not None:
        assert resp.status == status, (resp.status, resp.text()[:1000])
    page.wait_for_load_state()
    return resp


def link_in(m, path: str) -> str:
    found = re.findall(r"https?://[^\s\"'<>]+/" + re.escape(path) + r"\?ticket=[A-Za-z0-9]+", m.text or "")
    assert found, f"no {path} link in:\n{m.text}"
    return found[0]


class Browser:
    """A browser without JavaScript (requests) logged in to the portal."""

    def __init__(self, server, email: str, password: str, user_agent: str = "RosterTest/1.0"):
        self.server = server
        self.s = requests.Session()
        self.s.headers["User-Agent"] = user_agent
        r = self.s.get(portal_url(server), allow_redirects=False, timeout=30)
        assert r.status_code == 302, (r.status_code, r.text[:500])
        r = self.s.get(r.headers["location"], allow_redirects=False, timeout=30)
        assert r.status_code == 302 and "/u/login" in r.headers["location"], r.headers
        page = self.s.get(r.headers["location"], allow_redirects=False, timeout=30)
        done = submit_hosted_login(self.s, page, email, password)
        assert done.status_code == 302, (done.status_code, done.text[:1000])
        r = self.s.get(done.headers["location"], allow_redirects=False, timeout=30)  # /account/callback
        assert r.status_code == 302 and r.headers["location"].endswith("/account"), (r.status_code, r.headers)

    def portal(self) -> requests.Response:
        r = self.s.get(portal_url(self.server), allow_redirects=False, timeout=30)
        return r

    def csrf(self) -> str:
        r = self.portal()
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return form_fields(r.text, "account/profile")["csrf"]

    def post(self, path: str, data: dict, origin: str | None = None, csrf: bool = True, headers: dict | None = None) -> requests.Response:
        body = dict(data)
        if csrf and "csrf" not in body:
            body["csrf"] = self.csrf()
        headers = {"Origin": origin or self.server.url, **(headers or {})}
        return self.s.post(f"{portal_url(self.server)}/{path}", data=body, headers=headers, allow_redirects=False, timeout=60)


def session_rows(server, user_id: str) -> list[tuple[str, ...]]:
    return server.db.rows(f"SELECT id, revoked_at FROM sessions WHERE user_id = '{user_id}' ORDER BY created_at")


# ---------------------------------------------------------------------------------------------
# Chromium: every feature, as a user


def test_browser_profile_preferences_and_password(page, context, browser, srv, sink, backend):
    uid, email = new_user(srv, "chrome", user_metadata={"theme": "dark"}, app_metadata={"plan": "gold", "internal_id": "x-9"})
    settings(srv, account_portal={"visible_app_metadata": {"plan": "Plan"}})
    browser_login(page, srv, email, PASSWORD)
    assert page.get_by_role("heading", name="Your account").is_visible()
    assert page.get_by_role("heading", name="Profile").is_visible()
    # app_metadata: only the key the schema makes visible, read-only.
    assert page.locator("dl").inner_text().split() == ["Plan", "gold"]
    assert "x-9" not in page.content()
    shot(page, backend, "1-portal")

    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Nickname").fill("ada")
    submit(page, "Save profile")
    assert page.get_by_role("status").first.inner_text() == "Your profile is saved."
    u = get_user(srv, uid)
    assert (u["name"], u["nickname"]) == ("Ada Lovelace", "ada")

    # A refused value is shown next to its field, and nothing changes.
    page.get_by_label("Picture (URL)").fill("javascript:alert(1)")
    submit(page, "Save profile", status=400)
    assert "http(s) URL" in page.locator("#err-picture").inner_text()
    assert get_user(srv, uid).get("picture", "").startswith("javascript") is False
    shot(page, backend, "2-profile-error")

    page.goto(portal_url(srv))
    page.get_by_label("Language").select_option("fr")
    page.get_by_label("Reduce motion").check()
    submit(page, "Save preferences")
    u = get_user(srv, uid)
    assert u["user_metadata"] == {"theme": "dark", "language": "fr", "reduced_motion": True}, u["user_metadata"]
    assert u["app_metadata"] == {"plan": "gold", "internal_id": "x-9"}
    shot(page, backend, "3-preferences")

    # A second device, then a password change: the other device is logged out, this one stays.
    other = browser.new_context()
    try:
        p2 = other.new_page()
        browser_login(p2, srv, email, PASSWORD)
        page.goto(portal_url(srv))
        assert page.locator("#sessions tbody tr").count() == 2
        page.get_by_label("Current password").fill("not my password")
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Confirm the new password").fill(NEW_PASSWORD)
        submit(page, "Change password", status=400)
        assert page.locator("#err-current_password").inner_text() == "The current password is wrong."
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Confirm the new password").fill(NEW_PASSWORD)
        submit(page, "Change password")
        assert "Your password is changed" in page.get_by_role("status").first.inner_text()
        shot(page, backend, "4-password")
        p2.goto(portal_url(srv))
        assert "/u/login" in p2.url, "the other device was logged out"
    finally:
        other.close()
    page.goto(portal_url(srv))
    assert page.get_by_role("heading", name="Your account").is_visible(), "this device stays logged in"
    assert login(srv, email, NEW_PASSWORD).status_code == 200
    assert login(srv, email, PASSWORD).status_code == 403
    mails(sink, email, CHANGED)


def test_browser_sessions_list_and_revoke(page, browser, srv, backend):
    uid, email = new_user(srv, "sess")
    other = browser.new_context(user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/130.0")
    try:
        p2 = other.new_page()
        browser_login(p2, srv, email, PASSWORD)
        browser_login(page, srv, email, PASSWORD)
        rows = page.locator("#sessions tbody tr")
        assert rows.count() == 2
        assert "Firefox on Windows" in page.locator("#sessions").inner_text()
        assert "This device" in page.locator("#sessions").inner_text()
        shot(page, backend, "5-sessions")
        submit(page, "Log out this session")
        assert page.locator("#sessions tbody tr").count() == 1
        p2.goto(portal_url(srv))
        assert "/u/login" in p2.url
    finally:
        other.close()


def test_browser_email_change_confirmed(page, srv, sink, backend):
    uid, email = new_user(srv, "mail-old")
    new = unique_email("mail-new")
    browser_login(page, srv, email, PASSWORD)
    page.get_by_label("New email address").fill(new)
    # Just logged in: no password asked (the login is within the re-authentication window).
    assert page.locator("#f-email-password").count() == 0
    submit(page, "Change email")
    assert "Check the inbox of your new address" in page.get_by_role("status").first.inner_text()
    assert new in page.locator("#email").inner_text()
    u = get_user(srv, uid)
    assert (u["email"], u["email_verified"]) == (email, False), "nothing changes before the confirmation"
    shot(page, backend, "6-email-pending")
    confirm = link_in(mails(sink, new, VERIFY_NEW)[0], "u/email-change")
    notice = mails(sink, email, NOTICE_OLD)[0]
    assert new in notice.text and "/u/email-change/cancel?ticket=" in notice.text

    page.goto(confirm)
    assert page.get_by_role("heading", name="Change your email").is_visible()
    with page.expect_response(lambda r: r.request.method == "POST") as info:
        page.get_by_role("button", name="Confirm my new address").click()
    assert info.value.status == 200
    assert page.get_by_role("heading", name="Email changed").is_visible()
    shot(page, backend, "7-email-changed")
    u = get_user(srv, uid)
    assert (u["email"], u["email_verified"]) == (new, True)
    assert login(srv, new, PASSWORD).status_code == 200
    assert login(srv, email, PASSWORD).status_code == 403
    # The link works once; the old address's "this wasn't me" link is dead now.
    page.goto(confirm)
    assert page.get_by_role("alert").is_visible()
    r = requests.get(link_in(notice, "u/email-change/cancel"), timeout=30)
    assert r.status_code == 410


def test_browser_email_change_this_wasnt_me(page, srv, sink, backend):
    uid, email = new_user(srv, "victim")
    attacker = unique_email("attacker")
    # The attacker knows the password and asks to move the account to their address.
    b = Browser(srv, email, PASSWORD)
    r = b.post("email", {"email": attacker})
    assert r.status_code == 303, (r.status_code, r.text[:500])
    mails(sink, attacker, VERIFY_NEW)
    cancel = link_in(mails(sink, email, NOTICE_OLD)[0], "u/email-change/cancel")

    # The owner opens "this wasn't me" from the old address and is taken to choose a new password.
    page.goto(cancel)
    assert page.get_by_role("heading", name="This wasn't me").is_visible()
    shot(page, backend, "8-this-wasnt-me")
    page.get_by_role("button", name="Stop the change and secure my account").click()
    page.wait_for_url(re.compile(r".*/u/reset-password\?ticket=.*"))
    assert login(srv, email, PASSWORD).status_code == 403, "the known password no longer works"
    assert b.portal().status_code == 302, "every session ended"
    page.locator("#password").fill(THIRD_PASSWORD)
    page.locator("#confirm").fill(THIRD_PASSWORD)
    page.get_by_role("button", name="Set my password").click()
    assert page.get_by_role("heading", name="Password changed").is_visible()
    shot(page, backend, "9-secured")
    assert login(srv, email, THIRD_PASSWORD).status_code == 200
    # The attacker's confirmation link is dead; the email never changed.
    confirm = link_in(mails(sink, attacker, VERIFY_NEW)[0], "u/email-change")
    assert requests.get(confirm, timeout=30).status_code == 410
    assert get_user(srv, uid)["email"] == email


def test_browser_terms_at_login_and_in_the_portal(page, context, srv, app, backend):
    uid, email = new_user(srv, "terms")
    settings(srv, account_portal={"terms": {"version": "2026-11", "url": "https://example.com/terms"}})
    try:
        # The application's login stops at the terms before the code is issued.
        q = f"response_type=code&client_id={app.client_id}&redirect_uri={app.callback}&scope=openid&state=s1"
        page.goto(f"{app.issuer}authorize?{q}")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("heading", name="Accept the terms").is_visible()
        assert page.get_by_role("link", name=re.compile("terms")).get_attribute("href") == "https://example.com/terms"
        assert not app.cb.hits_at("/callback"), "no code before the terms are accepted"
        shot(page, backend, "10-terms")
        page.get_by_role("button", name="I accept the terms").click()
        # (hits_at: the browser may also ask the callback's server for /favicon.ico)
        wait_until(lambda: app.cb.hits_at("/callback"), 10, what="the callback")
        [hit] = app.cb.hits_at("/callback")
        assert "code" in hit and hit["state"] == ["s1"], hit
        u = get_user(srv, uid)
        assert u["app_metadata"]["terms_accepted"]["version"] == "2026-11"
        types = [r[0] for r in srv.db.rows(f"SELECT type FROM logs WHERE user_id = '{uid}'")]
        assert "terms_accepted" in types

        # A new version: the portal asks again before anything else.
        settings(srv, account_portal={"terms": {"version": "2026-12", "url": "https://example.com/terms2"}})
        page.goto(portal_url(srv))
        assert page.get_by_role("heading", name="Accept the terms").is_visible()
        assert page.locator("#profile").count() == 0
        page.get_by_role("button", name="I accept the terms").click()
        assert page.get_by_role("heading", name="Your account").is_visible()
        assert get_user(srv, uid)["app_metadata"]["terms_accepted"]["version"] == "2026-12"
    finally:
        settings(srv, account_portal={"terms": None})


def test_browser_download_data_and_delete_account(page, srv, sink, backend):
    uid, email = new_user(srv, "leaver", user_metadata={"language": "en"}, app_metadata={"plan": "free"})
    tokens = login(srv, email, PASSWORD, scope="openid offline_access").json()
    assert tokens.get("refresh_token"), tokens
    browser_login(page, srv, email, PASSWORD)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(open(info.value.path()).read())
    # Every stored field of the user is in the export (T36).
    stored = get_user(srv, uid)
    exported = {**data["profile"], "user_metadata": data["user_metadata"], "app_metadata": data["app_metadata"], "identities": data["identities"]}
    missing = {k for k in stored if k not in exported}
    assert not missing, missing
    assert {k: exported[k] for k in stored if k not in ("last_login", "updated_at", "logins_count", "last_ip")} == {
        k: v for k, v in stored.items() if k not in ("last_login", "updated_at", "logins_count", "last_ip")
    }
    assert data["profile"]["email"] == email and data["profile"]["user_id"] == uid
    assert data["user_metadata"] == {"language": "en"} and data["app_metadata"] == {"plan": "free"}
    assert data["identities"][0]["connection"] == CONNECTION
    assert len(data["sessions"]) == 1 and data["sessions"][0]["current"] is True
    assert {"s"} <= {e["type"] for e in data["logs"]}, data["logs"]

    page.goto(portal_url(srv) + "#delete")
    page.get_by_role("button", name="Delete my account").click()  # the box is required: nothing is sent
    assert page.locator("#f-confirm-delete:invalid").count() == 1
    assert get_user(srv, uid)["user_id"] == uid
    page.get_by_label("I understand that my account and data will be deleted").check()
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        page.get_by_role("button", name="Delete my account").click()
    assert resp.value.status == 200
    assert page.get_by_role("heading", name="Account deleted").is_visible()
    shot(page, backend, "11-deleted")
    api = srv.api()
    assert api.get(api.user_path(uid)).status_code == 404
    mails(sink, email, DELETED)
    assert_no_rows_of(srv, uid, email)
    # Tokens issued before the deletion are worthless.
    assert refresh(srv, tokens["refresh_token"]).status_code in (400, 403)
    r = requests.get(f"{srv.tenant_url()}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30)
    assert r.status_code == 401


# ---------------------------------------------------------------------------------------------
# security (browser without JavaScript unless stated)


def assert_no_rows_of(server, uid: str, email: str) -> None:
    """T33: no table keeps the user's id or address (the goodbye mail's outbox row, addressed to them,
    is the only exception: it is how they learn of the deletion)."""
    e = email.lower()
    checks = {
        "users": f"SELECT count(*) FROM users WHERE user_id = '{uid}' OR lower(email) = '{e}'",
        "credentials": f"SELECT count(*) FROM credentials WHERE user_id = '{uid}'",
        "sessions": f"SELECT count(*) FROM sessions WHERE user_id = '{uid}'",
        "refresh_tokens": f"SELECT count(*) FROM refresh_tokens WHERE user_id = '{uid}'",
        "auth_codes": f"SELECT count(*) FROM auth_codes WHERE user_id = '{uid}'",
        "tickets": f"SELECT count(*) FROM tickets WHERE user_id = '{uid}' OR lower(email) = '{e}'",
        "password_history": f"SELECT count(*) FROM password_history WHERE user_id = '{uid}'",
        "jobs": f"SELECT count(*) FROM jobs WHERE user_id = '{uid}'",
        "attack_counters": f"SELECT count(*) FROM attack_counters WHERE user_id = '{uid}' OR identifier = '{e}'",
        "logs": f"SELECT count(*) FROM logs WHERE user_id = '{uid}' OR lower(user_name) = '{e}'",
        "outbox": f"SELECT count(*) FROM outbox WHERE (user_id = '{uid}' OR lower(recipient) = '{e}') AND template <> 'account_deleted'",
    }
    left = {t: int(server.db.rows(sql)[0][0]) for t, sql in checks.items()}
    assert all(n == 0 for n in left.values()), left
    goodbye = server.db.rows(f"SELECT coalesce(user_id, 'none') FROM outbox WHERE lower(recipient) = '{e}' AND template = 'account_deleted'")
    assert goodbye == [("none",)], goodbye
    pseudonyms = server.db.rows("SELECT DISTINCT user_id FROM logs WHERE type = 'sdu' AND user_id LIKE 'deleted|%'")
    assert pseudonyms, "the deletion is logged under a pseudonym"


def test_every_portal_page_has_the_security_headers_and_cookie_flags(srv, sink):
    uid, email = new_user(srv, "hdr")
    b = Browser(srv, email, PASSWORD)
    session_cookie = [c for c in b.s.cookies if c.name == "rs_default"]
    assert session_cookie and session_cookie[0].has_nonstandard_attr("HttpOnly"), b.s.cookies
    responses = [b.portal(), b.post("profile", {"name": "x" * 500}), b.post("email", {"email": "not-an-address"})]
    responses.append(b.s.get(f"{portal_url(srv)}/callback", allow_redirects=False, timeout=30))
    responses.append(requests.get(portal_url(srv), allow_redirects=False, timeout=30))
    responses.append(b.post("export", {"go": "1"}))
    for r in responses:
        h = r.headers
        assert h.get("cache-control") == "no-store", (r.url, dict(h))
        assert h.get("referrer-policy") == "no-referrer", (r.url, dict(h))
        assert h.get("x-frame-options") == "DENY", (r.url, dict(h))
        csp = h.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp, (r.url, csp)
    raw = requests.Session()
    r = raw.get(f"{srv.tenant_url()}/u/login?" + urlsplit(requests.get(portal_url(srv), allow_redirects=False, timeout=30).headers["location"]).query, timeout=30)
    set_cookie = r.headers.get("set-cookie", "")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie, set_cookie


def test_cross_site_posts_change_nothing(srv):
    uid, email = new_user(srv, "csrf", user_metadata={"language": "en"})
    b = Browser(srv, email, PASSWORD)
    before = get_user(srv, uid)
    attempts = [
        b.post("profile", {"name": "Mallory"}, csrf=False),  # no token
        b.post("profile", {"name": "Mallory", "csrf": "forged" * 8}),  # wrong token
        b.post("profile", {"name": "Mallory"}, origin="https://evil.example"),  # another site
        b.post("email", {"email": "mallory@evil.example"}, origin="https://evil.example"),
        b.post("delete", {"confirm": "yes"}, origin="https://evil.example"),
        b.post("sessions/revoke-others", {"all": "1"}, csrf=False),
        b.post("preferences", {"m.language": "fr"}, headers={"Sec-Fetch-Site": "cross-site"}),  # a valid token, sent cross-site
        b.post("password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, origin="null", csrf=False),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts), [(r.status_code, r.text[:200]) for r in attempts]
    after = get_user(srv, uid)
    assert after == before
    assert b.portal().status_code == 200, "the session still works"
    assert login(srv, email, PASSWORD).status_code == 200, "the password is unchanged"


def test_forms_cannot_write_anything_else(srv):
    """T24 through the portal: extra fields in the forms are ignored; values outside the schema stay."""
    uid, email = new_user(srv, "mass", user_metadata={"theme": "dark"}, app_metadata={"plan": "free"})
    b = Browser(srv, email, PASSWORD)
    extra = {
        "email": "x@evil.example",
        "email_verified": "true",
        "blocked": "true",
        "app_metadata": '{"plan":"gold"}',
        "app_metadata.plan": "gold",
        "m.plan": "gold",
        "m.theme": "light",
        "user_id": "auth0|000000000000000000000000",
        "identities": "[]",
    }
    r = b.post("profile", {"name": "Ok", **extra})
    assert r.status_code == 303, (r.status_code, r.text[:500])
    r = b.post("preferences", {"m.language": "fr", **extra})
    assert r.status_code == 303, (r.status_code, r.text[:500])
    u = get_user(srv, uid)
    assert u["name"] == "Ok" and u["email"] == email and u["email_verified"] is False and not u.get("blocked")
    assert u["app_metadata"] == {"plan": "free"}
    assert u["user_metadata"] == {"theme": "dark", "language": "fr", "reduced_motion": False}
    # A value outside the schema's enum is refused with nothing changed.
    r = b.post("preferences", {"m.language": "xx"})
    assert r.status_code == 400 and "Choose one of the listed values." in r.text
    assert get_user(srv, uid)["user_metadata"]["language"] == "fr"


def test_email_change_needs_a_recent_login_or_the_password(srv, sink):
    """T36: an old session cannot change the email without the password; a wrong one changes nothing."""
    uid, email = new_user(srv, "reauth")
    b = Browser(srv, email, PASSWORD)
    db_exec(srv, f"UPDATE sessions SET authenticated_at = 0 WHERE user_id = '{uid}'")
    page = b.portal().text
    assert 'id="f-email-password"' in page and 'id="f-delete-password"' in page
    target = unique_email("takeover")
    for data in [{"email": target}, {"email": target, "password": "wrong password here"}]:
        r = b.post("email", data)
        assert r.status_code == 400, (r.status_code, r.text[:300])
    r = b.post("delete", {"confirm": "yes"})
    assert r.status_code == 400
    assert get_user(srv, uid)["email"] == email
    assert srv.db.rows(f"SELECT count(*) FROM tickets WHERE user_id = '{uid}' AND kind = 'email_change'") == [("0",)]
    # The password re-authenticates the session: the change is asked, and later forms need none.
    r = b.post("email", {"email": target, "password": PASSWORD})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert 'id="f-email-password"' not in b.portal().text
    mails(sink, target, VERIFY_NEW)
    assert get_user(srv, uid)["email"] == email


def test_an_address_in_use_looks_free_until_confirmed(srv, sink):
    """Whether the new address has an account is not revealed to the requester; the confirmation fails."""
    _, taken = new_user(srv, "taken")
    uid, email = new_user(srv, "wants")
    b = Browser(srv, email, PASSWORD)
    free = unique_email("free")
    r1, r2 = b.post("email", {"email": free}), b.post("email", {"email": taken})
    assert (r1.status_code, r2.status_code) == (303, 303)
    assert r1.headers["location"] == r2.headers["location"]
    link = link_in(mails(sink, taken, VERIFY_NEW)[0], "u/email-change")
    # The first request's link was replaced by the second.
    old_link = link_in(mails(sink, free, VERIFY_NEW)[0], "u/email-change")
    assert requests.get(old_link, timeout=30).status_code == 410
    s = requests.Session()
    page = s.get(link, timeout=30)
    fields = form_fields(page.text, "u/email-change")
    action = fields.pop("_action")
    r = s.post(action, data=fields, headers={"Origin": srv.url}, allow_redirects=False, timeout=30)
    assert r.status_code == 409 and "cannot be used" in r.text
    assert get_user(srv, uid)["email"] == email


def test_stored_xss_runs_nowhere(context, browser, srv, sink, backend):
    """T26: 50 polyglots in every displayed field — profile fields, user_metadata values, schema labels
    and help, visible app_metadata labels, the tenant's name, the terms version, the session's user
    agent — shown by the portal and the hosted pages, and in an HTML mail: 0 script executions."""
    P = POLYGLOTS
    props = {f"p{i}": {"type": "string", "title": P[i][:128], "description": P[10 + i]} for i in range(10)}
    props["language"] = {"type": "string", "title": "Language", "enum": ["en", P[20]]}
    settings(
        srv,
        friendly_name=P[23][:100],
        account_portal={
            "profile_schema": {"type": "object", "properties": props},
            "visible_app_metadata": {"a0": P[21][:128], "a1": P[22][:128]},
            "terms": {"version": P[24][:64], "url": "https://example.com/terms"},
        },
    )
    executed: list[str] = []
    try:
        for j in range(5):
            meta = {f"p{i}": P[45 + j] for i in range(10)} | {"language": P[20]}
            uid, email = new_user(
                srv, f"xss{j}", name=P[25 + j], nickname=P[30 + j], given_name=P[35 + j], family_name=P[40 + j][:150],
                user_metadata=meta, app_metadata={"a0": P[j], "a1": P[49 - j]},
            )
            ctx = browser.new_context(user_agent=P[j + 1][:200])
            try:
                page = ctx.new_page()
                page.on("dialog", lambda d: (executed.append(d.message), d.dismiss()))
                page.goto(portal_url(srv))
                page.get_by_label("Email address").fill(email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                # The hosted terms page (version and tenant name are polyglots), then the portal.
                assert page.get_by_role("heading", name="Accept the terms").is_visible()
                assert page.evaluate("() => window.__xss === undefined")
                page.get_by_role("button", name="I accept the terms").click()
                assert page.get_by_role("heading", name="Your account").is_visible()
                assert page.locator("#f-name").input_value() == P[25 + j], "shown as text, intact"
                assert page.locator("#f-m-p0").input_value() == P[45 + j]
                page.get_by_label("New email address").fill(f"x{secrets.token_hex(3)}@example.com")
                submit(page, "Change email")
                page.wait_for_timeout(200)
                if j == 0:
                    shot(page, backend, "12-xss")
                assert page.evaluate("() => window.__xss === undefined")
                html = page.content()
                assert "<script>window.__xss" not in html and "<svg onload" not in html and "<details open" not in html
                # The HTML mail the user receives next (its greeting carries the name).
                assert change_password(srv, email).status_code == 200
                mail = mails(sink, email, RESET_SUBJECT)[0]
                assert mail.html
                page.set_content(mail.html)
                page.wait_for_timeout(100)
                assert page.evaluate("() => window.__xss === undefined")
            finally:
                ctx.close()
        assert executed == [], executed
    finally:
        settings(srv, friendly_name=None, account_portal={"profile_schema": None, "visible_app_metadata": None, "terms": None})


def test_portal_cannot_be_framed(page, srv):
    """T33: a page of another site that frames the portal or the login shows nothing of them."""
    uid, email = new_user(srv, "frame")
    browser_login(page, srv, email, PASSWORD)
    page.set_content(f'<iframe id="f" src="{portal_url(srv)}"></iframe><iframe id="g" src="{srv.tenant_url()}/u/reset-password"></iframe>')
    page.wait_for_timeout(1000)
    for frame in page.frames[1:]:
        # A refused frame stays on an error document: no portal heading, no form.
        assert "Your account" not in frame.content() and "<form" not in frame.content(), frame.url


def test_one_user_cannot_end_anothers_sessions(srv):
    """T25 in the portal: the only ids a form carries are session ids; another user's do nothing."""
    pairs = []
    for k in range(3):
        ua, ea = new_user(srv, f"idor-a{k}")
        ub, eb = new_user(srv, f"idor-b{k}")
        pairs.append((Browser(srv, ea, PASSWORD), ub, Browser(srv, eb, PASSWORD)))
    for a, ub, b in pairs:
        [(b_session, _)] = session_rows(srv, ub)
        r = a.post("sessions/revoke", {"id": b_session})
        assert r.status_code == 303, r.status_code
        assert b.portal().status_code == 200, "b's session survives"
        assert session_rows(srv, ub) == [(b_session, "")]


def test_mails_carry_the_tenants_name_and_support_address(srv, sink):
    """The tenant settings' friendly_name and support_email reach the templates' variables."""
    settings(srv, friendly_name="Acme Shop", support_email="help@acme.example")
    try:
        uid, email = new_user(srv, "named")
        b = Browser(srv, email, PASSWORD)
        target = unique_email("named-new")
        assert b.post("email", {"email": target}).status_code == 303
        notice = mails(sink, email, NOTICE_OLD)[0]
        assert "Acme Shop" in notice.text and "help@acme.example" in notice.text, notice.text
        assert "Acme Shop" in notice.html
    finally:
        settings(srv, friendly_name=None, support_email=None)


def test_email_change_requests_are_limited_per_user(spawner, sink):
    """Each request mails an address the user chose: at most `reset_requests_per_hour` (5) an hour."""
    server = spawner.server(settings=mail_settings(sink))
    uid, email = new_user(server, "flood")
    b = Browser(server, email, PASSWORD)
    answers = [b.post("email", {"email": unique_email(f"victim{i}")}).status_code for i in range(6)]
    assert answers == [303] * 5 + [429], answers
    # The API shares the limit: the user's token is refused too.
    app = server.tenants["default"]["default_app"]
    r = requests.post(
        f"{server.tenant_url()}/oauth/token",
        data={"grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"], "username": email,
              "password": PASSWORD, "audience": f"{server.tenant_url()}/api/v2/", "scope": "openid update:current_user_metadata"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    me = requests.post(f"{server.tenant_url()}/me/email", json={"email": unique_email("victim7"), "password": PASSWORD},
                       headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=30)
    assert me.status_code == 429 and me.json()["errorCode"] == "too_many_requests" and me.headers.get("retry-after"), me.text


def test_a_disabled_portal_and_silent_logins_with_new_terms(srv, app):
    """`account_portal.enabled: false` closes the portal (404) and the API (403); new terms make a
    silent login (`prompt=none`) answer `interaction_required` rather than a code."""
    uid, email = new_user(srv, "silent")
    b = Browser(srv, email, PASSWORD)
    token = b.csrf()
    settings(srv, account_portal={"enabled": False})
    try:
        r = b.portal()
        assert r.status_code == 404 and "There is no account portal here." in r.text
        assert b.post("profile", {"name": "x", "csrf": token}).status_code == 404
        assert get_user(srv, uid)["name"] == email
    finally:
        settings(srv, account_portal={"enabled": None})
    assert b.portal().status_code == 200
    settings(srv, account_portal={"terms": {"version": "silent-1", "url": "https://example.com/terms"}})
    try:
        q = f"response_type=code&client_id={app.client_id}&redirect_uri={app.callback}&scope=openid&state=s2&prompt=none"
        r = b.s.get(f"{app.issuer}authorize?{q}", allow_redirects=False, timeout=30)
        assert r.status_code == 302, r.text[:300]
        loc = r.headers["location"]
        assert loc.startswith(app.callback) and "error=interaction_required" in loc and "state=s2" in loc and "code=" not in loc, loc
    finally:
        settings(srv, account_portal={"terms": None})
    r = b.s.get(f"{app.issuer}authorize?" + q, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "code=" in r.headers["location"], r.headers.get("location")


def test_hosted_pages_wear_the_tenants_look(srv):
    """The tenant's friendly name, colours and logo (tenant settings and /branding) reach the hosted
    pages; a logo is the only thing loaded from elsewhere, and only then may images come from https."""
    login_page = lambda: requests.get(requests.get(portal_url(srv), allow_redirects=False, timeout=30).headers["location"], timeout=30)  # noqa: E731
    plain = requests.get(f"{srv.tenant_url()}/u/reset-password", timeout=30)
    assert "img-src 'self' data:;" in plain.headers["content-security-policy"]
    settings(srv, friendly_name="Acme Shop <b>")
    r = srv.api().patch("/branding", json={"colors": {"primary": "#a1b2c3", "page_background": "#010203"}, "logo_url": "https://cdn.acme.example/logo.png"})
    assert r.status_code == 200, r.text
    try:
        for attempt in range(30):  # a node rereads the look at most once a second
            page = requests.get(f"{srv.tenant_url()}/u/reset-password", timeout=30)
            if "Acme Shop" in page.text:
                break
            time.sleep(0.1)
        assert '<p class="tenant">Acme Shop &lt;b&gt;</p>' in page.text, page.text[:800]
        assert "background:#010203" in page.text and "background:#a1b2c3" in page.text
        assert '<img class="logo" src="https://cdn.acme.example/logo.png" alt="">' in page.text
        assert "img-src 'self' data: https:;" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]
        assert "Acme Shop" in login_page().text
    finally:
        settings(srv, friendly_name=None)
        srv.api().patch("/branding", json={"colors": {"primary": None, "page_background": None}, "logo_url": None})
