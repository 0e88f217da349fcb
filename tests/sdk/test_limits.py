"""Hostile bodies (security T31): content type, size, depth, metadata limits. Never a 5xx."""

from __future__ import annotations

import json

import pytest

from harness import CONNECTION, assert_mgmt_error, unique_email


@pytest.fixture
def user(api) -> dict:
    return api.create_user(unique_email("lim"), user_metadata={"keep": True})


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None, "application/jsonx"])
def test_non_json_content_type_is_415(api, user, ctype):
    body = json.dumps({"name": "x"})
    headers = {"Content-Type": ctype} if ctype else {}
    r = api.patch(api.user_path(user["user_id"]), data=body.encode(), headers=headers)
    if ctype is None:
        # requests sends no Content-Type for bytes bodies
        assert "Content-Type" not in r.request.headers
    assert_mgmt_error(r, 415, ...)
    r = api.post("/users", data=json.dumps({"connection": CONNECTION, "email": unique_email(), "password": "s3cret-passw0rd"}).encode(), headers=headers)
    assert_mgmt_error(r, 415, ...)
    assert api.get(api.user_path(user["user_id"])).json()["name"] == user["name"]


def test_json_with_charset_parameter_is_accepted(api, user):
    r = api.patch(api.user_path(user["user_id"]), data=json.dumps({"name": "charset"}).encode(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and r.json()["name"] == "charset"


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 5 * 1024 * 1024])
def test_body_over_1_mib_is_413(api, user, size):
    pad = "x" * size
    r = api.patch(api.user_path(user["user_id"]), data=json.dumps({"user_metadata": {"pad": pad}}).encode(), headers={"Content-Type": "application/json"})
    assert_mgmt_error(r, 413, ...)
    r = api.post("/users", json={"connection": CONNECTION, "email": unique_email(), "password": "s3cret-passw0rd", "name": pad})
    assert_mgmt_error(r, 413, ...)


def test_chunked_body_over_1_mib_is_413(api, user):
    def gen():
        yield b'{"user_metadata":{"pad":"'
        for _ in range(2 * 1024):
            yield b"x" * 1024
        yield b'"}}'

    r = api.patch(api.user_path(user["user_id"]), data=gen(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (r.status_code, r.text[:200])


@pytest.mark.parametrize("shape", ["array", "object", "metadata"])
def test_json_nested_10000_deep_is_400(api, user, shape):
    depth = 10000
    if shape == "array":
        doc = "[" * depth + "]" * depth
    elif shape == "object":
        doc = '{"a":' * depth + "1" + "}" * depth
    else:
        doc = '{"user_metadata":' + '{"a":' * depth + "1" + "}" * depth + "}"
    r = api.patch(api.user_path(user["user_id"]), data=doc.encode(), headers={"Content-Type": "application/json"})
    assert_mgmt_error(r, 400, "invalid_body")
    r = api.post("/users", data=doc.encode(), headers={"Content-Type": "application/json"})
    assert_mgmt_error(r, 400, "invalid_body")
    assert api.get(api.user_path(user["user_id"])).json()["user_metadata"] == {"keep": True}


@pytest.mark.parametrize("doc", ["{", "", "null", "[]", '"str"', "{\"name\": 1}", "\xff\xfe", '{"name":"a"}{"name":"b"}'])
def test_malformed_json_is_400(api, user, doc):
    r = api.patch(api.user_path(user["user_id"]), data=doc.encode("latin-1"), headers={"Content-Type": "application/json"})
    assert_mgmt_error(r, 400, "invalid_body")


def test_metadata_deeper_than_the_limit_is_400(api, user):
    deep = {"a": 1}
    for _ in range(20):
        deep = {"a": deep}
    r = api.patch(api.user_path(user["user_id"]), json={"user_metadata": {"d": deep}})
    assert_mgmt_error(r, 400, "invalid_body")


def test_metadata_over_the_size_cap_is_400(api, user):
    r = api.patch(api.user_path(user["user_id"]), json={"user_metadata": {"big": "x" * (64 * 1024)}})
    assert_mgmt_error(r, 400, "invalid_body")
    assert api.get(api.user_path(user["user_id"])).json()["user_metadata"] == {"keep": True}


def test_merged_metadata_over_the_cap_is_400(api, user):
    # Each PATCH is under the cap on its own; the merged result is not.
    path = api.user_path(user["user_id"])
    statuses = [api.patch(path, json={"user_metadata": {f"k{i}": "x" * 4000}}).status_code for i in range(8)]
    assert statuses[0] == 200
    assert 400 in statuses, statuses
    first_refusal = statuses.index(400)
    assert all(s == 400 for s in statuses[first_refusal:]), statuses
    stored = api.get(path).json()["user_metadata"]
    assert len(json.dumps(stored)) <= 16 * 1024 + 100


@pytest.mark.parametrize("field,value", [("name", "n" * 301), ("given_name", "g" * 151), ("picture", "javascript:alert(1)"), ("phone_number", "12345"), ("email", "a" * 250 + "@example.com")])
def test_root_field_bounds_are_400(api, user, field, value):
    r = api.patch(api.user_path(user["user_id"]), json={field: value})
    assert_mgmt_error(r, 400, ...)


def test_very_long_path_and_query_are_not_5xx(api):
    r = api.get("/users/" + "a" * 20000)
    assert r.status_code < 500
    r = api.get("/users", params={"q": "(" * 10000})
    assert 400 <= r.status_code < 500
    r = api.get("/users", params={"fields": ",".join(["email"] * 5000)})
    assert r.status_code < 500
