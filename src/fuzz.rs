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
