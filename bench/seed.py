#!/usr/bin/env python3
"""Seed users for the benchmark (standard library only).

usage: seed.py BASE_URL CREDENTIALS_JSON COUNT OUT_DIR [CONCURRENCY]

Reads the tenant credentials that `roster serve` prints on its first start, gets a Management API token
with the client-credentials grant, creates COUNT users concurrently (keep-alive connections, one per
worker) and writes OUT_DIR/token (the access token) and OUT_DIR/ids (one percent-encoded user_id a line).
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    base, creds_path, count, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    creds = json.load(open(creds_path))
    url = urllib.parse.urlsplit(base)
    host, port = url.hostname, url.port

    form = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_id": creds["management_client"]["client_id"],
        "client_secret": creds["management_client"]["client_secret"],
        "audience": creds["management_audience"],
    })
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", "/t/default/oauth/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"token request failed: {r.status} {body[:300]!r}")
    token = json.loads(body)["access_token"]
    c.close()

    local = threading.local()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    run = int(time.time())

    def create(i: int) -> str:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host, port, timeout=120)
        payload = json.dumps({
            "connection": creds["connection"],
            "email": f"bench{run}-{i}@example.com",
            "password": "a seeded bench passphrase",  # nothing from the address (the policy refuses that)
        })
        conn.request("POST", "/t/default/api/v2/users", payload, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 201:
            raise RuntimeError(f"create user {i}: {resp.status} {data[:300]!r}")
        return urllib.parse.quote(json.loads(data)["user_id"], safe="")

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        ids = list(pool.map(create, range(count)))
    elapsed = time.monotonic() - t0

    with open(f"{out_dir}/token", "w") as f:
        f.write(token)
    with open(f"{out_dir}/ids", "w") as f:
        f.write("\n".join(ids) + "\n")
    print(f"seeded {len(ids)} users in {elapsed:.1f} s ({len(ids) / elapsed:.0f}/s)")


if __name__ == "__main__":
    main()
