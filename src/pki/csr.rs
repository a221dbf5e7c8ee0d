//! Certificate signing requests: making them, and reading them back with
//! their signature checked: the proof of possession of RFC 2986 §3.
//! certstrap 1.3.0's `sign` never checked it, so a tampered request was
//! signed.

use rcgen::{CertificateParams, DistinguishedName};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::san::{self, San};
use super::subject;

/// A CSR whose signature verified, reduced to what signing uses.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// The subject as rcgen will write it.
    pub subject: DistinguishedName,
    /// The subject's DER, to check the certificate keeps it byte for byte.
    pub subject_raw: Vec<u8>,
    /// The subject's CN, if any.
    pub common_name: Option<String>,
    /// Every SAN requested.
    pub sans: Vec<San>,
    /// The requester's SubjectPublicKeyInfo, DER. The certificate must carry
    /// exactly this key (rcgen issue 448: a P-384 CSR signed with SHA-256
    /// came out claiming a P-256 key).
    pub spki_der: Vec<u8>,
    /// Requested extensions that certforge does not copy, for the report.
    pub ignored: Vec<String>,
}

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("{what} holds a {label} PEM block, not a CERTIFICATE REQUEST; give the .csr file")]
    WrongLabel { what: String, label: String },
    #[error("{what} is not a certificate signing request: {detail}; make one with `certforge request-cert` or `openssl req -new`")]
    Unreadable { what: String, detail: String },
    #[error("{what}: the CSR's signature does not verify ({detail}); it was altered after it was made, or signed with another key. Make a fresh one with `certforge request-cert`")]
    BadSignature { what: String, detail: String },
    #[error("{what}: the CSR requests {detail}; remove it from the request")]
    UnsupportedSan { what: String, detail: String },
    #[error("{what}: the CSR's key uses an algorithm certforge cannot put in a certificate: {detail}; use ECDSA P-256/P-384/P-521, Ed25519 or RSA")]
    UnsupportedKey { what: String, detail: String },
    #[error(transparent)]
    Subject(#[from] subject::SubjectError),
    #[error("could not make the CSR: {0}")]
    Make(String),
}

/// Makes a CSR carrying `subject` and `sans`, signed with `key`. It carries
/// no key usages: the signing profile decides those.
pub fn make_csr(
    subject: &DistinguishedName,
    sans: &[San],
    key: &impl super::ca::SelfSigning,
) -> Result<Vec<u8>, CsrError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.clone();
    params.subject_alt_names =
        sans.iter().map(San::to_rcgen).collect::<Result<_, _>>().map_err(|e| CsrError::Make(e.to_string()))?;
    let csr = params.serialize_request(key).map_err(|e| CsrError::Make(key.explain(e)))?;
    Ok(csr.der().to_vec())
}

/// Reads a CSR from PEM or DER and verifies its signature.
pub fn parse_csr(bytes: &[u8], what: &str) -> Result<ParsedCsr, CsrError> {
    let unreadable = |detail: String| CsrError::Unreadable { what: what.to_string(), detail };
    let der = if bytes.windows(11).take(4096).any(|w| w == b"-----BEGIN ") {
        let block = pem::parse(bytes).map_err(|e| unreadable(format!("bad PEM ({e})")))?;
        if !matches!(block.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST") {
            return Err(CsrError::WrongLabel { what: what.to_string(), label: block.tag().to_string() });
        }
        block.into_contents()
    } else {
        bytes.to_vec()
    };
    if der.first() != Some(&0x30) {
        return Err(unreadable("it is neither PEM (no -----BEGIN line) nor DER".into()));
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|_| unreadable("its DER is malformed or truncated".into()))?;
    if !rest.is_empty() {
        return Err(unreadable(format!("{} bytes follow the request", rest.len())));
    }
    let info = &csr.certification_request_info;
    super::signature::verify(&info.subject_pki, &csr.signature_algorithm, &csr.signature_value, info.raw)
        .map_err(|detail| CsrError::BadSignature { what: what.to_string(), detail })?;
    let spki_der = info.subject_pki.raw.to_vec();
    rcgen::SubjectPublicKeyInfo::from_der(&spki_der).map_err(|_| CsrError::UnsupportedKey {
        what: what.to_string(),
        detail: super::keys::describe_spki(&spki_der),
    })?;

    let mut sans = Vec::new();
    let mut ignored = Vec::new();
    for attr in info.iter_attributes() {
        let x509_parser::cri_attributes::ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
            continue;
        };
        for ext in &req.extensions {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(names) => {
                    for name in &names.general_names {
                        let san = san::from_general_name(name)
                            .map_err(|detail| CsrError::UnsupportedSan { what: what.to_string(), detail })?;
                        if !sans.contains(&san) {
                            sans.push(san);
                        }
                    }
                }
                ParsedExtension::BasicConstraints(_) => ignored.push("basicConstraints".to_string()),
                ParsedExtension::KeyUsage(_) => ignored.push("keyUsage".to_string()),
                ParsedExtension::ExtendedKeyUsage(_) => ignored.push("extendedKeyUsage".to_string()),
                _ => ignored.push(
                    x509_parser::objects::oid2sn(&ext.oid, x509_parser::objects::oid_registry())
                        .map(str::to_string)
                        .unwrap_or_else(|_| ext.oid.to_id_string()),
                ),
            }
        }
    }
    let subject = subject::dn_from_x509(&info.subject, what)?;
    Ok(ParsedCsr {
        subject,
        subject_raw: info.subject.as_raw().to_vec(),
        common_name: subject::common_name(&info.subject),
        sans,
        spki_der,
        ignored,
    })
}
