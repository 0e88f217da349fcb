"""The hosted pages in a real browser: Playwright for Python driving Debian's Chromium (/usr/bin/chromium,
headless; no browser is ever downloaded).

A tiny HTTP server in the test (harness.CallbackServer, another 127.0.0.1 port, hence another origin)
stands in for the application: it is the registered callback and logout URL, records the query it
receives, and serves a page that tries to frame the login page.

Without /usr/bin/chromium (or the playwright package) these tests are skipped, unless `CI` is set: then
they fail. Screenshots go to <repo>/target/screenshots/.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

import browserkit
from harness import CallbackServer, configure_app_urls, pkce_pair, unique_email, wait_until

PASSWORD = "correct horse battery staple"
SIGNUP_DONE = "Thanks for signing up. Check your inbox to verify your address, then log in."
WRONG = "Wrong email or password."
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def app(server, backend):
    """The application side: a callback server registered as the default app's callback and logout URL."""
    cb = CallbackServer()
    callback, bye = cb.url("/callback"), cb.url("/bye")
    configure_app_urls(server, [callback], [bye])
    c = server.tenants["default"]
    yield SimpleNamespace(
        server=server,
        backend=backend,
        cb=cb,
        callback=callback,
        bye=bye,
        client_id=c["default_app"]["client_id"],
        client_secret=c["default_app"]["client_secret"],
        issuer=c["issuer"],
        session_cookie="rs_default",
    )
    cb.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page, app, name: str) -> Path:
    browserkit.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = browserkit.SCREENSHOTS / f"{name}-{app.backend}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def authorize_request(app, **extra) -> SimpleNamespace:
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.callback,
        "scope": "openid profile email",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return SimpleNamespace(url=f"{app.issuer}authorize?{urlencode(params)}", state=state, nonce=nonce, verifier=verifier)


def at(prefix: str):
    return lambda url: url.startswith(prefix)


def wait_for_callback(page, app, path: str = "/callback") -> dict[str, str]:
    """Wait until the browser is at the app's `path`; the query the app received there (last hit)."""
    page.wait_for_url(at(app.cb.url(path)))
    shown = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query, keep_blank_values=True).items()}
    hits = wait_until(lambda: app.cb.hits_at(path), timeout=10, what=f"a request to {path}")
    received = {k: v[0] for k, v in hits[-1].items()}
    assert received == shown, (received, shown)
    return received


def exchange(app, auth, code: str) -> dict:
    r = requests.post(
        f"{app.issuer}oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "code": code,
            "code_verifier": auth.verifier,
            "redirect_uri": app.callback,
        },
        timeout=30,
    )
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def verified_id_token(app, token: str, nonce: str) -> dict:
    jwks = requests.get(f"{app.issuer}.well-known/jwks.json", timeout=30).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(token, key=key, algorithms=["RS256"], audience=app.client_id, issuer=app.issuer)
    assert claims["nonce"] == nonce, claims
    return claims


def open_login(page, app, auth) -> None:
    resp = page.goto(auth.url)
    assert resp is not None and resp.status == 200, resp and resp.status
    assert page.url.startswith(app.issuer + "u/login?"), page.url


def submit(page, button: str):
    """Click a hosted form's submit button; the answer to the POST. A refusal by the CSRF check fails at
    once, with the headers the browser sent (instead of a time-out further on)."""
    form_url = page.url
    with page.expect_response(lambda r: r.request.method == "POST" and "/u/" in r.url) as info:
        page.get_by_role("button", name=button).click()
    resp = info.value
    if resp.status == 403 and "did not come from this site" in resp.text():
        req = resp.request
        policy = requests.get(form_url, timeout=10).headers.get("referrer-policy")
        pytest.fail(
            f"the hosted form's own POST to {req.url} was refused as cross-site (403). The browser sent "
            f"Origin: {req.header_value('origin')!r}, Sec-Fetch-Site: {req.header_value('sec-fetch-site')!r}; "
            f"the form's page has Referrer-Policy: {policy!r}"
        )
    return resp


def log_in(page, email: str, password: str):
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    return submit(page, "Log in")


def test_signup_link_then_login_reaches_the_callback(page, app):
    auth = authorize_request(app)
    open_login(page, app, auth)
    # The login page a person sees: labelled inputs, the button, the links.
    assert page.locator("#username").get_attribute("type") == "email"
    assert page.locator("#password").get_attribute("type") == "password"
    assert page.get_by_label("Email address").count() == 1 and page.get_by_label("Password").count() == 1
    assert page.get_by_role("button", name="Log in").is_visible()
    assert page.get_by_role("link", name="Forgot your password?").is_visible()
    screenshot(page, app, "login")

    page.get_by_role("link", name="Sign up").click()
    page.wait_for_url(at(app.issuer + "u/signup?"))
    assert page.get_by_role("heading", name="Sign up").is_visible()
    screenshot(page, app, "signup")
    email = unique_email("browser")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    submit(page, "Sign up")
    page.get_by_text(SIGNUP_DONE).wait_for()
    # Back on a login form, the address already filled in.
    assert page.locator("#username").input_value() == email
    assert not app.cb.hits_at("/callback")

    page.locator("#password").fill(PASSWORD)
    submit(page, "Log in")
    q = wait_for_callback(page, app)
    assert q["state"] == auth.state and q["code"], q
    assert set(q) == {"code", "state"}, q
    assert page.locator("#cb").is_visible()

    tokens = exchange(app, auth, q["code"])
    claims = verified_id_token(app, tokens["id_token"], auth.nonce)
    assert claims["email"] == email and claims["email_verified"] is False
    assert claims["sub"].startswith("auth0|")


def test_signup_with_a_registered_address_reveals_nothing_and_changes_nothing(page, app):
    email = unique_email("again")
    app.server.api().create_user(email, password=PASSWORD)
    auth = authorize_request(app)
    page.goto(auth.url)
    page.get_by_role("link", name="Sign up").click()
    page.wait_for_url(at(app.issuer + "u/signup?"))
    page.locator("#email").fill(email)
    page.locator("#password").fill("another password 123")
    submit(page, "Sign up")
    page.get_by_text(SIGNUP_DONE).wait_for()  # the very message a new address gets
    # The second signup did not take over the account: its password does not log in, the owner's does.
    page.locator("#password").fill("another password 123")
    submit(page, "Log in")
    page.get_by_text(WRONG).wait_for()
    page.locator("#password").fill(PASSWORD)
    submit(page, "Log in")
    q = wait_for_callback(page, app)
    assert q["state"] == auth.state and q["code"]


def test_wrong_password_shows_the_error(page, app):
    email = unique_email("wrong")
    app.server.api().create_user(email, password=PASSWORD)
    auth = authorize_request(app)
    open_login(page, app, auth)
    hits_before = len(app.cb.hits_at("/callback"))
    resp = log_in(page, email, "not the password")
    assert resp.status >= 400, resp.status
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text().strip() == WRONG
    assert page.locator("#username").input_value() == email  # kept
    assert page.locator("#password").input_value() == ""  # never echoed back
    screenshot(page, app, "wrong-password")
    assert len(app.cb.hits_at("/callback")) == hits_before
    assert not [c for c in page.context.cookies() if c["name"] == app.session_cookie]
    # An unknown address gets the very same message.
    log_in(page, unique_email("nobody"), PASSWORD)
    page.get_by_text(WRONG).wait_for()


def test_logout_lands_on_return_to_and_ends_the_session(page, app):
    email = unique_email("logout")
    app.server.api().create_user(email, password=PASSWORD)
    auth = authorize_request(app)
    open_login(page, app, auth)
    log_in(page, email, PASSWORD)
    assert wait_for_callback(page, app)["state"] == auth.state

    # The SSO session answers prompt=none with a code, without showing a page.
    silent = authorize_request(app, prompt="none")
    page.goto(silent.url)
    q = wait_for_callback(page, app)
    assert q["state"] == silent.state and q["code"], q

    page.goto(f"{app.issuer}v2/logout?{urlencode({'client_id': app.client_id, 'returnTo': app.bye})}")
    page.wait_for_url(app.bye)
    assert app.cb.hits_at("/bye"), "the app's logout URL was not reached"
    assert not [c for c in page.context.cookies() if c["name"] == app.session_cookie], page.context.cookies()

    again = authorize_request(app, prompt="none")
    page.goto(again.url)
    q = wait_for_callback(page, app)
    assert q.get("error") == "login_required" and q["state"] == again.state and "code" not in q, q


def test_logout_with_a_foreign_return_to_is_refused(page, app):
    resp = page.goto(f"{app.issuer}v2/logout?{urlencode({'client_id': app.client_id, 'returnTo': 'http://evil.example/'})}")
    assert resp.status == 400
    assert page.url.startswith(app.issuer + "v2/logout"), page.url
    assert "not in the list of allowed logout URLs" in page.get_by_role("alert").inner_text()


def test_login_page_cannot_be_framed(page, app):
    """CSP frame-ancestors 'none' (and X-Frame-Options: DENY): the login page inside an <iframe> on the
    app's origin stays empty. A frame of the app's own page on the same framing page does render, so the
    check is not vacuous."""
    auth = authorize_request(app)
    app.cb.pages["/framed"] = "<!doctype html><title>ok</title><p id=\"inner\">framed fine</p>"
    app.cb.pages["/frame"] = (
        "<!doctype html><title>Framing</title>"
        f"<iframe id=\"login\" name=\"login\" src=\"{auth.url}\" width=\"600\" height=\"500\"></iframe>"
        f"<iframe id=\"control\" name=\"control\" src=\"{app.cb.url('/framed')}\"></iframe>"
    )
    refusals: list[str] = []
    page.on("console", lambda m: refusals.append(m.text) if "frame-ancestors" in m.text or "X-Frame-Options" in m.text else None)
    login_responses = []
    page.on("response", lambda r: login_responses.append(r) if "/u/login" in r.url else None)

    page.goto(app.cb.url("/frame"))
    control = page.frame(name="control")
    assert control is not None and control.locator("#inner").inner_text() == "framed fine"
    # The browser did fetch the login page (through /authorize) and refused to show it.
    wait_until(lambda: login_responses, timeout=10, what="the framed login page to be fetched")
    csp = login_responses[-1].headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, csp
    wait_until(lambda: refusals, timeout=10, what="Chromium to report the refused frame")
    framed = page.frame(name="login")
    assert framed is not None
    wait_until(lambda: not framed.url.startswith(app.issuer), timeout=10, what="the blocked frame to leave the login URL")
    assert framed.locator("#username").count() == 0 and framed.locator("form").count() == 0
    assert "Log in" not in framed.evaluate("() => document.documentElement ? document.documentElement.innerText : ''")


def test_cookie_flags_seen_by_the_browser(page, app):
    email = unique_email("cookies")
    app.server.api().create_user(email, password=PASSWORD)
    auth = authorize_request(app)
    resp = page.goto(auth.url)
    headers = resp.all_headers()
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")
    assert headers.get("x-frame-options") == "DENY" and headers.get("cache-control") == "no-store"
    log_in(page, email, PASSWORD)
    wait_for_callback(page, app)

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies.get(app.session_cookie)
    assert session is not None, cookies
    assert session["httpOnly"] is True and session["sameSite"] == "Lax" and session["path"] == "/"
    assert session["domain"] == "127.0.0.1" and session["secure"] is False  # http public URL: no Secure, no __Host-
    assert session["expires"] > 0  # persistent (Max-Age), not a browser-session cookie
    csrf = cookies.get("rs_csrf")
    assert csrf is not None and csrf["httpOnly"] is True and csrf["sameSite"] == "Lax", cookies
    assert not any(n.startswith("__Host-") for n in cookies), cookies
    # HttpOnly in practice: the app's page (same host, another port: cookies are shared across ports)
    # cannot read them from script.
    visible = page.evaluate("() => document.cookie")
    assert app.session_cookie not in visible and "rs_csrf" not in visible, visible
