#!/usr/bin/env bash
# What metrics cost `certforge serve`: orders per second at 16 clients with
# Prometheus-style scraping of /metrics every second, against the same
# server left unscraped, in alternating runs so both see the same minutes.
# The counters are always kept (there is no switch to turn them off); what
# a scrape adds is the rendering, the depot's expiry gauges (rescanned at
# most once a minute) and the process gauges.
#
#   bash bench/metrics_cost.sh
#   RUNS=7 ORDERS=300 bash bench/metrics_cost.sh
#
# With BASELINE=PATH (a certforge binary built before /metrics existed,
# e.g. from commit a9fee56), each round also runs that binary, so the
# counting itself is measured too, not only the scrapes.
#
# Settings (environment): RUNS rounds of runs (default 5), PARALLEL clients
# (16), ORDERS per client (200: a run lasts about 6 s), TMPDIR where the depots go (mktemp's
# default), PORT and METRICS_PORT on loopback (14300, 14301).
# Writes bench/results/metrics_cost.json and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
PARALLEL=${PARALLEL:-16}
ORDERS=${ORDERS:-200}
PORT=${PORT:-14300}
METRICS_PORT=${METRICS_PORT:-14301}
for tool in jq curl bc; do
  command -v "$tool" >/dev/null || { echo "bench/metrics_cost.sh needs $tool (apt-get install $tool)" >&2 && exit 1; }
done

work=$(mktemp -d)
server= scraper=
stop() {
  if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  scraper= server=
  return 0
}
trap 'stop; rm -rf "$work"' EXIT

# LOAD and CERTFORGE, built once.
source bench/acme_binaries.sh
results=$work/results.jsonl
: >"$results"

# One run: a fresh depot and server; with $2 = scraped, a loop fetching
# /metrics every second for as long as the run lasts.
run() {
  local n=$1 mode=$2 depot=$work/depot-$1-$2 line scrapes=0 bin=$CERTFORGE flags=(--metrics-listen "$METRICS_PORT")
  if [ "$mode" = baseline ]; then bin=$BASELINE flags=(); fi
  "$bin" --depot-path "$depot" init --cn "Bench CA" --passphrase "" >/dev/null 2>&1
  "$bin" --depot-path "$depot" serve --CA "Bench CA" --listen "127.0.0.1:$PORT" \
    "${flags[@]}" --skip-validation --log-format json >"$work/serve.log" 2>&1 &
  server=$!
  local until=$((SECONDS + 10))
  until curl -sf --max-time 1 --cacert "$depot/Bench_CA.crt" -o /dev/null "https://127.0.0.1:$PORT/directory"; do
    [ "$SECONDS" -lt "$until" ] && kill -0 "$server" 2>/dev/null || { tail -20 "$work/serve.log" >&2 && return 1; }
    sleep 0.1
  done
  : >"$work/scrapes"
  if [ "$mode" = scraped ]; then
    (while curl -sf --max-time 5 -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; do
      echo >>"$work/scrapes"
      sleep 1
    done) &
    scraper=$!
  fi
  line=$("$LOAD" --directory "https://127.0.0.1:$PORT/directory" --root "$depot/Bench_CA.crt" \
    --parallel "$PARALLEL" --orders "$ORDERS" --server-pid "$server" --timeout 60 --json)
  scrapes=$(wc -l <"$work/scrapes")
  stop
  jq -c --arg m "$mode" --argjson run "$n" --argjson scrapes "$scrapes" \
    '{mode: $m, run: $run, scrapes: $scrapes} + .' <<<"$line" >>"$results"
}

modes=(plain scraped)
if [ -n "${BASELINE:-}" ]; then modes+=(baseline); fi
for n in $(seq "$RUNS"); do
  # Rotate which goes first, so none always gets the warmer minute.
  for i in $(seq 0 $((${#modes[@]} - 1))); do
    run "$n" "${modes[$(((i + n) % ${#modes[@]}))]}"
  done
done

# What one scrape costs the server, measured directly: its CPU time over
# 200 scrapes in a row, on the depot of the last run (thousands of
# certificates). The first scrape also reads the depot for the expiry
# gauges; the next ones reuse that for a minute.
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / t }' "/proc/$1/stat"; }
scrape_cost() {
  local depot=$work/depot-$RUNS-scraped certs before first after
  certs=$(find "$depot" -name '*.crt' | wc -l)
  "$CERTFORGE" --depot-path "$depot" serve --CA "Bench CA" --listen "127.0.0.1:$PORT" \
    --metrics-listen "$METRICS_PORT" --skip-validation --log-format json >"$work/serve.log" 2>&1 &
  server=$!
  until curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$METRICS_PORT/health"; do sleep 0.1; done
  before=$(cpu_ms "$server")
  curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"
  first=$(cpu_ms "$server")
  for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; done
  after=$(cpu_ms "$server")
  stop
  jq -nc --argjson certs "$certs" --argjson first "$(echo "$first - $before" | bc)" \
    --argjson each "$(echo "scale=3; ($after - $first) / 200" | bc)" \
    '{depot_certificates: $certs, first_scrape_cpu_ms: $first, scrape_cpu_ms: $each}'
}
cost=$(scrape_cost)

mkdir -p bench/results
jq -s --argjson runs "$RUNS" --argjson cost "$cost" '{made: (now | todate), runs: $runs, scrape: $cost, rows: .}' \
  "$results" >bench/results/metrics_cost.json
echo "| run | mode | scrapes | orders/s | p99 ms | server CPU ms/order |"
echo "|---:|---|---:|---:|---:|---:|"
jq -r 'def f(d): (. * pow(10; d) | round) / pow(10; d) | tostring;
  "| \(.run) | \(.mode) | \(.scrapes) | \(.orders_per_s | f(1)) | \(.p99_ms | f(1)) | \(.server_cpu_ms_per_order | f(2)) |"' "$results"
echo
# A mode's medians of orders/s and server CPU per order; how many percent
# fewer orders/s one mode made than another; rounding to d decimals.
medians='def median: sort | .[(length - 1) / 2 | floor];
  def of(m): [.[] | select(.mode == m)] |
    {ops: ([.[].orders_per_s] | median), cpu: ([.[].server_cpu_ms_per_order] | median)};
  def fewer(a; b): (1 - a.ops / b.ops) * 1000 | round / 10;
  def r(d): . * pow(10; d) | round / pow(10; d);'
jq -rs "$medians"'
  of("plain") as $plain | of("scraped") as $scraped |
  "medians: \($plain.ops | r(1)) orders/s unscraped, \($scraped.ops | r(1)) scraped every second: " +
  "\(fewer($scraped; $plain)) % fewer (target: under 3 %); server CPU \($plain.cpu | r(2)) against \($scraped.cpu | r(2)) ms/order"' "$results"
if [ -n "${BASELINE:-}" ]; then
  jq -rs "$medians"'
    of("baseline") as $base | of("plain") as $plain |
    "counting, unscraped, against the baseline binary: \($plain.ops | r(1)) against \($base.ops | r(1)) orders/s, " +
    "\(fewer($plain; $base)) % fewer; server CPU \($plain.cpu | r(2)) against \($base.cpu | r(2)) ms/order"' "$results"
fi
jq -r '"one scrape: \(.scrape_cpu_ms) ms of server CPU (the first, reading \(.depot_certificates) certificates: \(.first_scrape_cpu_ms) ms)"' <<<"$cost"
