//! Fuzz entry points: each takes arbitrary bytes and must never panic,
//! hang, or accept what it should refuse. `fuzz/` runs them under
//! libFuzzer (`cargo +nightly fuzz run NAME`); `tests/fuzz_smoke.rs` runs
//! them over the committed corpus and random inputs in every `cargo test`.

use crate::pki;

// The ACME front end's target: its harness is a client of its own.
mod acme_request;
pub use acme_request::acme_request;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// CSR parsing, and signing what parses (the path `sign` takes).
pub fn csr(data: &[u8]) {
    let Ok(csr) = pki::csr::parse_csr(data, "fuzz") else { return };
    static CA: std::sync::OnceLock<pki::ca::CaSigner> = std::sync::OnceLock::new();
    let ca = CA.get_or_init(|| {
        let key = pki::keys::PrivateKey::generate(pki::keys::KeySpec::EcdsaP256).expect("keygen");
        let v = pki::validity::ValidityRequest::default()
            .resolve(time::OffsetDateTime::now_utc(), pki::validity::Expiry { months: 12, seconds: 0 })
            .expect("validity");
        let dn =
            pki::subject::Subject { common_name: Some("Fuzz CA".into()), ..Default::default() }.to_dn().expect("dn");
        let spec = pki::issue::CertSpec::new(
            dn,
            vec![],
            pki::profile::Kind::Root { path_len: None, permit_domains: vec![] },
            v,
        );
        let der = pki::issue::self_signed(&spec, &key).expect("root");
        pki::ca::CaSigner::new(der, key, "fuzz", "fuzz").expect("signer")
    });
    let v = pki::validity::ValidityRequest::default()
        .resolve(time::OffsetDateTime::now_utc(), pki::validity::Expiry { months: 1, seconds: 0 })
        .expect("validity");
    let spec = pki::issue::CertSpec::from_csr(
        &csr,
        pki::profile::Kind::Leaf { profile: pki::profile::LeafProfile::Peer, code_signing: false },
        v,
    );
    // Signing may refuse (a subject rcgen cannot copy exactly), never panic;
    // what it does sign carries the CSR's own key.
    if let Ok(der) = pki::issue::signed_by(&spec, &csr.spki_der, ca) {
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("what we sign parses");
        assert_eq!(cert.public_key().raw, csr.spki_der.as_slice());
    }
}

/// Private key loading, encrypted keys included.
pub fn key(data: &[u8]) {
    let _ = pki::keys::PrivateKey::from_bytes(data, "fuzz", &mut Some(zeroize::Zeroizing::new("fuzz".to_string())));
}

/// Splitting PEM bundles and DER into objects, then describing them.
pub fn pem_bundle(data: &[u8]) {
    let Ok(objects) = pki::objects::read_objects(data, "fuzz") else { return };
    let now = time::OffsetDateTime::now_utc();
    for o in objects {
        match o {
            pki::objects::Object::Certificate(d) => {
                let _ = pki::inspect::cert_info(&d, now);
                let _ = pki::lint::lint(&d, &[], now);
            }
            pki::objects::Object::Request(d) => {
                let _ = pki::inspect::csr_info(&d);
            }
            pki::objects::Object::Crl(d) => {
                let _ = pki::inspect::crl_info(&d, now);
            }
            pki::objects::Object::Key(_) => {}
        }
    }
}

/// The `--expires` grammar: a span that parses lands after its start.
pub fn expires(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(e) = pki::validity::Expiry::parse(s) {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        if let Some(end) = e.after(start) {
            assert!(end > start, "{s:?} parsed to a non-positive span");
        }
    }
}

/// Plan parsing: never panics; what parses names every entry validly.
pub fn plan(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let opts = pki::plan::Options { deterministic: false, load_template: &|_| Err("no files in fuzzing".into()) };
    if let Ok(p) = pki::plan::Plan::parse(s, "fuzz.toml", &opts) {
        for e in &p.entries {
            assert!(!e.name.as_str().contains('/') && !e.name.as_str().starts_with('.'));
        }
    }
}

/// Template parsing.
pub fn template(data: &[u8]) {
    if let Some(s) = text(data) {
        let _ = pki::template::Template::parse(s, "fuzz.toml");
    }
}

/// Name sanitising: never leaves the depot, and is stable.
pub fn names(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(n) = pki::names::EntryName::new(s) {
        let stem = n.as_str();
        assert!(
            !stem.contains('/')
                && !stem.contains('\0')
                && !stem.starts_with('.')
                && stem.len() <= pki::names::MAX_STEM_LEN,
            "{s:?} -> {stem:?}"
        );
        assert_eq!(pki::names::sanitize(stem), stem, "sanitising is stable");
    }
}

// What the network feeds `serve`: flattened JWS bodies and their JWKs, and
// finalize CSRs.

/// The fixed ES256 account key (PKCS#8, base64).
const ACCOUNT_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBj+FLUoMA5GMA6LFLy4TXRcheUHmo+5hiyJo4r9y5CChRANCAAQ4SBQMw4SdPeR+Plcb492xe/hvKTQuBG1tTdRanA05FZoRoDhTdYM6X4QB4iYpr5Y5+iZq6efZv/r/wsJm8WXB";

/// The fixed ES256 account key the `jws` and `finalize_csr` targets sign
/// and check with. Fixed, so that the seeds can carry its JWK and the
/// fuzzer reaches the path where a request verifies.
fn account() -> &'static (aws_lc_rs::signature::EcdsaKeyPair, crate::acme::jws::Jwk) {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::Engine;
    static KEY: std::sync::OnceLock<(EcdsaKeyPair, crate::acme::jws::Jwk)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let der = base64::engine::general_purpose::STANDARD.decode(ACCOUNT_PKCS8).expect("base64");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).expect("the fixed key");
        let point = pair.public_key().as_ref();
        let jwk = crate::acme::jws::Jwk::Ec { p384: false, x: point[1..33].to_vec(), y: point[33..].to_vec() };
        (pair, jwk)
    })
}

/// A JWK survives its own canonical form (RFC 7638 §3), which is how an
/// account's key is stored and what its thumbprint hashes.
fn jwk_round_trip(key: &crate::acme::jws::Jwk) {
    use crate::acme::jws::Jwk;
    let canonical: serde_json::Value = serde_json::from_str(&key.canonical()).expect("canonical JWK is JSON");
    let again = Jwk::from_json(&canonical).expect("a canonical JWK parses");
    assert_eq!(&again, key, "{}", key.canonical());
    assert_eq!(again.thumbprint(), key.thumbprint());
}

/// ACME request bodies (RFC 8555 §6.2): the bytes as a whole body, then as
/// the protected header of a body signed by a fixed key (past the base64
/// layer), then as a JWK. A request never verifies with a signature its key
/// did not make, and always verifies with one it did.
pub fn jws(data: &[u8]) {
    use crate::acme::jws::{b64, Alg, Jwk, Request, Signer};
    if let Ok(req) = Request::parse(data) {
        if let Signer::Jwk(k) = &req.signer {
            let _ = req.verify(k);
            jwk_round_trip(k);
        }
        let _ = req.json();
    }

    let (pair, key) = account();
    let (protected, payload) = (b64(data), b64(b"{}"));
    let body = |sig: &[u8]| {
        format!(r#"{{"protected":"{protected}","payload":"{payload}","signature":"{}"}}"#, b64(sig)).into_bytes()
    };
    if let Ok(req) = Request::parse(&body(&[0; 64])) {
        assert!(req.verify(key).is_err(), "a zero signature verified");
        match &req.signer {
            Signer::Jwk(k) if k == key && req.alg == Alg::Es256 => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let sig = pair.sign(&rng, format!("{protected}.{payload}").as_bytes()).expect("sign");
                let signed = Request::parse(&body(sig.as_ref())).expect("the same header parses");
                assert!(signed.verify(key).is_ok(), "a request the key signed does not verify");
            }
            Signer::Jwk(k) => {
                let _ = req.verify(k);
                jwk_round_trip(k);
            }
            Signer::Kid(_) => {}
        }
    }

    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(k) = Jwk::from_json(&v) {
            jwk_round_trip(&k);
        }
    }
}

/// A finalize CSR (RFC 8555 §7.4), held to an order for its own names (as
/// a client would have made it) and to a fixed order. What passes asks for
/// DNS and IP names only, and never with the account's key.
///
/// The bytes are read twice: as the CSR itself (the parser, its signature
/// check), and as the names of a CSR signed here, so that the policy sees
/// names the fuzzer chose and not only those of CSRs it cannot re-sign.
/// That text is a line each: the CN (may be empty), then SANs written
/// `DNS:x`, `IP:x`, `email:x` or `URI:x`; a last line `account` signs with
/// the account's own key.
pub fn finalize_csr(data: &[u8]) {
    if let Ok(csr) = pki::csr::parse_csr(data, "the finalize CSR") {
        held_to_orders(&csr);
    }
    let Some(text) = text(data) else { return };
    use pki::san::San;
    let mut lines: Vec<&str> = text.lines().collect();
    let own_key = lines.last() == Some(&"account");
    if own_key {
        lines.pop();
    }
    let Some((cn, rest)) = lines.split_first() else { return };
    let sans: Vec<San> = rest
        .iter()
        .take(16)
        .filter_map(|l| {
            let (kind, value) = l.split_once(':')?;
            Some(match kind {
                "DNS" => San::Dns(value.into()),
                "IP" => San::Ip(value.parse().ok()?),
                "email" => San::Email(value.into()),
                "URI" => San::Uri(value.into()),
                _ => return None,
            })
        })
        .collect();
    let subject = pki::subject::Subject { common_name: (!cn.is_empty()).then(|| cn.to_string()), ..Default::default() };
    let Ok(dn) = subject.to_dn() else { return };
    let key = if own_key { &csr_keys().1 } else { &csr_keys().0 };
    let Ok(der) = pki::csr::make_csr(&dn, &sans, key) else { return };
    match pki::csr::parse_csr(&der, "the finalize CSR") {
        Ok(csr) => held_to_orders(&csr),
        // parse_csr takes any input holding "-----BEGIN " in its first 4 KB
        // for PEM, so a DER CSR holding it is refused as unreadable PEM: a
        // 45-byte CN starting "----BEGIN " does it (45 is '-', the length
        // byte before the text).
        Err(e) => assert!(der.windows(11).any(|w| w == b"-----BEGIN "), "a CSR made here does not parse: {e}"),
    }
}

/// The keys `finalize_csr` signs its CSRs with: an Ed25519 key of its own,
/// and the account's (the CSR a client must not send, RFC 8555 §11.1).
fn csr_keys() -> &'static (pki::keys::PrivateKey, pki::keys::PrivateKey) {
    use base64::Engine;
    static KEYS: std::sync::OnceLock<(pki::keys::PrivateKey, pki::keys::PrivateKey)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let own = pki::keys::PrivateKey::generate(pki::keys::KeySpec::Ed25519).expect("keygen");
        let der = base64::engine::general_purpose::STANDARD.decode(ACCOUNT_PKCS8).expect("base64");
        let account =
            pki::keys::PrivateKey::from_bytes(&der, "the fuzz account key", &mut None::<zeroize::Zeroizing<String>>)
                .expect("the fixed key");
        (own, account)
    })
}

fn held_to_orders(csr: &pki::csr::ParsedCsr) {
    use crate::acme::jws::Jwk;
    use crate::acme::model::{Ident, IdentKind};
    use crate::acme::policy::Policy;
    use pki::san::San;
    let policy = Policy::default();
    let (_, account_key) = account();
    let identifiers: Vec<serde_json::Value> = csr
        .sans
        .iter()
        .filter_map(|s| match s {
            San::Dns(d) => Some(serde_json::json!({ "type": "dns", "value": d })),
            San::Ip(ip) => Some(serde_json::json!({ "type": "ip", "value": ip.to_string() })),
            _ => None,
        })
        .collect();
    if let Ok(order) = policy.identifiers(&serde_json::json!({ "identifiers": identifiers })) {
        if policy.check_csr(csr, &order, account_key).is_ok() {
            assert!(csr.sans.iter().all(|s| matches!(s, San::Dns(_) | San::Ip(_))), "{:?}", csr.sans);
        }
        if let Some(own) = Jwk::from_spki(&csr.spki_der) {
            assert!(policy.check_csr(csr, &order, &own).is_err(), "the CSR's key passed as the account key");
        }
    }
    let fixed = [
        Ident { kind: IdentKind::Dns, value: "app.test".into() },
        Ident { kind: IdentKind::Ip, value: "127.0.0.1".into() },
    ];
    let _ = policy.check_csr(csr, &fixed, account_key);
}
