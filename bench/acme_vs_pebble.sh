#!/usr/bin/env bash
# ACME issuance under load: orders per second, latency and server CPU per
# order at 1, 16 and 64 parallel clients, with validation skipped, measured
# by one load client (bench/acme_load.rs) for every server, so that the rows
# differ by the server alone. Each row gets a server started afresh (a
# fresh depot, a fresh database), on loopback, killed afterwards: a server
# that hung in one row must not spoil the next. The rows of one client count
# are measured one after another for every server, so that each ratio
# compares figures from the same minutes.
#
#   bash bench/acme_vs_pebble.sh
#   RUNS=5 PARALLEL=16 bash bench/acme_vs_pebble.sh    # count Pebble's hangs
#   SERVERS="sqlite pg1 pg1-async" bash bench/acme_vs_pebble.sh
#
# Servers (SERVERS, default "pebble sqlite pg1 pg2"):
#   pebble     Let's Encrypt's test server, everything in memory
#   sqlite     certforge serve, state in the depot's acme.sqlite
#   pg1        certforge serve --database, one instance, on a PostgreSQL
#              cluster the script starts (default durability: fsync on,
#              synchronous_commit on), a fresh database per row
#   pg2        two such instances on one database behind haproxy (TCP mode)
#   pg1-async  pg1 with synchronous_commit=off for its database: a commit
#              returns before its WAL is flushed (a crash loses the last
#              ~0.6 s of orders); for comparison only, never the default
#   sqlite-tmpfs  sqlite with the depot in /dev/shm: what the disk costs;
#              for comparison only (nothing there survives a reboot)
#
# Settings (environment):
#   PARALLEL  parallel clients, one row each          (default "1 16 64")
#   ORDERS_1  orders per client when it is alone       (default 50)
#   ORDERS_N  orders per client when there are several (default 10)
#   RUNS      runs per server and client count         (default 1)
#   TIMEOUT   seconds one row may take before it is a hang (default 60)
#   SERVE_FLAGS  more flags for every certforge instance, to measure what
#             one costs, e.g. "--rate-orders-per-account 0
#             --rate-orders-per-address 0" (default none)
#   TMPDIR    where the depots and the cluster go (mktemp's default, /tmp);
#             the script prints what creating a file there costs
#   PEBBLE_PORT, PEBBLE_MGMT_PORT  Pebble's loopback ports (14000, 15000)
#   CERTFORGE_PORT  the first certforge instance's port (14100; the second
#             uses the next one), LB_PORT haproxy's (14200), PG_PORT the
#             cluster's (15432)
#
# Writes bench/results/acme_fleet.json (every row) and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-"pebble sqlite pg1 pg2"}
PARALLEL=${PARALLEL:-"1 16 64"}
ORDERS_1=${ORDERS_1:-50}
ORDERS_N=${ORDERS_N:-10}
RUNS=${RUNS:-1}
# The slowest row expected (50 sequential orders from Pebble at ~35/s)
# takes about 1.5 s: a row still running after 60 s has hung.
TIMEOUT=${TIMEOUT:-60}
read -r -a serve_flags <<<"${SERVE_FLAGS:-}"
PEBBLE_PORT=${PEBBLE_PORT:-14000}
CERTFORGE_PORT=${CERTFORGE_PORT:-14100}
LB_PORT=${LB_PORT:-14200}
PG_PORT=${PG_PORT:-15432}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15000}

has() { [[ " $SERVERS " == *" $1 "* ]]; }
uses_pg=
[[ " $SERVERS " == *" pg"* ]] && uses_pg=1
need=()
has pebble && ! command -v pebble >/dev/null && need+=(pebble)
has pg2 && ! [ -x /usr/sbin/haproxy ] && need+=(haproxy)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ -n "$uses_pg" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The processes started for the row being measured (certforge instances or
# Pebble, and haproxy); the cluster is stopped apart, at the end.
server_pids=()

# Stops the processes of the last row: SIGTERM, then SIGKILL if one is still
# there after 5 s (a deadlocked server may not get as far as exiting).
stop_servers() {
  local pid
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  server_pids=()
}

# Waits (10 s at most) until the directory at $1 answers over HTTPS trusted
# by the root $2, while every process of the row is alive; $3 is the log to
# show if not.
wait_directory() {
  local until=$((SECONDS + 10)) pid
  while [ "$SECONDS" -lt "$until" ]; do
    curl -sf --max-time 1 --cacert "$2" -o /dev/null "$1" && return 0
    for pid in "${server_pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "a server exited before answering; its log:" >&2 && tail -20 "$3" >&2
        return 1
      fi
    done
    sleep 0.1
  done
  echo "no answer from $1 in 10 s; the server's log:" >&2 && tail -20 "$3" >&2
  return 1
}

# Pebble's API is HTTPS only: a CA made here signs its certificate for
# 127.0.0.1, and the load client trusts that CA (ROOT_PEM). Debian's pebble
# package ships no test certificates.
make_pebble_tls() {
  local d=$work/pebble-tls
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=acme bench API root" -keyout "$d/ca.key" -out "$d/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/key.pem" -out "$d/api.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" >"$d/ext"
  openssl x509 -req -in "$d/api.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/cert.pem" 2>/dev/null
  # httpPort and tlsPort are where Pebble's validator would connect; with
  # validation skipped nothing listens there.
  jq -n --arg listen "127.0.0.1:$PEBBLE_PORT" --arg mgmt "127.0.0.1:$PEBBLE_MGMT_PORT" \
    --arg cert "$d/cert.pem" --arg key "$d/key.pem" \
    '{pebble: {listenAddress: $listen, managementListenAddress: $mgmt, certificate: $cert,
      privateKey: $key, httpPort: 5002, tlsPort: 5001, ocspResponderURL: "",
      externalAccountBindingRequired: false}}' >"$work/pebble.json"
}

# What the next row measures, set by the start_* functions: the directory
# URL, the root its HTTPS certificate chains to, and the processes other
# than the ACME servers that serve the orders (the cluster, haproxy).
directory= root= db_pids=()

# Starts Pebble, validation skipped: ALWAYS_VALID passes every challenge,
# NOSLEEP drops its random 0-5 s delay before validating, NONCEREJECT=0
# stops it rejecting 5% of good nonces (a retry the client would pay for),
# and AUTHZREUSE=0 states that no authorization is reused: none could be
# anyway, every order being for new names, but the figures should not hang
# on that. (Pebble still searches its authorizations on every newOrder.)
start_pebble() {
  PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$work/pebble.json" >"$work/pebble.log" 2>&1 &
  server_pids=($!) db_pids=()
  directory=https://127.0.0.1:$PEBBLE_PORT/dir root=$work/pebble-tls/ca.pem
  wait_directory "$directory" "$root" "$work/pebble.log"
}

# A fresh depot CA in $depots/depot-$1.
init_depot() {
  "$CERTFORGE" --depot-path "$depots/depot-$1" init --cn "Bench CA" --passphrase "" >/dev/null 2>&1
}

# Starts certforge serve instance $2 (0 or 1) of row $1 on its depot
# $depots/depot-$1-$2, with the further flags $3…, validation skipped as for
# Pebble. Its log (one JSON line per request) goes to a file: writing it is
# part of the server's cost, as Pebble's log is part of Pebble's.
start_instance() {
  local row=$1 i=$2
  shift 2
  "$CERTFORGE" --depot-path "$depots/depot-$row-$i" serve --CA "Bench CA" \
    --listen "127.0.0.1:$((CERTFORGE_PORT + i))" --skip-validation --log-format json "${serve_flags[@]}" "$@" \
    >"$work/certforge-$row-$i.log" 2>&1 &
  server_pids+=($!)
}

# certforge with its state in the depot's acme.sqlite (no --database); $2
# "tmpfs" puts the depot in /dev/shm.
start_sqlite() {
  if [ "${2:-}" = tmpfs ]; then depots=$shm; fi
  init_depot "$1-0"
  server_pids=() db_pids=()
  start_instance "$1" 0
  directory=https://127.0.0.1:$CERTFORGE_PORT/directory root=$depots/depot-$1-0/Bench_CA.crt
  wait_directory "$directory" "$root" "$work/certforge-$1-0.log"
}

# The PostgreSQL cluster of every pg row: started once, with the server's
# default durability (fsync and synchronous_commit on); each row gets a
# database of its own. initdb and postgres refuse to run as root.
pg_bin= pg_dir= postmaster=
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
start_cluster() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  # Not under $work (0700, root's): the postgres user must reach it.
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/certforge-bench-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pg_dir"; fi
  as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log" >&2 && return 1; }
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -w -t 30 -l "$pg_dir/log" \
    -o "-k $pg_dir -p $PG_PORT -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null ||
    { tail -20 "$pg_dir/log" >&2 && return 1; }
  postmaster=$(head -1 "$pg_dir/data/postmaster.pid")
}
stop_cluster() {
  [ -n "$pg_dir" ] || return 0
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -t 10 stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
  pg_dir=
}
psql_do() {
  "$pg_bin/psql" -qAt -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1" >/dev/null
}

# One certforge instance on a fresh database; $2 "async" sets
# synchronous_commit=off for that database.
start_pg1() {
  local db=bench_$1
  psql_do "CREATE DATABASE $db"
  if [ "${2:-}" = async ]; then psql_do "ALTER DATABASE $db SET synchronous_commit = off"; fi
  init_depot "$1-0"
  server_pids=() db_pids=("$postmaster")
  start_instance "$1" 0 --database "postgres://postgres@127.0.0.1:$PG_PORT/$db"
  directory=https://127.0.0.1:$CERTFORGE_PORT/directory root=$depots/depot-$1-0/Bench_CA.crt
  wait_directory "$directory" "$root" "$work/certforge-$1-0.log"
}

# Two certforge instances on one fresh database behind haproxy in TCP mode
# (TLS ends at each instance), each with its own depot holding the same CA,
# both answering for the balancer's URL.
start_pg2() {
  local db=bench_$1 url i
  psql_do "CREATE DATABASE $db"
  url=postgres://postgres@127.0.0.1:$PG_PORT/$db
  init_depot "$1-0"
  mkdir -p "$depots/depot-$1-1"
  cp -p "$depots/depot-$1-0"/Bench_CA.* "$depots/depot-$1-1/"
  printf '%s\n' "global" "  maxconn 4096" "defaults" "  mode tcp" "  timeout connect 2s" \
    "  timeout client 60s" "  timeout server 60s" "frontend acme" "  bind 127.0.0.1:$LB_PORT" \
    "  default_backend certforge" "backend certforge" "  balance roundrobin" \
    "  server a 127.0.0.1:$CERTFORGE_PORT check inter 2s" \
    "  server b 127.0.0.1:$((CERTFORGE_PORT + 1)) check inter 2s" >"$work/haproxy-$1.cfg"
  server_pids=()
  for i in 0 1; do
    start_instance "$1" "$i" --database "$url" --external-url "https://127.0.0.1:$LB_PORT"
  done
  root=$depots/depot-$1-0/Bench_CA.crt
  for i in 0 1; do
    wait_directory "https://127.0.0.1:$((CERTFORGE_PORT + i))/directory" "$root" "$work/certforge-$1-$i.log"
  done
  /usr/sbin/haproxy -db -f "$work/haproxy-$1.cfg" >"$work/haproxy-$1.log" 2>&1 &
  server_pids+=($!)
  db_pids=("$postmaster" $!)
  directory=https://127.0.0.1:$LB_PORT/directory
  wait_directory "$directory" "$root" "$work/haproxy-$1.log"
}

# start SERVER ROW: the server of that name, afresh, for row number ROW.
start() {
  case $1 in
    pebble) start_pebble ;;
    sqlite) start_sqlite "$2" ;;
    sqlite-tmpfs) start_sqlite "$2" tmpfs ;;
    pg1) start_pg1 "$2" ;;
    pg1-async) start_pg1 "$2" async ;;
    pg2) start_pg2 "$2" ;;
    *) echo "unknown server $1 in SERVERS (pebble, sqlite, pg1, pg2, pg1-async, sqlite-tmpfs)" >&2 && return 1 ;;
  esac
}

# run_row NAME PARALLEL: one row against the server just started, appended
# to $results.
run_row() {
  local name=$1 parallel=$2 orders=$ORDERS_N line status=0 pid args=()
  [ "$parallel" -eq 1 ] && orders=$ORDERS_1
  for pid in "${server_pids[@]}"; do
    # haproxy is in both lists: it is counted with the database.
    [[ " ${db_pids[*]} " == *" $pid "* ]] || args+=(--server-pid "$pid")
  done
  for pid in "${db_pids[@]}"; do args+=(--db-pid "$pid"); done
  line=$("$LOAD" --directory "$directory" --root "$root" --parallel "$parallel" --orders "$orders" \
    "${args[@]}" --timeout "$TIMEOUT" --json) || status=$?
  # Status 1 (some orders failed) and 2 (hang) still print the JSON line.
  if [ -z "$line" ]; then
    line=$(jq -nc --argjson p "$parallel" --argjson st "$status" '{parallel: $p, error: "no report, status \($st)"}')
  fi
  jq -c --arg s "$name" '{server: $s} + .' <<<"$line" >>"$results"
}

work=$(mktemp -d)
# What creating one file costs where the depots are (certforge writes one
# per certificate): on an ext4 whose block group near $TMPDIR is crowded it
# is 20 times what it is elsewhere on the same disk, and the sqlite rows
# measure that, not certforge. Printed, and kept in the results.
file_create_us() {
  local d=$work/probe i t0 t1
  mkdir "$d"
  t0=$(date +%s%N)
  for i in $(seq 300); do : >"$d/f$i"; done
  t1=$(date +%s%N)
  rm -rf "$d"
  echo $(((t1 - t0) / 300 / 1000))
}
create_us=$(file_create_us)
echo "creating a file in $work (TMPDIR) takes $create_us µs" >&2
shm=/dev/shm/certforge-bench-$$
# Whatever happens, no server or cluster outlives the script.
trap 'stop_servers; stop_cluster; rm -rf "$work" "$shm"' EXIT

# LOAD and CERTFORGE, built once.
source bench/acme_binaries.sh
results=$work/results.jsonl
: >"$results"

if has pebble; then make_pebble_tls; fi
if [ -n "$uses_pg" ]; then start_cluster; fi
# Row by row: every server at one client count before the next count, so
# that the ratios at one count come from the same minutes.
row=0
for parallel in $PARALLEL; do
  for _ in $(seq "$RUNS"); do
    for server in $SERVERS; do
      row=$((row + 1)) depots=$work
      if start "$server" "$row"; then
        run_row "$server" "$parallel"
      else
        jq -nc --arg s "$server" --argjson p "$parallel" '{server: $s, parallel: $p, error: "did not start"}' >>"$results"
      fi
      stop_servers
    done
  done
done

mkdir -p bench/results
jq -s --arg servers "$SERVERS" --argjson runs "$RUNS" --argjson create "$create_us" \
  '{made: (now | todate), servers: $servers, runs: $runs, file_create_us: $create, rows: .}' "$results" >bench/results/acme_fleet.json

# "server+db" adds the cluster and haproxy to the pg rows; Pebble's and
# SQLite's store is inside the server, so there it is the server's figure.
echo "| server | clients | orders | failed | orders/s | p50 ms | p99 ms | server CPU ms/order | server+db CPU ms/order | client CPU ms/order | requests/order | note |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
jq -r '
  def f(d): if . == null then "-" else (. * pow(10; d) | round) / pow(10; d) | tostring end;
  if .error then [.server, .parallel, "-", "-", "-", "-", "-", "-", "-", "-", "-", .error]
  elif .hang then [.server, .parallel, .orders, "-", "-", "-", "-", "-", "-", "-", "-",
    "HANG: \(.finished) finished in \(.timeout_s) s"]
  else [.server, .parallel, .orders, .failures, (.orders_per_s | f(1)), (.p50_ms | f(1)), (.p99_ms | f(1)),
    (.server_cpu_ms_per_order | f(2)), (.server_db_cpu_ms_per_order // .server_cpu_ms_per_order | f(2)), (.client_cpu_ms_per_order | f(2)),
    (.requests_per_order | f(2)), (.errors[0] // "")]
  end | map(tostring) | "| " + join(" | ") + " |"' "$results"

# The targets, from the medians of the runs at 16 clients.
echo
jq -rs '
  def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def rate(s): [.[] | select(.server == s and .parallel == 16 and .hang == false and .error == null)
    | .orders_per_s] | median;
  def ratio(a; b): if a == null or b == null then "-" else ((a / b * 100 | round) / 100 | tostring) + "×" end;
  rate("pebble") as $pebble | rate("sqlite") as $sqlite | rate("pg1") as $pg1 | rate("pg2") as $pg2 |
  "at 16 clients: sqlite/pebble \(ratio($sqlite; $pebble)) (target ≥ 2), pg1/sqlite \(ratio($pg1; $sqlite)) (≥ 0.7), " +
  "pg1/pebble \(ratio($pg1; $pebble)) (≥ 1.5), pg2/pebble \(ratio($pg2; $pebble))"' "$results"
