"""`roster tenant create|list|delete` as a process: output shape, refusals, exit codes."""

from __future__ import annotations

import json

import pytest

from harness import CONNECTION, run_cli

PUBLIC = "https://id.example.test:8443"
CRED_KEYS = {"tenant", "issuer", "domain", "management_audience", "management_client", "default_app", "connection"}


def tenant_names(db) -> list[str]:
    r = run_cli("tenant", "list", db=db, public_url=PUBLIC)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return sorted(row["tenant"] for row in rows)


def assert_cli_error(r) -> str:
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert lines[0].startswith("error:"), lines[0]
    assert r.stdout == "", r.stdout
    return lines[0]


@pytest.fixture
def db(spawner):
    return spawner.database()


@pytest.mark.parametrize("public_url,expected_base", [(PUBLIC, PUBLIC), (PUBLIC + "/", PUBLIC), ("http://127.0.0.1:9/idp/", "http://127.0.0.1:9/idp")])
def test_create_prints_one_json_object(db, public_url, expected_base):
    r = run_cli("tenant", "create", "acme-1", db=db, public_url=public_url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    c = json.loads(lines[0])
    assert set(c) == CRED_KEYS
    assert c["tenant"] == "acme-1"
    assert c["issuer"] == f"{expected_base}/t/acme-1/"
    assert c["domain"] == expected_base.split("://", 1)[1] + "/t/acme-1"
    assert c["management_audience"] == f"{expected_base}/t/acme-1/api/v2/"
    assert c["connection"] == CONNECTION
    for k in ("management_client", "default_app"):
        assert set(c[k]) == {"client_id", "client_secret"}
        assert len(c[k]["client_id"]) >= 16 and len(c[k]["client_secret"]) >= 32
    assert c["management_client"]["client_id"] != c["default_app"]["client_id"]
    assert c["management_client"]["client_secret"] != c["default_app"]["client_secret"]
    assert tenant_names(db) == ["acme-1"]


def test_secrets_are_not_stored_in_clear(db, backend):
    r = run_cli("tenant", "create", "secretive", db=db, public_url=PUBLIC)
    c = json.loads(r.stdout)
    secret = c["management_client"]["client_secret"]
    rows = db.rows("SELECT * FROM clients")
    assert any(c["management_client"]["client_id"] in row for row in rows)  # sanity: the right table
    assert all(secret not in "|".join(row) for row in rows)
    if backend == "sqlite":
        blob = b"".join(p.read_bytes() for p in db.data_dir.glob("roster.db*"))
        assert secret.encode() not in blob
        assert c["management_client"]["client_id"].encode() in blob  # sanity: the file is the right one


INVALID_NAMES = ["ab", "abc-", "ABC", "a_b", "a" * 64, "a b", "ab/c", "", "défaut", "-abc"]


def test_invalid_names_are_refused(db):
    run_cli("tenant", "create", "existing", db=db, public_url=PUBLIC)
    before = tenant_names(db)
    for name in INVALID_NAMES:
        # `--` so that names starting with '-' reach the validation instead of the flag parser.
        r = run_cli("tenant", "create", "--", name, db=db, public_url=PUBLIC)
        assert_cli_error(r)
    assert tenant_names(db) == before == ["existing"]


def test_name_looking_like_a_flag_is_refused(db):
    # Without `--`, clap rejects `-abc` as an unknown flag: non-zero, an `error:` first line
    # (clap adds a usage hint on the following lines), and nothing created.
    r = run_cli("tenant", "create", "-abc", db=db, public_url=PUBLIC)
    assert r.returncode != 0
    assert r.stderr.splitlines()[0].startswith("error:")
    assert r.stdout == ""
    assert tenant_names(db) == []


def test_valid_edge_names_are_accepted(db):
    names = ["abc", "a" * 63, "a-b", "0-9", "x1y"]
    for name in names:
        r = run_cli("tenant", "create", name, db=db, public_url=PUBLIC)
        assert r.returncode == 0, (name, r.stderr)
        assert json.loads(r.stdout)["tenant"] == name
    assert tenant_names(db) == sorted(names)


def test_duplicate_name_is_refused(db):
    first = run_cli("tenant", "create", "twice", db=db, public_url=PUBLIC)
    assert first.returncode == 0
    r = run_cli("tenant", "create", "twice", db=db, public_url=PUBLIC)
    line = assert_cli_error(r)
    assert "twice" in line
    assert tenant_names(db) == ["twice"]


def test_unreachable_database_fails_cleanly(db, tmp_path):
    run_cli("tenant", "create", "keep", db=db, public_url=PUBLIC)
    before = tenant_names(db)
    data_dir = tmp_path / "unused-data"
    r = run_cli("tenant", "create", "abc", db=_Unreachable(data_dir), public_url=PUBLIC, timeout=120)
    assert_cli_error(r)
    assert not (data_dir / "roster.db").exists()
    assert tenant_names(db) == before == ["keep"]


class _Unreachable:
    def __init__(self, data_dir):
        self.data_dir = data_dir

    def cli_args(self):
        return ["--data-dir", str(self.data_dir), "--database-url", "postgres://postgres@127.0.0.1:1/x"]


def test_list_prints_json_lines(db):
    for n in ("one", "two", "three"):
        assert run_cli("tenant", "create", n, db=db, public_url=PUBLIC).returncode == 0
    r = run_cli("tenant", "list", db=db, public_url=PUBLIC)
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(row["tenant"] for row in rows) == ["one", "three", "two"]
    for row in rows:
        assert row["issuer"] == f"{PUBLIC}/t/{row['tenant']}/"
        assert row["created_at"]


def test_list_on_empty_database_prints_nothing(db):
    r = run_cli("tenant", "list", db=db, public_url=PUBLIC)
    assert r.returncode == 0 and r.stdout == ""


def test_delete_requires_yes(db):
    assert run_cli("tenant", "create", "doomed", db=db, public_url=PUBLIC).returncode == 0
    r = run_cli("tenant", "delete", "doomed", db=db, public_url=PUBLIC)
    assert_cli_error(r)
    assert tenant_names(db) == ["doomed"]
    r = run_cli("tenant", "delete", "doomed", "--yes", db=db, public_url=PUBLIC)
    assert r.returncode == 0, r.stderr
    assert tenant_names(db) == []
    # Deleting it again, or an unknown tenant, is an error.
    assert_cli_error(run_cli("tenant", "delete", "doomed", "--yes", db=db, public_url=PUBLIC))


def test_recreate_after_delete_gets_new_credentials(db):
    a = json.loads(run_cli("tenant", "create", "phoenix", db=db, public_url=PUBLIC).stdout)
    assert run_cli("tenant", "delete", "phoenix", "--yes", db=db, public_url=PUBLIC).returncode == 0
    b = json.loads(run_cli("tenant", "create", "phoenix", db=db, public_url=PUBLIC).stdout)
    assert a["management_client"]["client_id"] != b["management_client"]["client_id"]
    assert tenant_names(db) == ["phoenix"]
