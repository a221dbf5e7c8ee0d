//! The library at the crypto floor: how many certificates a Rust test suite
//! gets per second per core from `certforge::Ca::issue`, against the work
//! no certificate can skip, done in aws-lc-rs alone: a P-256 key for the
//! leaf, one ECDSA signature by the CA, and the one verification that
//! certforge's self-check makes. `cargo bench --bench library`;
//! bench/run.sh puts the figures in BENCHMARKS.md.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use certforge::{Ca, Leaf};
use divan::Bencher;

fn main() {
    divan::main();
}

/// A new self-signed CA: key, certificate, self-check.
#[divan::bench]
fn ca_new() -> Ca {
    Ca::new("Bench CA").expect("CA")
}

/// A server certificate for one name from a CA made once: key, certificate,
/// signature, and the parse-back self-check.
#[divan::bench]
fn ca_issue_server(b: Bencher) {
    let ca = Ca::new("Bench CA").expect("CA");
    b.bench_local(|| ca.issue(Leaf::server(["svc.example.test"])).expect("issue"));
}

/// The floor: a fresh P-256 key, the CA's ECDSA signature over a
/// certificate-sized message, and its verification.
#[divan::bench]
fn floor_p256_keygen_sign_verify(b: Bencher) {
    let rng = SystemRandom::new();
    let ca = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("CA key");
    let ca_public = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, ca.public_key().as_ref().to_vec());
    // The size of a leaf's to-be-signed part with one SAN.
    let tbs = [0x5a_u8; 420];
    b.bench_local(|| {
        let leaf = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("leaf key");
        let sig = ca.sign(&rng, &tbs).expect("sign");
        ca_public.verify(&tbs, sig.as_ref()).expect("verify");
        leaf
    });
}

/// What `serve` pays to check one request's signature (RFC 8555 §6.2)
/// under the signing account's ES256 key, its JWK decoded each time: an
/// order is six or seven such requests. (A cache of decoded keys saved
/// 1.4 µs of the 58 here, 0.4 % of an order's server CPU, and was not kept.)
#[divan::bench]
fn jws_verify_es256(b: Bencher) {
    use certforge::acme::jws::{b64, Jwk, Request};
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("account key");
    let point = key.public_key().as_ref();
    let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]) });
    let header = serde_json::json!({
        "alg": "ES256", "nonce": "bench", "url": "https://127.0.0.1:14000/acme/order/1",
        "kid": "https://127.0.0.1:14000/acme/acct/1",
    });
    let (protected, payload) = (b64(header.to_string().as_bytes()), b64(b"{}"));
    let sig = key.sign(&rng, format!("{protected}.{payload}").as_bytes()).expect("sign");
    let body = serde_json::json!({ "protected": protected, "payload": payload, "signature": b64(sig.as_ref()) });
    let req = Request::parse(body.to_string().as_bytes()).expect("a JWS");
    let jwk = Jwk::from_json(&jwk).expect("a JWK");
    b.bench_local(|| req.verify(&jwk).expect("verifies"));
}
