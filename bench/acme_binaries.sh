# Sourced by the ACME benchmarks: sets LOAD (the load client,
# bench/acme_load.rs) and CERTFORGE (the release binary). The bench profile
# is release's: build once, then run the binaries themselves so that no
# cargo start-up sits between the rows. (Their paths come from cargo:
# CARGO_TARGET_DIR may move them.)
LOAD=$(cargo bench --bench acme_load --no-run --message-format=json --quiet |
  jq -r 'select(.target.name == "acme_load" and .executable != null) | .executable')
CERTFORGE=$(cargo build --release --quiet --bin certforge --message-format=json |
  jq -r 'select(.target.name == "certforge" and .executable != null) | .executable')
