#!/usr/bin/env python3
"""Account-enumeration timing report (security.md T8, T9): does a login with an unknown user take as
long as a login with a wrong password, and a signup with a taken address as long as a new one?

Starts its own `roster serve` (release build, SQLite, default argon2 parameters) on a free port,
interleaves the two classes of request (≥ 200 samples each after a warm-up), and prints medians, the
difference and a Mann-Whitney U p-value (normal approximation). A report, not a test: timings on a
shared 2-core machine are noisy; the target is |Δmedian| < 5 ms and p > 0.01.

    python3 bench/enumeration.py [--samples 200] [--bin target/release/roster]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, data: dict, json_body: bool = False) -> tuple[int, bytes, float]:
    if json_body:
        body, ctype = json.dumps(data).encode(), "application/json"
    else:
        body, ctype = urllib.parse.urlencode(data).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=body, headers={"content-type": ctype}, method="POST")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            out = r.status, r.read()
    except urllib.error.HTTPError as e:
        out = e.code, e.read()
    return out[0], out[1], (time.perf_counter() - t0) * 1000


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, no tie correction)."""
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks_a = sum(i + 1 for i, (_, g) in enumerate(ranked) if g == 0)
    n1, n2 = len(a), len(b)
    u = ranks_a - n1 * (n1 + 1) / 2
    mu, sigma = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u - mu) / sigma if sigma else 0.0
    return math.erfc(abs(z) / math.sqrt(2))


def report(name: str, a_name: str, a: list[float], b_name: str, b: list[float]) -> dict:
    ma, mb = statistics.median(a), statistics.median(b)
    p = mann_whitney_p(a, b)
    verdict = "OK" if abs(ma - mb) < 5 and p > 0.01 else "CHECK"
    print(f"{name}: median {a_name} {ma:.2f} ms, {b_name} {mb:.2f} ms, |Δ| {abs(ma - mb):.2f} ms, Mann-Whitney p {p:.3f} → {verdict}")
    return {"test": name, a_name: ma, b_name: mb, "delta_ms": abs(ma - mb), "p": p, "verdict": verdict}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "roster"))
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        print(f"build first: cargo build --release -p roster ({args.bin} missing)", file=sys.stderr)
        return 2
    data = tempfile.mkdtemp(prefix="roster-enum-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = os.path.join(data, "roster.toml")
    with open(cfg, "w") as f:
        f.write('log_level = "warn"\nmanagement_rate_limit = 100000000\nmanagement_rate_burst = 100000000\n')
    proc = subprocess.Popen(
        [args.bin, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}", "--public-url", base, "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        out = ""
        deadline = time.time() + 30
        while time.time() < deadline:
            line = proc.stdout.readline()
            out += line
            try:
                creds = json.loads(out)
                break
            except json.JSONDecodeError:
                continue
        else:
            print("server did not start", file=sys.stderr)
            return 1
        app = creds["default_app"]
        conn = creds["connection"]
        token_url = f"{base}/t/default/oauth/token"
        signup_url = f"{base}/t/default/dbconnections/signup"
        # The measurement repeats wrong passwords for one account: brute-force protection would start
        # refusing them after max_attempts, so it is switched off for this tenant (it measures the
        # password path itself).
        mgmt = creds["management_client"]
        _, tok, _ = post(f"{base}/t/default/oauth/token", {
            "grant_type": "client_credentials", "client_id": mgmt["client_id"], "client_secret": mgmt["client_secret"],
            "audience": creds["management_audience"]})
        access = json.loads(tok)["access_token"]
        req = urllib.request.Request(f"{base}/t/default/api/v2/attack-protection/brute-force-protection",
                                     data=json.dumps({"enabled": False}).encode(), method="PATCH",
                                     headers={"content-type": "application/json", "authorization": f"Bearer {access}"})
        urllib.request.urlopen(req).read()
        known = "known@example.com"
        status, _, _ = post(signup_url, {"client_id": app["client_id"], "connection": conn, "email": known, "password": "correct horse battery"}, json_body=True)
        assert status == 200, status

        def login(user: str, pw: str) -> tuple[int, bytes, float]:
            return post(token_url, {"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "client_id": app["client_id"],
                                    "client_secret": app["client_secret"], "username": user, "password": pw, "realm": conn})

        for _ in range(10):  # warm-up
            login(known, "wrong password!!")
            login(f"nobody{random.random()}@example.com", "wrong password!!")
        unknown, wrong, bodies = [], [], set()
        for i in range(args.samples):
            order = [("unknown", f"nobody{i}@example.com"), ("wrong", known)]
            random.shuffle(order)
            for kind, user in order:
                s, body, ms = login(user, "wrong password!!")
                bodies.add((s, body))
                (unknown if kind == "unknown" else wrong).append(ms)
        results = [report("login (T8)", "unknown_user", unknown, "wrong_password", wrong)]
        print(f"  distinct (status, body) pairs across both classes: {len(bodies)} (must be 1)")

        new, taken, shapes = [], [], set()
        for i in range(args.samples // 2):
            order = [("new", f"new{i}-{random.random()}@example.com"), ("taken", known)]
            random.shuffle(order)
            for kind, email in order:
                s, body, ms = post(signup_url, {"client_id": app["client_id"], "connection": conn, "email": email, "password": "another long passphrase"}, json_body=True)
                shapes.add((s, tuple(sorted(json.loads(body)))))
                (new if kind == "new" else taken).append(ms)
        results.append(report("signup (T9)", "new_address", new, "taken_address", taken))
        print(f"  distinct (status, keys) shapes across both classes: {len(shapes)} (must be 1)")
        print(json.dumps({"samples": args.samples, "results": results, "login_bodies": len(bodies), "signup_shapes": len(shapes)}))
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
