#!/bin/bash
# Run inside `unshare -m`: a throw-away root at WORK/root that is this
# machine's / seen through an overlay whose changes go to a tmpfs, so that
# dpkg, adduser and a package's maintainer scripts run for real, chrooted
# there, while the host's files stay as they are. The mounts live only in
# this mount namespace and go with it.
#
# usage: unshare -m bash overlay_root.sh WORK
# Prints "ready" once the root is mounted, then waits until stdin closes (the
# test runs its commands meanwhile with `nsenter -t PID -m -- chroot WORK/root`).
set -euo pipefail
work=$1
mount --make-rprivate /
# The overlay's upper layer on a tmpfs: outside the lower layer (/), and
# gone when the namespace ends.
mount -t tmpfs -o mode=0700 certforge-test "$work"
mkdir "$work/upper" "$work/work" "$work/root"
root=$work/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
# An empty /run: no /run/systemd/system, so to the maintainer scripts this
# is a machine without systemd running (a container, a chroot), even when
# the host runs it.
mount -t tmpfs tmpfs "$root/run"
# man-db's index is not what is tested, and rebuilding it at each dpkg run
# takes seconds: its trigger skips that without this file.
rm -f "$root/var/lib/man-db/auto-update"
echo ready
cat > /dev/null
