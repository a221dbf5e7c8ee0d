#!/usr/bin/env bash
# Long fuzz runs (not in CI): bash fuzz/run.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# New inputs go to fuzz/work/TARGET (not committed); the committed starting inputs in
# fuzz/corpus/TARGET are read only. Crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csr key pem_bundle expires plan template names jws finalize_csr acme_request)
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | tee "work/$t.log" | grep -E "stat::number_of_executed_units|Done|crash|ERROR" || true
done
