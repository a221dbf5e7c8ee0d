#!/usr/bin/env bash
# Side-by-side benchmarks: certforge against the gRPC authentication guide's
# openssl script, mkcert, cfssl and certstrap, each workload in one
# hyperfine run, so the ratios come from the same minutes on the same
# machine. Writes bench/results/*, BENCHMARKS.md and bench/ratios.svg.
#
#   bash bench/run.sh            # install missing peers (Debian), then measure
#   QUICK=1 bash bench/run.sh    # fewer runs, for a first look
#
# certstrap is not packaged by Debian: W2 compares with it when a
# `certstrap` binary is on PATH (BENCHMARKS.md says how to build one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v mkcert >/dev/null || need+=(mkcert)
command -v cfssl >/dev/null || need+=(golang-cfssl)
command -v openssl >/dev/null || need+=(openssl)
command -v gcc >/dev/null || need+=(gcc)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The binary users get from the .deb: LTO, dynamic non-PIE (pkg/build-dist.sh).
CERTFORGE=$(bash pkg/build-dist.sh)
export CERTFORGE
cargo build --release --quiet --example big_crl
work=$(mktemp -d)
shm=/dev/shm/certforge-bench-$$
trap 'rm -rf "$work" "$shm"' EXIT
out=bench/results
rm -rf "$out" && mkdir -p "$out"
runs=${QUICK:+3}
runs=${runs:-15}
W=bench/workloads.sh
skipped=()

hf() { # hf NAME RUNS [hyperfine args...]
  local name=$1 n=$2
  shift 2
  hyperfine --style basic --warmup "${WARMUP:-1}" --runs "$n" --export-json "$out/$name.json" "$@"
}

# A workload group: every command of group NAME writes into $work/NAME-* or
# $shm/NAME-*, which are deleted and synced before each run, so that no run
# pays for deleting (or flushing the deletion of) the previous run's files.
hfw() { # hfw NAME RUNS [hyperfine args...]
  local name=$1 n=$2
  shift 2
  hf "$name" "$n" --prepare "rm -rf $work/$name-* $shm/$name-*; sync" "$@"
}

# First, while the machine is quiet and before the workloads fill the page
# cache with other files.
# Start-up: certforge --version against a C program that does nothing
# (gcc -O2, dynamically linked as gcc links by default).
printf 'int main(void) { return 0; }\n' > "$work/true.c"
gcc -O2 -o "$work/c-true" "$work/true.c"
WARMUP=20 hf startup 500 -N -n "certforge --version" "$CERTFORGE --version" -n "C int main(){return 0;}" "$work/c-true"
rss=$(/usr/bin/time -f %M "$CERTFORGE" --version 2>&1 >/dev/null | tail -n1)
echo "$rss" > "$out/startup_rss_kb"
# What the start-up is made of: page faults (perf, when installed), the
# dynamic loader's relocations, and the binary's size.
{
  if command -v perf >/dev/null; then
    for b in "$CERTFORGE --version" "$work/c-true"; do
      faults=$(perf stat -x, -e page-faults -r 50 $b 2>&1 >/dev/null | awk -F, '/page-faults/ {print $1}')
      echo "faults	$b	$faults"
    done
  fi
  relocs=$(LD_DEBUG=statistics "$CERTFORGE" --version 2>&1 >/dev/null | awk '/number of relative relocations/ {print $NF}' | head -n1)
  echo "relocations	certforge	${relocs:-none}"
  echo "size	certforge	$(stat -c %s "$CERTFORGE")"
} > "$out/startup_detail.tsv"

# W1: the gRPC guide's set (CA + server with 4 SANs + client), ECDSA P-256:
# `certforge quickstart` against mkcert -ecdsa with a fresh CAROOT, cfssl and
# the guide's openssl script. W1 and W2 also run certforge on tmpfs, where
# its flushes cost nothing and its peers' missing ones would not matter:
# what bounds the ratio when the disk does.
mkdir -p "$shm"
w1=(-n certforge "bash $W w1_certforge $work/w1-a" -n "certforge on tmpfs" "bash $W w1_certforge $shm/w1-a" -n "openssl script (P-256)" "bash $W w1_openssl_p256 $work/w1-b")
command -v mkcert >/dev/null && w1+=(-n "mkcert -ecdsa" "bash $W w1_mkcert $work/w1-c") || skipped+=("mkcert")
command -v cfssl >/dev/null && w1+=(-n "cfssl gencert" "bash $W w1_cfssl $work/w1-d") || skipped+=("cfssl")
w1+=(-n "harness alone (bash workloads.sh, no tool)" "bash $W harness $work/w1-h")
hfw w1 "$runs" "${w1[@]}"

# W2: the certstrap blog workflow, five processes, against the same five
# certstrap commands with --curve P-256.
w2=(-n certforge "bash $W w2_certforge $work/w2-a" -n "certforge on tmpfs" "bash $W w2_certforge $shm/w2-a")
if command -v certstrap >/dev/null; then w2+=(-n "certstrap --curve P-256" "bash $W w2_certstrap $work/w2-b"); else skipped+=("certstrap (not on PATH: W2 has no peer)"); fi
w2+=(-n "harness alone (bash workloads.sh, no tool)" "bash $W harness $work/w2-h")
hfw w2 "$runs" "${w2[@]}"

# W3: the gRPC guide's set with RSA-4096 keys, as the script does it.
hfw w3 "${QUICK:+2}${QUICK:-5}" -n certforge "bash $W w3_certforge $work/w3-a" -n "openssl script (RSA-4096)" "bash $W w3_openssl_rsa $work/w3-b"

# W4: 1,000 ECDSA leaves from one plan, on this disk and on tmpfs (where a
# flush costs nothing) in the same run, against a shell loop of openssl.
# The third line is what bounds the disk case: the same 2,002 files of 600
# bytes written by Python and made durable with one sync, no certforge.
hfw w4 7 -n "certforge (disk)" "bash $W w4_certforge $work/w4-a 1000" -n "certforge on tmpfs" "bash $W w4_certforge $shm/w4-a 1000" -n "the disk alone: 2,002 files + sync" "bash $W w4_floor $work/w4-f"
hfw w4_openssl 2 -n "certforge (disk)" "bash $W w4_certforge $work/w4_openssl-a 1000" -n "openssl loop" "bash $W w4_openssl_loop $work/w4_openssl-b 1000"
hfw w4_scaling 3 --parameter-list n 10,100,1000,10000 -n "certforge apply, N={n}" "bash $W w4_certforge $work/w4_scaling-{n} {n}"

# W5: list over a depot of 10,000 certificates; revoke into a CRL that
# already holds 100,000 entries.
bash $W w4_certforge "$work/w5" 10000
"$root/target/release/examples/big_crl" "$work/w5/certs" "Bulk CA" 100000 > /dev/null
cp "$work/w5/certs/Bulk_CA.crl" "$work/big.crl"
hf w5_list "$runs" -n "certforge list (10,000 certs)" "$CERTFORGE --depot-path $work/w5/certs list"
hf w5_revoke "$runs" --prepare "cp $work/big.crl $work/w5/certs/Bulk_CA.crl" -n "certforge revoke (CRL of 100,000)" "$CERTFORGE --depot-path $work/w5/certs revoke --CN svc-1 --CA 'Bulk CA'"

# The library: Ca::issue against aws-lc-rs alone (bench/library.rs).
cargo bench --quiet --bench library -- --sample-count "${QUICK:+20}${QUICK:-200}" > "$out/library.txt"

printf '%s\n' "${skipped[@]}" > "$out/skipped"
# What ran, recorded now so the report names the binaries measured.
python3 bench/report.py --record > "$out/run.json"
python3 bench/report.py "$out" BENCHMARKS.md bench/ratios.svg
echo "wrote BENCHMARKS.md and bench/ratios.svg"
