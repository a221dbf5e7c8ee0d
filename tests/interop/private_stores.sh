#!/bin/bash
# Run inside `unshare -m`: gives this mount namespace private copies of the
# files `update-ca-certificates` and Debian's Java hook change, so a test can
# use the real system store without touching the host's.
#
# usage: unshare -m bash private_stores.sh WORKDIR
# Prints "ready" once the copies are mounted, then waits until stdin closes
# (the test runs its commands meanwhile with `nsenter -t PID -m`).
set -euo pipefail
work=$1
mount --make-rprivate /
i=0
for path in /usr/local/share/ca-certificates /etc/ssl/certs /etc/ca-certificates.conf \
            /var/lib/dpkg /var/lib/ca-certificates-java /var/log/dpkg.log; do
    [ -e "$path" ] || continue
    copy="$work/copy$i"; i=$((i + 1))
    cp -a "$path" "$copy"
    mount --bind "$copy" "$path"
done
echo ready
cat > /dev/null
