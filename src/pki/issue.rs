//! Issuing certificates: a self-signed root, or a certificate signed by a
//! [`CaSigner`] for a public key taken from a CSR. Every certificate is
//! parsed back and checked before anyone can write it.

use rcgen::{CertificateParams, DistinguishedName, Issuer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ca::CaSigner;
use super::keys::PrivateKey;
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
    pub sans: Vec<San>,
    pub kind: Kind,
    pub validity: Validity,
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
    params.subject_alt_names = spec
        .sans
        .iter()
        .map(San::to_rcgen)
        .collect::<Result<_, _>>()
        .map_err(|e| IssueError::Build(e.to_string()))?;
    params.not_before = spec.validity.not_before;
    params.not_after = spec.validity.not_after;
    params.serial_number = Some(random_serial());
    spec.kind.apply(&mut params, rsa_key);
    Ok(params)
}

/// Makes a self-signed CA certificate.
pub fn self_signed(spec: &CertSpec, key: &PrivateKey) -> Result<Vec<u8>, IssueError> {
    let params = params_for(spec, key.is_rsa())?;
    let cert = params
        .self_signed(key.pair())
        .map_err(|e| IssueError::Build(e.to_string()))?;
    let der = cert.der().to_vec();
    check_issued(&der, &der, &key.spki_der(), spec.subject_raw.as_deref())?;
    Ok(der)
}

/// Signs a certificate for `spki_der` with `ca`.
pub fn signed_by(spec: &CertSpec, spki_der: &[u8], ca: &CaSigner) -> Result<Vec<u8>, IssueError> {
    let public = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| IssueError::Build(e.to_string()))?;
    let rsa_key = super::keys::describe_spki(spki_der).starts_with("RSA");
    let params = params_for(spec, rsa_key)?;
    let issuer = Issuer::from_ca_cert_der(&ca.cert_der().into(), ca.key().pair())
        .map_err(|e| IssueError::Build(e.to_string()))?;
    let cert = params
        .signed_by(&public, &issuer)
        .map_err(|e| IssueError::Build(e.to_string()))?;
    let der = cert.der().to_vec();
    check_issued(&der, ca.cert_der(), spki_der, spec.subject_raw.as_deref())?;
    Ok(der)
}

/// Parses `der` back and checks what rcgen never promises: that it verifies
/// under the issuer's key, names the issuer byte for byte, points at the
/// issuer's SKI, carries the requested key, and keeps the CSR's subject.
fn check_issued(
    der: &[u8],
    issuer_der: &[u8],
    spki_der: &[u8],
    subject_raw: Option<&[u8]>,
) -> Result<(), IssueError> {
    let fail = |m: String| IssueError::SelfCheck(m);
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| fail(format!("does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(fail("trailing bytes".into()));
    }
    let (_, issuer) = X509Certificate::from_der(issuer_der)
        .map_err(|e| fail(format!("issuer does not parse: {e}")))?;
    super::signature::verify_cert(&cert, issuer.public_key())
        .map_err(|e| fail(format!("signature: {e}")))?;
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
        c.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
    };
    if ski_of(&cert).is_none() {
        return Err(fail("no subjectKeyIdentifier".into()));
    }
    if der != issuer_der {
        let aki = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        if let Some(ca_ski) = ski_of(&issuer) {
            if aki.as_deref() != Some(ca_ski.as_slice()) {
                return Err(fail(
                    "authorityKeyIdentifier does not match the CA's subjectKeyIdentifier".into(),
                ));
            }
        }
    }
    Ok(())
}
