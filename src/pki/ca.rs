//! A CA ready to sign: its certificate and key, checked to belong together
//! and to be allowed to sign. rcgen's `Issuer::from_ca_cert_der` checks
//! neither that the key matches the certificate nor that it is a CA (cA),
//! and certstrap 1.3.0 happily signed with a leaf.

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::PrivateKey;
use super::san::San;

/// A key that signs somewhere else, a PKCS#11 token today: rcgen's remote
/// signing key, plus what messages need. The core never sees how.
pub trait RemoteKey: rcgen::SigningKey + Send + Sync {
    /// Where the key is, e.g. "PKCS#11: token \"certforge\", object \"ca\"".
    fn location(&self) -> String;
    /// Why the last signature failed, when one did.
    fn last_error(&self) -> Option<String>;
    /// The text the depot keeps to find the key again (a PKCS#11 URI).
    fn uri(&self) -> String;
}

/// A CA's key: a file key in memory, or a key that never leaves a token.
pub enum CaKey {
    File(PrivateKey),
    Remote(Box<dyn RemoteKey>),
}

impl From<PrivateKey> for CaKey {
    fn from(k: PrivateKey) -> CaKey {
        CaKey::File(k)
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(k) => k.der_bytes(),
            CaKey::Remote(k) => k.der_bytes(),
        }
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaKey::File(k) => k.algorithm(),
            CaKey::Remote(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(k) => k.sign(msg),
            CaKey::Remote(k) => k.sign(msg),
        }
    }
}

/// A key [`self_signed`](super::issue::self_signed) takes: it signs, and
/// explains its failures.
pub trait SelfSigning: rcgen::SigningKey {
    fn explain(&self, e: rcgen::Error) -> String;
}

impl SelfSigning for PrivateKey {
    fn explain(&self, e: rcgen::Error) -> String {
        e.to_string()
    }
}

impl SelfSigning for CaKey {
    fn explain(&self, e: rcgen::Error) -> String {
        CaKey::explain(self, e)
    }
}

impl CaKey {
    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    /// The file key, when the key is one (exports need its bytes).
    pub fn file(&self) -> Option<&PrivateKey> {
        match self {
            CaKey::File(k) => Some(k),
            CaKey::Remote(_) => None,
        }
    }

    /// "ECDSA P-256", and for a token key where it is.
    pub fn describe(&self) -> String {
        match self {
            CaKey::File(k) => k.describe(),
            CaKey::Remote(k) => format!("{}, {}", super::keys::describe_spki(&self.spki_der()), k.location()),
        }
    }

    /// rcgen's error, with the token's reason when the token failed.
    pub fn explain(&self, e: rcgen::Error) -> String {
        match (self, &e) {
            (CaKey::Remote(k), rcgen::Error::RemoteKeyError) => {
                format!("{} could not sign: {}", k.location(), k.last_error().unwrap_or_else(|| e.to_string()))
            }
            _ => e.to_string(),
        }
    }
}

/// A loaded, checked CA.
pub struct CaSigner {
    cert_der: Vec<u8>,
    key: CaKey,
    /// The CA's display name (its CN, else the file name).
    pub name: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// basicConstraints pathLenConstraint, if any.
    pub path_len: Option<u32>,
    /// Its name constraints (none for most CAs).
    pub constraints: super::constraints::NameConstraints,
    /// A root (it names itself as issuer) rather than an intermediate.
    pub self_signed: bool,
    /// The CRL Distribution Point put into everything it signs (`init
    /// --crl-url`), if any.
    pub crl_url: Option<String>,
}

/// Why a certificate and key cannot act as a CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{what} is not a certificate certforge can read: {detail}")]
    Unreadable { what: String, detail: String },
    #[error("{what} is not a CA certificate (basicConstraints CA:TRUE is missing), so it cannot sign")]
    NotCa { what: String },
    #[error("{what} is a CA whose keyUsage lacks keyCertSign, so clients would refuse what it signs; use another CA")]
    NoKeyCertSign { what: String },
    #[error(
        "{key_what} does not belong to {what}: their public keys differ; put the CA's own key beside its certificate"
    )]
    KeyMismatch { what: String, key_what: String },
}

impl CaSigner {
    /// Checks that `cert_der` is a CA certificate and that `key` is its key.
    pub fn new(cert_der: Vec<u8>, key: impl Into<CaKey>, what: &str, key_what: &str) -> Result<CaSigner, CaError> {
        let key = key.into();
        let unreadable = |detail: String| CaError::Unreadable { what: what.to_string(), detail };
        let (rest, cert) = X509Certificate::from_der(&cert_der).map_err(|e| unreadable(e.to_string()))?;
        if !rest.is_empty() {
            return Err(unreadable("trailing bytes after the certificate".into()));
        }
        let bc = cert.basic_constraints().map_err(|e| unreadable(e.to_string()))?;
        let Some(bc) = bc.filter(|bc| bc.value.ca) else {
            return Err(CaError::NotCa { what: what.to_string() });
        };
        let path_len = bc.value.path_len_constraint;
        if let Ok(Some(ku)) = cert.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(CaError::NoKeyCertSign { what: what.to_string() });
            }
        }
        if cert.public_key().raw != key.spki_der().as_slice() {
            return Err(CaError::KeyMismatch { what: what.to_string(), key_what: key_what.to_string() });
        }
        let constraints = super::constraints::NameConstraints::of(&cert);
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
        let name = super::subject::common_name(cert.subject()).unwrap_or_else(|| what.to_string());
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        drop(cert);
        Ok(CaSigner { cert_der, key, name, not_before, not_after, path_len, constraints, self_signed, crl_url: None })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's key.
    pub fn key(&self) -> &CaKey {
        &self.key
    }

    /// The CA certificate, parsed.
    pub fn cert(&self) -> X509Certificate<'_> {
        X509Certificate::from_der(&self.cert_der).expect("checked in CaSigner::new").1
    }

    /// Why each name of a certificate with `sans` and `common_name` breaks
    /// this CA's name constraints (RFC 5280 §4.2.1.10), in words: clients
    /// refuse a certificate carrying any. Without a DNS SAN, a host-like CN
    /// counts as a DNS name, as OpenSSL checks it (X509_check_host's CN
    /// fallback).
    pub fn names_outside_constraints(&self, sans: &[San], common_name: Option<&str>) -> Vec<String> {
        let cn_as_host = common_name
            .filter(|cn| cn.contains('.') && !sans.iter().any(|s| matches!(s, San::Dns(_))))
            .filter(|cn| super::san::check_dns_name(cn).is_ok())
            .map(|cn| San::Dns(cn.to_ascii_lowercase()));
        sans.iter().chain(cn_as_host.as_ref()).filter_map(|san| self.constraints.violation(san)).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::pki::san::dns_within;

    #[test]
    fn dns_constraints_match_the_domain_and_its_subdomains() {
        assert!(dns_within("example.com", "example.com"));
        assert!(dns_within("a.b.example.com", "example.com"));
        assert!(dns_within("*.example.com", "example.com"));
        assert!(!dns_within("badexample.com", "example.com"));
        assert!(!dns_within("example.com", ".example.com"));
        assert!(dns_within("a.example.com", ".example.com"));
    }
}
