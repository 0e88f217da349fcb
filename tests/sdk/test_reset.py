"""Password reset, email verification and password policies, black-box (security T7, T10–T15).

Each server delivers to a real SMTP sink (mailsink.MailSink, aiosmtpd in the test process); links are
taken from the mails and followed the way a person would: the official SDK (auth0-python 6.8.0:
`Database.change_password`, `tickets.change_password|verify_email`, `jobs.verification_email.create`,
`jobs.get`) asks, `requests` opens the hosted pages (GET the form, POST it back with its csrf field and
cookie), and Chromium (Playwright, Debian's /usr/bin/chromium, screenshots in target/screenshots) walks
the whole reset flow once.

Figures (T7 timing medians, Host-header variants) are printed, not asserted: run with `-s` or `-rA`.
White-box reads of the test database: log event types, ticket rows (hash and lifetime), and a search of
the whole database for raw tokens.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import threading
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from auth0.authentication import Database as AuthDatabase
from auth0.authentication.exceptions import RateLimitError
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError

import browserkit
from harness import (
    CONNECTION,
    CallbackServer,
    assert_mgmt_error,
    configure_app_urls,
    pkce_pair,
    submit_hosted_login,
    thread_map,
    unique_email,
    wait_until,
)
from mailsink import MailSink
from resetkit import (
    CHANGED_SUBJECT,
    RESET_SUBJECT,
    SENT,
    TOKEN_RE,
    VERIFY_SUBJECT,
    LinkPage,
    alert_text,
    change_password,
    connection,
    log_types,
    login,
    mail_settings,
    mails,
    median_ms,
    page_refs,
    raw_request,
    redirect_query,
    refresh,
    reset_link,
    rules_shown,
    second_node,
    set_policy,
    signup,
    status_text,
    token_of,
    verify_link,
)

OLD = "correct horse battery staple"
NEW = "violet lantern drifts 4417"
NIST_RULES = [
    "At least 8 characters in length",
    "Not a commonly used password",
    "Not based on your name or email",
    "No repeated or sequential characters",
]
CHANGED_PAGE = "Your password has been changed. You can now log in with it."
DEAD = "This link has expired or has already been used."
RESET_DONE_MSG = "Your password has been changed successfully."
VERIFY_DONE_MSG = "Your email was verified. You can continue using the application."
WRONG = {"error": "invalid_grant", "error_description": "Wrong email or password."}


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def app(srv):
    """The application: a callback server registered as the default app's callback and logout URL, so
    that result_urls on its origin are allowed."""
    cb = CallbackServer()
    configure_app_urls(srv, [cb.url("/callback")], [cb.url("/bye")])
    c = srv.tenants["default"]
    yield SimpleNamespace(
        cb=cb,
        origin=cb.url(""),
        callback=cb.url("/callback"),
        done=cb.url("/done"),
        client_id=c["default_app"]["client_id"],
        issuer=c["issuer"],
    )
    cb.close()


@pytest.fixture(scope="module")
def mgmt(srv) -> Auth0:
    return Auth0(base_url=f"{srv.tenant_url()}/api/v2", token=srv.token(), max_retries=0)


@pytest.fixture(scope="module")
def auth_db(srv) -> AuthDatabase:
    c = srv.tenants["default"]
    return AuthDatabase(c["domain"], c["default_app"]["client_id"], c["default_app"]["client_secret"], protocol="http")


def new_user(server, tag: str = "u", password: str = OLD, **fields) -> tuple[str, str]:
    """(user_id, email) of a new user made through the Management API, without a verification mail."""
    email = unique_email(tag)
    fields.setdefault("verify_email", False)
    fields = {k: v for k, v in fields.items() if v is not None}  # None: leave the property out
    u = server.api().create_user(email, password=password, **fields)
    return u["user_id"], email


def get_user(server, user_id: str) -> dict:
    api = server.api()
    r = api.get(api.user_path(user_id))
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def outbox_templates(server, user_id: str) -> list[str]:
    r = server.api().get("/emails/outbox", params={"user_id": user_id})
    assert r.status_code == 200, (r.status_code, r.text)
    return sorted(row["template"] for row in r.json())


def ticket_row(server, token: str) -> dict:
    """White-box: the stored row of a ticket (found by the SHA-256 of its token)."""
    h = hashlib.sha256(token.encode()).hexdigest()
    rows = server.db.rows(f"SELECT kind, created_at, expires_at, used_at, id_hash FROM tickets WHERE id_hash = '{h}'")
    assert len(rows) == 1, rows
    kind, created, expires, used, id_hash = rows[0]
    return {"kind": kind, "created_at": int(created), "expires_at": int(expires), "used_at": used or None, "id_hash": id_hash}


def assert_page_headers(r: requests.Response) -> None:
    h = r.headers
    assert h.get("referrer-policy") == "no-referrer", dict(h)
    assert h.get("cache-control") == "no-store", dict(h)
    csp = h.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp


def assert_ok_login(server, email: str, password: str) -> dict:
    r = login(server, email, password)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def assert_wrong_login(server, email: str, password: str) -> None:
    r = login(server, email, password)
    assert r.status_code == 403 and r.json() == WRONG, (r.status_code, r.text)


def csrf_session(server) -> tuple[requests.Session, str]:
    """A browser that opened the 'forgot password' page: its session (with the csrf cookie) and token."""
    s = requests.Session()
    r = s.get(f"{server.tenant_url()}/u/reset-password", timeout=30)
    assert r.status_code == 200, r.text
    return s, LinkPage(s, r).fields["csrf"]


def post_form(server, session: requests.Session, path: str, data: dict) -> requests.Response:
    return session.post(f"{server.tenant_url()}/u/{path}", data=data, headers={"Origin": server.url}, allow_redirects=False, timeout=60)


def sso_login(server, app, email: str, password: str) -> requests.Session:
    """Log in through /authorize and the hosted login page; the browser session (SSO cookie)."""
    browser = requests.Session()
    r = browser.get(authorize_url(app), allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    page = browser.get(r.headers["location"], allow_redirects=False, timeout=30)
    done = submit_hosted_login(browser, page, email, password)
    base, q = redirect_query(done)
    assert base == app.callback and q.get("code"), (base, q)
    return browser


def authorize_url(app, **extra) -> str:
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.callback,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{app.issuer}authorize?{urlencode(params)}"


def silent_authorize(app, browser: requests.Session) -> dict:
    base, q = redirect_query(browser.get(authorize_url(app, prompt="none"), allow_redirects=False, timeout=30))
    assert base == app.callback, base
    return q


# ---------------------------------------------------------------------------------------------
# 1. the SDK, end to end


def test_sdk_change_password_mail_link_sets_the_new_password(srv, sink, auth_db):
    uid, email = new_user(srv, "sdk")
    before = login(srv, email, OLD, scope="openid offline_access")
    assert before.status_code == 200 and before.json()["refresh_token"], before.text

    assert auth_db.change_password(email=email, connection=CONNECTION, password="ignored-by-design-123") == SENT
    [m] = mails(sink, email, RESET_SUBJECT)
    assert m.rcpt_tos == [email]
    link = reset_link(m)
    assert link.startswith(f"{srv.url}/t/default/u/reset-password?ticket="), link
    token = token_of(link)
    assert TOKEN_RE.match(token), token
    row = ticket_row(srv, token)
    assert row["kind"] == "password_reset" and row["used_at"] is None
    assert row["expires_at"] - row["created_at"] == 3600 * 1000, row  # reset_link_lifetime_secs default
    assert "scpr" in log_types(srv, email)
    # The `password` of the request is ignored: the old password still works.
    assert_ok_login(srv, email, OLD)

    page = LinkPage.open(link)
    assert page.status == 200 and "text/html" in page.response.headers["content-type"]
    assert_page_headers(page.response)
    assert rules_shown(page.text) == NIST_RULES
    fields = page.fields
    assert fields["ticket"] == token and fields["_action"] == f"{srv.url}/t/default/u/reset-password", fields
    assert {"csrf", "ticket", "password", "confirm"} <= set(fields), fields
    assert page.session.cookies.get("rs_csrf") == fields["csrf"]
    assert email in page.text
    # Opening the link again (a mail scanner, a second click) does not use it up.
    assert LinkPage.open(link).status == 200

    r = page.set_password(NEW, confirm=NEW + "!")
    assert r.status_code == 400 and alert_text(r.text) == "The two passwords are not the same.", r.text
    assert_page_headers(r)
    r = page.set_password(NEW)
    assert r.status_code == 200, r.text
    assert "<h1>Password changed</h1>" in r.text and status_text(r.text) == CHANGED_PAGE
    assert_page_headers(r)

    assert_ok_login(srv, email, NEW)
    assert_wrong_login(srv, email, OLD)
    assert get_user(srv, uid)["last_password_reset"]
    gone = refresh(srv, before.json()["refresh_token"])
    assert gone.status_code == 403 and gone.json()["error"] == "invalid_grant", gone.text
    [notice] = mails(sink, email, CHANGED_SUBJECT)
    assert "reset-password?ticket=" not in (notice.text or "")
    assert "scp" in log_types(srv, email)
    assert ticket_row(srv, token)["used_at"]

    again = LinkPage.open(link)
    assert again.status == 410 and alert_text(again.text) == DEAD, again.text
    assert f'href="{srv.url}/t/default/u/reset-password"' in again.text  # ask for a new mail
    assert_page_headers(again.response)
    assert page.set_password("another fine passphrase 9").status_code == 410
    assert_ok_login(srv, email, NEW)


def test_sdk_password_change_ticket_redirects_to_result_url(srv, sink, app, mgmt):
    uid, email = new_user(srv, "tkt")
    assert get_user(srv, uid)["email_verified"] is False
    t = mgmt.tickets.change_password(user_id=uid, result_url=app.done, mark_email_as_verified=True)
    link = t.ticket
    assert link.startswith(f"{srv.url}/t/default/u/reset-password?ticket="), link
    token = token_of(link)
    assert TOKEN_RE.match(token)
    row = ticket_row(srv, token)
    assert row["expires_at"] - row["created_at"] == 432_000 * 1000, row  # ttl_sec absent: 5 days
    assert "reset_email" not in outbox_templates(srv, uid)  # a ticket is handed over, not mailed

    r = LinkPage.open(link).set_password(NEW)
    base, q = redirect_query(r)
    assert base == app.done
    assert q == {"success": "true", "code": "success", "message": RESET_DONE_MSG, "email": email}, q
    assert_page_headers(r)
    assert get_user(srv, uid)["email_verified"] is True  # mark_email_as_verified
    assert_ok_login(srv, email, NEW)

    # By email + connection_id, without the email in the redirect; the result_url's query and fragment kept.
    conn_id = connection(srv)["id"]
    t2 = mgmt.tickets.change_password(
        email=email, connection_id=conn_id, result_url=app.done + "?from=ticket#top", include_email_in_redirect=False, ttl_sec=0
    )
    assert ticket_row(srv, token_of(t2.ticket))["expires_at"] - ticket_row(srv, token_of(t2.ticket))["created_at"] == 432_000 * 1000
    r = LinkPage.open(t2.ticket).set_password(OLD)
    loc = r.headers["location"]
    assert loc.endswith("#top"), loc
    base, q = redirect_query(r)
    assert base == app.done and q == {"from": "ticket", "success": "true", "code": "success", "message": RESET_DONE_MSG}, q
    assert_ok_login(srv, email, OLD)

    # The SDK's errors for bad requests.
    for kwargs, status in [
        ({"user_id": uid, "ttl_sec": 30 * 86_400 + 1}, 400),
        ({"user_id": uid, "ttl_sec": -5}, 400),
        ({"user_id": uid, "email": email, "connection_id": conn_id}, 400),
        ({"user_id": "auth0|" + "0" * 24}, 404),
        ({"user_id": uid, "client_id": "NoSuchClient0000000000000000000000"}, 400),
    ]:
        with pytest.raises(ApiError) as ei:
            mgmt.tickets.change_password(**kwargs)
        assert ei.value.status_code == status, (kwargs, ei.value.status_code, ei.value.body)
    # The longest lifetime is accepted.
    long_t = mgmt.tickets.change_password(user_id=uid, ttl_sec=30 * 86_400)
    row = ticket_row(srv, token_of(long_t.ticket))
    assert row["expires_at"] - row["created_at"] == 30 * 86_400 * 1000


def test_sdk_email_verification_ticket(srv, sink, app, mgmt):
    uid, email = new_user(srv, "vt")
    t = mgmt.tickets.verify_email(user_id=uid, result_url=app.cb.url("/verified"))
    link = t.ticket
    assert link.startswith(f"{srv.url}/t/default/u/email-verification?ticket="), link
    assert TOKEN_RE.match(token_of(link))

    page = LinkPage.open(link)
    assert page.status == 200, page.text
    assert_page_headers(page.response)
    assert ">Confirm my email address</button>" in page.text and email in page.text
    assert set(page.fields) == {"_action", "csrf", "ticket"} and page.fields["ticket"] == token_of(link)
    assert get_user(srv, uid)["email_verified"] is False  # opening the page changes nothing

    r = page.confirm()
    base, q = redirect_query(r)
    assert base == app.cb.url("/verified")
    assert q == {"success": "true", "code": "success", "message": VERIFY_DONE_MSG, "email": email}, q
    assert get_user(srv, uid)["email_verified"] is True
    assert "sv" in log_types(srv, email)
    assert page.confirm().status_code == 410
    dead = LinkPage.open(link)
    assert dead.status == 410 and alert_text(dead.text) == DEAD
    # No welcome mail: the tenant has no enabled custom welcome_email template.
    assert "welcome_email" not in outbox_templates(srv, uid)

    # result_url with client_id must be on that application's origins.
    with pytest.raises(ApiError) as ei:
        mgmt.tickets.verify_email(user_id=uid, result_url="http://127.0.0.1:1/elsewhere", client_id=app.client_id)
    assert ei.value.status_code == 400
    with pytest.raises(ApiError) as ei:
        mgmt.tickets.verify_email(user_id="auth0|" + "f" * 24)
    assert ei.value.status_code == 404


def test_sdk_verification_email_job(srv, sink, mgmt):
    uid, email = new_user(srv, "job")
    assert "verify_email" not in outbox_templates(srv, uid)  # verify_email: false sent nothing
    sink.reject = "451 4.3.0 Try again later"  # hold the mail back: the job must stay pending
    try:
        job = mgmt.jobs.verification_email.create(user_id=uid)
        assert job.type == "verification_email" and job.status == "pending", job
        assert job.id.startswith("job_") and job.created_at, job
        wait_until(lambda: any(a.lower() == email for a, _ in sink.rejections()), timeout=20, what="a refused delivery attempt")
        assert mgmt.jobs.get(job.id).status == "pending"
    finally:
        sink.reject = None
    [m] = mails(sink, email, VERIFY_SUBJECT)
    wait_until(lambda: mgmt.jobs.get(job.id).status == "completed", timeout=20, what="the job to complete")
    got = mgmt.jobs.get(job.id)
    assert got.id == job.id and got.type == "verification_email"

    page = LinkPage.open(verify_link(m))
    assert page.status == 200
    r = page.confirm()
    assert r.status_code == 200 and "<h1>Email verified</h1>" in r.text, r.text
    assert status_text(r.text) == "Your email address is verified. You can close this page."
    assert get_user(srv, uid)["email_verified"] is True
    assert mgmt.jobs.get(job.id).status == "completed"

    with pytest.raises(ApiError) as ei:
        mgmt.jobs.verification_email.create(user_id=uid)
    assert ei.value.status_code == 400, ei.value.body
    # The raw shape, and an unknown job.
    r = srv.api().get("/jobs/job_doesnotexist000000")
    assert_mgmt_error(r, 404)


def test_verification_job_fails_when_its_mail_is_dead(spawner):
    with MailSink(reject="550 5.1.1 No such mailbox") as dead_sink:
        server = spawner.server(settings=mail_settings(dead_sink, mail_max_attempts=1))
        mg = Auth0(base_url=f"{server.tenant_url()}/api/v2", token=server.token(), max_retries=0)
        uid, email = new_user(server, "dead")
        job = mg.jobs.verification_email.create(user_id=uid)
        assert job.status == "pending"
        wait_until(lambda: mg.jobs.get(job.id).status == "failed", timeout=20, what="the job to fail")
        assert dead_sink.rejections() and not dead_sink.messages()


def test_verification_mails_at_signup_create_and_email_change(srv, sink):
    api = srv.api()
    # Database signup sends one.
    e1 = unique_email("su")
    r = signup(srv, e1, OLD)
    assert r.status_code == 200, r.text
    uid1 = "auth0|" + r.json()["_id"]
    [m1] = mails(sink, e1, VERIFY_SUBJECT)
    assert LinkPage.open(verify_link(m1)).confirm().status_code == 200
    assert get_user(srv, uid1)["email_verified"] is True

    # POST /users sends one unless email_verified: true or verify_email: false.
    uid2, e2 = new_user(srv, "cu", verify_email=None)
    [m2] = mails(sink, e2, VERIFY_SUBJECT)
    uid3, _ = new_user(srv, "cv", verify_email=None, email_verified=True)
    uid4, _ = new_user(srv, "cf", verify_email=False)
    assert "verify_email" not in outbox_templates(srv, uid3) + outbox_templates(srv, uid4)
    assert get_user(srv, uid3)["email_verified"] is True

    # PATCH email with verify_email: the new address gets a link; the old address's link is dead.
    e5 = unique_email("moved")
    r = api.patch(api.user_path(uid2), json={"email": e5, "verify_email": True})
    assert r.status_code == 200 and r.json()["email"] == e5 and r.json()["email_verified"] is False, r.text
    [m5] = mails(sink, e5, VERIFY_SUBJECT)
    assert m5.rcpt_tos == [e5]
    old = LinkPage.open(verify_link(m2))
    if old.status == 200:
        assert old.confirm().status_code == 410
    else:
        assert old.status == 410
    assert get_user(srv, uid2)["email_verified"] is False
    assert LinkPage.open(verify_link(m5)).confirm().status_code == 200
    u = get_user(srv, uid2)
    assert u["email"] == e5 and u["email_verified"] is True


def test_welcome_mail_only_with_an_enabled_custom_template(spawner, sink):
    server = spawner.server(settings=mail_settings(sink))
    tpl = {
        "template": "welcome_email",
        "body": "<p>Welcome aboard, {{ user.email }}</p>",
        "from": "welcome@roster.test",
        "subject": "Welcome aboard",
        "syntax": "liquid",
        "enabled": True,
    }
    r = server.api().post("/email-templates", json=tpl)
    assert r.status_code == 201, r.text
    uid, email = new_user(server, "wel")
    t = server.api().post("/tickets/email-verification", json={"user_id": uid})
    assert t.status_code == 201, t.text
    assert LinkPage.open(t.json()["ticket"]).confirm().status_code == 200
    [w] = mails(sink, email, "Welcome aboard")
    assert f"Welcome aboard, {email}" in (w.html or "")


# ---------------------------------------------------------------------------------------------
# 2. a real browser




@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        p = context.new_page()
        p.requested = []  # every URL the page asked for
        p.on("request", lambda req: p.requested.append(req.url))
        yield p
    finally:
        context.close()


def shot(page, backend: str, name: str) -> None:
    browserkit.shot(page, "reset", backend, name)


def click_submit(page, button: str):
    with page.expect_response(lambda r: r.request.method == "POST" and "/u/" in r.url) as info:
        page.get_by_role("button", name=button).click()
    resp = info.value
    assert resp.status != 403, f"the page's own form was refused as cross-site: {resp.text()[:500]}"
    return resp


def test_browser_reset_flow(page, srv, sink, backend):
    uid, email = new_user(srv, "chrome")
    resp = page.goto(f"{srv.tenant_url()}/u/reset-password")
    assert resp.status == 200 and resp.headers.get("referrer-policy") == "no-referrer"
    assert page.get_by_role("heading", name="Reset your password").is_visible()
    shot(page, backend, "1-request")
    page.get_by_label("Email address").fill(email)
    r = click_submit(page, "Send me a link")
    assert r.status == 200
    assert SENT in page.get_by_role("status").inner_text()
    shot(page, backend, "2-requested")

    link = reset_link(mails(sink, email, RESET_SUBJECT)[0])
    resp = page.goto(link)
    assert resp.status == 200
    assert page.locator("ul.rules li").all_inner_texts() == NIST_RULES
    shot(page, backend, "3-form")

    page.locator("#password").fill("12345678")
    page.locator("#confirm").fill("12345678")
    r = click_submit(page, "Set my password")
    assert r.status == 400
    alert = page.get_by_role("alert").inner_text()
    assert alert == "Password is too weak. It needs: No repeated or sequential characters.", alert
    assert page.locator("#password").input_value() == ""  # never echoed back
    shot(page, backend, "4-too-weak")

    page.locator("#password").fill("password1")
    page.locator("#confirm").fill("password1")
    assert click_submit(page, "Set my password").status == 400
    assert page.get_by_role("alert").inner_text() == "This password is too common or too easy to guess. Please choose another."
    shot(page, backend, "5-common")

    page.locator("#password").fill(NEW)
    page.locator("#confirm").fill(NEW)
    assert click_submit(page, "Set my password").status == 200
    assert page.get_by_role("heading", name="Password changed").is_visible()
    assert page.get_by_role("status").inner_text() == CHANGED_PAGE
    shot(page, backend, "6-changed")
    assert_ok_login(srv, email, NEW)

    # The link is dead now; the page offers a new mail.
    resp = page.goto(link)
    assert resp.status == 410 and page.get_by_role("alert").inner_text() == DEAD
    assert page.get_by_role("link", name="Send me a new link").get_attribute("href") == f"{srv.tenant_url()}/u/reset-password"
    shot(page, backend, "7-used")
    # T14: nothing was loaded from anywhere but the server itself.
    foreign = [u for u in page.requested if not u.startswith(srv.url + "/")]
    assert page.requested and not foreign, foreign


def test_browser_ticket_lands_on_the_result_url(page, srv, app, backend):
    uid, email = new_user(srv, "chromet")
    r = srv.api().post("/tickets/password-change", json={"user_id": uid, "result_url": app.done})
    assert r.status_code == 201, r.text
    page.goto(r.json()["ticket"])
    page.locator("#password").fill(NEW)
    page.locator("#confirm").fill(NEW + "x")
    assert click_submit(page, "Set my password").status == 400
    assert page.get_by_role("alert").inner_text() == "The two passwords are not the same."
    page.locator("#password").fill(NEW)
    page.locator("#confirm").fill(NEW)
    click_submit(page, "Set my password")
    page.wait_for_url(lambda u: u.startswith(app.done))
    q = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert q == {"success": "true", "code": "success", "message": RESET_DONE_MSG, "email": email}, q
    assert page.locator("#cb").is_visible()
    shot(page, backend, "8-result-url")
    hits = wait_until(lambda: app.cb.hits_at("/done"), timeout=10, what="the app to be reached")
    assert {k: v[0] for k, v in hits[-1].items()} == q
    assert_ok_login(srv, email, NEW)


# ---------------------------------------------------------------------------------------------
# 3. T7: enumeration


def test_reset_requests_answer_alike_for_known_unknown_and_blocked(srv, sink):
    _, known = new_user(srv, "known")
    blocked_id, blocked = new_user(srv, "blocked")
    r = srv.api().patch(srv.api().user_path(blocked_id), json={"blocked": True})
    assert r.status_code == 200 and r.json()["blocked"] is True
    unknown = unique_email("nobody")
    kinds = {"known": known, "unknown": unknown, "blocked": blocked}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    answers: dict[str, set] = {k: set() for k in kinds}
    s = requests.Session()
    change_password(srv, unknown, session=s)  # warm up the connection
    for _ in range(30):
        for kind, address in kinds.items():
            t0 = time.perf_counter()
            r = change_password(srv, address, session=s)
            times[kind].append(time.perf_counter() - t0)
            headers = tuple(sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() != "date"))
            answers[kind].add((r.status_code, r.content, headers))
    for kind in kinds:
        assert len(answers[kind]) == 1, (kind, answers[kind])
    assert answers["known"] == answers["unknown"] == answers["blocked"], answers
    status, body, headers = next(iter(answers["known"]))
    assert status == 200 and body == SENT.encode() and ("content-type", "text/plain; charset=utf-8") in headers

    medians = {k: median_ms(v) for k, v in times.items()}
    print(
        f"\n[T7 {srv.db.backend}] change_password medians over 30 calls: "
        + ", ".join(f"{k}={v:.2f} ms" for k, v in medians.items())
        + f"; |known-unknown|={abs(medians['known'] - medians['unknown']):.2f} ms"
    )
    # Behind the identical answers: a mail for the registered address, none for the unknown one.
    assert mails(sink, known, RESET_SUBJECT, n=30)
    assert not sink.to(unknown)
    assert log_types(srv, unknown).count("fcpr") == 31
    assert log_types(srv, known).count("scpr") == 30

    # The hosted "forgot password" form says the same thing for any address (one browser, one csrf).
    b, csrf = csrf_session(srv)
    pages = {}
    for kind, address in kinds.items():
        r = post_form(srv, b, "reset-password", {"csrf": csrf, "email": address})
        pages[kind] = (r.status_code, r.content)
    assert pages["known"] == pages["unknown"] == pages["blocked"], pages
    assert pages["known"][0] == 200 and SENT in status_text(pages["known"][1].decode())


def test_reset_requests_are_limited_alike_for_any_address(spawner, sink):
    server = spawner.server(settings=mail_settings(sink))  # reset_requests_per_hour: the default (5)
    _, known = new_user(server, "lim")
    unknown = unique_email("limnobody")
    c = server.tenants["default"]
    db = AuthDatabase(c["domain"], c["default_app"]["client_id"], protocol="http")
    refusals = []
    for address in (known, unknown):
        for _ in range(5):
            assert db.change_password(email=address, connection=CONNECTION) == SENT
        r = change_password(server, address)
        assert r.status_code == 429, (r.status_code, r.text)
        body = r.json()
        assert body["name"] == "TooManyRequestsError" and body["code"] == "too_many_requests" and body["statusCode"] == 429, body
        retry = int(r.headers["retry-after"])
        assert 0 < retry <= 3600, retry
        refusals.append((r.status_code, r.content))
        with pytest.raises(RateLimitError) as ei:
            db.change_password(email=address, connection=CONNECTION)
        assert ei.value.status_code == 429 and ei.value.error_code == "too_many_requests"
    assert refusals[0] == refusals[1]  # the refusal says nothing about the address either
    # The hosted form shares the limit.
    b, csrf = csrf_session(server)
    r = post_form(server, b, "reset-password", {"csrf": csrf, "email": known})
    assert r.status_code == 429 and "Too many requests" in alert_text(r.text)
    # Another address is not affected; only 5 mails reached the limited one.
    assert db.change_password(email=unique_email("other"), connection=CONNECTION) == SENT
    assert len(mails(sink, known, RESET_SUBJECT, n=5)) == 5
    assert not sink.to(unknown)


def test_change_password_request_errors(srv):
    _, email = new_user(srv, "err")
    cases = [
        ({"client_id": "NoSuchClient0000000000000000000000"}, "invalid_request"),
        ({"connection": "No-Such-Connection"}, "invalid_connection"),
        ({"email": "not an address"}, "invalid_body"),
    ]
    for fields, code in cases:
        r = change_password(srv, **{"email": email, **fields})
        assert r.status_code == 400 and r.json()["code"] == code, (fields, r.status_code, r.text)
    r = requests.post(f"{srv.tenant_url()}/dbconnections/change_password", json={"connection": CONNECTION}, timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "invalid_body", r.text
    # client_id is optional.
    r = requests.post(f"{srv.tenant_url()}/dbconnections/change_password", json={"email": email, "connection": CONNECTION}, timeout=30)
    assert r.status_code == 200 and r.text == SENT


# ---------------------------------------------------------------------------------------------
# 4. T10–T15


def _database_dump(server) -> bytes:
    if server.db.backend == "sqlite":
        out = b""
        for suffix in ("", "-wal", "-journal", "-shm"):
            p = server.db.sqlite_path.with_name(server.db.sqlite_path.name + suffix)
            if p.exists():
                out += p.read_bytes()
        return out
    r = subprocess.run(["pg_dump", "--data-only", "-d", server.db.url], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_tokens_are_random_distinct_and_never_stored_or_logged(spawner, sink):
    server = spawner.server(settings=mail_settings(sink, log_level="debug", reset_requests_per_hour=1000))
    api = server.api()
    tokens = []
    users = [new_user(server, "tq") for _ in range(10)]
    for i in range(50):
        uid, email = users[i % len(users)]
        path = "/tickets/password-change" if i % 2 == 0 else "/tickets/email-verification"
        r = api.post(path, json={"user_id": uid})
        assert r.status_code == 201, r.text
        tokens.append(token_of(r.json()["ticket"]))
    # Mailed tokens too (they sit, sealed, in the outbox until delivered).
    for uid, email in users[:3]:
        assert change_password(server, email).status_code == 200
        tokens.append(token_of(reset_link(mails(sink, email, RESET_SUBJECT)[0])))
    assert all(TOKEN_RE.match(t) for t in tokens), tokens
    assert len(set(tokens)) == len(tokens)
    # The whole 62-symbol alphabet is used (43 × log2(62) ≈ 256 bits per token): over ~2,300
    # characters a missing symbol would be a ~1e-14 accident.
    assert len(set("".join(tokens))) == 62
    # Use some links (GET and POST) so that request logging, if any, sees them.
    for t in tokens[:4]:
        kind = "reset-password" if ticket_row(server, t)["kind"] == "password_reset" else "email-verification"
        p = LinkPage.open(f"{server.tenant_url()}/u/{kind}?ticket={t}")
        assert p.status == 200
        r = p.set_password(NEW) if kind == "reset-password" else p.confirm()
        assert r.status_code in (200, 302), r.text

    stored = {row[0] for row in server.db.rows("SELECT id_hash FROM tickets")}
    assert len(stored) >= len(tokens)
    assert not stored & set(tokens)
    assert {hashlib.sha256(t.encode()).hexdigest() for t in tokens} <= stored
    dump = _database_dump(server)
    assert dump
    leaked_db = [t for t in tokens if t.encode() in dump]
    logs = server.stderr()
    leaked_log = [t for t in tokens if t in logs]
    print(f"\n[T10 {server.db.backend}] {len(tokens)} tokens; in the database: {len(leaked_db)}, in the debug log ({len(logs)} bytes): {len(leaked_log)}")
    assert not leaked_db, leaked_db
    assert not leaked_log, leaked_log


def test_a_reset_link_works_once_under_20_concurrent_redemptions(srv, sink):
    uid, email = new_user(srv, "race")
    r = srv.api().post("/tickets/password-change", json={"user_id": uid})
    assert r.status_code == 201
    link = r.json()["ticket"]
    pages = [LinkPage.open(link) for _ in range(20)]  # 20 browsers, each with its own csrf cookie
    assert all(p.status == 200 for p in pages)
    passwords = [f"{NEW} {i:02d}" for i in range(20)]
    barrier = threading.Barrier(20)

    def redeem(i):
        barrier.wait(timeout=30)
        return pages[i].set_password(passwords[i])

    results = thread_map(redeem, range(20), workers=20)
    statuses = sorted(r.status_code for r in results)
    print(f"\n[T11 {srv.db.backend}] 20 concurrent redemptions: {statuses}")
    winners = [i for i, r in enumerate(results) if r.status_code == 200]
    assert len(winners) == 1, statuses
    assert statuses.count(410) == 19, statuses
    assert all(alert_text(r.text) == DEAD for r in results if r.status_code == 410)
    [w] = winners
    assert_ok_login(srv, email, passwords[w])
    assert_wrong_login(srv, email, passwords[(w + 1) % 20])
    assert len(mails(sink, email, CHANGED_SUBJECT)) == 1
    assert log_types(srv, email).count("scp") == 1
    # Reuse after the race: still refused.
    assert LinkPage.open(link).status == 410


def test_one_redemption_across_two_nodes(spawner, sink, backend):
    """T11 across two nodes on one PostgreSQL database: 20 concurrent redemptions of one reset link,
    alternating between the nodes, each from its own browser."""
    if backend != "postgres":
        pytest.skip("two nodes share a database only on PostgreSQL")
    import base64

    a = spawner.server(settings=mail_settings(sink, master_key=base64.b64encode(os.urandom(32)).decode()))
    b = second_node(spawner, a)
    uid, email = new_user(a, "two")
    token = token_of(a.api().post("/tickets/password-change", json={"user_id": uid}).json()["ticket"])
    nodes = [a if i % 2 == 0 else b for i in range(20)]
    pages = [LinkPage.open(f"{n.tenant_url()}/u/reset-password?ticket={token}") for n in nodes]
    assert [p.status for p in pages] == [200] * 20
    barrier = threading.Barrier(20)

    def redeem(i):
        fields = {k: v for k, v in pages[i].fields.items() if k != "_action"}
        fields.update(password=f"{NEW} {i:02d}", confirm=f"{NEW} {i:02d}")
        barrier.wait(timeout=30)
        n = nodes[i]
        return pages[i].session.post(f"{n.tenant_url()}/u/reset-password", data=fields, headers={"Origin": n.url}, allow_redirects=False, timeout=60)

    results = thread_map(redeem, range(20), workers=20)
    statuses = [r.status_code for r in results]
    print(f"\n[T11 two nodes] statuses by request (even: node A, odd: node B): {statuses}")
    assert sorted(statuses) == [200] + [410] * 19, statuses
    [w] = [i for i, s in enumerate(statuses) if s == 200]
    assert_ok_login(b, email, f"{NEW} {w:02d}")
    assert a.db.rows(f"SELECT count(*) FROM logs WHERE type = 'scp' AND user_id = '{uid}'") == [("1",)]


def test_links_are_bound_to_their_kind_tenant_and_user(srv):
    uid, email = new_user(srv, "bound")
    api = srv.api()
    reset = token_of(api.post("/tickets/password-change", json={"user_id": uid}).json()["ticket"])
    verify = token_of(api.post("/tickets/email-verification", json={"user_id": uid}).json()["ticket"])
    # A reset token on the verification page and the other way round.
    assert LinkPage.open(f"{srv.tenant_url()}/u/email-verification?ticket={reset}").status == 410
    assert LinkPage.open(f"{srv.tenant_url()}/u/reset-password?ticket={verify}").status == 410
    b, csrf = csrf_session(srv)
    assert post_form(srv, b, "email-verification", {"csrf": csrf, "ticket": reset}).status_code == 410
    assert post_form(srv, b, "reset-password", {"csrf": csrf, "ticket": verify, "password": NEW, "confirm": NEW}).status_code == 410
    # Another tenant's pages do not know the tokens.
    srv.create_tenant("other")
    for kind, t in (("reset-password", reset), ("email-verification", verify)):
        r = requests.get(f"{srv.tenant_url('other')}/u/{kind}", params={"ticket": t}, timeout=30)
        assert r.status_code == 410, (kind, r.status_code)
    # Both still work where they belong.
    assert LinkPage.open(f"{srv.tenant_url()}/u/reset-password?ticket={reset}").set_password(NEW).status_code == 200
    assert LinkPage.open(f"{srv.tenant_url()}/u/email-verification?ticket={verify}").confirm().status_code == 200
    assert get_user(srv, uid)["email_verified"] is True
    # A deleted user's links die with the user.
    uid2, _ = new_user(srv, "gone")
    link = api.post("/tickets/password-change", json={"user_id": uid2}).json()["ticket"]
    page = LinkPage.open(link)
    assert page.status == 200
    assert api.delete(api.user_path(uid2)).status_code == 204
    assert LinkPage.open(link).status == 410
    assert page.set_password(NEW).status_code == 410


def test_template_settings_shape_the_mailed_links(spawner, sink):
    """A tenant's reset_email / verify_email templates: urlLifetimeInSeconds sets the link's lifetime,
    resultUrl where the browser goes, includeEmailInRedirect whether the address goes along."""
    server = spawner.server(settings=mail_settings(sink))
    configure_app_urls(server, ["http://127.0.0.1:9/cb"], [])
    api = server.api()
    base = {"from": "Tests <t@roster.test>", "syntax": "liquid", "enabled": True}
    r = api.post("/email-templates", json={**base, "template": "reset_email", "subject": "Custom reset", "body": "<p>Go: {{ url }}</p>",
                                           "resultUrl": "http://127.0.0.1:9/after-reset", "urlLifetimeInSeconds": 120, "includeEmailInRedirect": False})
    assert r.status_code == 201, r.text
    r = api.post("/email-templates", json={**base, "template": "verify_email", "subject": "Custom verify", "body": "<p>Verify: {{ url }}</p>",
                                           "resultUrl": "http://127.0.0.1:9/after-verify", "urlLifetimeInSeconds": 600})
    assert r.status_code == 201, r.text

    uid, email = new_user(server, "tpl")
    assert change_password(server, email).text == SENT
    [m] = mails(sink, email, "Custom reset")
    link = reset_link(m)
    row = ticket_row(server, token_of(link))
    assert row["expires_at"] - row["created_at"] == 120_000, row
    base_url, q = redirect_query(LinkPage.open(link).set_password(NEW))
    assert base_url == "http://127.0.0.1:9/after-reset" and q == {"success": "true", "code": "success", "message": RESET_DONE_MSG}, q

    e2 = unique_email("tplv")
    assert signup(server, e2, OLD).status_code == 200
    [v] = mails(sink, e2, "Custom verify")
    link = verify_link(v)
    row = ticket_row(server, token_of(link))
    assert row["expires_at"] - row["created_at"] == 600_000, row
    base_url, q = redirect_query(LinkPage.open(link).confirm())
    assert base_url == "http://127.0.0.1:9/after-verify" and q == {"success": "true", "code": "success", "message": VERIFY_DONE_MSG, "email": e2}, q


def test_a_reset_ends_other_links_sessions_and_refresh_tokens(srv, sink, app):
    uid, email = new_user(srv, "inval")
    rt = login(srv, email, OLD, scope="openid offline_access").json()["refresh_token"]
    browser = sso_login(srv, app, email, OLD)
    assert silent_authorize(app, browser).get("code")  # the SSO session works

    for _ in range(3):
        assert change_password(srv, email).status_code == 200
    links = [reset_link(m) for m in mails(sink, email, RESET_SUBJECT, n=3)]
    assert len(set(links)) == 3
    opened = [LinkPage.open(l) for l in links]
    assert [p.status for p in opened] == [200, 200, 200]

    assert opened[1].set_password(NEW).status_code == 200
    for i in (0, 2):
        assert LinkPage.open(links[i]).status == 410
        assert opened[i].set_password("yet another passphrase 7").status_code == 410
    assert_ok_login(srv, email, NEW)
    r = refresh(srv, rt)
    assert r.status_code == 403 and r.json()["error"] == "invalid_grant", r.text
    q = silent_authorize(app, browser)
    assert q.get("error") == "login_required" and "code" not in q, q

    # A link asked for after the change works; a password change through the Management API ends it.
    assert change_password(srv, email).status_code == 200
    later = reset_link(mails(sink, email, RESET_SUBJECT, n=4)[-1])
    assert later not in links and LinkPage.open(later).status == 200
    r = srv.api().patch(srv.api().user_path(uid), json={"password": "management set this one 5"})
    assert r.status_code == 200, r.text
    assert LinkPage.open(later).status == 410
    assert_ok_login(srv, email, "management set this one 5")


def test_mailed_links_ignore_the_host_headers_of_the_request(srv, sink):
    path = "/t/default/dbconnections/change_password"
    me = f"127.0.0.1:{srv.port}"
    variants = [
        (f"POST {path} HTTP/1.1", [("Host", "evil.example")]),
        (f"POST {path} HTTP/1.1", [("Host", "evil.example:8443")]),
        (f"POST {path} HTTP/1.1", [("Host", "EVIL.EXAMPLE")]),
        (f"POST {path} HTTP/1.1", [("Host", f"{me}.evil.example")]),
        (f"POST {path} HTTP/1.1", [("Host", f"evil.example@{me}")]),
        (f"POST {path} HTTP/1.1", [("Host", me), ("X-Forwarded-Host", "evil.example")]),
        (f"POST {path} HTTP/1.1", [("Host", me), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443")]),
        (f"POST {path} HTTP/1.1", [("Host", me), ("Forwarded", "host=evil.example;proto=https")]),
        (f"POST {path} HTTP/1.1", [("Host", me), ("X-Host", "evil.example"), ("X-Original-Host", "evil.example"), ("X-Forwarded-Server", "evil.example")]),
        (f"POST {path} HTTP/1.1", [("Host", "evil.example"), ("X-Forwarded-Prefix", "/evil")]),
        (f"POST http://evil.example{path} HTTP/1.1", [("Host", "evil.example")]),
        (f"POST http://evil.example{path} HTTP/1.1", [("Host", me)]),
        (f"POST http://{me}{path} HTTP/1.1", [("Host", "evil.example")]),
        (f"POST {path} HTTP/1.1", [("Host", "evil.example"), ("Host", me)]),
    ]
    client_id = srv.tenants["default"]["default_app"]["client_id"]
    expected_prefix = f"{srv.url}/t/default/u/reset-password?ticket="
    outcome = []
    for request_line, headers in variants:
        _, email = new_user(srv, "host")
        body = ('{"client_id":"%s","email":"%s","connection":"%s"}' % (client_id, email, CONNECTION)).encode()
        status, _, _ = raw_request(srv.port, request_line, headers + [("Content-Type", "application/json")], body)
        if status == 200:
            [m] = mails(sink, email, RESET_SUBJECT)
            link = reset_link(m)
            assert link.startswith(expected_prefix), (request_line, headers, link)
            assert "evil" not in (m.text or "") + (m.html or ""), (request_line, headers)
            outcome.append("mailed, link on the public URL")
        else:
            assert status == 400, (request_line, headers, status)
            assert not sink.to(email)
            outcome.append(f"refused {status}")
    print(f"\n[T13 {srv.db.backend}] {len(variants)} Host/X-Forwarded-*/Forwarded/absolute-URI variants: " + ", ".join(sorted(set(outcome))) + f" ({outcome.count('mailed, link on the public URL')} mailed)")
    assert outcome.count("mailed, link on the public URL") >= 10, outcome

    # Tickets made through the Management API too.
    uid, _ = new_user(srv, "hosttkt")
    token = srv.token()
    body = ('{"user_id":"%s"}' % uid).encode()
    status, _, raw = raw_request(
        srv.port,
        "POST /t/default/api/v2/tickets/password-change HTTP/1.1",
        [("Host", "evil.example"), ("X-Forwarded-Host", "evil.example"), ("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")],
        body,
    )
    assert status == 201, raw
    assert b'"ticket":"' + expected_prefix.encode() in raw, raw


def test_pages_send_no_referrer_and_load_nothing_from_elsewhere(srv, sink, app):
    uid, email = new_user(srv, "ref")
    reset = srv.api().post("/tickets/password-change", json={"user_id": uid, "result_url": app.done}).json()["ticket"]
    verify = srv.api().post("/tickets/email-verification", json={"user_id": uid}).json()["ticket"]
    responses = {}
    b, csrf = csrf_session(srv)
    responses["request form"] = b.get(f"{srv.tenant_url()}/u/reset-password", params={"client_id": app.client_id, "connection": CONNECTION})
    hostile = '"><script>alert(1)</script><img src=//evil.example/x>'
    responses["request form, hostile query"] = b.get(f"{srv.tenant_url()}/u/reset-password", params={"client_id": hostile, "connection": hostile})
    responses["request sent"] = post_form(srv, b, "reset-password", {"csrf": csrf, "email": email})
    responses["request error"] = post_form(srv, b, "reset-password", {"csrf": csrf, "email": ""})
    rp = LinkPage.open(reset)
    responses["reset form"] = rp.response
    responses["reset refused"] = rp.set_password("short")
    responses["csrf refused"] = rp.post({"password": NEW, "confirm": NEW}, headers={"Origin": "http://evil.example"})
    responses["reset redirect"] = rp.set_password(NEW)
    responses["reset dead"] = LinkPage.open(reset).response
    vp = LinkPage.open(verify)
    responses["verify form"] = vp.response
    responses["verify done"] = vp.confirm()
    responses["verify dead"] = LinkPage.open(verify).response
    expected = {
        "request form": 200, "request form, hostile query": 200, "request sent": 200, "request error": 400, "reset form": 200, "reset refused": 400,
        "csrf refused": 403, "reset redirect": 302, "reset dead": 410, "verify form": 200, "verify done": 200, "verify dead": 410,
    }  # fmt: skip
    assert {k: r.status_code for k, r in responses.items()} == expected
    for name, r in responses.items():
        assert_page_headers(r)
        if r.status_code == 302:
            continue
        refs, tags = page_refs(r.text)
        assert not tags & {"script", "img", "link", "iframe", "object", "embed", "video", "audio", "source", "base"}, (name, tags)
        assert "url(" not in r.text and "@import" not in r.text, name
        for tag, attr, value in refs:
            assert value.startswith(srv.url + "/"), (name, tag, attr, value)
    # The request form keeps the login request's client and connection.
    fields = LinkPage(b, responses["request form"]).fields
    assert fields["client_id"] == app.client_id and fields["connection"] == CONNECTION
    # ... escaped: a hostile value comes back as the same text, never as markup (checked above).
    fields = LinkPage(b, responses["request form, hostile query"]).fields
    assert fields["client_id"] == hostile and fields["connection"] == hostile


def test_cross_site_form_posts_are_refused_and_use_nothing_up(srv):
    uid, email = new_user(srv, "csrf")
    link = srv.api().post("/tickets/password-change", json={"user_id": uid}).json()["ticket"]
    p = LinkPage.open(link)
    token = p.fields["ticket"]
    attempts = {
        "foreign Origin": p.post({"password": NEW, "confirm": NEW}, headers={"Origin": "http://evil.example"}),
        "cross-site fetch": p.post({"password": NEW, "confirm": NEW}, headers={"Sec-Fetch-Site": "cross-site"}),
        "same-site fetch": p.post({"password": NEW, "confirm": NEW}, headers={"Sec-Fetch-Site": "same-site"}),
        "wrong csrf field": p.post({"password": NEW, "confirm": NEW, "csrf": "x" * 43}),
        "no cookie": requests.post(
            f"{srv.tenant_url()}/u/reset-password",
            data={"csrf": p.fields["csrf"], "ticket": token, "password": NEW, "confirm": NEW},
            headers={"Origin": srv.url},
            allow_redirects=False,
            timeout=30,
        ),
    }
    for name, r in attempts.items():
        assert r.status_code == 403, (name, r.status_code, r.text[:300])
        assert "did not come from this site" in alert_text(r.text), name
    assert_ok_login(srv, email, OLD)
    vp = LinkPage.open(srv.api().post("/tickets/email-verification", json={"user_id": uid}).json()["ticket"])
    for h in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert vp.post({}, headers=h).status_code == 403, h
    assert get_user(srv, uid)["email_verified"] is False
    assert vp.confirm().status_code == 200
    # `Origin: null` (what a browser sends from a no-referrer page) with the right token is fine.
    r = p.post({"password": NEW, "confirm": NEW}, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200, r.text
    assert_ok_login(srv, email, NEW)


def test_result_url_must_be_on_an_application_origin(srv, app):
    uid, email = new_user(srv, "redir")
    api = srv.api()
    port = urlsplit(app.origin).port
    refused = [
        "http://evil.example/done",
        "https://evil.example/",
        "//evil.example/done",
        "/done",
        "done",
        f"http://127.0.0.1:{port}.evil.example/",
        f"http://127.0.0.1:{port}@evil.example/",
        f"http://user:pw@127.0.0.1:{port}/done",
        f"http://user@127.0.0.1:{port}/done",
        f"https://127.0.0.1:{port}/done",  # another scheme: another origin
        f"http://127.0.0.1:{port + 1}/done",
        f"http://localhost:{port}/done",
        "javascript:alert(document.domain)//127.0.0.1",
        f"javascript://127.0.0.1:{port}/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        f"ftp://127.0.0.1:{port}/",
        "http://evil.example\\@127.0.0.1/",
        "http:/\\evil.example",
        " http://evil.example/",
    ]
    for path in ("/tickets/password-change", "/tickets/email-verification"):
        for url in refused:
            r = api.post(path, json={"user_id": uid, "result_url": url})
            assert r.status_code == 400, (path, url, r.status_code, r.text)
    # Allowed: the origin of a callback or logout URL, any path; case of scheme and host do not matter.
    for i, url in enumerate((app.done, app.origin + "/", f"HTTP://127.0.0.1:{port}/Other?x=1", app.callback)):
        r = api.post("/tickets/password-change", json={"user_id": uid, "result_url": url})
        assert r.status_code == 201, (url, r.text)
        resp = LinkPage.open(r.json()["ticket"]).set_password(f"{NEW} round {i}")
        assert resp.status_code == 302, resp.text
        loc = urlsplit(resp.headers["location"])
        assert f"{loc.scheme}://{loc.netloc}".lower() == app.origin.lower(), resp.headers["location"]
    # With client_id, only that application's origins: another application's callback is refused.
    other = api.post("/clients", json={"name": "Other app", "callbacks": ["http://127.0.0.1:7/cb"]})
    assert other.status_code == 201, other.text
    other_id = other.json()["client_id"]
    assert api.post("/tickets/password-change", json={"user_id": uid, "result_url": "http://127.0.0.1:7/x"}).status_code == 201
    r = api.post("/tickets/password-change", json={"user_id": uid, "result_url": "http://127.0.0.1:7/x", "client_id": app.client_id})
    assert r.status_code == 400, r.text
    r = api.post("/tickets/email-verification", json={"user_id": uid, "result_url": app.done, "client_id": other_id})
    assert r.status_code == 400, r.text


# ---------------------------------------------------------------------------------------------
# 5. password policies


def assert_policy_error(r: requests.Response, name: str) -> dict:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    messages = {
        "PasswordStrengthError": "Password is too weak",
        "PasswordDictionaryError": "Password is too common",
        "PasswordNoUserInfoError": "Password contains user information",
    }
    assert body["name"] == name and body["message"] == messages[name], body
    assert body["code"] == "invalid_password" and body["statusCode"] == 400, body
    if name == "PasswordStrengthError":
        assert body["description"]["verified"] is False and body["description"]["rules"], body
        assert isinstance(body["policy"], str) and body["policy"].startswith("* "), body
    return body


def test_default_nist_policy_at_signup(srv):
    c = connection(srv)
    assert c["options"]["passwordPolicy"] == "nist", c
    for pw in ("password123", "qwerty123", "iloveyou", "trustno1"):
        r = signup(srv, unique_email("nist"), pw)
        body = r.json()
        print(f"\n[policy {srv.db.backend}] {pw!r} -> {r.status_code} {body.get('name')}")
        assert body.get("name") in ("PasswordDictionaryError", "PasswordStrengthError"), (pw, body)
        assert_policy_error(r, body["name"])
    assert_policy_error(signup(srv, unique_email("nist"), "password123"), "PasswordDictionaryError")
    body = assert_policy_error(signup(srv, unique_email("nist"), "qwerty123"), "PasswordStrengthError")
    assert body["description"]["rules"] == [
        {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": True},
        {"message": "No repeated or sequential characters", "code": "notRepetitiveOrSequential", "verified": False},
    ], body
    assert body["policy"] == "* At least 8 characters in length\n* No repeated or sequential characters"
    body = assert_policy_error(signup(srv, unique_email("nist"), "Sh0rt!"), "PasswordStrengthError")
    assert body["description"]["rules"][0]["verified"] is False
    # The tenant's name and the email.
    assert_policy_error(signup(srv, unique_email("nist"), "default2024"), "PasswordDictionaryError")
    email = f"marguerite.{secrets.token_hex(4)}@example.com"
    assert_policy_error(signup(srv, email, "marguerite walks far"), "PasswordNoUserInfoError")
    r = signup(srv, unique_email("nist"), NEW)
    assert r.status_code == 200, r.text
    # The Management API applies the same policy, with its own error shape.
    api = srv.api()
    r = api.post("/users", json={"connection": CONNECTION, "email": unique_email("nist"), "password": "password123"})
    assert_mgmt_error(r, 400, "invalid_password", "PasswordDictionaryError: Password is too common")
    uid, email = new_user(srv, "nistp")
    r = api.patch(api.user_path(uid), json={"password": email.split("@")[0] + " is me"})
    assert_mgmt_error(r, 400, "invalid_password", "PasswordNoUserInfoError: Password contains user information")
    r = api.patch(api.user_path(uid), json={"password": "abcdefgh"})
    assert_mgmt_error(r, 400, "invalid_password", "PasswordStrengthError: Password is too weak")
    assert_ok_login(srv, email, OLD)


def test_good_policy_and_options(spawner, sink):
    server = spawner.server(settings=mail_settings(sink))
    set_policy(server, passwordPolicy="good")
    r = signup(server, unique_email("good"), "hello")
    assert r.status_code == 400
    assert r.json() == {
        "name": "PasswordStrengthError",
        "message": "Password is too weak",
        "code": "invalid_password",
        "description": {
            "rules": [
                {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": False},
                {
                    "message": "Contain at least %d of the following %d types of characters:",
                    "code": "containsAtLeast",
                    "format": [3, 4],
                    "items": [
                        {"message": "lower case letters (a-z)", "code": "lowerCase", "verified": True},
                        {"message": "upper case letters (A-Z)", "code": "upperCase", "verified": False},
                        {"message": "numbers (i.e. 0-9)", "code": "numbers", "verified": False},
                        {"message": "special characters (e.g. !@#$%^&*)", "code": "specialCharacters", "verified": False},
                    ],
                    "verified": False,
                },
            ],
            "verified": False,
        },
        "policy": "* At least 8 characters in length\n* Contain at least 3 of the following 4 types of characters:\n"
        " * lower case letters (a-z)\n * upper case letters (A-Z)\n * numbers (i.e. 0-9)\n * special characters (e.g. !@#$%^&*)",
        "statusCode": 400,
    }, r.text
    # `good` alone has no dictionary: a common password of three classes passes.
    assert signup(server, unique_email("good"), "Password1").status_code == 200

    # min_length, a custom dictionary and no personal info.
    set_policy(
        server,
        passwordPolicy="good",
        password_complexity_options={"min_length": 12},
        password_dictionary={"enable": True, "dictionary": ["Blue-Gizmo-4242"]},
        password_no_personal_info={"enable": True},
    )
    body = assert_policy_error(signup(server, unique_email("good"), "Hello123abc"), "PasswordStrengthError")
    assert body["description"]["rules"][0] == {"message": "At least %d characters in length", "format": [12], "code": "lengthAtLeast", "verified": False}
    assert_policy_error(signup(server, unique_email("good"), "blue-GIZMO-4242"), "PasswordDictionaryError")
    assert_policy_error(signup(server, unique_email("good"), "Password1234"), "PasswordDictionaryError")  # the bundled list applies now
    # Personal information: whole values of 3+ characters (given_name, the email's local part, metadata).
    assert_policy_error(signup(server, unique_email("good"), "Marguerite12345", given_name="Marguerite"), "PasswordNoUserInfoError")
    local = f"gaston{secrets.token_hex(3)}"
    assert_policy_error(signup(server, f"{local}@example.com", f"X!{local.upper()}9"), "PasswordNoUserInfoError")
    assert_policy_error(signup(server, unique_email("good"), "Zanzibar-Cove-1", user_metadata={"first": "zanzibar"}), "PasswordNoUserInfoError")
    assert signup(server, unique_email("good"), "Violet-Lantern-7").status_code == 200

    # The reset page shows the rules and says which one failed.
    uid, email = new_user(server, "goodr", password="Violet-Lantern-7")
    link = server.api().post("/tickets/password-change", json={"user_id": uid}).json()["ticket"]
    p = LinkPage.open(link)
    assert rules_shown(p.text) == [
        "At least 12 characters in length",
        "Contain at least 3 of the following 4 types of characters: lower case letters (a-z), upper case letters (A-Z), "
        "numbers (i.e. 0-9), special characters (e.g. !@#$%^&*)",
        "Not a commonly used password",
        "Not based on your name or email",
    ]
    r = p.set_password("hellohellohello")
    assert r.status_code == 400
    assert alert_text(r.text) == (
        "Password is too weak. It needs: Contain at least 3 of the following 4 types of characters: lower case letters "
        "(a-z), upper case letters (A-Z), numbers (i.e. 0-9), special characters (e.g. !@#$%^&*)."
    ), r.text
    r = p.set_password("Blue-Gizmo-4242")
    assert r.status_code == 400 and alert_text(r.text) == "This password is too common or too easy to guess. Please choose another."
    assert p.set_password("Tangerine-Sky-88").status_code == 200

    # The Management API: same policy, Management error shape.
    api = server.api()
    r = api.patch(api.user_path(uid), json={"password": "short"})
    assert_mgmt_error(r, 400, "invalid_password", "PasswordStrengthError: Password is too weak")

    # Options are replaced wholesale: without password_complexity_options the length is back to 8.
    c = connection(server)
    assert c["options"]["password_complexity_options"] == {"min_length": 12}, c
    r = api.patch(f"/connections/{c['id']}", json={"options": {"passwordPolicy": "good"}})
    assert r.status_code == 200 and r.json()["options"] == {"passwordPolicy": "good"}, r.text
    assert signup(server, unique_email("good"), "Hello123abc").status_code == 200
    assert signup(server, unique_email("good"), "Blue-Gizmo-4242").status_code == 200

    # Options are type- and range-checked; a refused PATCH changes nothing.
    for bad in (
        {"passwordPolicy": "strong"},
        {"passwordPolicy": 3},
        {"password_complexity_options": {"min_length": 0}},
        {"password_complexity_options": {"min_length": 129}},
        {"password_history": {"enable": True, "size": 25}},
        {"password_history": {"enable": "yes"}},
        {"password_dictionary": {"enable": True, "dictionary": "Blue"}},
        {"password_no_personal_info": {"enable": 1}},
    ):
        r = api.patch(f"/connections/{c['id']}", json={"options": bad})
        assert_mgmt_error(r, 400)
    assert connection(server)["options"] == {"passwordPolicy": "good"}
    # A null policy is the secure default (nist): the bundled list applies again.
    r = api.patch(f"/connections/{c['id']}", json={"options": {"passwordPolicy": None}})
    assert r.status_code == 200, r.text
    assert_policy_error(signup(server, unique_email("null"), "Password1234"), "PasswordDictionaryError")


def test_password_history(spawner, sink):
    server = spawner.server(settings=mail_settings(sink))
    set_policy(server, password_history={"enable": True, "size": 3})
    api = server.api()
    p = ["first phrase of four 1", "second phrase of four 2", "third phrase of four 3", "fourth phrase of four 4"]
    uid, email = new_user(server, "hist", password=p[0])
    path = api.user_path(uid)

    def patch(pw):
        return api.patch(path, json={"password": pw})

    assert_mgmt_error(patch(p[0]), 400, "invalid_password", "PasswordHistoryError: Password has previously been used")
    assert patch(p[1]).status_code == 200
    assert_mgmt_error(patch(p[1]), 400, "invalid_password", "PasswordHistoryError: Password has previously been used")
    assert patch(p[2]).status_code == 200
    # The reset page applies the history too.
    link = api.post("/tickets/password-change", json={"user_id": uid}).json()["ticket"]
    page = LinkPage.open(link)
    r = page.set_password(p[1])
    assert r.status_code == 400 and alert_text(r.text) == "This password has been used recently. Please choose a new one.", r.text
    assert page.set_password(p[3]).status_code == 200
    assert_ok_login(server, email, p[3])
    # Size 3: the newest three (p[1], p[2], p[3]) are refused; p[0] is the fourth newest.
    for old in (p[1], p[2], p[3]):
        assert patch(old).status_code == 400, old
    r = patch(p[0])
    assert r.status_code == 200, r.text
    assert_ok_login(server, email, p[0])
    # History off: any password again.
    set_policy(server, password_history={"enable": False, "size": 3})
    assert patch(p[3]).status_code == 200


def test_expired_tickets_are_gone(srv, sink):
    uid, email = new_user(srv, "exp")
    api = srv.api()
    reset = api.post("/tickets/password-change", json={"user_id": uid, "ttl_sec": 1}).json()["ticket"]
    verify = api.post("/tickets/email-verification", json={"user_id": uid, "ttl_sec": 1}).json()["ticket"]
    for link in (reset, verify):
        row = ticket_row(srv, token_of(link))
        assert row["expires_at"] - row["created_at"] == 1000, row
    wait_until(lambda: LinkPage.open(reset).status == 410, timeout=15, interval=0.1, what="the reset link to expire")
    wait_until(lambda: LinkPage.open(verify).status == 410, timeout=15, interval=0.1, what="the verification link to expire")
    dead = LinkPage.open(reset)
    assert alert_text(dead.text) == DEAD and 'u/reset-password"' in dead.text
    # The form posts (with a valid csrf) are refused as well, and nothing changed.
    b, csrf = csrf_session(srv)
    r = post_form(srv, b, "reset-password", {"csrf": csrf, "ticket": token_of(reset), "password": NEW, "confirm": NEW})
    assert r.status_code == 410 and alert_text(r.text) == DEAD
    r = post_form(srv, b, "email-verification", {"csrf": csrf, "ticket": token_of(verify)})
    assert r.status_code == 410
    assert_ok_login(srv, email, OLD)
    assert get_user(srv, uid)["email_verified"] is False
    # Tokens that never existed, or are malformed, get the same page.
    for t in ("A" * 43, "", "x" * 500, "../../etc"):
        assert LinkPage.open(f"{srv.tenant_url()}/u/reset-password?ticket={t}").status == 410
        assert LinkPage.open(f"{srv.tenant_url()}/u/email-verification?ticket={t}").status == 410
