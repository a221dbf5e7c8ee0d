//! Certificate profiles: which basicConstraints, key usages and extended key
//! usages each kind of certificate carries. A CSR's own requests for these
//! are never copied (PKI-NOTES §4 trap 4); the profile decides.

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, GeneralSubtree, IsCa, KeyUsagePurpose as Ku,
    NameConstraints,
};

/// `sign --profile`: what a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeafProfile {
    /// serverAuth only.
    Server,
    /// clientAuth only: what Go's RequireAndVerifyClientCert and other mTLS servers check on a client cert.
    Client,
    /// serverAuth + clientAuth, as certstrap signs every leaf.
    Peer,
}

impl LeafProfile {
    /// The lowercase name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            LeafProfile::Server => "server",
            LeafProfile::Client => "client",
            LeafProfile::Peer => "peer",
        }
    }
}

/// The kind of certificate being made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A self-signed root. `path_len: None` leaves pathLen out, so that
    /// `sign --intermediate` chains verify by default (certstrap's root had
    /// pathLen 0 and its intermediates failed `openssl verify`, error 25).
    Root { path_len: Option<u8>, permit_domains: Vec<String> },
    /// A CA signed by another CA.
    Intermediate { path_len: Option<u8> },
    /// An end-entity certificate.
    Leaf { profile: LeafProfile, code_signing: bool },
}

impl Kind {
    /// True for roots and intermediates.
    pub fn is_ca(&self) -> bool {
        !matches!(self, Kind::Leaf { .. })
    }

    /// "CA", "intermediate CA", "server certificate" and so on, for messages.
    pub fn describe(&self) -> String {
        match self {
            Kind::Root { .. } => "CA".into(),
            Kind::Intermediate { .. } => "intermediate CA".into(),
            Kind::Leaf { profile, .. } => format!("{} certificate", profile.name()),
        }
    }

    /// Sets basicConstraints, keyUsage, extendedKeyUsage, name constraints
    /// and the key identifiers on `params`.
    pub fn apply(&self, params: &mut CertificateParams, rsa_key: bool) {
        let path = |p: Option<u8>| p.map_or(BasicConstraints::Unconstrained, BasicConstraints::Constrained);
        params.extended_key_usages.clear();
        params.name_constraints = None;
        match self {
            Kind::Root { path_len, permit_domains } => {
                params.is_ca = IsCa::Ca(path(*path_len));
                params.key_usages = ca_key_usages();
                if !permit_domains.is_empty() {
                    params.name_constraints = Some(NameConstraints {
                        permitted_subtrees: permit_domains.iter().map(|d| GeneralSubtree::DnsName(d.clone())).collect(),
                        excluded_subtrees: Vec::new(),
                    });
                }
                // A self-signed root needs no AKI (RFC 5280 §4.2.1.1).
                params.use_authority_key_identifier_extension = false;
            }
            Kind::Intermediate { path_len } => {
                params.is_ca = IsCa::Ca(path(*path_len));
                params.key_usages = ca_key_usages();
                params.use_authority_key_identifier_extension = true;
            }
            Kind::Leaf { profile, code_signing } => {
                // ExplicitNoCa writes CA:FALSE and makes rcgen emit the SKI
                // (PKI-NOTES §4 trap 3).
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![Ku::DigitalSignature];
                // keyEncipherment only means something for RSA key transport;
                // on an EC key RFC 5280 §4.2.1.3 makes it an error (pkilint).
                if rsa_key {
                    params.key_usages.push(Ku::KeyEncipherment);
                }
                params.extended_key_usages = match profile {
                    LeafProfile::Server => vec![Eku::ServerAuth],
                    LeafProfile::Client => vec![Eku::ClientAuth],
                    LeafProfile::Peer => vec![Eku::ServerAuth, Eku::ClientAuth],
                };
                if *code_signing {
                    params.extended_key_usages.push(Eku::CodeSigning);
                }
                params.use_authority_key_identifier_extension = true;
            }
        }
    }
}

/// keyCertSign and cRLSign are what a CA needs (RFC 5280 §4.2.1.3);
/// digitalSignature lets it sign OCSP responses and is what Python 3.13's
/// VERIFY_X509_STRICT and openssl's defaults expect to see alongside.
fn ca_key_usages() -> Vec<Ku> {
    vec![Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign]
}
