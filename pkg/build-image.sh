#!/usr/bin/env bash
# Builds the container image certforge:<version> (pkg/Containerfile) with
# podman and prints its reference as the last line.
#
#   bash pkg/build-image.sh           # the binary pkg/build-dist.sh builds (or reuses when fresh)
#   bash pkg/build-image.sh BINARY    # that binary instead, e.g. the path build-dist.sh printed
#
# Nothing is compiled here beyond what pkg/build-dist.sh does: the image
# holds the shipped binary itself, plus the shared objects `ldd` says it
# loads (glibc's libc, libm, libgcc_s and the dynamic loader), copied from
# this machine at the same paths: build the binary on the machine that
# builds the image, so that they match. The image then runs on any Linux
# host, whatever its own libc. The base is `scratch`: nothing is pulled
# from a registry.
set -euo pipefail
# A BINARY given relative to where the script was started from.
given=${1:+$(realpath "$1")}
cd "$(dirname "$0")/.."
# The modes the image's files get are the staged ones: readable by its user.
umask 022

bin=${given:-$(bash pkg/build-dist.sh | tail -n 1)}
[ -x "$bin" ] || { echo "error: $bin is not an executable; build it with: bash pkg/build-dist.sh" >&2; exit 1; }
command -v podman >/dev/null || { echo "error: podman is not installed (apt-get install podman)" >&2; exit 1; }
version=$("$bin" --version | awk '{ print $2 }')
[ -n "$version" ] || { echo "error: $bin --version printed no version" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/root
install -D -m 0755 "$bin" "$root/usr/bin/certforge"
# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and,
# for the loader, "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "error: ldd $bin lists no shared objects; is it the dynamically linked build of pkg/build-dist.sh?" >&2; exit 1; }
for lib in $libs; do
  # -L: the file itself, where the path is a symlink (the loader's is).
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
mkdir -p "$root/etc" "$root/tmp" "$ctx/depot"
chmod 1777 "$root/tmp"
echo 'certforge:x:65532:65532:certforge:/depot:/sbin/nologin' >"$root/etc/passwd"
echo 'certforge:x:65532:' >"$root/etc/group"
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
labels=()
if source=$(git remote get-url origin 2>/dev/null); then
  labels+=(--label "org.opencontainers.image.source=$source")
fi
image=certforge:$version
# The image this build replaces under that tag, removed below unless
# something else still uses it (another tag, a container).
old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
# --timestamp: the commit's time for the image and its files' mtimes, so
# the same binary at the same commit gives the same image ID.
when=$(git log -1 --format=%ct 2>/dev/null || echo 0)
podman build --quiet --layers=false --file pkg/Containerfile --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  --timestamp "$when" "${labels[@]}" --tag "$image" "$ctx" >/dev/null
new=$(podman image inspect --format '{{.Id}}' "$image")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  podman rmi "$old" >/dev/null 2>&1 || true
fi
# podman names a local image localhost/NAME:TAG; this is what `podman run` takes.
echo "localhost/$image"
