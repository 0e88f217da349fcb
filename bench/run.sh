#!/usr/bin/env bash
# Roster benchmark harness (DESIGN.md §9). Loopback only, bounded in time, writes docs/benchmarks.md.
#
# usage: bench/run.sh [options]
#   --postgres        also run on a fresh PostgreSQL database (fail if PostgreSQL is unreachable);
#                     by default the PostgreSQL round runs when PostgreSQL answers on BENCH_PG_URL
#   --no-postgres     SQLite only
#   --no-build        use target/release/roster as it is (default: `cargo build --release -p roster` first)
#   --users N         users to seed per backend (default 3000)
#   --duration S      measured seconds per test (default 10)
#   --warmup S        warm-up seconds before each test, discarded (default 2)
#   --rounds N        GET /healthz, GET user and PATCH user run in turn N times each; the median round is
#                     reported (default 5)
#   --threads T       wrk threads (default 2)
#   --connections C   wrk connections (default 32)
#   --output FILE     report path (default docs/benchmarks.md)
# environment: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432); BENCH_BIN, another roster
# binary to run (no build then; for trying the harness only); BENCH_QUIET_WAIT, longest wait in seconds
# for an idle machine before each test (default 30). The server listens on 127.0.0.1, free port.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
COMMAND="bench/run.sh${*:+ $*}"

PG_MODE=auto
BUILD=1
USERS=3000
DURATION=10
WARMUP=2
ROUNDS=5
THREADS=2
CONNS=32
OUTPUT="$REPO/docs/benchmarks.md"
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}

while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) PG_MODE=yes ;;
    --no-postgres) PG_MODE=no ;;
    --no-build) BUILD=0 ;;
    --users) USERS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --output) OUTPUT=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup (also on failure)
TMP=$(mktemp -d /tmp/roster-bench.XXXXXX)
SERVER_PID=""
PG_DB=""
cleanup() {
  local rc=$?
  stop_server || true
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
      || log "could not drop database $PG_DB"
    PG_DB=""
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk (Debian package)"
  command -v apt-get >/dev/null || die "wrk is missing and apt-get is not available"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y wrk >/dev/null; }
  command -v wrk >/dev/null || die "could not install wrk"
fi
# nginx serves the reference static file (DESIGN §9 measures Rauthy against nginx's static-file rate).
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -z "$NGINX" ]; then
  log "installing nginx (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi
  $SUDO apt-get install -y nginx >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y nginx >/dev/null; }
  NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
  [ -n "$NGINX" ] || die "could not install nginx"
fi
# openssl measures the machine's own RSA signing rate (the token target is a rate per core).
if ! command -v openssl >/dev/null 2>&1; then
  log "installing openssl (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi
  $SUDO apt-get install -y openssl >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y openssl >/dev/null; }
  command -v openssl >/dev/null || die "could not install openssl"
fi
for tool in python3 curl; do command -v $tool >/dev/null || die "$tool is required"; done

if [ "$PG_MODE" != no ]; then
  if command -v psql >/dev/null && psql "$PG_URL/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    PG_MODE=yes
  elif [ "$PG_MODE" = yes ]; then
    die "--postgres given but PostgreSQL does not answer at $PG_URL"
  else
    log "PostgreSQL not reachable at $PG_URL: SQLite only"
    PG_MODE=no
  fi
fi

BIN=${BENCH_BIN:-$REPO/target/release/roster}
[ -n "${BENCH_BIN:-}" ] && BUILD=0
if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p roster"
  (cd "$REPO" && cargo build --release -p roster --quiet && cargo build --release -p roster-auth --example hash_rate --quiet) \
    || die "release build failed"
fi
[ -x "$BIN" ] || die "$BIN not found (build it or drop --no-build)"
HASH_RATE=$REPO/target/release/examples/hash_rate
[ -x "$HASH_RATE" ] || die "$HASH_RATE not found (cargo build --release -p roster-auth --example hash_rate, or drop --no-build)"

NPROC=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- CPU accounting
# CPU ticks (user+system) of one process, of PostgreSQL, and busy ticks of the whole machine.
proc_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  # shellcheck disable=SC2086
  stat=${stat##*) }   # fields after "(comm) "; utime and stime are fields 14 and 15 overall
  set -- $stat
  echo $(( ${12} + ${13} ))
}
# PostgreSQL's processes that work for the benchmark: the backends connected to its database and the
# shared background processes (WAL writer, checkpointer, ...), as PostgreSQL lists them; backends of
# other databases (e.g. a test suite running beside) are left out. Empty without a PostgreSQL round.
postgres_pids() {
  [ -n "$PG_DB" ] || return 0
  psql "$PG_URL/postgres" -qAtc "SELECT pid FROM pg_stat_activity WHERE datname = '$PG_DB'
    OR backend_type IN ('checkpointer', 'background writer', 'walwriter', 'autovacuum launcher')" 2>/dev/null || true
}
# Sum of the CPU ticks between two snapshots "pid ticks" (one a line) of the processes present in both.
ticks_delta() {
  awk 'NR == FNR { a[$1] = $2; next } ($1 in a) { d += $2 - a[$1] } END { print d + 0 }' "$1" "$2"
}
snapshot_ticks() { # file pid...
  local out=$1 pid; shift
  : >"$out"
  for pid in "$@"; do [ -r "/proc/$pid/stat" ] && echo "$pid $(proc_ticks "$pid")" >>"$out"; done; return 0
}
# Bytes written to the machine's disks so far (whole disks as /sys/block lists them, loop and RAM devices
# left out; /proc/diskstats counts 512-byte sectors). Writes reach the disk at fsync or at writeback:
# for durable commits, within the test that made them.
disk_written_bytes() {
  local disks
  disks=$(ls /sys/block 2>/dev/null | grep -Ev '^(loop|ram|zram)' | tr '\n' ' ')
  awk -v disks=" $disks" '{ if (index(disks, " " $3 " ")) s += $10 } END { printf "%.0f", s * 512 }' /proc/diskstats
}
machine_busy_ticks() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest < /proc/stat
  echo $(( user + nice + system + irq + softirq + steal ))
}

# CHILD_CPU := CPU seconds (user+system) used so far by this shell's waited-for children (bash `times`,
# second line). `times` must run in this shell, not in a $(...) subshell, which has its own counters.
children_cpu() {
  local line u s
  times >"$TMP/times"
  line=$(tail -n1 "$TMP/times")
  u=${line%% *}; s=${line##* }
  CHILD_CPU=$(awk -v u="$u" -v s="$s" 'function sec(x,  m) { sub(/s$/, "", x); split(x, m, "m"); return m[1]*60 + m[2] }
    BEGIN { printf "%.3f", sec(u) + sec(s) }')
}

# Busy cores of the whole machine over one second.
machine_busy_1s() {
  local a b
  a=$(machine_busy_ticks); sleep 1; b=$(machine_busy_ticks)
  awk -v t=$((b - a)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}'
}

# Other work on the machine (builds, tests) distorts the figures: wait up to QUIET_WAIT seconds for
# the machine to be idle (< 0.25 busy cores) before a test. The tables show what other load remained.
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
wait_quiet() {
  local waited=0 busy
  while :; do
    busy=$(machine_busy_1s)
    awk -v b="$busy" 'BEGIN{exit !(b < 0.25)}' && return 0
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      log "machine still busy (${busy} cores used by other processes) after ${QUIET_WAIT}s: measuring anyway"
      return 0
    fi
    [ "$waited" = 0 ] && log "machine busy (${busy} cores): waiting up to ${QUIET_WAIT}s for it to be idle"
    waited=$((waited + 1))
  done
}

# ---------------------------------------------------------------- server
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_server() { # backend data_dir [database_url]
  local backend=$1 dir=$2 dburl=${3:-}
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  local args=(serve --listen "127.0.0.1:$PORT" --public-url "$BASE" --data-dir "$dir")
  [ -n "$dburl" ] && args+=(--database-url "$dburl")
  ROSTER_MANAGEMENT_RATE_LIMIT=100000000 ROSTER_MANAGEMENT_RATE_BURST=100000000 ROSTER_LOG_LEVEL=warn \
    "$BIN" "${args[@]}" >"$TMP/$backend.stdout" 2>"$TMP/$backend.stderr" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/$backend.stderr" >&2; die "server exited at start"; }
    if curl -fs "$BASE/healthz" >/dev/null 2>&1 \
       && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/$backend.stdout" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "server did not become ready in 30 s"
}

# HASH_LAST := the raw argon2id verification rate with the server's default parameters, on a pool
# like the server's own (one thread per core), for 10 s. The server is idle meanwhile.
hash_ceiling() {
  local json
  log "argon2id verification rate (roster-auth example hash_rate, 10 s)"
  json=$("$HASH_RATE" 10) || die "hash_rate failed"
  HASH_LAST=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["per_second"])' "$json")
  log "argon2id: $HASH_LAST verifications/s"
}

# ---------------------------------------------------------------- one measurement
# expect_status name expected curl-args...: the request the test repeats must answer exactly this status.
expect_status() {
  local name=$1 want=$2; shift 2
  local got
  got=$(curl -s -o "$TMP/check.body" -w '%{http_code}' "$@") || got=000
  [ "$got" = "$want" ] || { head -c 500 "$TMP/check.body" >&2; echo >&2; die "$name: expected HTTP $want, got $got"; }
}

declare -A R   # R[backend.test.field]
INVALID=0
DISTURBED=0

measure() { # backend test script url
  local backend=$1 test=$2 script=$3 url=$4
  log "$backend/$test: warm-up ${WARMUP}s"
  BENCH_TAG="w" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$BENCH_DIR/$script" "$url" >"$TMP/$backend.$test.warmup" 2>&1 \
    || { cat "$TMP/$backend.$test.warmup" >&2; die "wrk failed"; }
  wait_quiet
  local m0 m1 w0 w1 c0 c1 d0 d1 pg_pids
  pg_pids=$(postgres_pids)
  children_cpu; c0=$CHILD_CPU
  # shellcheck disable=SC2086
  snapshot_ticks "$TMP/pg0" $pg_pids
  # shellcheck disable=SC2086
  snapshot_ticks "$TMP/srv0" ${SERVER_PIDS:-$SERVER_PID}
  m0=$(machine_busy_ticks); w0=$(date +%s%N); d0=$(disk_written_bytes)
  log "$backend/$test: measuring ${DURATION}s"
  BENCH_TAG="m" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH_DIR/$script" "$url" \
    >"$TMP/$backend.$test.wrk" 2>&1 || { cat "$TMP/$backend.$test.wrk" >&2; die "wrk failed"; }
  w1=$(date +%s%N); m1=$(machine_busy_ticks); d1=$(disk_written_bytes)
  # shellcheck disable=SC2086
  snapshot_ticks "$TMP/srv1" ${SERVER_PIDS:-$SERVER_PID}
  # shellcheck disable=SC2086
  snapshot_ticks "$TMP/pg1" $pg_pids
  children_cpu; c1=$CHILD_CPU
  local line
  line=$(grep '^BENCH_RESULT ' "$TMP/$backend.$test.wrk") || { cat "$TMP/$backend.$test.wrk" >&2; die "no result line"; }
  local kv
  for kv in ${line#BENCH_RESULT }; do R[$backend.$test.${kv%%=*}]=${kv#*=}; done
  # CPU figures are averaged over the wall time of the whole wrk process (a little longer than its
  # measured duration: start-up, Lua init, closing).
  local secs
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  R[$backend.$test.server_cpu]=$(awk -v t="$(ticks_delta "$TMP/srv0" "$TMP/srv1")" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN{printf "%.2f", t/hz/s}')
  R[$backend.$test.pg_cpu]=$(awk -v t="$(ticks_delta "$TMP/pg0" "$TMP/pg1")" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN{printf "%.2f", t/hz/s}')
  R[$backend.$test.machine_cpu]=$(awk -v t=$((m1 - m0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN{printf "%.2f", t/hz/s}')
  R[$backend.$test.disk_kb]=$(awk -v d=$((d1 - d0)) -v n="${R[$backend.$test.requests]}" \
    'BEGIN{ if (n > 0) printf "%.1f", d / 1024 / n; else print "n/a" }')
  R[$backend.$test.wrk_cpu]=$(awk -v a="$c0" -v b="$c1" -v s="$secs" 'BEGIN{printf "%.2f", (b-a)/s}')
  R[$backend.$test.other_cpu]=$(awk -v m="${R[$backend.$test.machine_cpu]}" -v a="${R[$backend.$test.server_cpu]}" \
    -v b="${R[$backend.$test.pg_cpu]}" -v c="${R[$backend.$test.wrk_cpu]}" 'BEGIN{o=m-a-b-c; if (o<0) o=0; printf "%.2f", o}')
  if awk -v o="${R[$backend.$test.other_cpu]}" 'BEGIN{exit !(o > 0.15)}'; then
    DISTURBED=1; log "$backend/$test: other processes used ${R[$backend.$test.other_cpu]} cores during the test"
  fi
  local k="$backend.$test"
  local errs=$(( ${R[$k.non2xx]} + ${R[$k.connect]} + ${R[$k.read]} + ${R[$k.write]} + ${R[$k.timeout]} ))
  R[$backend.$test.errors]=$errs
  [ "$errs" -eq 0 ] || { INVALID=1; log "$backend/$test: $errs errors (non-2xx or socket) — run INVALID"; }
  log "$backend/$test: ${R[$backend.$test.rps]} req/s, p50 ${R[$backend.$test.p50_ms]} ms, p99 ${R[$backend.$test.p99_ms]} ms, errors $errs, CPU server ${R[$backend.$test.server_cpu]} db ${R[$backend.$test.pg_cpu]} wrk ${R[$backend.$test.wrk_cpu]} other ${R[$backend.$test.other_cpu]}, disk ${R[$backend.$test.disk_kb]} KiB/request"
}

# The two ratios' terms, in turn ROUNDS times each (healthz, GET, PATCH): this machine's speed drifts by
# 10-25% within minutes (a VM's neighbours), which moves neighbouring rounds alike; the median round of
# each test is the one reported, and every round's rate is listed. A PATCH round leaves the users' rows
# as big as it found them (patch_user.lua updates one attribute), so the rounds after it measure the same.
measure_alternating() { # backend
  local backend=$1 i t
  for i in $(seq "$ROUNDS"); do
    measure "$backend" "healthz.r$i" healthz.lua "$BASE/healthz"
    measure "$backend" "get_user.r$i" get_user.lua "$BASE"
    measure "$backend" "patch_user.r$i" patch_user.lua "$BASE"
  done
  for t in healthz get_user patch_user; do adopt_median "$backend" "$t"; done
  # Each ratio pairs a round with the round of its other term just before it; the median pair counts.
  R[$backend.get_ratio_rounds]=$(round_ratios "$backend" get_user healthz)
  R[$backend.get_ratio]=$(median_of "${R[$backend.get_ratio_rounds]}")
  R[$backend.patch_ratio_rounds]=$(round_ratios "$backend" patch_user get_user)
  R[$backend.patch_ratio]=$(median_of "${R[$backend.patch_ratio_rounds]}")
}

round_ratios() { # backend test over: each round's test rate ÷ over rate, space-separated
  local backend=$1 test=$2 over=$3 i
  for i in $(seq "$ROUNDS"); do
    awk -v a="${R[$backend.$test.r$i.rps]}" -v b="${R[$backend.$over.r$i.rps]}" 'BEGIN{printf "%.2f ", a / b}'
  done | sed 's/ $//'
}

median_of() { # "x y z ...": the median of ROUNDS values
  tr ' ' '\n' <<<"$1" | sort -g | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)'
}

adopt_median() { # backend test: the fields of the median round (by rate) become backend.test's
  local backend=$1 test=$2 i k mid
  mid=$(for i in $(seq "$ROUNDS"); do echo "${R[$backend.$test.r$i.rps]} $i"; done | sort -g \
    | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }')
  for k in "${!R[@]}"; do
    case $k in "$backend.$test.r$mid."*) R[$backend.$test.${k#"$backend.$test.r$mid."}]=${R[$k]} ;; esac
  done
  R[$backend.$test.rounds]=$(for i in $(seq "$ROUNDS"); do printf '%.0f ' "${R[$backend.$test.r$i.rps]}"; done | sed 's/ $//')
}

# The reference of DESIGN §9's peer figures: nginx serving, as a static file, the very body GET user
# answers (same size), with one worker per core (its default `auto`) and no access log.
measure_nginx() { # user_id
  local dir="$TMP/nginx" port
  mkdir -p "$dir/www" "$dir/tmp"
  curl -fs -H "Authorization: Bearer $BENCH_ACCESS_TOKEN" "$BASE/t/default/api/v2/users/$1" >"$dir/www/user.json" \
    || die "could not fetch the user for the nginx file"
  port=$(free_port)
  # As root, nginx would run its workers as "nobody", who cannot read this private folder.
  local as_user=""
  [ "$(id -u)" = 0 ] && as_user="user root;"
  cat >"$dir/nginx.conf" <<NGINX_CONF
$as_user
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  types { application/json json; }
  server { listen 127.0.0.1:$port; root $dir/www; }
}
NGINX_CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr" &
  local master=$! pids
  for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$port/user.json" && break; sleep 0.1; done
  expect_status nginx 200 "http://127.0.0.1:$port/user.json"
  pids="$master $(pgrep -P "$master" | tr '\n' ' ')"
  SERVER_PIDS=$pids measure nginx static healthz.lua "http://127.0.0.1:$port/user.json"
  kill "$master" 2>/dev/null || true
  wait "$master" 2>/dev/null || true
  R[nginx.static.bytes]=$(wc -c <"$dir/www/user.json")
}

run_backend() { # backend
  local backend=$1 dburl=""
  local dir="$TMP/$backend-data"
  mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    PG_DB="roster_bench_$$_$(date +%s)"
    psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $PG_DB" >/dev/null
    dburl="$PG_URL/$PG_DB"
  fi
  log "$backend: starting server"
  start_server "$backend" "$dir" "$dburl"
  # DESIGN §9: idle RSS < 40 MB. Idle = started, answered one healthz, nothing else yet.
  sleep 1
  R[$backend.idle_rss_kb]=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
  local creds="$TMP/$backend.stdout" seed_dir="$TMP/$backend-seed"
  mkdir -p "$seed_dir"
  log "$backend: seeding $USERS users"
  R[$backend.seed]=$(timeout 300 python3 "$BENCH_DIR/seed.py" "$BASE" "$creds" "$USERS" "$seed_dir" 16) \
    || die "seeding failed"
  log "$backend: ${R[$backend.seed]}"
  if [ "$backend" = postgres ]; then
    # Planner statistics, as autovacuum keeps them in a live database. Without them, a statement the
    # server prepared while the table was nearly empty keeps a generic plan that may scan the
    # tenant's whole `users_created` index for one id (measured: 2.6k instead of 4.5k GET/s) until
    # autovacuum's first ANALYZE, up to a minute after seeding.
    psql "$dburl" -v ON_ERROR_STOP=1 -qc "ANALYZE" >/dev/null
  fi

  export BENCH_DIR BENCH_IDS="$seed_dir/ids" BENCH_ACCESS_TOKEN
  BENCH_ACCESS_TOKEN=$(cat "$seed_dir/token")
  BENCH_TOKEN_BODY=$(python3 - "$creds" <<'PY'
import json, sys, urllib.parse
c = json.load(open(sys.argv[1]))
print(urllib.parse.urlencode({"grant_type": "client_credentials",
    "client_id": c["management_client"]["client_id"],
    "client_secret": c["management_client"]["client_secret"],
    "audience": c["management_audience"]}))
PY
)
  export BENCH_TOKEN_BODY
  local first_id auth=(-H "Authorization: Bearer $BENCH_ACCESS_TOKEN")
  first_id=$(head -n1 "$seed_dir/ids")

  expect_status healthz 200 "$BASE/healthz"
  expect_status get_user 200 "${auth[@]}" "$BASE/t/default/api/v2/users/$first_id"
  expect_status patch_user 200 -X PATCH "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"user_metadata":{"check":"ok"}}' "$BASE/t/default/api/v2/users/$first_id"
  expect_status token 200 -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "$BENCH_TOKEN_BODY" "$BASE/t/default/oauth/token"

  measure_alternating "$backend"
  if [ "$backend" = sqlite ]; then measure_nginx "$first_id"; fi
  BENCH_PATCH_NEW_KEY=1 measure "$backend" patch_new_key patch_user.lua "$BASE"
  measure "$backend" token token.lua "$BASE/t/default/oauth/token"

  # Password login: BENCH_LOGIN_USERS users in turn, each password verified on every request.
  BENCH_LOGIN_USERS=48  # under the default signup throttle (50 per address per 20 minutes)
  BENCH_LOGIN_BODY=$(python3 - "$creds" <<'PY'
import json, sys, urllib.parse
c = json.load(open(sys.argv[1]))
print(urllib.parse.urlencode({"grant_type": "http://auth0.com/oauth/grant-type/password-realm",
    "client_id": c["default_app"]["client_id"], "client_secret": c["default_app"]["client_secret"],
    "username": "bench-login-0@example.com", "password": "violet harbor umbrella", "realm": c["connection"],
    "scope": "openid"}))
PY
)
  export BENCH_LOGIN_BODY BENCH_LOGIN_USERS
  local app_id
  app_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["default_app"]["client_id"])' "$creds")
  for k in $(seq 0 $((BENCH_LOGIN_USERS - 1))); do
    expect_status signup 200 -X POST -H 'Content-Type: application/json' \
      -d "{\"client_id\":\"$app_id\",\"connection\":\"Username-Password-Authentication\",\"email\":\"bench-login-$k@example.com\",\"password\":\"violet harbor umbrella\"}" \
      "$BASE/t/default/dbconnections/signup"
  done
  expect_status login 200 -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "$BENCH_LOGIN_BODY" "$BASE/t/default/oauth/token"
  # The ceiling the login rate is compared with, measured just before and just after it: this VM's
  # speed drifts by 10-25% within minutes, so a ceiling taken at the start of the run is not the one
  # the login test met (seen: 112.5/s at the start, 98.5/s ten minutes later).
  wait_quiet
  hash_ceiling; R[$backend.hash_before]=$HASH_LAST
  measure "$backend" login login.lua "$BASE/t/default/oauth/token"
  hash_ceiling; R[$backend.hash_after]=$HASH_LAST
  R[$backend.hash_rate]=$(awk -v a="${R[$backend.hash_before]}" -v b="${R[$backend.hash_after]}" 'BEGIN{printf "%.1f", (a + b) / 2}')

  # A refused attempt: the right password for a pair brute-force protection blocked (issue 6).
  BENCH_REFUSED_BODY=$(python3 - "$creds" <<'PY'
import json, sys, urllib.parse
c = json.load(open(sys.argv[1]))
print(urllib.parse.urlencode({"grant_type": "http://auth0.com/oauth/grant-type/password-realm",
    "client_id": c["default_app"]["client_id"], "client_secret": c["default_app"]["client_secret"],
    "username": "bench-login-0@example.com", "password": "violet harbor umbrella", "realm": c["connection"],
    "scope": "openid"}))
PY
)
  export BENCH_REFUSED_BODY
  local wrong=${BENCH_REFUSED_BODY/violet+harbor+umbrella/a+wrong+guess}
  for _ in $(seq 1 10); do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "$wrong" "$BASE/t/default/oauth/token"
  done
  expect_status refused 429 -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data "$BENCH_REFUSED_BODY" \
    "$BASE/t/default/oauth/token"
  measure "$backend" refused refused.lua "$BASE/t/default/oauth/token"

  # The PATCHes were real: a user touched by the test carries the keys it set.
  curl -fs "${auth[@]}" "$BASE/t/default/api/v2/users/$first_id" >"$TMP/after.json"
  R[$backend.metadata_keys]=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["user_metadata"]))' "$TMP/after.json")
  [ "${R[$backend.metadata_keys]}" -gt 1 ] || die "$backend: PATCH left no metadata on $first_id"

  R[$backend.rss_kb]=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
  if grep -qiE 'error|panic' "$TMP/$backend.stderr"; then
    log "$backend: server logged errors:"; grep -iE 'error|panic' "$TMP/$backend.stderr" | head -5 >&2
    R[$backend.server_errors]=$(grep -ciE 'error|panic' "$TMP/$backend.stderr")
  else
    R[$backend.server_errors]=0
  fi
  stop_server
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
    PG_DB=""
  fi
}

# ---------------------------------------------------------------- run
# What one core of this machine signs with RSA-2048 alone (OpenSSL, the token's signature): the token
# target is a rate per core, so this says how much of it the machine itself allows.
wait_quiet
log "RSA-2048 signing rate of one core (openssl speed, 3 s)"
RSA_SIGN=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1)}')
[ -n "$RSA_SIGN" ] || die "openssl speed rsa2048 gave no rate"
log "RSA-2048: $RSA_SIGN signatures/s on one core"

# The disk's ceiling for what a durable commit does: 4 KiB pages appended to a file in the folder the
# SQLite round used, fdatasync after every 40 (a group commit's WAL frames), for 3 s.
DISK_MBS=$(python3 - "$TMP" <<'DISK_PY'
import os, sys, time
path = os.path.join(sys.argv[1], "disk-ceiling")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
page, n, t0 = b"\x5a" * 4096, 0, time.monotonic()
while time.monotonic() - t0 < 3:
    for _ in range(40):
        os.write(fd, page)
    os.fdatasync(fd)
    n += 1
print(f"{n * 40 * 4096 / (time.monotonic() - t0) / 1e6:.0f}")
os.close(fd)
os.remove(path)
DISK_PY
)
log "disk: $DISK_MBS MB/s of synced 4 KiB appends"
START=$(date +%s)
BACKENDS=(sqlite)
[ "$PG_MODE" = yes ] && BACKENDS+=(postgres)
for b in "${BACKENDS[@]}"; do run_backend "$b"; done
ELAPSED=$(( $(date +%s) - START ))

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN{ print (v >= t) ? "met" : "**not met**" }'; }

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
  COMMIT="$COMMIT (with uncommitted changes under crates/ or Cargo.*)"
fi
WRK_VERSION=$(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}' || true)
PG_VERSION=""
[ "$PG_MODE" = yes ] && PG_VERSION=$(psql "$PG_URL/postgres" -qAtc 'show server_version' 2>/dev/null || true)

mkdir -p "$(dirname "$OUTPUT")"
{
cat <<EOF
# Benchmarks

<!-- Generated by bench/run.sh — do not edit by hand; run the script again instead. -->

How these figures are made (DESIGN.md §9 states the targets as ratios within one run):

- \`bench/run.sh\` builds the release binary, starts \`roster serve\` on 127.0.0.1 with an empty database
  (SQLite in a temporary folder, then — when PostgreSQL answers — a fresh PostgreSQL database), seeds
  users through the Management API (\`bench/seed.py\`), runs \`ANALYZE\` on PostgreSQL (the planner
  statistics autovacuum keeps in a live database), and drives each endpoint with \`wrk\` for a fixed
  time after a discarded warm-up, always with the same threads and connections. \`GET /healthz\`,
  \`GET\` user and \`PATCH\` user, the terms of the GET and PATCH ratios, run in turn $ROUNDS times each:
  this machine's speed drifts by 10–25% within minutes, which moves neighbouring rounds alike; the
  tables show each test's median round; GET ÷ healthz is the median of the rounds' own ratios (each GET
  round over the healthz round just before it), PATCH ÷ GET likewise (each PATCH round over the GET
  round just before it), and the ratios table lists every round. (Up to session 9 one PATCH round
  was compared with the median GET round: the ratio moved 0.24 → 0.28 between two runs with no change
  to the PATCH path.)
- **What GET measures on SQLite**: a node keeps the users it read by id (\`user_cache_size\`, default
  10,000; exact for this node's writes, see docs/DECISIONS.md), so after the warm-up most of the GETs
  of 3,000 rotating users are answered from memory (a copy lives up to 30 s; writes end it at once).
  PostgreSQL nodes keep no copies: every GET there is a query.
- **wrk runs on the same cores as the server** (and, for the PostgreSQL round, as PostgreSQL): every
  absolute rate below is lower than the server alone would reach, which is why the targets are ratios
  measured in the same run. The CPU columns are cores used during the measured interval: the server
  process, PostgreSQL's processes, wrk, and "other" (the machine's busy time minus those three: the
  kernel's own work not charged to a process, and anything else running). Before each test the script
  waits (up to 30 s) for the machine to be idle; a test during which other processes used more than
  0.15 cores is flagged as disturbed. The disk column divides the bytes written to the machine's
  disks during the measured interval (\`/proc/diskstats\`, whole disks) by the requests answered:
  a durable write reaches the disk at its commit's fsync, and SQLite's checkpoints copy its pages
  from the WAL into the database file.
- Tests: \`GET /healthz\` (baseline); \`GET /api/v2/users/{id}\` with a valid Management API token, rotating
  over every seeded user (\`bench/get_user.lua\`); \`PATCH\` of one \`user_metadata\` attribute (the key of
  the wrk thread) to a value never sent before on each request, walking over every user, each a durable
  commit (SQLite \`synchronous=full\`, the default; PostgreSQL's defaults) (\`bench/patch_user.lua\`),
  and, for information, the PATCH test up to session 9, which adds a key never sent before on every
  request, so that each user's metadata grows through the test (~45 keys after 12 s) and every PATCH
  re-reads and re-writes more of it (\`bench/patch_user.lua\` with \`BENCH_PATCH_NEW_KEY=1\`, once, after the rounds); client-credentials
  token issuance, \`POST /oauth/token\` with a form body, RS256 (\`bench/token.lua\`); password-realm
  login of 48 users in turn (argon2id with the default parameters, brute-force counter, profile update,
  RS256 tokens) (\`bench/login.lua\`);
  the same login after ten wrong passwords from the same address blocked the pair: every answer is
  \`429 too_many_attempts\`, computed without a hash (\`bench/refused.lua\`: curl checks the 429 first; during
  the run any answer below 400 counts as an error; no per-response Lua, which would cost wrk more than
  the refusal costs the server),
  compared with the raw argon2id verification rate of the same hashing pool measured alone just before and just after the login test;
  and, as the reference of DESIGN §9's peer figures (Rauthy answers GET user at 0.44 × nginx's
  static-file rate), nginx (Debian package, one worker per core, no access log) serving the body of
  \`GET /users/{id}\` for one seeded user as a static file of the same size (SQLite round only).
- Server settings: defaults (e.g. 8 database connections), except the Management API rate limit raised
  to 100,000,000/s (\`ROSTER_MANAGEMENT_RATE_LIMIT\`, \`ROSTER_MANAGEMENT_RATE_BURST\`) and
  \`ROSTER_LOG_LEVEL=warn\`.
- Errors: wrk's count of responses with status ≥ 400 plus socket errors (connect, read, write, timeout);
  before each test a single request is checked with curl to answer exactly 200. **A test with any
  error makes the run invalid.** After the PATCH test a touched user is read back to check that the
  metadata was written.
- Tokens per second per core divides the token rate by the $NPROC cores the server may use — cores it
  shares with wrk, so this understates the per-core rate of a server with the machine to itself.

## Run

| | |
| --- | --- |
| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |
| machine | $NPROC cores (\`nproc\`), $CPU_MODEL, $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) memory |
| git commit | $COMMIT |
| command | \`$COMMAND\` |
| wrk | $WRK_VERSION, \`-t$THREADS -c$CONNS\`, ${WARMUP} s warm-up then ${DURATION} s measured per test |
| users seeded | $USERS per backend |
| PostgreSQL | ${PG_VERSION:-not run} |
| total time | ${ELAPSED} s (without the build) |
| disk ceiling | $DISK_MBS MB/s of 4 KiB pages appended and \`fdatasync\`ed every 40 pages (a group commit's WAL frames), in the benchmark's temporary folder |
| RSA-2048 ceiling | $RSA_SIGN signatures/s on one core (\`openssl speed -seconds 3 rsa2048\`) |
| argon2id ceiling | verifications/s with the default parameters (m=19456 KiB, t=2, p=1) on a pool of $NPROC threads like the server's (\`cargo run --release -p roster-auth --example hash_rate -- 10\`), measured just before and just after each login test; the login ratio uses their mean (figures in the ratios tables) |
| validity | $([ "$INVALID" = 0 ] && echo "valid: no errors in any test" || echo "**INVALID: errors occurred, see the tables**") |
| other load | $([ "$DISTURBED" = 0 ] && echo "none noticed (other CPU ≤ 0.15 cores in every test)" || echo "**disturbed: other processes used CPU during some tests (\"other\" column); figures are less reliable**") |
EOF

for b in "${BACKENDS[@]}"; do
  title=SQLite; [ "$b" = postgres ] && title=PostgreSQL
  echo
  echo "## $title"
  echo
  echo "Seeding: ${R[$b.seed]}. Server RSS idle after start: $(( ${R[$b.idle_rss_kb]} / 1024 )) MiB; after the run: $(( ${R[$b.rss_kb]} / 1024 )) MiB (it includes each hashing thread's argon2 memory, 19 MiB, kept for reuse from the first hash on). Error lines in the server log: ${R[$b.server_errors]}."
  echo
  if [ "$b" = postgres ]; then
    echo "| test | requests/s | p50 ms | p99 ms | non-2xx | socket errors | CPU server | CPU PostgreSQL | CPU wrk | CPU other | disk KiB written per request |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  else
    echo "| test | requests/s | p50 ms | p99 ms | non-2xx | socket errors | CPU server | CPU wrk | CPU other | disk KiB written per request |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  fi
  for t in healthz get_user static patch_user patch_new_key token login refused; do
    [ "$t" = static ] && [ "$b" != sqlite ] && continue
    case $t in
      static) label="\`GET\` of the same user's JSON as a static file from nginx (${R[nginx.static.bytes]} bytes; reference)" ;;
      healthz) label='`GET /healthz`' ;;
      get_user) label='`GET /api/v2/users/{id}`' ;;
      patch_user) label='`PATCH /api/v2/users/{id}` (one user_metadata attribute)' ;;
      patch_new_key) label='for information: `PATCH /api/v2/users/{id}` adding a new user_metadata key every time (the PATCH test up to session 9)' ;;
      token) label='`POST /oauth/token` (client credentials)' ;;
      login) label='`POST /oauth/token` (password-realm login)' ;;
      refused) label='`POST /oauth/token` refused by brute-force protection (429)' ;;
    esac
    k=$b.$t; [ "$t" = static ] && k=nginx.static
    sock=$(( ${R[$k.connect]} + ${R[$k.read]} + ${R[$k.write]} + ${R[$k.timeout]} ))
    row="| $label | $(printf '%.0f' "${R[$k.rps]}") | ${R[$k.p50_ms]} | ${R[$k.p99_ms]} | ${R[$k.non2xx]} | $sock | ${R[$k.server_cpu]}"
    [ "$b" = postgres ] && row="$row | ${R[$k.pg_cpu]}"
    echo "$row | ${R[$k.wrk_cpu]} | ${R[$k.other_cpu]} | ${R[$k.disk_kb]} |"
  done
  g_h=${R[$b.get_ratio]}
  p_g=${R[$b.patch_ratio]}
  tpc=$(awk -v r="${R[$b.token.rps]}" -v n="$NPROC" 'BEGIN{printf "%.0f", r/n}')
  tps=$(awk -v r="${R[$b.token.rps]}" -v c="${R[$b.token.server_cpu]}" 'BEGIN{ if (c > 0) printf "%.0f", r/c; else print "n/a" }')
  echo
  echo "| ratio (§9) | value | target | |"
  echo "| --- | ---: | ---: | --- |"
  echo "| GET user ÷ healthz | $g_h | ≥ 0.60 | $(verdict "$g_h" 0.6) |"
  echo "| PATCH ÷ GET user | $p_g | ≥ 0.30 | $(verdict "$p_g" 0.3) |"
  echo "| tokens/s per core (rate ÷ $NPROC cores, wrk on the same cores) | $tpc | ≥ 1500 | $(verdict "$tpc" 1500) |"
  echo "| for information: tokens/s per core ÷ RSA-2048 signatures/s of one core alone | $(ratio "$tpc" "$RSA_SIGN") | | |"
  l_h=$(ratio "${R[$b.login.rps]}" "${R[$b.hash_rate]}")
  echo "| password logins ÷ raw argon2id verifications (issue 3) | $l_h | ≥ 0.85 | $(verdict "$l_h" 0.85) |"
  echo "| for information: argon2id verifications/s just before / just after the login test | ${R[$b.hash_before]} / ${R[$b.hash_after]} | | |"
  r_h=$(ratio "${R[$b.refused.rps]}" "${R[$b.healthz.rps]}")
  echo "| refused attempts (blocked pair, no hash) ÷ \`GET /healthz\` (issue 6) | $r_h | ≥ 0.5 | $(verdict "$r_h" 0.5) |"
  idle_mb=$(awk -v k="${R[$b.idle_rss_kb]}" 'BEGIN{printf "%.1f", k * 1024 / 1e6}')
  echo "| server RSS when idle after start, MB (DESIGN §9) | $idle_mb | < 40 | $(awk -v v="$idle_mb" 'BEGIN{ print (v < 40) ? "met" : "**not met**" }') |"
  if [ "$b" = sqlite ]; then
    echo "| for information: GET user ÷ nginx serving the same JSON as a static file (DESIGN §9: Rauthy reaches 0.44) | $(ratio "${R[$b.get_user.rps]}" "${R[nginx.static.rps]}") | | |"
    echo "| for information: \`GET /healthz\` ÷ nginx static file | $(ratio "${R[$b.healthz.rps]}" "${R[nginx.static.rps]}") | | |"
  fi
  echo "| for information: each round's GET ÷ healthz (the ratio above is their median) and requests/s, \`GET /healthz\` / \`GET\` user (the tables show each test's median round) | ${R[$b.get_ratio_rounds]}; ${R[$b.healthz.rounds]} / ${R[$b.get_user.rounds]} | | |"
  echo "| for information: each round's PATCH ÷ GET (the ratio above is their median) and PATCH requests/s | ${R[$b.patch_ratio_rounds]}; ${R[$b.patch_user.rounds]} | | |"
  echo "| for information: PATCH adding a new key every time ÷ the median GET round | $(ratio "${R[$b.patch_new_key.rps]}" "${R[$b.get_user.rps]}") | | |"
  echo "| for information: tokens per second of server CPU time | $tps | | |"
  echo "| for information: PATCH's disk writes (MB/s) ÷ the disk ceiling | $(awk -v k="${R[$b.patch_user.disk_kb]}" -v r="${R[$b.patch_user.rps]}" -v c="$DISK_MBS" 'BEGIN{ if (c > 0) printf "%.2f", k * 1024 * r / 1e6 / c; else print "n/a" }') | | |"
  echo "| for information: server CPU µs per request, healthz / GET / PATCH / token | $(for t in healthz get_user patch_user token; do awk -v c="${R[$b.$t.server_cpu]}" -v r="${R[$b.$t.rps]}" 'BEGIN{printf "%.0f ", c*1e6/r}'; done | sed 's/ $//; s/ / \/ /g') | | |"
  if [ "$INVALID" != 0 ]; then
    echo
    echo "**This run had errors: its figures are not valid.**"
  fi
done
} >"$OUTPUT"

log "wrote ${OUTPUT#$REPO/} (${ELAPSED} s)"
[ "$INVALID" = 0 ] || die "errors occurred: the benchmark is invalid"
