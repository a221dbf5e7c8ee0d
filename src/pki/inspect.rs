//! What a certificate, CSR, CRL or key says, as plain data: the text report
//! of `inspect` and its `--json` are both renderings of these structs, so
//! the two never disagree. Field names are part of the JSON contract.

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::{describe_spki, KeySpec};
use super::profile::LeafProfile;
use super::san::{self, San};
use super::serial::hex;
use super::validity::fmt_time;

/// SANs grouped by kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ip: Vec<String>,
    pub uri: Vec<String>,
    pub email: Vec<String>,
    /// SANs of other kinds, as text.
    pub other: Vec<String>,
}

impl Sans {
    fn push(&mut self, name: &GeneralName<'_>) {
        match san::from_general_name(name) {
            Ok(San::Dns(d)) => self.dns.push(d),
            Ok(San::Ip(ip)) => self.ip.push(ip.to_string()),
            Ok(San::Uri(u)) => self.uri.push(u),
            Ok(San::Email(e)) => self.email.push(e),
            Err(_) => self.other.push(name.to_string()),
        }
    }

    /// True when there are none at all.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty()
            && self.ip.is_empty()
            && self.uri.is_empty()
            && self.email.is_empty()
            && self.other.is_empty()
    }

    /// Every SAN, typed: DNS names, then IPs, URIs, emails and others.
    pub fn entries(&self) -> Vec<SanEntry> {
        let typed = |kind: SanKind, v: &[String]| {
            v.iter().map(move |value| SanEntry { kind, value: value.clone() }).collect::<Vec<_>>()
        };
        [
            typed(SanKind::Dns, &self.dns),
            typed(SanKind::Ip, &self.ip),
            typed(SanKind::Uri, &self.uri),
            typed(SanKind::Email, &self.email),
            typed(SanKind::Other, &self.other),
        ]
        .concat()
    }

    /// "DNS:localhost, IP:127.0.0.1", or "none".
    pub fn summary(&self) -> String {
        summary(&self.entries())
    }
}

/// One SAN as JSON shows it in a list: `{"type": "dns", "value":
/// "localhost"}`, the type being dns, ip, uri, email or other (whose value
/// is the name as text).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SanEntry {
    #[serde(rename = "type")]
    pub kind: SanKind,
    pub value: String,
}

/// The kind of a [`SanEntry`], as JSON names it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SanKind {
    Dns,
    Ip,
    Uri,
    Email,
    /// A name of another form, its value the name as text.
    Other,
}

impl std::fmt::Display for SanEntry {
    /// As openssl prints it: `DNS:localhost`, `IP:127.0.0.1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            SanKind::Dns => write!(f, "DNS:{}", self.value),
            SanKind::Ip => write!(f, "IP:{}", self.value),
            SanKind::Uri => write!(f, "URI:{}", self.value),
            SanKind::Email => write!(f, "email:{}", self.value),
            SanKind::Other => f.write_str(&self.value),
        }
    }
}

/// "DNS:localhost, IP:127.0.0.1", or "none".
pub fn summary(sans: &[SanEntry]) -> String {
    if sans.is_empty() {
        "none".into()
    } else {
        sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// A key's public half.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// "ECDSA P-256", "RSA 2048", "Ed25519".
    pub description: String,
    /// "ecdsa", "rsa", "ed25519" or "other".
    pub algorithm: String,
    pub bits: Option<u32>,
}

impl KeyInfo {
    /// Describes a SubjectPublicKeyInfo.
    pub fn from_spki(spki_der: &[u8]) -> KeyInfo {
        let (algorithm, bits) = match KeySpec::from_spki(spki_der) {
            Ok(KeySpec::Rsa(bits)) => ("rsa", Some(bits)),
            Ok(KeySpec::EcdsaP256) => ("ecdsa", Some(256)),
            Ok(KeySpec::EcdsaP384) => ("ecdsa", Some(384)),
            Ok(KeySpec::EcdsaP521) => ("ecdsa", Some(521)),
            Ok(KeySpec::Ed25519) => ("ed25519", Some(256)),
            Err(_) => ("other", None),
        };
        KeyInfo { description: describe_spki(spki_der), algorithm: algorithm.into(), bits }
    }
}

/// Name constraints of a CA.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Constraints {
    pub permitted: Vec<String>,
    pub excluded: Vec<String>,
}

/// SHA-256 and SHA-1 fingerprints of the DER, as openssl prints them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fingerprints {
    pub sha256: String,
    pub sha1: String,
}

fn fingerprints(der: &[u8]) -> Fingerprints {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
    Fingerprints {
        sha256: hex(digest(&SHA256, der).as_ref()),
        sha1: hex(digest(&SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
    }
}

/// A certificate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub self_signed: bool,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days from now to notAfter; negative once expired.
    pub days_left: i64,
    /// "valid", "expired" or "not yet valid".
    pub status: String,
    pub key: KeyInfo,
    pub signature_algorithm: String,
    pub sans: Sans,
    pub is_ca: bool,
    pub basic_constraints_critical: Option<bool>,
    pub path_len: Option<u32>,
    pub key_usage: Vec<String>,
    pub key_usage_critical: Option<bool>,
    pub extended_key_usage: Vec<String>,
    /// "server", "client", "peer", "CA" or "other": what certforge would call it.
    pub profile: String,
    pub subject_key_id: Option<String>,
    pub authority_key_id: Option<String>,
    pub name_constraints: Option<Constraints>,
    pub fingerprints: Fingerprints,
}

/// A CSR.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CsrInfo {
    pub subject: String,
    pub key: KeyInfo,
    pub sans: Sans,
    pub signature_valid: bool,
    /// Why the signature failed, when it did.
    pub signature_problem: Option<String>,
}

/// One CRL entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CrlEntryInfo {
    pub serial: String,
    pub revoked_at: String,
    pub reason: Option<String>,
}

/// A CRL.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CrlInfo {
    pub issuer: String,
    pub crl_number: Option<String>,
    pub this_update: String,
    pub next_update: Option<String>,
    pub days_to_next_update: Option<i64>,
    pub entries: Vec<CrlEntryInfo>,
}

fn ids(cert: &X509Certificate<'_>) -> (Option<String>, Option<String>) {
    let mut ski = None;
    let mut aki = None;
    for ext in cert.iter_extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(hex_all(k.0)),
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.as_ref().map(|k| hex_all(k.0)),
            _ => {}
        }
    }
    (ski, aki)
}

/// Hex of every byte, leading zeros kept (key identifiers are opaque bytes).
fn hex_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn key_usages(ku: &x509_parser::extensions::KeyUsage) -> Vec<String> {
    let pairs = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ];
    pairs.iter().filter(|(on, _)| *on).map(|(_, n)| n.to_string()).collect()
}

fn ekus(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let pairs = [
        (e.any, "anyExtendedKeyUsage"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ];
    let mut out: Vec<String> = pairs.iter().filter(|(on, _)| *on).map(|(_, n)| n.to_string()).collect();
    out.extend(e.other.iter().map(|o| o.to_id_string()));
    out
}

/// "server", "client", "peer", "CA" or "other" from a certificate's EKUs.
pub fn profile_of(is_ca: bool, eku: &[String]) -> String {
    if is_ca {
        return "CA".into();
    }
    leaf_profile(eku).map_or("other", LeafProfile::name).into()
}

/// The profile a leaf with these EKUs fits (no EKU at all: peer), or None
/// when it is good for neither TLS server nor client authentication.
pub fn leaf_profile(eku: &[String]) -> Option<LeafProfile> {
    let has = |n: &str| eku.is_empty() || eku.iter().any(|e| e == n || e == "anyExtendedKeyUsage");
    match (has("serverAuth"), has("clientAuth")) {
        (true, true) => Some(LeafProfile::Peer),
        (true, false) => Some(LeafProfile::Server),
        (false, true) => Some(LeafProfile::Client),
        (false, false) => None,
    }
}

/// The display name of an X.509 name: its CN, else the whole name.
pub fn display_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    super::subject::common_name(name).unwrap_or_else(|| name.to_string())
}

/// The CN of a name printed as text ("C=US, CN=x" -> "x"), else the text.
pub fn display_name_of(text: &str) -> String {
    text.split(", ").find_map(|part| part.strip_prefix("CN=")).map_or_else(|| text.to_string(), str::to_string)
}

/// Describes a certificate as of `now`.
pub fn cert_info(der: &[u8], now: OffsetDateTime) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let bc = cert.basic_constraints().ok().flatten();
    let ku = cert.key_usage().ok().flatten();
    let eku: Vec<String> = cert.extended_key_usage().ok().flatten().map(|e| ekus(e.value)).unwrap_or_default();
    let mut sans = Sans::default();
    if let Ok(Some(s)) = cert.subject_alternative_name() {
        for n in &s.value.general_names {
            sans.push(n);
        }
    }
    let name_constraints = cert.name_constraints().ok().flatten().map(|nc| {
        let list = |v: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
            v.iter().flatten().map(|s| s.base.to_string()).collect::<Vec<_>>()
        };
        Constraints { permitted: list(&nc.value.permitted_subtrees), excluded: list(&nc.value.excluded_subtrees) }
    });
    let is_ca = bc.as_ref().is_some_and(|b| b.value.ca);
    let (ski, aki) = ids(&cert);
    let status = if now > not_after {
        "expired"
    } else if now < not_before {
        "not yet valid"
    } else {
        "valid"
    };
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        serial: hex(cert.raw_serial()),
        not_before: fmt_time(not_before),
        not_after: fmt_time(not_after),
        days_left: (not_after - now).whole_days(),
        status: status.into(),
        key: KeyInfo::from_spki(cert.public_key().raw),
        signature_algorithm: sig_alg_name(&cert.signature_algorithm.algorithm.to_id_string()),
        profile: profile_of(is_ca, &eku),
        sans,
        is_ca,
        basic_constraints_critical: bc.as_ref().map(|b| b.critical),
        path_len: bc.as_ref().and_then(|b| b.value.path_len_constraint),
        key_usage: ku.as_ref().map(|k| key_usages(k.value)).unwrap_or_default(),
        key_usage_critical: ku.as_ref().map(|k| k.critical),
        extended_key_usage: eku,
        subject_key_id: ski,
        authority_key_id: aki,
        name_constraints,
        fingerprints: fingerprints(der),
    })
}

/// A readable name for a signature algorithm OID.
pub fn sig_alg_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.3.101.112" => "Ed25519",
        other => return other.to_string(),
    }
    .to_string()
}

/// Describes a CSR, checking its signature.
pub fn csr_info(der: &[u8]) -> Result<CsrInfo, String> {
    use x509_parser::certification_request::X509CertificationRequest;
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| format!("not a CSR: {e}"))?;
    let info = &csr.certification_request_info;
    let signature =
        super::signature::verify(&info.subject_pki, &csr.signature_algorithm, &csr.signature_value, info.raw);
    let mut sans = Sans::default();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(s) = ext {
            for n in &s.general_names {
                sans.push(n);
            }
        }
    }
    Ok(CsrInfo {
        subject: info.subject.to_string(),
        key: KeyInfo::from_spki(info.subject_pki.raw),
        sans,
        signature_valid: signature.is_ok(),
        signature_problem: signature.err(),
    })
}

/// Describes a CRL as of `now`.
pub fn crl_info(der: &[u8], now: OffsetDateTime) -> Result<CrlInfo, String> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| format!("not a CRL: {e}"))?;
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntryInfo {
            serial: hex(r.raw_serial()),
            revoked_at: fmt_time(r.revocation_date.to_datetime()),
            reason: r.reason_code().map(|(_, c)| reason_name(c.0).to_string()),
        })
        .collect();
    let next = crl.next_update().map(|t| t.to_datetime());
    Ok(CrlInfo {
        issuer: crl.issuer().to_string(),
        crl_number: crl.crl_number().map(|n| n.to_string()),
        this_update: fmt_time(crl.last_update().to_datetime()),
        next_update: next.map(fmt_time),
        days_to_next_update: next.map(|t| (t - now).whole_days()),
        entries,
    })
}

/// RFC 5280 §5.3.1 reason names.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
}
