//! Issuing certificates: a self-signed root, or a certificate signed by a
//! [`CaSigner`] for a public key taken from a CSR. Every certificate is
//! parsed back and checked before anyone can write it.

use rcgen::{CertificateParams, DistinguishedName, Issuer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ca::CaSigner;
pub use super::ca::SelfSigning;
use super::keys::KeySpec;
use super::profile::Kind;
use super::san::San;
use super::serial::random_serial;
use super::validity::Validity;

/// What goes into a certificate other than its issuer.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub subject: DistinguishedName,
    /// When set, the certificate's subject must equal these DER bytes (the
    /// CSR's subject), so nothing in it is lost or re-encoded.
    pub subject_raw: Option<Vec<u8>>,
    /// The subjectKeyIdentifier to write, when it must stay what it was (a
    /// renewed CA keeps its SKI so the AKI of what it signed still points at
    /// it); otherwise derived from the key.
    pub key_id: Option<Vec<u8>>,
    /// The serial to use instead of a random one (deterministic fixtures).
    pub serial: Option<Vec<u8>>,
    pub sans: Vec<San>,
    pub kind: Kind,
    pub validity: Validity,
}

impl CertSpec {
    /// A spec with a random serial, a key identifier derived from the key,
    /// and no subject it must match byte for byte.
    pub fn new(subject: DistinguishedName, sans: Vec<San>, kind: Kind, validity: Validity) -> CertSpec {
        CertSpec { subject, subject_raw: None, key_id: None, serial: None, sans, kind, validity }
    }

    /// A spec for signing `csr`: its subject (kept byte for byte) and every
    /// SAN it asks for, under the profile `kind`.
    pub fn from_csr(csr: &super::csr::ParsedCsr, kind: Kind, validity: Validity) -> CertSpec {
        CertSpec {
            subject_raw: Some(csr.subject_raw.clone()),
            ..CertSpec::new(csr.subject.clone(), csr.sans.clone(), kind, validity)
        }
    }
}

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("rcgen could not build the certificate: {0}")]
    Build(String),
    #[error("the certificate certforge just made failed its own check ({0}); nothing was written. This is a bug: please report it with the command you ran")]
    SelfCheck(String),
}

fn params_for(spec: &CertSpec, rsa_key: bool) -> Result<CertificateParams, IssueError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = spec.subject.clone();
    params.subject_alt_names =
        spec.sans.iter().map(San::to_rcgen).collect::<Result<_, _>>().map_err(|e| IssueError::Build(e.to_string()))?;
    params.not_before = spec.validity.not_before;
    params.not_after = spec.validity.not_after;
    params.serial_number = Some(spec.serial.as_deref().map_or_else(random_serial, rcgen::SerialNumber::from_slice));
    if let Some(id) = &spec.key_id {
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(id.clone());
    }
    spec.kind.apply(&mut params, rsa_key);
    Ok(params)
}

/// Makes a self-signed CA certificate with a file key or a CA's key.
pub fn self_signed(spec: &CertSpec, key: &impl SelfSigning) -> Result<Vec<u8>, IssueError> {
    let params = params_for(spec, key.algorithm() == &rcgen::PKCS_RSA_SHA256)?;
    let cert = params.self_signed(key).map_err(|e| IssueError::Build(key.explain(e)))?;
    let der = cert.der().to_vec();
    check_issued(&der, &der, &key.subject_public_key_info(), spec.subject_raw.as_deref())?;
    Ok(der)
}

/// Signs a certificate for `spki_der` with `ca`.
pub fn signed_by(spec: &CertSpec, spki_der: &[u8], ca: &CaSigner) -> Result<Vec<u8>, IssueError> {
    let public = rcgen::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| IssueError::Build(e.to_string()))?;
    let rsa_key = KeySpec::from_spki(spki_der).is_ok_and(KeySpec::is_rsa);
    let mut params = params_for(spec, rsa_key)?;
    if let Some(url) = &ca.crl_url {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![url.clone()] }];
    }
    let issuer =
        Issuer::from_ca_cert_der(&ca.cert_der().into(), ca.key()).map_err(|e| IssueError::Build(e.to_string()))?;
    let cert = params.signed_by(&public, &issuer).map_err(|e| IssueError::Build(ca.key().explain(e)))?;
    let der = cert.der().to_vec();
    check_issued(&der, ca.cert_der(), spki_der, spec.subject_raw.as_deref())?;
    Ok(der)
}

/// Parses `der` back and checks what rcgen never promises: that it verifies
/// under the issuer's key, names the issuer byte for byte, points at the
/// issuer's SKI, carries the requested key, and keeps the CSR's subject.
fn check_issued(der: &[u8], issuer_der: &[u8], spki_der: &[u8], subject_raw: Option<&[u8]>) -> Result<(), IssueError> {
    let fail = |m: String| IssueError::SelfCheck(m);
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| fail(format!("does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(fail("trailing bytes".into()));
    }
    let (_, issuer) = X509Certificate::from_der(issuer_der).map_err(|e| fail(format!("issuer does not parse: {e}")))?;
    super::signature::verify_cert(&cert, issuer.public_key()).map_err(|e| fail(format!("signature: {e}")))?;
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(fail("issuer name differs from the CA's subject".into()));
    }
    if cert.public_key().raw != spki_der {
        return Err(fail("public key differs from the requested one".into()));
    }
    if let Some(raw) = subject_raw {
        if cert.subject().as_raw() != raw {
            return Err(fail("subject differs from the CSR's".into()));
        }
    }
    let ski_of = |c: &X509Certificate<'_>| {
        c.iter_extensions().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
    };
    if ski_of(&cert).is_none() {
        return Err(fail("no subjectKeyIdentifier".into()));
    }
    if der != issuer_der {
        let aki = cert.iter_extensions().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
        if let Some(ca_ski) = ski_of(&issuer) {
            if aki.as_deref() != Some(ca_ski.as_slice()) {
                return Err(fail("authorityKeyIdentifier does not match the CA's subjectKeyIdentifier".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::ca::CaSigner;
    use crate::pki::csr::{make_csr, parse_csr};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::LeafProfile;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};
    use time::OffsetDateTime;

    fn subject(cn: &str) -> rcgen::DistinguishedName {
        Subject { common_name: Some(cn.into()), ..Default::default() }.to_dn().unwrap()
    }

    fn validity() -> Validity {
        ValidityRequest::default().resolve(OffsetDateTime::now_utc(), Expiry { months: 12, seconds: 0 }).unwrap()
    }

    fn root(spec: KeySpec) -> CaSigner {
        let key = PrivateKey::generate(spec).unwrap();
        let kind = Kind::Root { path_len: None, permit_domains: vec![] };
        let der = self_signed(&CertSpec::new(subject("Unit CA"), vec![], kind, validity()), &key).unwrap();
        CaSigner::new(der, key, "ca.crt", "ca.key").unwrap()
    }

    #[test]
    fn a_csr_round_trip_keeps_key_subject_and_sans_for_every_key_type() {
        for ca_spec in [KeySpec::EcdsaP256, KeySpec::Ed25519, KeySpec::EcdsaP521] {
            let ca = root(ca_spec);
            for leaf_spec in [KeySpec::EcdsaP384, KeySpec::Ed25519, KeySpec::EcdsaP521] {
                let key = PrivateKey::generate(leaf_spec).unwrap();
                let sans = vec![San::domain("svc.example.com").unwrap(), San::ip("::1").unwrap()];
                let csr = parse_csr(&make_csr(&subject("svc"), &sans, &key).unwrap(), "unit.csr").unwrap();
                assert_eq!(csr.sans, sans);
                let kind = Kind::Leaf { profile: LeafProfile::Server, code_signing: false };
                let spec = CertSpec::from_csr(&csr, kind, validity());
                let der = signed_by(&spec, &csr.spki_der, &ca).unwrap();
                let (_, cert) = X509Certificate::from_der(&der).unwrap();
                assert_eq!(cert.public_key().raw, key.spki_der().as_slice(), "{ca_spec} signing {leaf_spec}");
            }
        }
    }

    #[test]
    fn a_ca_refuses_a_key_that_is_not_its_own_and_a_leaf_is_not_a_ca() {
        let ca = root(KeySpec::EcdsaP256);
        let other = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        assert!(matches!(
            CaSigner::new(ca.cert_der().to_vec(), other, "a", "b"),
            Err(crate::pki::ca::CaError::KeyMismatch { .. })
        ));
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let kind = Kind::Leaf { profile: LeafProfile::Peer, code_signing: false };
        let leaf = signed_by(&CertSpec::new(subject("leaf"), vec![], kind, validity()), &key.spki_der(), &ca).unwrap();
        assert!(matches!(CaSigner::new(leaf, key, "leaf", "leaf.key"), Err(crate::pki::ca::CaError::NotCa { .. })));
    }

    #[test]
    fn a_leaf_given_as_a_ca_is_refused_in_the_librarys_words() {
        let ca = root(KeySpec::EcdsaP256);
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let kind = Kind::Leaf { profile: LeafProfile::Peer, code_signing: false };
        let leaf = signed_by(&CertSpec::new(subject("leaf"), vec![], kind, validity()), &key.spki_der(), &ca).unwrap();
        let e = CaSigner::new(leaf, key, "leaf.crt", "leaf.key").err().unwrap();
        assert_eq!(
            e.to_string(),
            "leaf.crt is not a CA certificate (basicConstraints CA:TRUE is missing), so it cannot sign"
        );
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let mut der = make_csr(&subject("honest"), &[], &key).unwrap();
        let at = der.windows(6).position(|w| w == b"honest").unwrap();
        der[at] = b'H';
        assert!(matches!(parse_csr(&der, "t.csr"), Err(crate::pki::csr::CsrError::BadSignature { .. })));
    }

    #[test]
    fn crls_list_a_serial_once_and_count_up() {
        use crate::pki::crl::CrlState;
        let ca = root(KeySpec::EcdsaP256);
        let now = OffsetDateTime::now_utc();
        let mut state = CrlState::default();
        let first = state.sign(&ca, now).unwrap();
        assert_eq!(CrlState::read(&first, "c", &ca).unwrap().number, 1);
        assert!(state.revoke(&[0, 0x42, 0x01], now, None));
        assert!(!state.revoke(&[0x42, 0x01], now, None), "the same serial, by value");
        let second = state.sign(&ca, now).unwrap();
        let back = CrlState::read(&second, "c", &ca).unwrap();
        assert_eq!((back.number, back.entries.len()), (2, 1));
        let stranger = root(KeySpec::EcdsaP256);
        assert!(matches!(
            CrlState::read(&second, "c", &stranger),
            Err(crate::pki::crl::CrlError::ForeignSignature { .. })
        ));
    }

    /// A fresh P-256 root named `cn`, valid for a year.
    pub(crate) fn ca(cn: &str) -> CaSigner {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let dn = Subject { common_name: Some(cn.into()), ..Default::default() }.to_dn().unwrap();
        let validity =
            ValidityRequest::default().resolve(OffsetDateTime::now_utc(), Expiry::parse("1 year").unwrap()).unwrap();
        let spec = CertSpec::new(
            dn,
            vec![],
            crate::pki::profile::Kind::Root { path_len: None, permit_domains: vec![] },
            validity,
        );
        CaSigner::new(self_signed(&spec, &key).unwrap(), key, "ca.crt", "ca.key").unwrap()
    }

    #[test]
    fn sign_numbers_one_two_three_and_sign_numbered_writes_the_number_given() {
        let signer = ca("Numbered CA");
        let now = OffsetDateTime::now_utc();
        let mut state = crate::pki::crl::CrlState::default();
        state.revoke(&[0x05], now, Some(crate::pki::crl::Reason::Superseded));
        for want in 1..=3 {
            let der = state.sign(&signer, now).unwrap();
            assert_eq!(state.number, want);
            assert_eq!(
                crate::pki::crl::CrlState::read(&der, "crl", &signer).unwrap().number,
                want,
                "the depot counts one by one"
            );
        }
        let big = crate::pki::crl::next_number(state.number, now);
        let der = state.sign_numbered(&signer, now, big).unwrap();
        let read = crate::pki::crl::CrlState::read(&der, "crl", &signer).unwrap();
        assert_eq!((read.number, state.number), (big, big));
        assert_eq!(read.entries.iter().map(|e| &e.serial).collect::<Vec<_>>(), [&vec![0x05]]);
        // The top bit set: still a positive INTEGER, read back as written.
        let top = (1u64 << 63) + 5;
        let der = state.sign_numbered(&signer, now, top).unwrap();
        assert_eq!(crate::pki::crl::CrlState::read(&der, "crl", &signer).unwrap().number, top);
    }
}
