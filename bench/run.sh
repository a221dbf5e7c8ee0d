#!/usr/bin/env bash
# Side-by-side benchmarks: certforge against the gRPC authentication guide's openssl
# script,
# mkcert, cfssl and certstrap, each workload in one hyperfine run, so the
# ratios come from the same minutes on the same machine. Writes
# bench/results/*.json, BENCHMARKS.md and bench/ratios.svg.
#
#   bash bench/run.sh            # install missing peers (Debian), then measure
#   QUICK=1 bash bench/run.sh    # fewer runs, for a first look
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v mkcert >/dev/null || need+=(mkcert)
command -v cfssl >/dev/null || need+=(golang-cfssl)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release --quiet
cargo build --release --quiet --example big_crl
export CERTFORGE=$root/target/release/certforge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results
rm -rf "$out" && mkdir -p "$out"
runs=${QUICK:+3}
runs=${runs:-15}
W=bench/workloads.sh
skipped=()

hf() { # hf NAME RUNS [hyperfine args...]
  local name=$1 n=$2
  shift 2
  hyperfine --style basic --warmup 1 --runs "$n" --export-json "$out/$name.json" "$@"
}

# W1: the gRPC guide's set (CA + server with 4 SANs + client), ECDSA P-256.
w1=(-n certforge "bash $W w1_certforge $work/w1a" -n "openssl script (P-256)" "bash $W w1_openssl_p256 $work/w1b")
command -v mkcert >/dev/null && w1+=(-n "mkcert -ecdsa" "bash $W w1_mkcert $work/w1c") || skipped+=("mkcert")
command -v cfssl >/dev/null && w1+=(-n "cfssl gencert" "bash $W w1_cfssl $work/w1d") || skipped+=("cfssl")
hf w1 "$runs" "${w1[@]}"

# W2: the blog workflow, five processes.
w2=(-n certforge "bash $W w2_certforge $work/w2a")
if command -v certstrap >/dev/null; then w2+=(-n "certstrap --curve P-256" "bash $W w2_certstrap $work/w2b"); else skipped+=("certstrap (not on PATH: W2 has no peer)"); fi
hf w2 "$runs" "${w2[@]}"

# W3: the gRPC guide's set with RSA-4096 keys, as the script does it.
hf w3 "${QUICK:+2}${QUICK:-5}" -n certforge "bash $W w3_certforge $work/w3a" -n "openssl script (RSA-4096)" "bash $W w3_openssl_rsa $work/w3b"

# W4: 1,000 ECDSA leaves from one plan, against a shell loop of openssl calls.
hf w4 3 -n certforge "bash $W w4_certforge $work/w4a 1000" -n "openssl loop" "bash $W w4_openssl_loop $work/w4b 1000"
# The same plan on tmpfs, and the bare cost of writing its 2,002 files to
# this disk: what bounds W4 when the disk is slow.
shm=/dev/shm/certforge-bench-$$
hf w4_bound 3 -n "certforge apply, 1,000 leaves on tmpfs" "bash $W w4_certforge $shm 1000" -n "writing 2,002 files of 600 B to this disk" "bash $W w4_floor $work/w4f"
rm -rf "$shm"
hf w4_scaling 3 --parameter-list n 10,100,1000,10000 -n "certforge apply, N={n}" "bash $W w4_certforge $work/w4s {n}"

# W5: list over a depot of 10,000 certificates; revoke into a CRL that
# already holds 100,000 entries.
bash $W w4_certforge "$work/w5" 10000
"$root/target/release/examples/big_crl" "$work/w5/certs" "Bulk CA" 100000 > /dev/null
cp "$work/w5/certs/Bulk_CA.crl" "$work/big.crl"
hf w5_list "$runs" -n "certforge list (10,000 certs)" "$CERTFORGE --depot-path $work/w5/certs list"
hf w5_revoke "$runs" --prepare "cp $work/big.crl $work/w5/certs/Bulk_CA.crl" -n "certforge revoke (CRL of 100,000)" "$CERTFORGE --depot-path $work/w5/certs revoke --CN svc-1 --CA 'Bulk CA'"

# Start-up.
hf startup 50 -N -n "certforge --version" "$CERTFORGE --version"
rss=$(/usr/bin/time -f %M "$CERTFORGE" --version 2>&1 >/dev/null | tail -n1)
echo "$rss" > "$out/startup_rss_kb"

printf '%s\n' "${skipped[@]}" > "$out/skipped"
# What ran, recorded now so the report names the binaries measured.
python3 bench/report.py --versions > "$out/versions.tsv"
date -u '+%Y-%m-%d %H:%M UTC' > "$out/when"
python3 bench/report.py "$out" BENCHMARKS.md bench/ratios.svg
echo "wrote BENCHMARKS.md and bench/ratios.svg"
