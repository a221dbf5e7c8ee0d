//! Certificate kinds and profiles: which template a certificate is made
//! from. A CSR's own requests for basicConstraints, key usages or EKUs are
//! never copied (rcgen would copy them as given; RFC 5280 §4.2.1.9,
//! §4.2.1.3 and §4.2.1.12 leave them to the CA); the template decides.

use rcgen::CertificateParams;

use super::template::{Template, TemplateKind};
use super::validity::Expiry;

/// `sign --profile`: what a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LeafProfile {
    /// serverAuth only.
    Server,
    /// clientAuth only: what Go's RequireAndVerifyClientCert and other mTLS servers check on a client cert.
    Client,
    /// serverAuth + clientAuth, as certstrap signs every leaf.
    Peer,
}

impl LeafProfile {
    /// The lowercase name, which is also its built-in template's name.
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
    /// Made from a user's `--template`; `root` when it signs itself.
    Custom { template: Box<Template>, root: bool },
}

impl Kind {
    /// True for roots and intermediates.
    pub fn is_ca(&self) -> bool {
        match self {
            Kind::Leaf { .. } => false,
            Kind::Custom { template, .. } => template.kind != TemplateKind::Leaf,
            _ => true,
        }
    }

    /// "CA", "intermediate CA", "server certificate" and so on, for messages.
    pub fn describe(&self) -> String {
        match self {
            Kind::Root { .. } => "CA".into(),
            Kind::Intermediate { .. } => "intermediate CA".into(),
            Kind::Leaf { profile, .. } => format!("{} certificate", profile.name()),
            Kind::Custom { template, root } => match (template.kind, root) {
                (TemplateKind::Leaf, _) => "certificate (from your template)".into(),
                (_, true) => "CA (from your template)".into(),
                _ => "intermediate CA (from your template)".into(),
            },
        }
    }

    /// The template this kind is made from: the built-in one for its
    /// profile with the command line's overrides, or the user's own.
    pub fn template(&self) -> Template {
        let builtin = |n: &str| Template::builtin(n).expect("built-in template").clone();
        match self {
            Kind::Root { path_len, permit_domains } => {
                Template { path_len: *path_len, permit_domains: permit_domains.clone(), ..builtin("ca") }
            }
            Kind::Intermediate { path_len } => Template { path_len: *path_len, ..builtin("intermediate") },
            Kind::Leaf { profile, code_signing } => {
                let mut t = builtin(profile.name());
                if *code_signing {
                    t.extended_key_usage.push(rcgen::ExtendedKeyUsagePurpose::CodeSigning);
                }
                t
            }
            Kind::Custom { template, .. } => (**template).clone(),
        }
    }

    /// How long a certificate of this kind lasts unless told otherwise: its
    /// template's `validity` (templates/profiles: a CA 10 years, an
    /// intermediate 5, a leaf 2 as in certstrap). A user's template without
    /// one gets the built-in value of its kind.
    pub fn default_lifetime(&self) -> Expiry {
        let builtin = |n: &str| Template::builtin(n).and_then(|t| t.validity);
        let fallback = match self {
            Kind::Root { .. } | Kind::Custom { root: true, .. } => builtin("ca"),
            _ if self.is_ca() => builtin("intermediate"),
            _ => builtin("server"),
        };
        self.template().validity.or(fallback).unwrap_or(Expiry { months: 24, seconds: 0 })
    }

    /// Sets basicConstraints, keyUsage, extendedKeyUsage, name constraints
    /// and the key identifiers on `params`, from [`Kind::template`].
    pub fn apply(&self, params: &mut CertificateParams, rsa_key: bool) {
        let root = matches!(self, Kind::Root { .. } | Kind::Custom { root: true, .. });
        self.template().apply(params, rsa_key, root);
    }
}
