"""Concurrent writes (security T39, scaled): no lost metadata updates, unique emails under races."""

from __future__ import annotations

import threading

from harness import CONNECTION, Api, unique_email

N = 200


def _barrier_map(fn, items, workers=32):
    """Run fn over items on a thread pool, with every task held at a start gate until all are queued,
    so the first `workers` requests leave together and the pool stays saturated."""
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Event()

    def gated(x):
        gate.wait(timeout=30)
        return fn(x)

    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(gated, x) for x in items]
        gate.set()
        return [f.result() for f in futures]


def test_200_concurrent_patches_lose_no_key(api):
    u = api.create_user(unique_email("race"), user_metadata={"seed": True})
    path = api.user_path(u["user_id"])
    client = Api(api.base, api.token)

    def patch(i):
        r = client.patch(path, json={"user_metadata": {f"k{i:03d}": i}})
        return r.status_code

    statuses = _barrier_map(patch, range(N))
    assert [s for s in statuses if s >= 500] == [], sorted(set(statuses))
    assert statuses.count(200) == N, {s: statuses.count(s) for s in set(statuses)}
    stored = api.get(path).json()["user_metadata"]
    missing = [f"k{i:03d}" for i in range(N) if stored.get(f"k{i:03d}") != i]
    assert missing == [], f"{len(missing)} of {N} keys lost: {missing[:10]}"
    assert stored["seed"] is True
    assert len(stored) == N + 1


def test_concurrent_user_and_app_metadata_patches_are_independent(api):
    u = api.create_user(unique_email("race2"))
    path = api.user_path(u["user_id"])
    client = Api(api.base, api.token)

    def patch(i):
        field = "user_metadata" if i % 2 else "app_metadata"
        return client.patch(path, json={field: {f"k{i}": i}}).status_code

    statuses = _barrier_map(patch, range(100))
    assert set(statuses) == {200}
    got = api.get(path).json()
    assert set(got["user_metadata"]) == {f"k{i}" for i in range(100) if i % 2}
    assert set(got["app_metadata"]) == {f"k{i}" for i in range(100) if not i % 2}


def test_concurrent_creates_with_one_email_yield_exactly_one_user(api):
    email = unique_email("Same")
    client = Api(api.base, api.token)

    def create(i):
        variant = email.upper() if i % 2 else email.lower()
        r = client.post("/users", json={"connection": CONNECTION, "email": variant, "password": "s3cret-passw0rd"})
        return r.status_code, (r.json().get("errorCode") if r.status_code != 201 else None)

    results = _barrier_map(create, range(20), workers=20)
    assert [s for s, _ in results if s >= 500] == []
    assert sum(1 for s, _ in results if s == 201) == 1, results
    assert all(code == "auth0_idp_error" for s, code in results if s == 409)
    assert sum(1 for s, _ in results if s == 409) == 19, results
    assert len(api.get("/users-by-email", params={"email": email.lower()}).json()) == 1


def test_concurrent_delete_and_patch_never_resurrect(api):
    u = api.create_user(unique_email("zombie"))
    path = api.user_path(u["user_id"])
    client = Api(api.base, api.token)

    def act(i):
        if i == 10:
            return client.delete(path).status_code
        return client.patch(path, json={"user_metadata": {f"k{i}": i}}).status_code

    statuses = _barrier_map(act, range(40), workers=40)
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) <= {200, 204, 404}
    assert api.get(path).status_code == 404
    assert api.get("/users-by-email", params={"email": u["email"]}).json() == []
