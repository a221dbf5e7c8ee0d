#!/usr/bin/env bash
# Builds the certforge that is shipped and benchmarked, and prints its path:
# the `dist` profile (release + fat LTO, one codegen unit, panic = abort,
# stripped; Cargo.toml), linked statically on Linux.
#
#   bash pkg/build-dist.sh          # -> target/<host triple>/dist/certforge
#   PIE=1 bash pkg/build-dist.sh    # static-pie instead (ASLR for the binary)
#
# Why (measured with perf stat on `certforge --version`, issue 11): the
# dynamically linked release build takes 1.1 ms and 166 page faults, a C
# program that does nothing 0.55 ms and 49. Linking statically removes the
# dynamic loader (libc, libm, libgcc_s and 271 symbol lookups); static-pie
# still applies 9,836 relative relocations at start, which write to ~30
# pages (0.73 ms, 109 faults); a position-dependent static binary applies
# none (0.60 ms, 80 faults). That gives up ASLR for the executable image
# only (heap, stack and libraries' mappings stay randomised), as the Go
# tools certforge replaces (certstrap, mkcert, cfssl) do by default.
# The target is named explicitly so that these flags reach certforge and not
# the build scripts and proc-macros that run on the host, which cannot be
# linked statically.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
flags=()
case "$host" in
  *-linux-gnu)
    flags=(-C target-feature=+crt-static)
    [ -n "${PIE:-}" ] || flags+=(-C relocation-model=static) ;;
esac
RUSTFLAGS="${RUSTFLAGS:-} ${flags[*]}" cargo build --quiet --locked --profile dist --target "$host" --bin certforge
echo "$PWD/target/$host/dist/certforge"
