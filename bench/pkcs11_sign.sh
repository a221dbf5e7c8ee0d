#!/usr/bin/env bash
# The cost of a CA key on a PKCS#11 token (SoftHSM2): 100 leaves signed by
# a SoftHSM CA against the same 100 signed by a file CA, both ECDSA P-256,
# measured in one hyperfine run so that the ratio compares like with like.
#
#   bash bench/pkcs11_sign.sh            # prints a markdown table
#
# Two shapes, each for both CAs:
#   apply  one `certforge apply` of a plan with 100 leaves: one process,
#          one token login, 100 signatures through one session;
#   sign   100 `certforge sign` processes, as a shell script calls them:
#          each loads the module, opens a session and logs in.
# Needs softhsm2 (softhsm2-util, libsofthsm2.so) and hyperfine; the token
# lives in a temporary directory (SOFTHSM2_CONF), never the system's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
N=${N:-100}
cargo build --release --quiet
BIN="$PWD/target/release/certforge"
MODULE=${MODULE:-/usr/lib/softhsm/libsofthsm2.so}
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
mkdir -p "$W/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" >"$W/softhsm2.conf"
export SOFTHSM2_CONF="$W/softhsm2.conf" CERTFORGE_PKCS11_MODULE="$MODULE" CERTFORGE_PKCS11_PIN=1234
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null

for kind in file token; do
  d="$W/$kind"
  if [ $kind = token ]; then key='key_uri = "pkcs11:token=bench;object=bench-ca"'; else key=''; fi
  printf '[[ca]]\nname = "CA"\n%s\n\n[[leaf]]\nname = "leaf-{n}"\nissuer = "CA"\ncount = %d\nprofile = "server"\ndomains = ["leaf-{n}.test"]\n' "$key" "$N" >"$W/$kind.toml"
  "$BIN" --depot-path "$d" apply "$W/$kind.toml" --quiet >/dev/null 2>&1
  for i in $(seq 1 "$N"); do "$BIN" --depot-path "$d" request-cert --cn "req-$i" --domain "req-$i.test" >/dev/null 2>&1; done
  # Each measured command is a script that first removes what its last run
  # made (hyperfine 1.15 has one --prepare for all commands); the rm costs
  # the same for both CAs.
  printf 'rm -f %s/leaf-*\n"%s" --depot-path "%s" apply "%s" --quiet\n' "$d" "$BIN" "$d" "$W/$kind.toml" >"$W/apply-$kind.sh"
  printf 'rm -f %s/req-*.crt\nfor i in $(seq 1 %d); do "%s" --depot-path "%s" sign "req-$i" --CA CA >/dev/null 2>&1 || exit 1; done\n' "$d" "$N" "$BIN" "$d" >"$W/sign-$kind.sh"
done

hyperfine --runs "$RUNS" --warmup 1 -N --export-markdown "$W/table.md" \
  -n "apply, file CA ($N leaves)" "bash $W/apply-file.sh" \
  -n "apply, SoftHSM CA ($N leaves)" "bash $W/apply-token.sh" \
  -n "$N sign processes, file CA" "bash $W/sign-file.sh" \
  -n "$N sign processes, SoftHSM CA" "bash $W/sign-token.sh" >&2
# Every leaf must verify under its CA, or the figures mean nothing.
for kind in file token; do
  n=$(ls "$W/$kind"/req-*.crt | wc -l)
  [ "$n" = "$N" ] || { echo "only $n of $N $kind leaves were signed" >&2; exit 1; }
  bad=$(openssl verify -CAfile "$W/$kind/CA.crt" "$W/$kind"/req-*.crt "$W/$kind"/leaf-*.crt | grep -vc ': OK$' || true)
  [ "$bad" = 0 ] || { echo "$bad $kind leaves do not verify" >&2; exit 1; }
done
cat "$W/table.md"
