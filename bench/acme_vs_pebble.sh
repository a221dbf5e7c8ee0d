#!/usr/bin/env bash
# ACME issuance under load: orders per second, latency and server CPU per
# order at 1, 16 and 64 parallel clients, with validation skipped, measured
# by one load client (bench/acme_load.rs) for every server, so that the rows
# differ by the server alone. Each measured server is started afresh for
# each run, on loopback, and killed afterwards: a server that hung in one
# run must not spoil the next.
#
#   bash bench/acme_vs_pebble.sh
#   RUNS=5 PARALLEL=16 bash bench/acme_vs_pebble.sh    # count Pebble's hangs
#
# Settings (environment):
#   PARALLEL  parallel clients, one row each          (default "1 16 64")
#   ORDERS_1  orders per client when it is alone       (default 50)
#   ORDERS_N  orders per client when there are several (default 10)
#   RUNS      runs per server, each on a fresh server  (default 1)
#   TIMEOUT   seconds one row may take before it is a hang (default 60)
#   PEBBLE_PORT, PEBBLE_MGMT_PORT  Pebble's loopback ports (14000, 15000)
set -euo pipefail
cd "$(dirname "$0")/.."

PARALLEL=${PARALLEL:-"1 16 64"}
ORDERS_1=${ORDERS_1:-50}
ORDERS_N=${ORDERS_N:-10}
RUNS=${RUNS:-1}
# The slowest row expected (50 sequential orders from Pebble at ~35/s)
# takes about 1.5 s: a row still running after 60 s has hung.
TIMEOUT=${TIMEOUT:-60}
PEBBLE_PORT=${PEBBLE_PORT:-14000}
CERTFORGE_PORT=${CERTFORGE_PORT:-14100}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15000}

need=()
command -v pebble >/dev/null || need+=(pebble)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Stops the server started last: SIGTERM, then SIGKILL if it is still there
# after 5 s (a deadlocked server may not get as far as exiting).
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# Waits (10 s at most) until the directory at $1 answers over HTTPS trusted
# by the root $2, while the server started last is alive; $3 is its log.
wait_directory() {
  local until=$((SECONDS + 10))
  while [ "$SECONDS" -lt "$until" ]; do
    curl -sf --max-time 1 --cacert "$2" -o /dev/null "$1" && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the server exited before answering; its log:" >&2 && tail -20 "$3" >&2
      return 1
    fi
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

# Starts Pebble, validation skipped: ALWAYS_VALID passes every challenge,
# NOSLEEP drops its random 0-5 s delay before validating, NONCEREJECT=0
# stops it rejecting 5% of good nonces (a retry the client would pay for),
# and AUTHZREUSE=0 states that no authorization is reused: none could be
# anyway, every order being for new names, but the figures should not hang
# on that. (Pebble still searches its authorizations on every newOrder.)
start_pebble() {
  PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$work/pebble.json" >"$work/pebble.log" 2>&1 &
  server_pid=$!
  wait_directory "https://127.0.0.1:$PEBBLE_PORT/dir" "$work/pebble-tls/ca.pem" "$work/pebble.log"
}

# Starts certforge serve on a fresh depot CA, validation skipped as for
# Pebble. Its log (one JSON line per request) goes to a file: writing it is
# part of the server's cost, as Pebble's log is part of Pebble's.
start_certforge() {
  local depot=$work/depot-$1
  "$CERTFORGE" --depot-path "$depot" init --cn "Bench CA" --passphrase "" >/dev/null 2>&1
  "$CERTFORGE" --depot-path "$depot" serve --CA "Bench CA" --listen "127.0.0.1:$CERTFORGE_PORT" \
    --skip-validation --log-format json >"$work/certforge.log" 2>&1 &
  server_pid=$!
  wait_directory "https://127.0.0.1:$CERTFORGE_PORT/directory" "$depot/Bench_CA.crt" "$work/certforge.log"
}

# run_server_rows NAME DIRECTORY_URL ROOT_PEM PID: one row per PARALLEL
# value against a running server, appended to $results. After a hang the
# server is stuck, so its remaining rows are recorded as not run.
run_server_rows() {
  local name=$1 directory=$2 root=$3 pid=$4 parallel orders line status hung=
  for parallel in $PARALLEL; do
    if [ -n "$hung" ]; then
      jq -nc --arg s "$name" --argjson p "$parallel" '{server: $s, parallel: $p, skipped: true}' >>"$results"
      continue
    fi
    orders=$ORDERS_N
    [ "$parallel" -eq 1 ] && orders=$ORDERS_1
    status=0
    line=$("$LOAD" --directory "$directory" --root "$root" --parallel "$parallel" --orders "$orders" \
      --server-pid "$pid" --timeout "$TIMEOUT" --json) || status=$?
    # Status 1 (some orders failed) and 2 (hang) still print the JSON line.
    if [ -z "$line" ]; then
      line=$(jq -nc --argjson p "$parallel" --argjson st "$status" '{parallel: $p, error: "no report, status \($st)"}')
    fi
    jq -c --arg s "$name" '{server: $s} + .' <<<"$line" >>"$results"
    [ "$(jq -r .hang <<<"$line")" = true ] && hung=1
  done
  return 0
}

work=$(mktemp -d)
server_pid=
# Whatever happens, no server outlives the script.
trap 'stop_server; rm -rf "$work"' EXIT

# The bench profile is release's: build once, then run the binary itself so
# that no cargo start-up sits between the rows.
LOAD=$(cargo bench --bench acme_load --no-run --message-format=json --quiet |
  jq -r 'select(.target.name == "acme_load" and .executable != null) | .executable')
results=$work/results.jsonl
cargo build --release --quiet --bin certforge
CERTFORGE=$PWD/target/release/certforge

make_pebble_tls
for _ in $(seq "$RUNS"); do
  start_pebble
  run_server_rows pebble "https://127.0.0.1:$PEBBLE_PORT/dir" "$work/pebble-tls/ca.pem" "$server_pid"
  stop_server
done
for run in $(seq "$RUNS"); do
  start_certforge "$run"
  run_server_rows certforge "https://127.0.0.1:$CERTFORGE_PORT/directory" "$work/depot-$run/Bench_CA.crt" "$server_pid"
  stop_server
done

echo "| server | clients | orders | failed | orders/s | p50 ms | p99 ms | server CPU ms/order | client CPU ms/order | requests/order | note |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
jq -r '
  def f(d): if . == null then "-" else (. * pow(10; d) | round) / pow(10; d) | tostring end;
  if .skipped then [.server, .parallel, "-", "-", "-", "-", "-", "-", "-", "-", "not run: the server hung"]
  elif .error then [.server, .parallel, "-", "-", "-", "-", "-", "-", "-", "-", .error]
  elif .hang then [.server, .parallel, .orders, "-", "-", "-", "-", "-", "-", "-",
    "HANG: \(.finished) finished in \(.timeout_s) s"]
  else [.server, .parallel, .orders, .failures, (.orders_per_s | f(1)), (.p50_ms | f(1)), (.p99_ms | f(1)),
    (.server_cpu_ms_per_order | f(2)), (.client_cpu_ms_per_order | f(2)), (.requests_per_order | f(2)),
    (.errors[0] // "")]
  end | map(tostring) | "| " + join(" | ") + " |"' "$results"
