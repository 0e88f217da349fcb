"""Blocking users and attack protection, black-box (security T16–T19, T23).

- Admin block (`PATCH /users/{id} {"blocked"}`): password grant, refresh tokens, the hosted login page and
  its session cookie.
- Brute-force protection: a counter per identifier + client IP, charged before any hash; the
  `blocked_account` mail and its single-use unblock link (followed with `requests` and with Chromium);
  the user-blocks API (raw and through auth0-python 6.8.0 `user_blocks.*`); blocks lifted by a password
  change; modes and allowlist; two nodes on one PostgreSQL database (T18).
- Suspicious-IP throttling (failed logins and signups per IP), the anomaly API.
- Client addresses: the server counts the socket peer, so clients bound to other 127.x.y.z addresses are
  other machines (blockkit.client_from); `X-Forwarded-For`/`Forwarded` count only from trusted proxies.

Figures (burst tallies, propagation and revocation times) are printed, not asserted: run with `-s` or
`-rA`. White-box: log event types are read from the test database.
"""

from __future__ import annotations

import base64
import os
import time

import pytest
import requests
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError

import browserkit
from harness import CallbackServer, assert_mgmt_error, configure_app_urls, unique_email, wait_until
from resetkit import LinkPage, alert_text, change_password, mail_settings, mails, reset_link, status_text
from blockkit import (
    BF_DEFAULTS,
    BF_PATH,
    BLOCKED_SUBJECT,
    SIT_DEFAULTS,
    SIT_PATH,
    SUSPICIOUS,
    USER_BLOCKED,
    WRONG,
    admin_blocked,
    assert_too_many,
    authorize,
    blocked_mails,
    blocks_for,
    burst,
    client_from,
    fresh_ip,
    hosted_login,
    login_from,
    node_behind_the_same_url,
    outcome,
    refresh_from,
    set_blocked,
    settings,
    signup_from,
    tally,
    unblock_link,
)

PW = "correct horse battery staple"
NEW_PW = "violet lantern drifts 4417"
CONNECTION = "Username-Password-Authentication"
UNBLOCKED = "Your account is unblocked. You can log in again."
DEAD = "This link has expired or has already been used."
PAGE_BLOCKED = "Your account has been blocked. Contact the administrator of this application."
PAGE_TOO_MANY = "Too many failed attempts: logins to this account from your network are blocked for now. Reset your password or wait."


# ---------------------------------------------------------------------------------------------
# fixtures and small helpers


@pytest.fixture(scope="module")
def cb(srv):
    """The application's callback (for the hosted login)."""
    c = CallbackServer()
    configure_app_urls(srv, [c.url("/callback")], [c.url("/bye")])
    yield c
    c.close()


def new_user(server, tag: str = "u", password: str = PW) -> tuple[str, str]:
    email = unique_email(tag)
    u = server.api().create_user(email, password=password, verify_email=False)
    return u["user_id"], email


def log_types(server, where: str) -> list[str]:
    """White-box: the types of the log events matching `where` (test-made SQL), oldest first."""
    return [row[0] for row in server.db.rows(f"SELECT type FROM logs WHERE {where} ORDER BY date, log_id")]


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def outbox_templates(server, user_id: str) -> list[str]:
    r = server.api().get("/emails/outbox", params={"user_id": user_id})
    assert r.status_code == 200, (r.status_code, r.text)
    return sorted(row["template"] for row in r.json())


def fail_until_blocked(server, ip: str, identifier: str, max_attempts: int = 10) -> None:
    """`max_attempts` wrong passwords (each 403, the same bytes as for any wrong password), then the
    next one is refused with 429 too_many_attempts."""
    s = client_from(ip)
    for i in range(max_attempts):
        r = login_from(server, s, identifier, "not the password")
        assert r.status_code == 403 and r.json() == WRONG, (i + 1, r.status_code, r.text)
    assert_too_many(login_from(server, s, identifier, "not the password"))


def assert_ok(r: requests.Response) -> dict:
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# ---------------------------------------------------------------------------------------------
# T16: the threshold, the mail, the unblock link


def test_t16_threshold_mail_and_single_use_unblock_link(srv, sink, cb):
    assert settings(srv, BF_PATH) == BF_DEFAULTS
    uid, email = new_user(srv, "t16")
    ip = fresh_ip()
    s = client_from(ip)
    for i in range(10):
        r = login_from(srv, s, email, f"wrong guess {i}")
        assert r.status_code == 403 and r.json() == WRONG, (i + 1, r.status_code, r.text)
    r = login_from(srv, s, email, "wrong guess 11")
    assert_too_many(r)
    print(f"\n[T16] attempt 11: {r.status_code} {r.json()}")
    # Blocked: the right password too, and the identifier in any case.
    assert_too_many(login_from(srv, s, email, PW))
    assert_too_many(login_from(srv, s, email.upper(), PW))
    assert blocks_for(srv, email) == [{"identifier": email, "ip": ip, "connection": CONNECTION}]
    assert admin_blocked(srv, uid) is False
    # The hosted login page, from the same address, says so.
    r = hosted_login(srv, client_from(ip), cb.url("/callback"), email, PW)
    assert r.status_code == 429 and alert_text(r.text) == PAGE_TOO_MANY, (r.status_code, r.text[:1000])

    # Exactly one blocked_account mail, naming the address; the outbox holds no other.
    m = sink.wait_for(1, 20, predicate=lambda m: email in m.rcpt_tos and m.msg["Subject"] == BLOCKED_SUBJECT)[0]
    assert ip in m.text, m.text
    assert outbox_templates(srv, uid) == ["blocked_account"]
    assert len(blocked_mails(sink, email)) == 1
    link = unblock_link(m)
    assert link.startswith(f"{srv.tenant_url()}/u/unblock?ticket="), link

    # GET shows a button form and changes nothing.
    page = LinkPage.open(link)
    assert page.status == 200, page.text
    fields = page.fields
    assert set(fields) == {"_action", "csrf", "ticket"} and fields["_action"] == f"{srv.tenant_url()}/u/unblock", fields
    assert fields["ticket"] == link.split("ticket=", 1)[1] and fields["csrf"]
    assert page.session.cookies.get("rs_csrf"), page.session.cookies
    assert_too_many(login_from(srv, s, email, PW))

    # A POST without the csrf field or from another site uses nothing up.
    no_csrf = page.session.post(fields["_action"], data={"ticket": fields["ticket"]}, headers={"Origin": srv.url}, allow_redirects=False, timeout=30)
    assert no_csrf.status_code == 403, (no_csrf.status_code, no_csrf.text[:500])
    assert_too_many(login_from(srv, s, email, PW))

    r = page.confirm()
    assert r.status_code == 200 and status_text(r.text) == UNBLOCKED, (r.status_code, r.text[:1000])
    assert blocks_for(srv, email) == []
    assert_ok(login_from(srv, s, email, PW))
    # Once only.
    again = LinkPage.open(link)
    assert again.status == 410 and alert_text(again.text) == DEAD, again.text[:1000]
    assert page.confirm().status_code == 410
    types = log_types(srv, f"user_id = {q(uid)}")
    assert types.count("fp") == 10 and types.count("ublkdu") == 1 and types[-1] == "s", types
    # The block is logged once, when it starts (the refusals that follow are not logged one by one).
    assert log_types(srv, f"lower(user_name) = {q(email)} AND type = 'limit_wc'") == ["limit_wc"]
    assert admin_blocked(srv, uid) is False


def test_blocked_account_mail_at_most_once_per_pair_per_hour(srv, sink):
    """At most one blocked_account mail per identifier + IP per hour (docs/ATTACK_PROTECTION.md), even
    when the pair is blocked again within the hour after an unblock; another IP gets its own mail."""
    uid, email = new_user(srv, "hourly")
    ip = fresh_ip()
    fail_until_blocked(srv, ip, email)
    first = mails(sink, email, BLOCKED_SUBJECT)[0]
    assert ip in first.text
    r = LinkPage.open(unblock_link(first)).confirm()
    assert r.status_code == 200 and status_text(r.text) == UNBLOCKED, r.text[:500]
    assert_ok(login_from(srv, ip, email, PW))
    # Blocked again from the same address within the hour: no new mail; from another address: a second
    # one. A mail is queued (the outbox) by the login that blocks, so once the logins are answered the
    # outbox is complete; wait until the sink got all of it.
    fail_until_blocked(srv, ip, email)
    other = fresh_ip()
    fail_until_blocked(srv, other, email)
    queued = outbox_templates(srv, uid).count("blocked_account")

    def all_arrived():
        g = blocked_mails(sink, email)
        return g if len(g) >= queued else None

    got = wait_until(all_arrived, timeout=20, what="every queued mail")
    sources = [next((a for a in (ip, other) if a in (m.text or "")), "?") for m in sorted(got, key=lambda m: m.at)]
    print(f"\n[mail per pair] blocked_account mails, by the address they name: {sources}")
    assert sorted(b["ip"] for b in blocks_for(srv, email)) == sorted([ip, other])
    assert other in sources
    assert sorted(sources) == sorted([ip, other]), f"a second mail for the pair {email} + {ip} within the hour: {sources}"


def test_counting_rules(srv):
    """Consecutive failures only (a success starts again), unknown identifiers counted alike, the
    identifier case-insensitive, the pair not the user: another IP of the same user is free."""
    uid, email = new_user(srv, "count")
    ip = fresh_ip()
    s = client_from(ip)
    for _ in range(9):
        assert login_from(srv, s, email, "nope").json() == WRONG
    assert_ok(login_from(srv, s, email, PW))
    for i in range(10):  # the count started again at the success
        r = login_from(srv, s, email.upper() if i % 2 else email, "nope")
        assert r.status_code == 403 and r.json() == WRONG, (i, r.text)
    assert_too_many(login_from(srv, s, email, PW))
    assert_ok(login_from(srv, fresh_ip(), email, PW))

    ghost = unique_email("ghost")
    fail_until_blocked(srv, ip, ghost.upper())
    assert blocks_for(srv, ghost) == [{"identifier": ghost, "ip": ip, "connection": CONNECTION}]
    assert "limit_wc" in log_types(srv, f"lower(user_name) = {q(ghost)}")


# ---------------------------------------------------------------------------------------------
# the unblock link in a real browser


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page, backend: str, name: str) -> None:
    browserkit.shot(page, "unblock", backend, name)


def test_browser_unblock_link(page, srv, sink, backend):
    uid, email = new_user(srv, "chrome")
    ip = fresh_ip()
    fail_until_blocked(srv, ip, email)
    link = unblock_link(mails(sink, email, BLOCKED_SUBJECT)[0])
    resp = page.goto(link)
    assert resp.status == 200
    assert page.get_by_role("heading", name="Unblock your account").is_visible()
    shot(page, backend, "1-page")
    assert_too_many(login_from(srv, ip, email, PW))  # opening the page changed nothing
    with page.expect_response(lambda r: r.request.method == "POST" and "/u/unblock" in r.url) as info:
        page.get_by_role("button", name="Unblock my account").click()
    assert info.value.status == 200, info.value.text()[:500]
    assert page.get_by_role("status").inner_text() == UNBLOCKED
    shot(page, backend, "2-unblocked")
    assert_ok(login_from(srv, ip, email, PW))
    resp = page.goto(link)
    assert resp.status == 410 and page.get_by_role("alert").inner_text() == DEAD
    assert page.get_by_role("link", name="Reset my password").get_attribute("href") == f"{srv.tenant_url()}/u/reset-password"
    shot(page, backend, "3-used")


# ---------------------------------------------------------------------------------------------
# T17 / T18: bursts


def test_t17_synchronised_burst(srv, sink, backend):
    uid, email = new_user(srv, "burst")
    ip = fresh_ip()
    responses = burst(srv, email, "wrong password", n=100, ip=ip)
    t = tally(responses)
    evaluated = [r for r in responses if r.status_code != 429]
    print(f"\n[T17 {backend}] 100 concurrent wrong passwords: {dict(t)}; evaluated (non-429): {len(evaluated)}")
    assert len(evaluated) <= 10, t
    assert all(r.json() == WRONG for r in evaluated), t
    for r in responses:
        if r.status_code == 429:
            assert_too_many(r)
    assert_too_many(login_from(srv, ip, email, PW))
    # White-box: no more than 10 password checks were logged as such; one mail for the one pair.
    fp = log_types(srv, f"user_id = {q(uid)}").count("fp")
    print(f"[T17 {backend}] fp events: {fp}")
    assert fp == len(evaluated), (fp, t)
    m = mails(sink, email, BLOCKED_SUBJECT)
    assert len(m) == 1 and outbox_templates(srv, uid) == ["blocked_account"]


def test_t18_burst_over_two_nodes_and_unblock_on_the_other(spawner, backend):
    if backend != "postgres":
        pytest.skip("two nodes share a database only on PostgreSQL")
    a = spawner.server(settings={"master_key": master_key()})
    b = node_behind_the_same_url(spawner, a)
    uid, email = new_user(a, "t18")
    ip = fresh_ip()
    responses = burst([a, b], email, "wrong password", n=100, ip=ip)
    by_node = {"A": tally(responses[0::2]), "B": tally(responses[1::2])}
    evaluated = sum(1 for r in responses if r.status_code != 429)
    print(f"\n[T18] 100 concurrent wrong passwords, alternating nodes: A {dict(by_node['A'])}, B {dict(by_node['B'])}; evaluated in total: {evaluated}")
    assert evaluated <= 10, by_node
    assert all(r.json() == WRONG for r in responses if r.status_code != 429)
    assert all(r.json()["error"] == "too_many_attempts" for r in responses if r.status_code == 429)
    assert_too_many(login_from(a, ip, email, PW))
    assert_too_many(login_from(b, ip, email, PW))
    r = b.api().get("/user-blocks/" + requests.utils.quote(uid, safe=""))
    assert r.status_code == 200 and r.json() == {"blocked_for": [{"identifier": email, "ip": ip, "connection": CONNECTION}]}, r.text

    r = b.api().delete("/user-blocks/" + requests.utils.quote(uid, safe=""))
    assert r.status_code == 204, r.text
    t0 = time.monotonic()
    tries = []

    def a_logs_in():
        r = login_from(a, ip, email, PW)
        tries.append(outcome(r))
        return r.status_code == 200

    wait_until(a_logs_in, timeout=10, interval=0.02, what="node A to let the unblocked user in")
    took = time.monotonic() - t0
    print(f"[T18] unblock on node B -> login on node A succeeded after {took * 1000:.1f} ms, {len(tries)} attempt(s): {tries}")
    assert blocks_for(a, email) == [] and admin_blocked(a, uid) is False
    assert "ublkdu" in log_types(a, f"user_id = {q(uid)}")


# ---------------------------------------------------------------------------------------------
# T19: lockout DoS


def test_t19_attacker_block_does_not_lock_out_the_victim(srv):
    uid, email = new_user(srv, "victim")
    fail_until_blocked(srv, "127.0.0.1", email)
    victim = client_from("127.0.0.2")
    results = [login_from(srv, victim, email, PW) for _ in range(20)]
    ok = sum(1 for r in results if r.status_code == 200)
    print(f"\n[T19] victim from 127.0.0.2 while 127.0.0.1 is blocked: {ok}/20 logins")
    assert ok == 20, tally(results)
    # The attacker's block stands.
    assert_too_many(login_from(srv, "127.0.0.1", email, PW))
    assert blocks_for(srv, email) == [{"identifier": email, "ip": "127.0.0.1", "connection": CONNECTION}]


# ---------------------------------------------------------------------------------------------
# T23: admin block and deletion end refresh tokens and sessions


@pytest.mark.parametrize("how", ["block", "delete"])
def test_t23_block_or_delete_ends_refresh_tokens_and_the_session(srv, cb, backend, how):
    uid, email = new_user(srv, f"t23{how}")
    ip = fresh_ip()
    rts = [assert_ok(login_from(srv, ip, email, PW, scope="openid offline_access"))["refresh_token"] for _ in range(5)]
    probe_rt = assert_ok(login_from(srv, ip, email, PW, scope="openid offline_access"))["refresh_token"]
    assert assert_ok(refresh_from(srv, ip, probe_rt))["access_token"]  # refresh works before
    browser = client_from(ip)
    r = hosted_login(srv, browser, cb.url("/callback"), email, PW)
    assert r.status_code == 302 and "code=" in r.headers["location"], (r.status_code, r.text[:500])
    assert "code" in authorize(srv, browser, cb.url("/callback"))[1]  # the session works

    api = srv.api()
    t0 = time.monotonic()
    if how == "block":
        set_blocked(srv, uid, True)
    else:
        assert api.delete(api.user_path(uid)).status_code == 204

    # Refresh tokens fail at once, every one of them.
    answers = [refresh_from(srv, ip, rt) for rt in rts]
    assert all(r.status_code == 403 and r.json()["error"] == "invalid_grant" for r in answers), [(r.status_code, r.text) for r in answers]

    # The session: the next /authorize shows the login page, prompt=none says login_required.
    def session_dead():
        where, query = authorize(srv, browser, cb.url("/callback"))
        return where == f"{srv.tenant_url()}/u/login" and "code" not in query

    wait_until(session_dead, timeout=5, interval=0.02, what="the session to end")
    took = time.monotonic() - t0
    print(f"\n[T23 {backend} {how}] 5/5 refresh exchanges refused; session dead {took * 1000:.1f} ms after the {how}")
    where, query = authorize(srv, browser, cb.url("/callback"), prompt="none")
    assert where == cb.url("/callback") and query.get("error") == "login_required" and "code" not in query, (where, query)

    if how == "delete":
        r = login_from(srv, ip, email, PW)
        assert r.status_code == 403 and r.json() == WRONG, r.text
        r = hosted_login(srv, client_from(ip), cb.url("/callback"), email, PW)
        assert r.status_code == 403 and alert_text(r.text) == "Wrong email or password.", (r.status_code, r.text[:500])
        return

    # Blocked: the right password says so (the wrong one does not), on the hosted page too; log `f`.
    r = login_from(srv, ip, email, PW)
    assert r.status_code == 401 and r.json() == USER_BLOCKED, r.text
    r = login_from(srv, ip, email, "wrong password")
    assert r.status_code == 403 and r.json() == WRONG, r.text
    r = hosted_login(srv, client_from(ip), cb.url("/callback"), email, PW)
    assert r.status_code == 401 and alert_text(r.text) == PAGE_BLOCKED, (r.status_code, r.text[:1000])
    assert "f" in log_types(srv, f"user_id = {q(uid)}")
    assert all(refresh_from(srv, ip, rt).status_code == 403 for rt in rts)  # still

    # Unblocked: access again.
    set_blocked(srv, uid, False)
    assert_ok(login_from(srv, ip, email, PW))
    fresh = client_from(ip)
    r = hosted_login(srv, fresh, cb.url("/callback"), email, PW)
    assert r.status_code == 302 and "code=" in r.headers["location"], (r.status_code, r.text[:500])
    revived = [refresh_from(srv, ip, rt).status_code for rt in rts]
    old_session = "code" in authorize(srv, browser, cb.url("/callback"))[1]
    print(f"[T23 {backend} block] after blocked:false: refresh tokens from before the block answer {revived}; the old session cookie works again: {old_session}")


# ---------------------------------------------------------------------------------------------
# user blocks: the SDK (auth0-python 6.8.0)


def test_sdk_user_blocks(srv):
    mgmt = Auth0(base_url=f"{srv.tenant_url()}/api/v2", token=srv.token(), max_retries=0)
    uid, email = new_user(srv, "sdk")
    ip1, ip2 = fresh_ip(), fresh_ip()
    fail_until_blocked(srv, ip1, email)
    fail_until_blocked(srv, ip2, email)

    def pairs(resp) -> list[tuple[str, str, str]]:
        return sorted((b.identifier, b.ip, b.connection) for b in resp.blocked_for)

    expected = sorted([(email, ip1, CONNECTION), (email, ip2, CONNECTION)])
    assert pairs(mgmt.user_blocks.list_by_identifier(identifier=email)) == expected
    assert pairs(mgmt.user_blocks.list_by_identifier(identifier=email.upper(), consider_brute_force_enablement=True)) == expected
    assert pairs(mgmt.user_blocks.list(uid)) == expected
    assert mgmt.users.get(uid).blocked in (None, False)

    # Unblock by identifier: both addresses free, the admin flag untouched.
    assert mgmt.user_blocks.delete_by_identifier(identifier=email) is None
    assert pairs(mgmt.user_blocks.list_by_identifier(identifier=email)) == []
    assert_ok(login_from(srv, ip1, email, PW))
    assert_ok(login_from(srv, ip2, email, PW))
    assert admin_blocked(srv, uid) is False

    # Unblock by id, with the admin flag set: the flag stays.
    fail_until_blocked(srv, ip1, email)
    set_blocked(srv, uid, True)
    assert pairs(mgmt.user_blocks.list(uid)) == [(email, ip1, CONNECTION)]
    assert mgmt.user_blocks.delete(uid) is None
    assert pairs(mgmt.user_blocks.list(uid)) == []
    assert mgmt.users.get(uid).blocked is True
    r = login_from(srv, ip1, email, PW)
    assert r.status_code == 401 and r.json() == USER_BLOCKED, r.text  # brute-force block gone, admin block not
    set_blocked(srv, uid, False)
    assert_ok(login_from(srv, ip1, email, PW))
    assert log_types(srv, f"user_id = {q(uid)} AND type = 'ublkdu'") == ["ublkdu"]
    assert "ublkdu" in log_types(srv, f"user_name = {q(email)}")

    with pytest.raises(ApiError) as e:
        mgmt.user_blocks.list("auth0|" + "0" * 24)
    assert e.value.status_code == 404
    with pytest.raises(ApiError) as e:
        mgmt.user_blocks.delete("auth0|" + "0" * 24)
    assert e.value.status_code == 404


def test_user_blocks_http_errors(srv):
    api = srv.api()
    assert_mgmt_error(api.get("/user-blocks"), 400, "invalid_query_string")
    assert_mgmt_error(api.delete("/user-blocks"), 400, "invalid_query_string")
    assert_mgmt_error(api.get("/user-blocks", params={"identifier": "x@example.com", "surprise": "1"}), 400, ...)
    assert_mgmt_error(api.get("/user-blocks/not-a-user-id"), 404, "inexistent_user")
    r = api.get("/user-blocks", params={"identifier": unique_email("nobody")})
    assert r.status_code == 200 and r.json() == {"blocked_for": []}, r.text
    assert api.delete("/user-blocks", params={"identifier": unique_email("nobody")}).status_code == 204


# ---------------------------------------------------------------------------------------------
# a password change lifts the blocks


@pytest.mark.parametrize("route", ["management", "reset-page"])
def test_password_change_lifts_the_blocks(srv, sink, route):
    uid, email = new_user(srv, f"pwc{route[:3]}")
    ip = fresh_ip()
    fail_until_blocked(srv, ip, email)
    if route == "management":
        api = srv.api()
        r = api.patch(api.user_path(uid), json={"password": NEW_PW})
        assert r.status_code == 200, r.text
    else:
        assert change_password(srv, email).status_code == 200
        form = LinkPage.open(reset_link(mails(sink, email, "Reset your password")[0]))
        assert form.status == 200
        assert form.set_password(NEW_PW).status_code == 200
    assert blocks_for(srv, email) == [] and blocks_for(srv, user_id=uid) == []
    assert_ok(login_from(srv, ip, email, NEW_PW))
    # The unblock link mailed before is spent or still harmless; either way the user can log in.
    assert admin_blocked(srv, uid) is False


def test_blocks_counted_before_the_account_existed_belong_to_it(srv):
    """Unknown identifiers are counted like known ones; once an account with that address exists, the
    block is one of its blocks: listed by `GET /user-blocks/{id}`, lifted by a password change (and by
    `DELETE /user-blocks/{id}`)."""
    api = srv.api()
    email = unique_email("early")
    ip = fresh_ip()
    fail_until_blocked(srv, ip, email)
    pair = [{"identifier": email, "ip": ip, "connection": CONNECTION}]
    assert blocks_for(srv, email) == pair
    uid = api.create_user(email, password=PW, verify_email=False)["user_id"]
    listed = blocks_for(srv, user_id=uid)
    r = api.patch(api.user_path(uid), json={"password": NEW_PW})
    assert r.status_code == 200, r.text
    after_change = blocks_for(srv, email)
    login = login_from(srv, ip, email, NEW_PW)
    print(f"\n[early block] GET /user-blocks/{{id}}: {listed}; by identifier after a password change: {after_change}; login: {outcome(login)}")
    # DELETE /user-blocks/{id} does find it (it clears the user's address too).
    r = api.delete("/user-blocks/" + requests.utils.quote(uid, safe=""))
    assert r.status_code == 204 and blocks_for(srv, email) == []
    assert_ok(login_from(srv, ip, email, NEW_PW))
    assert listed == pair, f"GET /user-blocks/{uid} does not list the block of its address: {listed}"
    assert after_change == [] and login.status_code == 200, f"a password change left the block: {after_change}, {outcome(login)}"


# ---------------------------------------------------------------------------------------------
# brute-force settings: modes, allowlist, switches


def test_brute_force_modes_allowlist_and_switches(spawner):
    server = spawner.server()
    allowed, a, b, c = fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip()
    got = settings(server, BF_PATH, max_attempts=3, allowlist=[allowed, "198.51.100.0/24"])
    assert got == {**BF_DEFAULTS, "max_attempts": 3, "allowlist": [allowed, "198.51.100.0/24"]}
    assert settings(server, BF_PATH) == got
    uid, email = new_user(server, "modes")

    # Allowlisted: never counted.
    for _ in range(8):
        assert login_from(server, allowed, email, "nope").json() == WRONG
    assert_ok(login_from(server, allowed, email, PW))

    # Per identifier and IP (default): 3 failures block that pair only.
    fail_until_blocked(server, a, email, max_attempts=3)
    assert_ok(login_from(server, b, email, PW))
    # Raising the threshold lifts the block (the count is below it now).
    settings(server, BF_PATH, max_attempts=5)
    assert_ok(login_from(server, a, email, PW))

    # Per identifier: failures from anywhere add up, and the block holds for every address.
    settings(server, BF_PATH, mode="count_per_identifier", max_attempts=3)
    for ip in (a, b, c):
        assert login_from(server, ip, email, "nope").json() == WRONG
    for ip in (a, b, fresh_ip()):
        assert_too_many(login_from(server, ip, email, PW))
    listed = blocks_for(server, email)
    assert [x["identifier"] for x in listed] == [email], listed
    assert server.api().delete("/user-blocks", params={"identifier": email}).status_code == 204
    assert_ok(login_from(server, c, email, PW))

    # Switched off (enabled:false, or no `block` shield): nothing is counted.
    settings(server, BF_PATH, mode="count_per_identifier_and_ip", enabled=False)
    for _ in range(6):
        assert login_from(server, a, email, "nope").json() == WRONG
    assert_ok(login_from(server, a, email, PW))
    settings(server, BF_PATH, enabled=True, shields=["user_notification"])
    for _ in range(6):
        assert login_from(server, a, email, "nope").json() == WRONG
    assert_ok(login_from(server, a, email, PW))
    assert blocks_for(server, email) == []


# ---------------------------------------------------------------------------------------------
# suspicious-IP throttling


def test_suspicious_ip_throttling(spawner, backend):
    server = spawner.server()
    api = server.api()
    assert settings(server, SIT_PATH) == SIT_DEFAULTS
    spray, other, farm, allowed = fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip()
    got = settings(server, SIT_PATH, stage={"pre-login": {"max_attempts": 5}, "pre-user-registration": {"max_attempts": 3}}, allowlist=[allowed])
    assert got["stage"] == {"pre-login": {"max_attempts": 5, "rate": 864000}, "pre-user-registration": {"max_attempts": 3, "rate": 24000}}, got
    assert got["allowlist"] == [allowed] and got["enabled"] is True
    uid, email = new_user(server, "real")

    # Failures spread over many accounts (known and unknown) from one address.
    s = client_from(spray)
    for i in range(5):
        target = email if i == 0 else unique_email(f"spray{i}")
        r = login_from(server, s, target, "Spring2026!")
        assert r.status_code == 403 and r.json() == WRONG, (i, r.text)
    r = login_from(server, s, email, PW)
    assert_too_many(r, SUSPICIOUS)
    assert_too_many(login_from(server, s, unique_email("fresh"), "whatever"), SUSPICIOUS)
    assert blocks_for(server, email) == []  # not a brute-force block of the account
    # Another address is fine.
    assert_ok(login_from(server, other, email, PW))
    assert api.get(f"/anomaly/blocks/ips/{spray}").status_code == 200
    assert_mgmt_error(api.get(f"/anomaly/blocks/ips/{other}"), 404, "inexistent_ip_block")
    assert_mgmt_error(api.get("/anomaly/blocks/ips/not-an-ip"), 400, ...)
    assert api.delete(f"/anomaly/blocks/ips/{spray}").status_code == 204
    assert api.get(f"/anomaly/blocks/ips/{spray}").status_code == 404
    assert_ok(login_from(server, s, email, PW))

    # Signups per address.
    for i in range(3):
        r = signup_from(server, farm, unique_email(f"farm{i}"), PW)
        assert r.status_code == 200, (i, r.status_code, r.text)
    r = signup_from(server, farm, unique_email("farm9"), PW)
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["name"] == "TooManyRequestsError" and body["code"] == "too_many_attempts", body
    print(f"\n[suspicious IP {backend}] signup refusal: {body}")
    assert api.get(f"/anomaly/blocks/ips/{farm}").status_code == 200
    assert signup_from(server, other, unique_email("elsewhere"), PW).status_code == 200

    # The allowlisted address is never throttled, for logins or signups.
    for i in range(8):
        assert login_from(server, allowed, unique_email(f"al{i}"), "Spring2026!").json() == WRONG
    assert_ok(login_from(server, allowed, email, PW))
    for i in range(5):
        assert signup_from(server, allowed, unique_email(f"alsu{i}"), PW).status_code == 200
    assert api.get(f"/anomaly/blocks/ips/{allowed}").status_code == 404

    types = log_types(server, "type = 'limit_mu'")
    print(f"[suspicious IP {backend}] limit_mu events: {len(types)}")
    # Logged when the address becomes throttled (once) and for each refused signup.
    assert len(types) >= 2, types

    # Switched off: the farm signs up again.
    settings(server, SIT_PATH, enabled=False)
    assert signup_from(server, farm, unique_email("farm10"), PW).status_code == 200


def test_lifting_an_ip_throttle_leaves_the_brute_force_blocks_of_that_ip(srv):
    """`DELETE /anomaly/blocks/ips/{ip}` lifts the suspicious-IP throttling of the address; the
    brute-force blocks of accounts from that address are user blocks (`DELETE /user-blocks…`, log
    `ublkdu`) and stay."""
    uid, email = new_user(srv, "anomaly")
    ip = fresh_ip()
    fail_until_blocked(srv, ip, email)
    api = srv.api()
    assert_mgmt_error(api.get(f"/anomaly/blocks/ips/{ip}"), 404, "inexistent_ip_block")  # not throttled
    assert api.delete(f"/anomaly/blocks/ips/{ip}").status_code == 204
    after = blocks_for(srv, email)
    r = login_from(srv, ip, email, PW)
    print(f"\n[anomaly DELETE] brute-force blocks of the user after DELETE /anomaly/blocks/ips/{ip}: {after}; login with the right password: {outcome(r)}")
    assert after == [{"identifier": email, "ip": ip, "connection": CONNECTION}], after
    assert_too_many(r)


# ---------------------------------------------------------------------------------------------
# client addresses behind trusted proxies


def test_forwarded_addresses_only_from_trusted_proxies(spawner):
    server = spawner.server(settings={"trusted_proxies": "10.9.9.9, 127.0.0.1"})
    settings(server, BF_PATH, max_attempts=1)
    uid, email = new_user(server, "fwd")
    proxy = client_from("127.0.0.1")
    stranger = client_from("127.0.0.2")

    def guess(who, headers, password="wrong guess"):
        return login_from(server, who, email, password, headers=headers)

    assert guess(proxy, {"X-Forwarded-For": "203.0.113.5"}).json() == WRONG
    assert guess(stranger, {"X-Forwarded-For": "203.0.113.5"}).json() == WRONG  # counted under 127.0.0.2
    assert sorted(b["ip"] for b in blocks_for(server, email)) == ["127.0.0.2", "203.0.113.5"]
    # The blocked client behind the proxy, and the stranger whatever it claims, stay blocked; another
    # client behind the proxy is free.
    assert_too_many(guess(proxy, {"X-Forwarded-For": "203.0.113.5"}, PW))
    assert_too_many(guess(stranger, {"X-Forwarded-For": "198.51.100.77"}, PW))
    assert_ok(guess(proxy, {"X-Forwarded-For": "198.51.100.77"}, PW))
    # The rightmost address that is not a trusted proxy; Forwarded: for= when there is no XFF.
    assert guess(proxy, {"X-Forwarded-For": "192.0.2.1, 198.51.100.2, 10.9.9.9"}).json() == WRONG
    assert guess(proxy, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'}).json() == WRONG
    # Junk from a trusted proxy: its own address counts.
    assert guess(proxy, {"X-Forwarded-For": "not-an-ip"}).json() == WRONG
    ips = sorted(b["ip"] for b in blocks_for(server, email))
    print(f"\n[trusted proxies] counted addresses: {ips}")
    assert ips == sorted(["127.0.0.1", "127.0.0.2", "198.51.100.2", "2001:db8::7", "203.0.113.5"]), ips


def test_forwarded_headers_ignored_without_trusted_proxies(srv):
    uid, email = new_user(srv, "nofwd")
    ip = fresh_ip()
    s = client_from(ip)
    for i in range(10):
        assert login_from(srv, s, email, "nope", headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}).json() == WRONG
    assert_too_many(login_from(srv, s, email, PW, headers={"X-Forwarded-For": "203.0.113.99", "Forwarded": "for=192.0.2.3"}))
    assert blocks_for(srv, email) == [{"identifier": email, "ip": ip, "connection": CONNECTION}]


# ---------------------------------------------------------------------------------------------
# settings: validation and scopes


BF_BAD = [
    [],
    {"max_attempts": 0},
    {"max_attempts": 101},
    {"max_attempts": "10"},
    {"max_attempts": 2.5},
    {"max_attempts": None},
    {"mode": "sometimes"},
    {"shields": ["block", "admin_notification"]},
    {"shields": "block"},
    {"allowlist": ["10.0.0.0/8", "bogus"]},
    {"allowlist": ["10.0.0.0/33"]},
    {"allowlist": "10.0.0.1"},
    {"enabled": "yes"},
    {"surprise": True},
]
SIT_BAD = [
    "nope",
    {"stage": {"pre-login": {"max_attempts": 0}}},
    {"stage": {"pre-login": {"rate": 0}}},
    {"stage": {"pre-login": {"max_attempts": "5"}}},
    {"stage": {"pre-login": {"burst": 5}}},
    {"stage": {"pre-login": 5}},
    {"stage": {"later": {}}},
    {"stage": []},
    {"shields": ["nope"]},
    {"shields": ["user_notification"]},
    {"allowlist": [1]},
    {"enabled": 1},
    {"surprise": True},
]


def test_settings_are_validated(spawner):
    server = spawner.server()
    api = server.api()
    for path, bad_bodies in ((BF_PATH, BF_BAD), (SIT_PATH, SIT_BAD)):
        before = settings(server, path)
        for bad in bad_bodies:
            r = api.patch(path, json=bad)
            assert_mgmt_error(r, 400, "invalid_body")
        r = api.patch(path, data="{not json", headers={"Content-Type": "application/json"})
        assert_mgmt_error(r, 400, "invalid_body")
        assert settings(server, path) == before, path
    # Valid changes round-trip; given properties replace, stages merge.
    full = {"enabled": False, "shields": ["user_notification"], "mode": "count_per_identifier", "allowlist": ["2001:db8::/32", "192.0.2.9"], "max_attempts": 100}
    assert settings(server, BF_PATH, **full) == full
    assert settings(server, BF_PATH, max_attempts=1) == {**full, "max_attempts": 1}
    got = settings(server, SIT_PATH, shields=["block", "admin_notification"], stage={"pre-user-registration": {"rate": 1200}})
    assert got == {**SIT_DEFAULTS, "shields": ["block", "admin_notification"], "stage": {**SIT_DEFAULTS["stage"], "pre-user-registration": {"max_attempts": 50, "rate": 1200}}}, got
    assert settings(server, SIT_PATH) == got


def scoped_api(server, scope: str):
    r = server.token_response(scope=scope)
    assert r.status_code == 200, r.text
    assert set(r.json().get("scope", "").split()) <= set(scope.split()), r.json().get("scope")
    return server.api(token=r.json()["access_token"])


def test_settings_and_blocks_enforce_scopes(spawner):
    server = spawner.server()
    uid, email = new_user(server, "scopes")
    ip = fresh_ip()
    fail_until_blocked(server, ip, email)
    user_path = "/user-blocks/" + requests.utils.quote(uid, safe="")
    calls = [
        ("GET", BF_PATH, None, "read:attack_protection"),
        ("PATCH", BF_PATH, {"max_attempts": 10}, "update:attack_protection"),
        ("GET", SIT_PATH, None, "read:attack_protection"),
        ("PATCH", SIT_PATH, {"enabled": True}, "update:attack_protection"),
        ("GET", f"/anomaly/blocks/ips/{ip}", None, "read:anomaly_blocks"),
        ("DELETE", f"/anomaly/blocks/ips/{ip}", None, "delete:anomaly_blocks"),
        ("GET", f"/user-blocks?identifier={email}", None, "read:users"),
        ("GET", user_path, None, "read:users"),
        ("DELETE", f"/user-blocks?identifier={email}", None, "update:users"),
        ("DELETE", user_path, None, "update:users"),
    ]
    anonymous = server.api(token=None)
    for method, path, body, needed in calls:
        assert_mgmt_error(anonymous.request(method, path, json=body), 401, ...)
        # A token with every other scope of these calls, but not this one.
        others = " ".join(sorted({c[3] for c in calls} - {needed}))
        r = scoped_api(server, others).request(method, path, json=body)
        assert_mgmt_error(r, 403, "insufficient_scope")
        r = scoped_api(server, needed).request(method, path, json=body)
        assert r.status_code in (200, 204, 404), (method, path, needed, r.status_code, r.text)
    # The deletes went through with their scope: no blocks are left.
    assert blocks_for(server, email) == []
    assert_ok(login_from(server, ip, email, PW))
