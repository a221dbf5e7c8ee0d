//! Certificate profiles as data: the TOML files in `templates/profiles/`,
//! embedded in the binary, and users' own copies given with `--template`.
//! A template says what kind of certificate it makes, its key usages and
//! extended key usages, its default validity, key type and subject.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, IsCa, KeyUsagePurpose as Ku, NameConstraints,
};
use serde::Deserialize;
use toml::Spanned;

use super::keys::KeySpec;
use super::validity::Expiry;

/// The built-in templates: name and TOML text.
pub const BUILTINS: [(&str, &str); 5] = [
    ("ca", include_str!("../../templates/profiles/ca.toml")),
    ("intermediate", include_str!("../../templates/profiles/intermediate.toml")),
    ("server", include_str!("../../templates/profiles/server.toml")),
    ("client", include_str!("../../templates/profiles/client.toml")),
    ("peer", include_str!("../../templates/profiles/peer.toml")),
];

/// A `key_type` value of a template or plan.
pub fn parse_key_type(s: &str) -> Result<KeySpec, String> {
    Ok(match s {
        "ecdsa-p256" => KeySpec::EcdsaP256,
        "ecdsa-p384" => KeySpec::EcdsaP384,
        "ed25519" => KeySpec::Ed25519,
        "rsa" | "rsa-2048" => KeySpec::Rsa(2048),
        "rsa-3072" => KeySpec::Rsa(3072),
        "rsa-4096" => KeySpec::Rsa(4096),
        other => {
            return Err(format!(
                "unknown key_type {other:?}; use ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072 or rsa-4096"
            ))
        }
    })
}

/// Line and column (1-based) of a byte offset in `text`.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}
/// What a template makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    Ca,
    Intermediate,
    Leaf,
}

/// Subject fields a template fills in when the command line leaves them out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectDefaults {
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub province: Option<String>,
    pub locality: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    description: Option<String>,
    kind: Spanned<TemplateKind>,
    key_type: Option<Spanned<String>>,
    validity: Option<Spanned<String>>,
    #[serde(default)]
    key_usage: Vec<Spanned<String>>,
    #[serde(default)]
    extended_key_usage: Vec<Spanned<String>>,
    path_len: Option<Spanned<u8>>,
    #[serde(default)]
    permit_domains: Vec<Spanned<String>>,
    crl_url: Option<Spanned<String>>,
    #[serde(default)]
    subject: SubjectDefaults,
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub description: Option<String>,
    pub kind: TemplateKind,
    pub key_type: Option<KeySpec>,
    pub validity: Option<Expiry>,
    pub key_usage: Vec<Ku>,
    pub extended_key_usage: Vec<Eku>,
    pub path_len: Option<u8>,
    pub permit_domains: Vec<String>,
    /// A CA's CRL Distribution Point, put into what it issues (as `init
    /// --crl-url`).
    pub crl_url: Option<String>,
    pub subject: SubjectDefaults,
}

/// A template that could not be read, with where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct TemplateError {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

const KEY_USAGES: [(&str, Ku); 9] = [
    ("digitalSignature", Ku::DigitalSignature),
    ("nonRepudiation", Ku::ContentCommitment),
    ("keyEncipherment", Ku::KeyEncipherment),
    ("dataEncipherment", Ku::DataEncipherment),
    ("keyAgreement", Ku::KeyAgreement),
    ("keyCertSign", Ku::KeyCertSign),
    ("cRLSign", Ku::CrlSign),
    ("encipherOnly", Ku::EncipherOnly),
    ("decipherOnly", Ku::DecipherOnly),
];

const EKUS: [(&str, Eku); 6] = [
    ("serverAuth", Eku::ServerAuth),
    ("clientAuth", Eku::ClientAuth),
    ("codeSigning", Eku::CodeSigning),
    ("emailProtection", Eku::EmailProtection),
    ("timeStamping", Eku::TimeStamping),
    ("OCSPSigning", Eku::OcspSigning),
];

impl Template {
    /// Parses and checks a template. `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Template, TemplateError> {
        let err = |offset: usize, message: String| {
            let (line, column) = position(text, offset);
            TemplateError { source_name: source_name.to_string(), line, column, message }
        };
        let raw: Raw =
            toml::from_str(text).map_err(|e| err(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        let kind = *raw.kind.get_ref();
        let pick = |v: &Spanned<String>, table: &[(&str, Ku)]| -> Result<Ku, TemplateError> {
            table.iter().find(|(n, _)| *n == v.get_ref()).map(|(_, k)| *k).ok_or_else(|| {
                err(
                    v.span().start,
                    format!(
                        "unknown key usage {:?}; use one of {}",
                        v.get_ref(),
                        table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        };
        let key_usage = raw.key_usage.iter().map(|v| pick(v, &KEY_USAGES)).collect::<Result<Vec<_>, _>>()?;
        let extended_key_usage = raw
            .extended_key_usage
            .iter()
            .map(|v| {
                EKUS.iter().find(|(n, _)| *n == v.get_ref()).map(|(_, k)| k.clone()).ok_or_else(|| {
                    err(
                        v.span().start,
                        format!(
                            "unknown extended key usage {:?}; use one of {}",
                            v.get_ref(),
                            EKUS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let validity = raw
            .validity
            .as_ref()
            .map(|v| Expiry::parse(v.get_ref()).map_err(|e| err(v.span().start, e.naming(|_| "validity"))))
            .transpose()?;
        let key_type = raw
            .key_type
            .as_ref()
            .map(|v| parse_key_type(v.get_ref()).map_err(|m| err(v.span().start, m)))
            .transpose()?;
        let ca_only =
            |what: &str, span: usize| err(span, format!("{what} only applies to kind = \"ca\" or \"intermediate\""));
        if kind == TemplateKind::Leaf {
            if let Some(p) = &raw.path_len {
                return Err(ca_only("path_len", p.span().start));
            }
            if let Some(d) = raw.permit_domains.first() {
                return Err(ca_only("permit_domains", d.span().start));
            }
            if let Some(u) = &raw.crl_url {
                return Err(ca_only("crl_url", u.span().start));
            }
            if key_usage.iter().any(|k| matches!(k, Ku::KeyCertSign | Ku::CrlSign)) {
                return Err(err(
                    raw.kind.span().start,
                    "a leaf template cannot have keyCertSign or cRLSign: those make a CA".into(),
                ));
            }
        } else if !key_usage.contains(&Ku::KeyCertSign) {
            return Err(err(
                raw.kind.span().start,
                "a CA template needs keyCertSign in key_usage, or nothing it signs verifies".into(),
            ));
        }
        for d in &raw.permit_domains {
            super::constraints::Subtree::parse(d.get_ref())
                .map_err(|why| err(d.span().start, format!("permit_domains {:?}: {why}", d.get_ref())))?;
        }
        if let Some(u) = &raw.crl_url {
            super::crl::check_crl_url(u.get_ref()).map_err(|m| err(u.span().start, format!("crl_url: {m}")))?;
        }
        Ok(Template {
            crl_url: raw.crl_url.map(Spanned::into_inner),
            description: raw.description,
            kind,
            key_type,
            validity,
            key_usage,
            extended_key_usage,
            path_len: raw.path_len.map(Spanned::into_inner),
            permit_domains: raw.permit_domains.into_iter().map(Spanned::into_inner).collect(),
            subject: raw.subject,
        })
    }

    /// A built-in template by name.
    pub fn builtin(name: &str) -> Option<&'static Template> {
        static PARSED: OnceLock<Vec<(&'static str, Template)>> = OnceLock::new();
        let all = PARSED.get_or_init(|| {
            BUILTINS
                .iter()
                .map(|(n, text)| {
                    (
                        *n,
                        Template::parse(text, &format!("templates/profiles/{n}.toml"))
                            .expect("built-in templates parse"),
                    )
                })
                .collect()
        });
        all.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// Sets basicConstraints, keyUsage, extendedKeyUsage, name constraints
    /// and the key identifiers on `params`. `root` is true for a
    /// self-signed CA, which needs no AKI (RFC 5280 §4.2.1.1).
    pub fn apply(&self, params: &mut CertificateParams, rsa_key: bool, root: bool) {
        params.key_usages = self.key_usage.clone();
        params.extended_key_usages = self.extended_key_usage.clone();
        params.name_constraints = None;
        match self.kind {
            TemplateKind::Ca | TemplateKind::Intermediate => {
                params.is_ca =
                    IsCa::Ca(self.path_len.map_or(BasicConstraints::Unconstrained, BasicConstraints::Constrained));
                if !self.permit_domains.is_empty() {
                    let (permitted, _) = super::constraints::effective(&self.permit_domains);
                    params.name_constraints = Some(NameConstraints {
                        permitted_subtrees: permitted.iter().filter_map(|s| s.to_rcgen()).collect(),
                        excluded_subtrees: Vec::new(),
                    });
                }
            }
            TemplateKind::Leaf => {
                // ExplicitNoCa writes CA:FALSE and makes rcgen emit the SKI,
                // which it writes only for `IsCa::Ca` and `ExplicitNoCa`
                // (RFC 5280 §4.2.1.2 wants it in end-entity certificates).
                params.is_ca = IsCa::ExplicitNoCa;
                // keyEncipherment only means something for RSA key transport;
                // on an EC key RFC 5280 §4.2.1.3 makes it an error (pkilint).
                params.key_usages.retain(|k| *k != Ku::KeyEncipherment);
                if rsa_key && self.key_usage.contains(&Ku::DigitalSignature) {
                    params.key_usages.push(Ku::KeyEncipherment);
                }
            }
        }
        params.use_authority_key_identifier_extension = !root;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for (name, _) in BUILTINS {
            assert!(Template::builtin(name).is_some(), "{name}");
        }
        assert_eq!(Template::builtin("server").unwrap().extended_key_usage, vec![Eku::ServerAuth]);
        assert_eq!(Template::builtin("ca").unwrap().validity, Some(Expiry { months: 120, seconds: 0 }));
    }

    #[test]
    fn errors_name_the_line() {
        let text =
            "kind = \"leaf\"\nkey_usage = [\"digitalSignature\"]\nextended_key_usage = [\"serverAuth\", \"webAuth\"]\n";
        let e = Template::parse(text, "t.toml").unwrap_err();
        assert_eq!((e.line, e.message.contains("webAuth")), (3, true), "{e}");
        let e = Template::parse("kind = \"leaf\"\nvalidty = \"2 years\"\n", "t.toml").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().starts_with("t.toml:2:"), "{e}");
        let e = Template::parse("kind = \"leaf\"\nvalidity = \"forever\"\n", "t.toml").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = Template::parse("kind = \"leaf\"\npath_len = 1\n", "t.toml").unwrap_err();
        assert!(e.message.contains("path_len"), "{e}");
        let e = Template::parse("kind = \"ca\"\nkey_usage = [\"digitalSignature\"]\n", "t.toml").unwrap_err();
        assert!(e.message.contains("keyCertSign"), "{e}");
        let e = Template::parse("kind = \"root\"\n", "t.toml").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }
}
