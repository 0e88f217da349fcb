#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust tests (SQLite always; PostgreSQL when
# ROSTER_TEST_POSTGRES_URL names a server), then the Python suite that drives the real `roster`
# binary with the official auth0-python SDK. Run from anywhere: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (the binary the SDK suite runs)"
cargo build -p roster

step "cargo test"
cargo test --workspace

step "Python SDK and process suite"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
ROSTER_BIN="$PWD/target/debug/roster" .venv/bin/python -m pytest tests/sdk -q -p no:cacheprovider
