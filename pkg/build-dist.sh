#!/usr/bin/env bash
# Builds the certforge that is shipped and benchmarked, and prints its path:
# the `dist` profile (release + fat LTO, one codegen unit, panic = abort,
# stripped; Cargo.toml), on Linux a dynamically linked, position-dependent
# (non-PIE) executable.
#
#   bash pkg/build-dist.sh          # -> target/<host triple>/dist/certforge
#   PIE=1 bash pkg/build-dist.sh    # a PIE instead (ASLR for the binary too)
#
# Why dynamic: PKCS#11 modules (SoftHSM, OpenSC, ykcs11, an HSM vendor's
# library) are shared libraries certforge loads with dlopen, and each needs
# the process's libc.so.6. A statically linked glibc program has no such
# libc to give them: the static build crashed (SIGSEGV) on the first
# PKCS#11 command. glibc also loads NSS modules for name and user lookups
# that nsswitch.conf routes past its built-in `files` and `dns` (Ubuntu's
# mdns4_minimal, systemd's resolve), the same hazard in a static binary.
#
# Why not PIE (measured on `certforge --version` with hyperfine -N, 500 runs
# x 10 rounds, and perf stat, 2026-12-07, on the 2-core VM of BENCHMARKS.md;
# a C program that does nothing, dynamically linked, takes 0.91 ms and 48
# page faults): the PIE takes 1.88 ms (2.07x; 171 faults, 10,321 relative
# relocations applied at start), the non-PIE 1.75 ms (1.90x; 140 faults,
# 3 relative relocations). The static binary this replaces took 1.24 ms
# (1.33x; 92 faults), so loading libc, libm and libgcc_s and binding 348
# symbols costs about 0.5 ms per process. Lazy binding (-z lazy, partial
# RELRO) measured the same as rustc's -z now within the noise (233 instead
# of 348 symbols bound at start), so full RELRO stays; glibc 2.36 no longer
# supports prelink. Non-PIE gives up ASLR for the executable image only
# (heap, stack and the libraries' mappings stay randomised), as the Go tools
# certforge replaces (certstrap, mkcert, cfssl) do by default.
# The target is named explicitly so that these flags reach certforge and not
# the build scripts and proc-macros that run on the host, which are shared
# objects and position-dependent code cannot be linked into.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
flags=()
case "$host" in
  *-linux-gnu) [ -n "${PIE:-}" ] || flags+=(-C relocation-model=static) ;;
esac
RUSTFLAGS="${RUSTFLAGS:-} ${flags[*]}" cargo build --quiet --locked --profile dist --target "$host" --bin certforge
echo "${CARGO_TARGET_DIR:-$PWD/target}/$host/dist/certforge"
