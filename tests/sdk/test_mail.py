"""The email subsystem, black-box: `roster serve` delivers to a real SMTP server (aiosmtpd, mailsink.py).

Covers delivery through the server transport (`smtp_url`) and through a tenant's provider
(`/emails/provider`), custom templates (`/email-templates`, through the SDK), the outbox listing and
retry (`/emails/outbox`), template and header injection (security T27, T28), an SMTP outage (T38,
scaled to CI), dead rows, two nodes on one PostgreSQL database (exactly-once delivery, `kill -9` of one
node) and lease hand-back at SIGTERM (T41's mail part).

Latency figures (test_smtp_outage_*) and duplicate counts (test_kill_9_*) are printed, not asserted:
run with `-s` (or `-rA`) to see them. A few checks read the test database (white-box): outbox rows
beyond the API's 100-row page, leases, and the sealed provider credentials.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError

from harness import CONNECTION, Roster, assert_mgmt_error, free_port, unique_email, wait_until
from mailsink import MailSink

MAIL_FROM = "Roster Tests <no-reply@roster.test>"
PASSWORD = "correct-horse-9"
# Quick retries and polling so that outages and retries play out in seconds.
FAST_MAIL = {"mail_retry_base_ms": 100, "mail_retry_max_secs": 1, "mail_poll_interval_ms": 50}
MSG_ID_RE = re.compile(r"^<(msg_[A-Za-z0-9]{20})@127\.0\.0\.1>$")


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def sink():
    s = MailSink().start()
    yield s
    s.stop()


def mail_server(spawner, smtp_url: str | None, **settings) -> Roster:
    base = {**FAST_MAIL, "mail_from": MAIL_FROM}
    if smtp_url:
        base["smtp_url"] = smtp_url
    server = spawner.server(settings={**base, **settings})
    # These tests sign up hundreds of users from 127.0.0.1 to make mail; suspicious-IP throttling
    # (50 signups per address per 20 minutes by default) is tested in test_blocking.py.
    r = server.api().patch("/attack-protection/suspicious-ip-throttling",
                           json={"stage": {"pre-user-registration": {"max_attempts": 100000}}})
    assert r.status_code == 200, (r.status_code, r.text)
    return server


_tls = threading.local()


def signup(server: Roster, email: str, tenant: str = "default", **fields) -> requests.Response:
    """`POST /dbconnections/signup` with the tenant's default application (one keep-alive session per thread)."""
    s = getattr(_tls, "session", None)
    if s is None:
        s = _tls.session = requests.Session()
    body = {"client_id": server.tenants[tenant]["default_app"]["client_id"], "email": email, "password": PASSWORD, "connection": CONNECTION, **fields}
    return s.post(f"{server.tenant_url(tenant)}/dbconnections/signup", json=body, timeout=30)


def signed_up(server: Roster, email: str, **fields) -> str:
    r = signup(server, email, **fields)
    assert r.status_code == 200, (r.status_code, r.text)
    return "auth0|" + r.json()["_id"]


def outbox(server: Roster, **params) -> list[dict]:
    r = server.api().get("/emails/outbox", params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def rows_of(server: Roster, user_id: str) -> list[dict]:
    return outbox(server, user_id=user_id)


def wait_row(server: Roster, user_id: str, status: str, timeout: float = 20, template: str = "verify_email") -> dict:
    def find():
        rows = [r for r in rows_of(server, user_id) if r["template"] == template]
        assert len(rows) == 1, rows
        return rows[0] if rows[0]["status"] == status else None

    return wait_until(find, timeout, what=f"{template} row of {user_id} {status}")


def message_id(row: dict) -> str:
    return f"<{row['id']}@127.0.0.1>"


def mails_to(sink: MailSink, address: str, n: int = 1, timeout: float = 20):
    return sink.wait_for(n, timeout, predicate=lambda m: address.lower() in (r.lower() for r in m.rcpt_tos))


def count(db, sql: str) -> int:
    return int(db.rows(sql)[0][0])


def sdk_for(server: Roster) -> Auth0:
    return Auth0(base_url=f"{server.tenant_url('default')}/api/v2", token=server.token("default"))


def master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def second_node(spawner, first: Roster, **settings) -> Roster:
    """Another `roster serve` on the first one's PostgreSQL database (own data dir, log files and port)."""
    db = copy.copy(first.db)
    db.data_dir = first.db.data_dir.parent / (first.db.data_dir.name + "-node2")
    db.data_dir.mkdir(parents=True, exist_ok=True)
    db.pg_name = None  # the first node's Database drops it
    node = spawner.server(settings={**first.settings, **settings}, db=db, start=False)
    node.port = free_port()
    node.starts = 1  # not a first start: no credentials are printed for an existing database
    node.start(expect_credentials=False)
    node.tenants = first.tenants
    return node


def delivered_ids_in_log(server: Roster) -> list[str]:
    """Outbox ids that this node's relay logged as delivered (log_format=json, log_level=info)."""
    out = []
    for line in server.stderr().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("message") == "mail delivered":
            out.append(ev["mail"])
    return out


def latency_summary(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    return f"n={len(xs)} median={statistics.median(xs) * 1000:.1f} ms p99={p99 * 1000:.1f} ms max={xs[-1] * 1000:.1f} ms"


def timed_signups(server: Roster, emails: list[str], workers: int = 8) -> list[float]:
    def one(email):
        t0 = time.perf_counter()
        r = signup(server, email)
        dt = time.perf_counter() - t0
        assert r.status_code == 200, (r.status_code, r.text)
        return dt

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(one, emails))


# ---------------------------------------------------------------------------------------------
# 1. the server transport


def test_signup_mail_is_delivered_through_smtp_url(spawner, sink):
    server = mail_server(spawner, sink.url)
    email = unique_email("deliver")
    uid = signed_up(server, email, name="Ada Lovelace")
    [m] = mails_to(sink, email)
    row = wait_row(server, uid, "delivered")

    # Envelope and headers.
    assert m.rcpt_tos == [email]
    assert m.mail_from == "no-reply@roster.test"
    assert [a.addr_spec for a in m.msg["To"].addresses] == [email]
    [sender] = m.msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Roster Tests", "no-reply@roster.test")
    assert m.msg["Subject"] == "Verify your email address"
    assert m.msg.get_content_type() == "multipart/alternative"
    assert m.text is not None and m.html is not None
    assert "Hello Ada Lovelace," in m.text and email in m.text
    assert m.html.lstrip().startswith("<!DOCTYPE html>") and "Ada Lovelace" in m.html and email in m.html
    assert "{{" not in m.text + m.html and "{%" not in m.text + m.html
    # The stable Message-ID is the outbox row id.
    mid = MSG_ID_RE.match(m.message_id)
    assert mid, m.message_id
    assert mid.group(1) == row["id"]
    assert (row["template"], row["recipient"], row["user_id"]) == ("verify_email", email, uid)
    assert row["attempts"] == 1 and row["last_error"] is None
    assert row["delivered_at"] and row["next_attempt_at"] is None
    assert len(sink.messages()) == 1

    # French, from user_metadata.lang and, failing that, user_metadata.locale.
    for meta in ({"lang": "fr"}, {"locale": "fr-FR"}):
        fr = unique_email("fr")
        uid_fr = signed_up(server, fr, name="Émile", user_metadata=meta)
        [m] = mails_to(sink, fr)
        assert m.msg["Subject"] == "Vérifiez votre adresse e-mail", meta
        assert "Bonjour Émile," in m.text and '<html lang="fr">' in m.html
        assert m.message_id == message_id(wait_row(server, uid_fr, "delivered"))
    assert len(sink.messages()) == 3


def test_duplicate_signup_mails_the_owner_and_answers_alike(spawner, sink):
    server = mail_server(spawner, sink.url)
    email = unique_email("owner")
    first = signup(server, email)
    assert first.status_code == 200, first.text
    uid = "auth0|" + first.json()["_id"]
    mails_to(sink, email, 1)
    again = signup(server, email)
    assert again.status_code == 200, again.text
    assert set(again.json()) == set(first.json()) and again.json()["_id"] != first.json()["_id"]
    mails = mails_to(sink, email, 2)
    assert [m.msg["Subject"] for m in mails] == ["Verify your email address", "You already have an account"]
    dup = wait_row(server, uid, "delivered", template="duplicate_signup")
    assert mails[1].message_id == message_id(dup) and mails[1].rcpt_tos == [email]
    assert sorted(r["template"] for r in rows_of(server, uid)) == ["duplicate_signup", "verify_email"]


# ---------------------------------------------------------------------------------------------
# 2. a tenant's provider


def test_tenant_provider_crud_sealed_credentials_and_delivery(spawner):
    smtp_pass = "pw-" + secrets.token_hex(10)
    sink = MailSink(auth=("mailer", smtp_pass)).start()
    try:
        server = mail_server(spawner, None)  # no smtp_url: the server's own transport writes files
        api = server.api()
        sdk = sdk_for(server)

        assert_mgmt_error(api.get("/emails/provider"), 404, "inexistent_email_provider")
        with pytest.raises(ApiError) as ei:
            sdk.emails.provider.get()
        assert ei.value.status_code == 404
        creds = {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_user": "mailer", "smtp_pass": smtp_pass}
        assert_mgmt_error(api.post("/emails/provider", json={"name": "sendgrid", "credentials": {"api_key": "k"}}), 400, "invalid_body")
        assert_mgmt_error(api.post("/emails/provider", json={"name": "smtp", "credentials": {"smtp_port": 25}}), 400, "invalid_body")

        r = api.post("/emails/provider", json={"name": "smtp", "credentials": creds, "default_from_address": "Acme Mail <mail@acme.example>"})
        assert r.status_code == 201, r.text
        assert r.json() == {"name": "smtp", "enabled": True, "default_from_address": "Acme Mail <mail@acme.example>", "settings": {},
                            "credentials": {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_user": "mailer"}}
        got = sdk.emails.provider.get(fields="name,enabled,credentials,default_from_address,settings", include_fields=True)
        assert got.name == "smtp" and got.enabled is True and got.default_from_address == "Acme Mail <mail@acme.example>"
        dumped = json.dumps(got.model_dump(mode="json"))
        assert "127.0.0.1" in dumped and "smtp_pass" not in dumped and smtp_pass not in dumped

        again = api.post("/emails/provider", json={"name": "smtp", "credentials": creds})
        assert_mgmt_error(again, 409, "email_provider_conflict")
        assert smtp_pass not in again.text

        r = api.get("/emails/provider")
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"name", "enabled", "default_from_address", "credentials", "settings"}
        assert body["credentials"] == {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_user": "mailer"}
        assert "smtp_pass" not in r.text and smtp_pass not in r.text

        # Sealed at rest: neither the password nor the host is readable in the credentials column.
        [(stored,)] = server.db.rows("SELECT credentials FROM email_providers")
        for clear in (smtp_pass, "127.0.0.1", "mailer", "smtp_pass", str(sink.port)):
            assert clear not in stored, clear
        [row] = server.db.rows("SELECT * FROM email_providers")
        assert not any(smtp_pass in str(v) for v in row)

        # Mail goes to the provider, with its credentials and its default sender.
        email = unique_email("prov")
        uid = signed_up(server, email)
        [m] = mails_to(sink, email)
        assert m.auth == ("mailer", smtp_pass)
        [sender] = m.msg["From"].addresses
        assert (sender.display_name, sender.addr_spec) == ("Acme Mail", "mail@acme.example")
        assert m.message_id == message_id(wait_row(server, uid, "delivered"))

        # PATCH merges credentials key by key: the password is kept when not sent again.
        r = api.patch("/emails/provider", json={"credentials": {"smtp_port": sink.port}, "default_from_address": "Acme Two <two@acme.example>"})
        assert r.status_code == 200, r.text
        assert r.json()["credentials"] == {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_user": "mailer"}
        assert smtp_pass not in r.text and "smtp_pass" not in r.text
        assert_mgmt_error(api.patch("/emails/provider", json={"name": "mailgun"}), 400, "invalid_body")
        updated = sdk.emails.provider.update(settings={"tls": "none"})
        assert updated.default_from_address == "Acme Two <two@acme.example>"
        email2 = unique_email("prov2")
        uid2 = signed_up(server, email2)
        [m2] = mails_to(sink, email2)
        assert m2.auth == ("mailer", smtp_pass), "the stored password was lost by PATCH"
        assert m2.msg["From"].addresses[0].addr_spec == "two@acme.example"
        wait_row(server, uid2, "delivered")

        # Disabled: mail goes back to the server's transport (files in {data_dir}/mail).
        r = api.patch("/emails/provider", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        email3 = unique_email("files")
        uid3 = signed_up(server, email3)
        row3 = wait_row(server, uid3, "delivered")
        files = list((server.db.data_dir / "mail").glob(f"*-{row3['id']}.eml"))
        assert len(files) == 1, list((server.db.data_dir / "mail").glob("*"))
        assert f"Message-ID: {message_id(row3)}" in files[0].read_text()
        assert sink.to(email3) == []
        assert len(sink.messages()) == 2

        r = api.delete("/emails/provider")
        assert r.status_code == 204 and r.content == b""
        assert_mgmt_error(api.get("/emails/provider"), 404, "inexistent_email_provider")
        assert_mgmt_error(api.delete("/emails/provider"), 404, "inexistent_email_provider")
        assert count(server.db, "SELECT count(*) FROM email_providers") == 0
        assert smtp_pass not in server.stderr()
    finally:
        sink.stop()


# ---------------------------------------------------------------------------------------------
# 3. custom templates


BODY = (
    '<p>{% if user.user_metadata.lang == "fr" %}Bonjour{% else %}Hello{% endif %} {{ user.name }}</p>\n'
    "<p>Tenant {{ tenant }}, application {{ application.name }}.</p>\n"
)
SUBJECT = '{% if user.user_metadata.lang == "fr" %}Confirmez votre compte{% else %}Confirm your account{% endif %}'


def test_custom_template_through_the_sdk(spawner, sink):
    server = mail_server(spawner, sink.url)
    sdk = sdk_for(server)
    with pytest.raises(ApiError) as ei:
        sdk.email_templates.get("verify_email")
    assert ei.value.status_code == 404

    created = sdk.email_templates.create(
        template="verify_email", body=BODY, from_="{{ friendly_name }} <support@example.com>", subject="Draft", syntax="liquid", enabled=True
    )
    assert (created.template, created.body, created.subject, created.syntax, created.enabled) == ("verify_email", BODY, "Draft", "liquid", True)
    assert created.from_ == "{{ friendly_name }} <support@example.com>"
    with pytest.raises(ApiError) as ei:
        sdk.email_templates.create(template="verify_email", body=BODY, from_="", subject="x", syntax="liquid", enabled=True)
    assert ei.value.status_code == 409
    updated = sdk.email_templates.update("verify_email", subject=SUBJECT)
    assert updated.subject == SUBJECT and updated.body == BODY
    got = sdk.email_templates.get("verify_email")
    assert (got.body, got.subject, got.from_, got.enabled) == (BODY, SUBJECT, "{{ friendly_name }} <support@example.com>", True)

    en, fr = unique_email("tpl-en"), unique_email("tpl-fr")
    signed_up(server, en, name="Alice", user_metadata={"lang": "en"})
    signed_up(server, fr, name="Aline", user_metadata={"lang": "fr"})
    [m_en] = mails_to(sink, en)
    [m_fr] = mails_to(sink, fr)
    assert m_en.msg["Subject"] == "Confirm your account"
    assert m_fr.msg["Subject"] == "Confirmez votre compte"
    assert "<p>Hello Alice</p>" in m_en.html and "<p>Bonjour Aline</p>" in m_fr.html
    assert "Bonjour Aline" in m_fr.text, "the text part is derived from the HTML"
    app_name = server.api().get(f"/clients/{server.tenants['default']['default_app']['client_id']}").json()["name"]
    assert f"Tenant default, application {app_name}." in m_en.html
    [sender] = m_en.msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("default", "support@example.com")

    # PUT (set) replaces wholesale.
    s = sdk.email_templates.set("verify_email", template="verify_email", body="<p>Set {{ user.email }}</p>", from_="", subject="Set", syntax="liquid", enabled=True)
    assert s.body == "<p>Set {{ user.email }}</p>"
    third = unique_email("tpl-set")
    signed_up(server, third)
    [m3] = mails_to(sink, third)
    assert m3.msg["Subject"] == "Set" and f"<p>Set {third}</p>" in m3.html
    assert m3.msg["From"].addresses[0].addr_spec == "no-reply@roster.test", "empty from: the server's sender"


def test_broken_template_is_refused_with_its_line(spawner):
    server = mail_server(spawner, None)
    api = server.api()
    base = {"template": "welcome_email", "from": "", "subject": "Hi", "syntax": "liquid", "enabled": True}
    for broken in ("<p>one</p>\n<p>two</p>\n{% if %}x{% endif %}\n", "<p>one</p>\n<p>two</p>\n{{ user.name | nosuchfilter }}\n",
                   "<p>one</p>\n<p>two</p>\n{% if user.name %}\n", "<p>one</p>\n<p>two</p>\n{% include 'x' %}\n"):
        body = assert_mgmt_error(api.post("/email-templates", json={**base, "body": broken}), 400, "invalid_body")
        assert "line 3" in body["message"], body
    body = assert_mgmt_error(api.post("/email-templates", json={**base, "body": "<p>ok</p>", "subject": "a\n{{ user.name | nope }}"}), 400, "invalid_body")
    assert "subject" in body["message"] and "line 2" in body["message"], body
    # `from` must render to a mailbox.
    assert_mgmt_error(api.post("/email-templates", json={**base, "body": "<p>ok</p>", "from": "{{ user.name }}"}), 400, "invalid_body")
    # Through the SDK too; nothing was stored.
    with pytest.raises(ApiError) as ei:
        sdk_for(server).email_templates.create(template="welcome_email", body="a\nb\n{{ x | nope }}", from_="", subject="s", syntax="liquid", enabled=True)
    assert ei.value.status_code == 400 and "line 3" in json.dumps(ei.value.body)
    assert_mgmt_error(api.get("/email-templates/welcome_email"), 404, "inexistent_email_template")
    # A valid one is accepted; a broken PATCH of it is refused and leaves it as it was.
    assert api.post("/email-templates", json={**base, "body": "<p>fine</p>"}).status_code == 201
    body = assert_mgmt_error(api.patch("/email-templates/welcome_email", json={"body": "x\ny\nz\n{% for %}"}), 400, "invalid_body")
    assert "line 4" in body["message"], body
    assert api.get("/email-templates/welcome_email").json()["body"] == "<p>fine</p>"


def test_disabled_template_suppresses_mail_and_retry_requeues_it(spawner, sink):
    server = mail_server(spawner, sink.url)
    sdk = sdk_for(server)
    sdk.email_templates.create(template="verify_email", body="<p>Hi {{ user.email }}</p>", from_="", subject="Hi", syntax="liquid", enabled=True)
    assert sdk.email_templates.update("verify_email", enabled=False).enabled is False
    email = unique_email("off")
    uid = signed_up(server, email)
    row = wait_row(server, uid, "suppressed")
    assert row["last_error"] and "disabled" in row["last_error"]
    assert outbox(server, status="suppressed") == [row]
    # The relay decided when it recorded `suppressed`: nothing went out.
    assert sink.to(email) == [] and sink.messages() == []
    # Retry while still disabled: suppressed again, still nothing sent.
    r = server.api().post(f"/emails/outbox/{row['id']}/retry")
    assert r.status_code == 200 and r.json()["id"] == row["id"], r.text
    # (The answer is the row as read after the retry committed: the relay, polling every 50 ms, may
    # already have claimed it again. test_refused_mail_* checks the answer with the relay stopped.)
    assert r.json()["status"] in ("pending", "suppressed") and r.json()["attempts"] <= 1, r.json()
    again = wait_row(server, uid, "suppressed")
    assert again["attempts"] == 1
    assert sink.messages() == []
    # Enabled again, a retry delivers it, once.
    sdk.email_templates.update("verify_email", enabled=True)
    assert server.api().post(f"/emails/outbox/{row['id']}/retry").status_code == 200
    [m] = mails_to(sink, email)
    assert m.message_id == message_id(wait_row(server, uid, "delivered"))
    assert m.msg["Subject"] == "Hi"
    assert len(sink.messages()) == 1


# ---------------------------------------------------------------------------------------------
# 4. T27 (template injection) and T28 (SMTP header injection)

INJECTED_NAME = "{{ 7*7 }} {% include 'x' %} {{ user.app_metadata }} <script>alert(1)</script>"
CRLF_BCC = "x\r\nBcc: evil@attacker.example"


def assert_no_injected_headers(m, email: str) -> None:
    assert m.rcpt_tos == [email], m.rcpt_tos
    assert [a.addr_spec for a in m.msg["To"].addresses] == [email]
    for h in ("Bcc", "Cc"):
        assert m.msg.get_all(h) is None, h
    lines = m.header_block().split(b"\r\n")
    assert not [ln for ln in lines if ln.lower().startswith((b"bcc:", b"cc:"))], lines
    subject = str(m.msg["Subject"])
    assert "\r" not in subject and "\n" not in subject


def test_template_and_header_injection_are_inert(spawner, sink):
    server = mail_server(spawner, sink.url)
    # What the signup endpoint refuses outright: CR/LF in the name or the address.
    for fields in ({"name": CRLF_BCC}, {"given_name": CRLF_BCC}, {"nickname": CRLF_BCC}):
        r = signup(server, unique_email("crlf"), **fields)
        assert r.status_code == 400 and r.json()["code"] == "invalid_body", (fields, r.text)
    r = signup(server, f"{CRLF_BCC}@example.com")
    assert r.status_code == 400 and r.json()["code"] == "invalid_body", r.text
    r = signup(server, "victim@example.com\r\nBcc: evil@attacker.example")
    assert r.status_code == 400, r.text
    # What it accepts: Liquid and HTML in the name, CR/LF in a user_metadata value.
    email = unique_email("t27")
    uid = signed_up(server, email, name=INJECTED_NAME, user_metadata={"note": CRLF_BCC})

    [m] = mails_to(sink, email)
    assert_no_injected_headers(m, email)
    assert f"Hello {INJECTED_NAME}," in " ".join(m.text.split()), m.text  # the text part is wrapped at 72 columns
    html = m.html
    assert "{{ 7*7 }}" in html and "{{ user.app_metadata }}" in html and "{% include" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "Hello 49" not in m.text and "Hello 49" not in html
    wait_row(server, uid, "delivered")

    # A custom template that puts user values in the subject and the body.
    api = server.api()
    r = api.post("/email-templates", json={"template": "verify_email", "syntax": "liquid", "enabled": True, "from": "",
                                           "subject": "Hi {{ user.name }} / {{ user.user_metadata.note }}",
                                           "body": "<p>{{ user.name }}</p><p>{{ user.user_metadata.note }}</p>"})
    assert r.status_code == 201, r.text
    email2 = unique_email("t28")
    uid2 = signed_up(server, email2, name=INJECTED_NAME, user_metadata={"note": CRLF_BCC})
    [m2] = mails_to(sink, email2)
    assert_no_injected_headers(m2, email2)
    assert m2.msg["Subject"] == f"Hi {INJECTED_NAME} / x Bcc: evil@attacker.example"
    assert "<script" not in m2.html.lower() and "&lt;script&gt;" in m2.html and "{{ 7*7 }}" in m2.html
    assert m2.message_id == message_id(wait_row(server, uid2, "delivered"))

    # A `from` that renders a user value: CR/LF become spaces...
    r = api.patch("/email-templates/verify_email", json={"from": "{{ user.user_metadata.team }} <support@example.com>"})
    assert r.status_code == 200, r.text
    email_team = unique_email("t28team")
    signed_up(server, email_team, user_metadata={"team": "Acme\r\nSupport"})
    [mt] = mails_to(sink, email_team)
    assert_no_injected_headers(mt, email_team)
    [sender] = mt.msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Acme Support", "support@example.com")
    # ...and an injected header line cannot become a header: such a sender is not a mailbox, so the mail
    # is dead rather than sent.
    r = api.patch("/email-templates/verify_email", json={"from": "{{ user.user_metadata.note }} <support@example.com>"})
    assert r.status_code == 200, r.text
    email3 = unique_email("t28from")
    uid3 = signed_up(server, email3, user_metadata={"note": CRLF_BCC})
    row3 = wait_row(server, uid3, "dead")
    assert "sender" in row3["last_error"]
    assert sink.to(email3) == []
    # Across all of it: nothing ever reached the attacker's address.
    assert all("evil@attacker.example" not in r for m in sink.messages() for r in m.rcpt_tos)
    assert len(sink.messages()) == 3


# ---------------------------------------------------------------------------------------------
# 5. T38 scaled: SMTP down while signups go on

N_OUTAGE = 200


def test_smtp_outage_queues_mail_and_delivers_all_once_after_recovery(spawner, sink, backend):
    server = mail_server(spawner, sink.url, mail_max_attempts=1000)
    db = server.db
    tag = secrets.token_hex(3)
    base_emails = [f"base-{tag}-{i:03d}@example.com" for i in range(N_OUTAGE)]
    down_emails = [f"down-{tag}-{i:03d}@example.com" for i in range(N_OUTAGE)]

    base_lat = timed_signups(server, base_emails)
    sink.wait_for(N_OUTAGE, 60)
    wait_until(lambda: count(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == N_OUTAGE, 30, what="baseline delivered")

    sink.stop()
    t_down = time.monotonic()
    down_lat = timed_signups(server, down_emails)
    # Every row is queued, has been tried, and says why it is still pending.
    wait_until(
        lambda: count(db, f"SELECT count(*) FROM outbox WHERE recipient LIKE 'down-{tag}-%' AND status = 'pending' "
                          "AND attempts >= 1 AND last_error IS NOT NULL") == N_OUTAGE,
        30, what="all outage rows attempted and pending",
    )
    listed = outbox(server, status="pending", per_page=100)
    assert len(listed) == 100
    assert all(r["recipient"].startswith(f"down-{tag}-") and r["last_error"] and r["next_attempt_at"] for r in listed)
    assert not [m for m in sink.messages() if m.rcpt_tos[0].startswith("down-")]
    sample_error = listed[0]["last_error"]

    sink.start()
    t_up = time.monotonic()
    sink.wait_for(2 * N_OUTAGE, 120)
    wait_until(lambda: count(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == 2 * N_OUTAGE, 60, what="all delivered")
    recovery = time.monotonic() - t_up

    by_id = sink.by_message_id()
    ids = {r[0] for r in db.rows("SELECT id FROM outbox")}
    assert len(ids) == 2 * N_OUTAGE
    assert set(by_id) == {f"<{i}@127.0.0.1>" for i in ids}
    dups = {k: len(v) for k, v in by_id.items() if len(v) > 1}
    assert dups == {}, f"{len(dups)} Message-IDs delivered more than once"
    assert len(sink.messages()) == 2 * N_OUTAGE
    assert sorted(r for m in sink.messages() for r in m.rcpt_tos) == sorted(base_emails + down_emails)
    assert outbox(server, status="pending") == [] and outbox(server, status="dead") == []

    print(f"\n[T38 {backend}] signup latency, sink up:   {latency_summary(base_lat)}")
    print(f"[T38 {backend}] signup latency, sink down: {latency_summary(down_lat)}")
    print(f"[T38 {backend}] outage {t_up - t_down:.1f} s; all {2 * N_OUTAGE} delivered {recovery:.2f} s after the sink came back; "
          f"duplicates 0; sample last_error: {sample_error!r}")


# ---------------------------------------------------------------------------------------------
# 6. dead rows and retry


def test_refused_mail_goes_dead_without_leaking_the_password_and_retry_delivers_once(spawner):
    smtp_pass = "pw-" + secrets.token_hex(10)
    sink = MailSink(auth=("mailer", smtp_pass), reject="550 5.7.1 Sink policy: relaying denied").start()
    try:
        url = f"smtp://mailer:{quote(smtp_pass)}@127.0.0.1:{sink.port}"
        server = mail_server(spawner, url, mail_max_attempts=2)
        api = server.api()

        # Permanent (5xx): dead after the first attempt; the server's reply is kept.
        a = unique_email("perm")
        uid_a = signed_up(server, a)
        row_a = wait_row(server, uid_a, "dead")
        assert row_a["attempts"] == 1, row_a
        assert "550" in row_a["last_error"] and "relaying denied" in row_a["last_error"], row_a
        assert [addr for addr, _ in sink.rejections()] == [a]

        # Transient (4xx): tried mail_max_attempts (2) times, then dead.
        sink.reject = "451 4.3.0 Sink is busy, try later"
        b = unique_email("temp")
        uid_b = signed_up(server, b)
        row_b = wait_row(server, uid_b, "dead")
        assert row_b["attempts"] == 2, row_b
        assert "451" in row_b["last_error"] and "try later" in row_b["last_error"], row_b
        assert [addr for addr, _ in sink.rejections()].count(b) == 2
        assert sink.messages() == []

        # The SMTP password is in no error, listing, log line or outbox column.
        listing = api.get("/emails/outbox", params={"status": "dead"})
        assert {r["id"] for r in listing.json()} == {row_a["id"], row_b["id"]}
        assert smtp_pass not in listing.text
        assert smtp_pass not in server.stderr()
        assert not [r for r in server.db.rows("SELECT last_error, payload FROM outbox") if any(smtp_pass in v for v in r)]

        # Retry (with the relay stopped, so that the answer and the listing show exactly what the retry
        # wrote): dead -> pending, attempts reset.
        assert server.stop() == 0
        server.settings["mail_relay"] = False
        server.start(expect_credentials=False)
        api = server.api()
        for row in (row_a, row_b):
            r = api.post(f"/emails/outbox/{row['id']}/retry")
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["id"], body["status"], body["attempts"], body["delivered_at"]) == (row["id"], "pending", 0, None), body
            assert body["next_attempt_at"] and body["last_error"] == row["last_error"]
            assert_mgmt_error(api.post(f"/emails/outbox/{row['id']}/retry"), 409, "invalid_message_state")
        assert {r["id"] for r in outbox(server, status="pending")} == {row_a["id"], row_b["id"]}
        assert outbox(server, status="dead") == []

        # The relay back, and the server accepting: each delivered exactly once, attempts counted afresh.
        sink.reject = None
        assert server.stop() == 0
        server.settings["mail_relay"] = True
        server.start(expect_credentials=False)
        api = server.api()
        for email, uid in ((a, uid_a), (b, uid_b)):
            [m] = mails_to(sink, email)
            done = wait_row(server, uid, "delivered")
            assert done["attempts"] == 1 and m.message_id == message_id(done)
            assert m.auth == ("mailer", smtp_pass)
        assert len(sink.messages()) == 2
        assert_mgmt_error(api.post(f"/emails/outbox/{row_a['id']}/retry"), 409, "invalid_message_state")
        assert_mgmt_error(api.post("/emails/outbox/msg_doesnotexist00000000/retry"), 404, "inexistent_message")
        assert_mgmt_error(api.get("/emails/outbox", params={"status": "lost"}), 400)
        for bad in (0, 101):
            assert_mgmt_error(api.get("/emails/outbox", params={"per_page": bad}), 400)
        assert len(outbox(server, per_page=1)) == 1
    finally:
        sink.stop()


# ---------------------------------------------------------------------------------------------
# 7. two nodes on one PostgreSQL database

N_NODES = 200


def require_postgres(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("two `roster serve` nodes share a database only on PostgreSQL (SQLite is single-node)")


def test_two_nodes_deliver_each_mail_exactly_once(spawner, sink, backend):
    require_postgres(backend)
    settings = {"master_key": master_key(), "log_level": "info", "log_format": "json"}
    a = mail_server(spawner, sink.url, **settings)
    b = second_node(spawner, a)
    tag = secrets.token_hex(3)
    emails = [f"two-{tag}-{i:03d}@example.com" for i in range(N_NODES)]

    def one(i):
        r = signup(a if i % 2 else b, emails[i])
        assert r.status_code == 200, r.text

    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(one, range(N_NODES)))
    sink.wait_for(N_NODES, 60)
    wait_until(lambda: count(a.db, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == N_NODES, 30, what="all delivered")

    by_id = sink.by_message_id()
    assert len(sink.messages()) == N_NODES and len(by_id) == N_NODES
    assert all(len(v) == 1 for v in by_id.values())
    assert {f"<{r[0]}@127.0.0.1>" for r in a.db.rows("SELECT id FROM outbox")} == set(by_id)
    assert sorted(m.rcpt_tos[0] for m in sink.messages()) == sorted(emails)
    from_a, from_b = delivered_ids_in_log(a), delivered_ids_in_log(b)
    print(f"\n[two nodes] delivered by node A: {len(from_a)}, by node B: {len(from_b)}, duplicates 0")
    assert len(from_a) > 0 and len(from_b) > 0, "both relays should have delivered"
    assert sorted(from_a + from_b) == sorted(i[1:].split("@")[0] for i in by_id)


def test_kill_9_of_one_node_the_other_delivers_everything(spawner, backend):
    require_postgres(backend)
    sink = MailSink(delay=0.1)  # a slow server: the relays are mid-batch when one dies
    settings = {"master_key": master_key(), "log_level": "info", "log_format": "json", "mail_lease_secs": 3,
                "mail_send_timeout_secs": 2, "mail_max_attempts": 1000}
    try:
        a = mail_server(spawner, sink.url, **settings)  # the sink is not started yet: nothing listens
        b = second_node(spawner, a)
        tag = secrets.token_hex(3)
        emails = [f"k9-{tag}-{i:03d}@example.com" for i in range(N_NODES)]

        def one(i):
            r = signup(a if i % 2 else b, emails[i])
            assert r.status_code == 200, r.text

        with ThreadPoolExecutor(max_workers=8) as ex:
            list(ex.map(one, range(N_NODES)))
        assert count(a.db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == N_NODES

        sink.start()
        sink.wait_for(40, 60)
        a.kill9()
        t_kill = time.monotonic()
        leased = a.db.rows("SELECT id, lease_owner FROM outbox WHERE status = 'pending' AND lease_owner IS NOT NULL")
        delivered_by_a = set(delivered_ids_in_log(a))

        wait_until(lambda: len(sink.by_message_id()) >= N_NODES, 120, what="a mail for every row")
        wait_until(lambda: count(b.db, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == N_NODES, 60, what="all delivered by B")
        took = time.monotonic() - t_kill

        by_id = sink.by_message_id()
        ids = {f"<{r[0]}@127.0.0.1>" for r in b.db.rows("SELECT id FROM outbox")}
        lost = ids - set(by_id)
        dups = {k: len(v) for k, v in by_id.items() if len(v) > 1}
        n_dup = sum(n - 1 for n in dups.values())
        print(f"\n[kill -9] rows leased at the kill: {len(leased)} (owners {len({o for _, o in leased})}); "
              f"A had delivered {len(delivered_by_a)}; B finished {took:.2f} s after the kill; "
              f"mails at the sink {len(sink.messages())} for {len(ids)} rows; duplicates {n_dup} {sorted(dups.values())}; lost {len(lost)}")
        assert lost == set(), f"{len(lost)} mails never delivered"
        assert set(by_id) == ids
        # Only a send in flight on A when it died (sent, not yet recorded) can go out twice: at most
        # mail_concurrency (4) of them.
        assert n_dup <= 4, dups
        assert set(dups) <= {f"<{i}@127.0.0.1>" for i, _ in leased}, "a duplicate of a row A did not hold"
    finally:
        sink.stop()


# ---------------------------------------------------------------------------------------------
# 8. SIGTERM hands back the leases

N_TERM = 60


def test_sigterm_releases_leases_and_restart_delivers_everything_once(spawner, sink, backend):
    tag = secrets.token_hex(3)
    emails = [f"term-{tag}-{i:03d}@example.com" for i in range(N_TERM)]
    # Queue the mail with the relay off, so that the next start claims a full batch at once.
    server = mail_server(spawner, sink.url, mail_relay=False)
    db = server.db
    for e in emails:
        signed_up(server, e)
    assert count(db, "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts = 0 AND lease_owner IS NULL") == N_TERM
    assert sink.messages() == []
    assert server.stop() == 0

    sink.delay = 0.25  # slow: 4 in flight, the rest of the batch waits under lease
    server.settings["mail_relay"] = True
    server.start(expect_credentials=False)
    sink.wait_for(2, 30)
    leased_before = count(db, "SELECT count(*) FROM outbox WHERE status = 'pending' AND lease_owner IS NOT NULL")
    rc = server.stop()
    assert rc == 0, server.stderr()[-2000:]
    sent_before_stop = len(sink.messages())
    pending = count(db, "SELECT count(*) FROM outbox WHERE status = 'pending'")
    still_leased = count(db, "SELECT count(*) FROM outbox WHERE status = 'pending' AND (lease_owner IS NOT NULL OR lease_until IS NOT NULL)")
    tried = count(db, "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts <> 0")
    delivered = count(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'")
    print(f"\n[SIGTERM {backend}] leased just before: {leased_before}; delivered before the stop: {delivered}; "
          f"pending after: {pending}; still leased after: {still_leased}")
    assert leased_before > 0 and pending > 0, "the stop should have come while mail was leased and pending"
    assert still_leased == 0, "pending rows left leased after a graceful stop"
    assert tried == 0, "handed-back rows should not count an attempt"
    assert delivered == sent_before_stop and delivered + pending == N_TERM

    sink.delay = 0
    server.start(expect_credentials=False)
    sink.wait_for(N_TERM, 60)
    wait_until(lambda: count(db, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == N_TERM, 30, what="all delivered after restart")
    by_id = sink.by_message_id()
    assert len(sink.messages()) == N_TERM and all(len(v) == 1 for v in by_id.values())
    assert sorted(m.rcpt_tos[0] for m in sink.messages()) == sorted(emails)
