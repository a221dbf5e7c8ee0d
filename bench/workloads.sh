#!/usr/bin/env bash
# Benchmark workloads: `bash bench/workloads.sh NAME DIR` runs workload NAME,
# writing into DIR, which must be empty. Every tool makes the same set of
# certificates, so hyperfine compares like with like.
set -euo pipefail
name=$1
dir=$2
# DIR must be empty: bench/run.sh deletes it (and syncs) before each run,
# outside the timing, so no workload pays for deleting the last one's files.
mkdir -p "$dir" && cd "$dir"
shopt -s nullglob dotglob
left=(./*)
if [ ${#left[@]} -gt 0 ]; then echo "workloads.sh: $dir is not empty" >&2; exit 1; fi
shopt -u nullglob dotglob
CF=${CERTFORGE:-certforge}

# The gRPC authentication guide's openssl script, verbatim but for the key commands, which
# take the key algorithm as an argument ($1: "rsa4096" or "p256").
openssl_guide() {
  local genkey
  if [ "$1" = rsa4096 ]; then genkey() { openssl genrsa -out "$1" 4096 2>/dev/null; }
  else genkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }; fi
  genkey ca.key
  openssl req -new -x509 -key ca.key -sha256 -subj "/C=US/ST=CA/O=MyOrg/CN=MyCA" -days 365 -out ca.crt
  genkey server.key
  cat > server.cnf <<CNF
[req]
distinguished_name = req_distinguished_name
req_extensions = v3_req
prompt = no
[req_distinguished_name]
C = US
ST = CA
O = MyOrg
CN = localhost
[v3_req]
keyUsage = keyEncipherment, dataEncipherment
extendedKeyUsage = serverAuth
subjectAltName = @alt_names
[alt_names]
DNS.1 = localhost
DNS.2 = *.example.com
DNS.3 = grpc-server
IP.1 = 127.0.0.1
IP.2 = 0.0.0.0
CNF
  openssl req -new -key server.key -config server.cnf -out server.csr
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 365 -sha256 -extensions v3_req -extfile server.cnf 2>/dev/null
  genkey client.key
  cat > client.cnf <<CNF
[req]
distinguished_name = req_distinguished_name
req_extensions = v3_req
prompt = no
[req_distinguished_name]
C = US
ST = CA
O = MyOrg
CN = grpc-client
[v3_req]
keyUsage = keyEncipherment, dataEncipherment
extendedKeyUsage = clientAuth
CNF
  openssl req -new -key client.key -config client.cnf -out client.csr
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 365 -sha256 -extensions v3_req -extfile client.cnf 2>/dev/null
  chmod 600 ./*.key
}

cfssl_set() {
  echo '{"CN":"MyCA","key":{"algo":"ecdsa","size":256}}' > ca.json
  cfssl gencert -initca ca.json 2>/dev/null | cfssljson -bare ca
  echo '{"signing":{"profiles":{"server":{"usages":["digital signature","server auth"],"expiry":"8760h"},"client":{"usages":["digital signature","client auth"],"expiry":"8760h"}}}}' > config.json
  echo '{"CN":"localhost","hosts":["localhost","*.example.com","grpc-server","127.0.0.1"],"key":{"algo":"ecdsa","size":256}}' > server.json
  cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json -profile server server.json 2>/dev/null | cfssljson -bare server
  echo '{"CN":"grpc-client","key":{"algo":"ecdsa","size":256}}' > client.json
  cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json -profile client client.json 2>/dev/null | cfssljson -bare client
}

plan_rsa() {
  cat > plan.toml <<'PLAN'
[[ca]]
name = "ca"
key_type = "rsa-4096"
[[leaf]]
name = "server"
cn = "localhost"
issuer = "ca"
profile = "server"
key_type = "rsa-4096"
domains = ["localhost", "*.example.com", "grpc-server"]
ips = ["127.0.0.1"]
[[leaf]]
name = "client"
cn = "grpc-client"
issuer = "ca"
profile = "client"
key_type = "rsa-4096"
PLAN
}

plan_bulk() {
  printf '[[ca]]\nname = "Bulk CA"\n[[leaf]]\nname = "svc-{n}"\ncount = %s\nissuer = "Bulk CA"\nprofile = "server"\ndomains = ["svc-{n}.test"]\n' "$1" > plan.toml
}

case "$name" in
  w1_certforge) $CF --depot-path certs quickstart --host "*.example.com" --host grpc-server -q > /dev/null ;;
  w1_openssl_p256) openssl_guide p256 ;;
  w1_mkcert)
    export CAROOT=$PWD/caroot
    mkcert -ecdsa -cert-file server.crt -key-file server.key localhost "*.example.com" grpc-server 127.0.0.1 2>/dev/null
    mkcert -ecdsa -client -cert-file client.crt -key-file client.key grpc-client 2>/dev/null ;;
  w1_cfssl) cfssl_set ;;
  w2_certforge)
    $CF --depot-path certs init --common-name "gRPC Root CA" 2>/dev/null
    $CF --depot-path certs request-cert --domain localhost 2>/dev/null
    $CF --depot-path certs request-cert --cn grpc_client 2>/dev/null
    $CF --depot-path certs sign --CA "gRPC Root CA" localhost 2>/dev/null
    $CF --depot-path certs sign --CA "gRPC Root CA" grpc_client 2>/dev/null ;;
  w2_certstrap)
    certstrap --depot-path certs init --common-name "gRPC Root CA" --curve P-256 --passphrase "" > /dev/null
    certstrap --depot-path certs request-cert --domain localhost --curve P-256 --passphrase "" > /dev/null
    certstrap --depot-path certs request-cert --cn grpc_client --curve P-256 --passphrase "" > /dev/null
    certstrap --depot-path certs sign --CA "gRPC Root CA" localhost > /dev/null
    certstrap --depot-path certs sign --CA "gRPC Root CA" grpc_client > /dev/null ;;
  w3_certforge) plan_rsa; $CF --depot-path certs apply plan.toml -q 2>/dev/null ;;
  w3_openssl_rsa) openssl_guide rsa4096 ;;
  w4_certforge) plan_bulk "${3:-1000}"; $CF --depot-path certs apply plan.toml -q 2>/dev/null ;;
  w4_openssl_loop)
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -new -x509 -key ca.key -subj "/CN=Bulk CA" -days 3650 -out ca.crt
    for n in $(seq 1 "${3:-1000}"); do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "svc-$n.key" 2>/dev/null
      openssl req -new -key "svc-$n.key" -subj "/CN=svc-$n" -out "svc-$n.csr"
      openssl x509 -req -in "svc-$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 730 -extfile <(printf 'subjectAltName=DNS:svc-%s.test\nextendedKeyUsage=serverAuth\n' "$n") -out "svc-$n.crt" 2>/dev/null
    done ;;
  w4_floor)
    # What the disk alone costs: 2,002 new files of 600 bytes (a key or a
    # certificate each), written and closed, as certforge writes them.
    python3 -c 'import os
for i in range(2002):
    fd = os.open("f%d" % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600); os.write(fd, b"x" * 600); os.close(fd)
os.sync()' ;;
  # The harness alone: bash reading this file and preparing DIR, no tool.
  # Every workload pays it; bench/run.sh measures it beside them.
  harness) ;;
  *) echo "unknown workload $name" >&2; exit 2 ;;
esac
