#!/usr/bin/env bash
# Builds the Debian/Ubuntu package: target/debian/certforge_<version>-1_<arch>.deb
#
#   bash pkg/build-deb.sh            # then: sudo apt install ./target/debian/certforge_*.deb
#
# The shipped binary is built once (pkg/build-dist.sh: the `dist` profile,
# dynamic non-PIE, reused when fresh); the man pages and completion scripts come from
# that binary, so they always match its flags; cargo-deb (installed once
# with `cargo install --locked cargo-deb`) then packs what Cargo.toml's
# [package.metadata.deb] lists, without building again.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb --version 3.8.0
# The LTO binary that the benchmarks measure (pkg/build-dist.sh).
bin=$(bash pkg/build-dist.sh)
host=$(rustc -vV | sed -n 's/^host: //p')
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/completions"
"$bin" man --dir "$assets/man" 2>/dev/null
"$bin" completions bash > "$assets/completions/certforge.bash"
"$bin" completions zsh > "$assets/completions/_certforge"
"$bin" completions fish > "$assets/completions/certforge.fish"
# cargo-deb prints the path of the package it made: the last line of output.
cargo deb --no-build --locked --profile dist --target "$host" --output target/debian
