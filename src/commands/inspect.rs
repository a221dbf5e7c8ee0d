//! `certforge inspect`: what a certificate, CSR, CRL or key holds, as text
//! or JSON.

use anyhow::Result;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::print_stdout;
use super::inputs::{label, resolve};
use crate::authority::listing::depot_certs;
use crate::cli::InspectArgs;
use crate::depot::{read_file, Depot};
use crate::pki::inspect::{cert_info, crl_info, csr_info, CertInfo, CrlInfo, CsrInfo, KeyInfo};
use crate::pki::keys::{KeyError, PrivateKey};
use crate::pki::objects::{read_objects, Object};

/// A private key, described without its secret.
#[derive(Debug, Serialize)]
pub struct KeyDesc {
    /// Its public key; absent when it is encrypted and no passphrase was given.
    pub key: Option<KeyInfo>,
    pub encrypted: bool,
    /// Depot certificates carrying its public key.
    pub belongs_to: Vec<String>,
    /// Why the key could not be read, if it could not.
    pub problem: Option<String>,
}

/// A CA key on a PKCS#11 token (a `NAME.key.uri` file, or a URI given
/// on the command line), described without logging in.
#[derive(Debug, Serialize)]
pub struct TokenKeyDesc {
    pub uri: String,
    /// "PKCS#11: token X, object Y (reachable through MODULE)" or why not.
    pub location: String,
    pub reachable: bool,
    /// Its public key, when the token shows it without a PIN.
    pub key: Option<KeyInfo>,
    /// Depot certificates carrying its public key.
    pub belongs_to: Vec<String>,
}

/// One object, described.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Described {
    Certificate(Box<CertInfo>),
    Csr(CsrInfo),
    Crl(CrlInfo),
    Key(KeyDesc),
    #[serde(rename = "pkcs11-key")]
    TokenKey(TokenKeyDesc),
}

/// A file and what it holds.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: String,
    pub objects: Vec<Described>,
    /// For a depot CA certificate: where its key is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<String>,
}

/// Runs `inspect`.
pub fn run(depot: &Depot, args: &InspectArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let mut reports = Vec::new();
    for target in &args.targets {
        if crate::pkcs11::is_pkcs11_uri(target) {
            let uri = crate::pkcs11::Pkcs11Uri::parse(target).map_err(|e| super::common::usage(e.to_string()))?;
            let desc = describe_token_key(depot, &uri, args);
            reports.push(FileReport { file: target.clone(), objects: vec![Described::TokenKey(desc)], ca_key: None });
            continue;
        }
        let path = resolve(depot, target, &["crt", "csr", "crl", "key", crate::authority::keys::URI_EXT])?;
        let what = path.display().to_string();
        if what.ends_with(&format!(".{}", crate::authority::keys::URI_EXT)) {
            let desc = describe_token_key(depot, &crate::authority::keys::read_uri(&path)?, args);
            reports.push(FileReport { file: what, objects: vec![Described::TokenKey(desc)], ca_key: None });
            continue;
        }
        let bytes = zeroize::Zeroizing::new(read_file(&path)?);
        let mut objects = Vec::new();
        for obj in read_objects(&bytes, &what).map_err(anyhow::Error::msg)? {
            objects.push(match obj {
                Object::Certificate(d) => {
                    Described::Certificate(Box::new(cert_info(&d, now).map_err(|e| anyhow::anyhow!("{what}: {e}"))?))
                }
                Object::Request(d) => Described::Csr(csr_info(&d).map_err(|e| anyhow::anyhow!("{what}: {e}"))?),
                Object::Crl(d) => Described::Crl(crl_info(&d, now).map_err(|e| anyhow::anyhow!("{what}: {e}"))?),
                Object::Key(k) => Described::Key(describe_key(depot, &zeroize::Zeroizing::new(k), &what, args)?),
            });
        }
        let ca_key = ca_key_of(depot, &path, &objects, args);
        reports.push(FileReport { file: what, objects, ca_key });
    }
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&reports)? + "\n"))
    } else {
        let text: Vec<String> = reports.iter().map(render).collect();
        print_stdout(&text.join("\n"))
    }
}

fn describe_key(depot: &Depot, bytes: &[u8], what: &str, args: &InspectArgs) -> Result<KeyDesc> {
    let encrypted = String::from_utf8_lossy(bytes).contains("ENCRYPTED");
    let key = match PrivateKey::from_bytes(bytes, what, &mut args.pass.source()?) {
        Ok(k) => k,
        Err(e @ (KeyError::NeedPassphrase { .. } | KeyError::WrongPassphrase { .. })) => {
            return Ok(KeyDesc {
                key: None,
                encrypted,
                belongs_to: Vec::new(),
                problem: Some(super::flags::key_error(&e)),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let spki = key.spki_der();
    let belongs_to = certs_of_key(depot, &spki);
    Ok(KeyDesc { key: Some(KeyInfo::from_spki(&spki)), encrypted, belongs_to, problem: None })
}

/// The depot certificates that carry the public key `spki`.
fn certs_of_key(depot: &Depot, spki: &[u8]) -> Vec<String> {
    depot_certs(depot)
        .into_iter()
        .filter(|(_, der)| x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| c.public_key().raw == spki))
        .map(|(p, _)| p.display().to_string())
        .collect()
}

/// A token key, through its public key: no PIN is asked, so `inspect`
/// works in CI and on a locked token.
fn describe_token_key(depot: &Depot, uri: &crate::pkcs11::Pkcs11Uri, args: &InspectArgs) -> TokenKeyDesc {
    let status = super::pkcs11::status(uri, &args.pass.token);
    TokenKeyDesc {
        uri: uri.to_string(),
        location: status.location,
        reachable: status.reachable,
        key: status.spki.as_deref().map(KeyInfo::from_spki),
        belongs_to: status.spki.map(|s| certs_of_key(depot, &s)).unwrap_or_default(),
    }
}

/// Where the key of a depot CA certificate at `path` is: its key file, or
/// its token (and whether the token answers now).
fn ca_key_of(depot: &Depot, path: &std::path::Path, objects: &[Described], args: &InspectArgs) -> Option<String> {
    if !matches!(objects.first(), Some(Described::Certificate(c)) if c.is_ca) {
        return None;
    }
    let stem = path.file_name()?.to_str()?.strip_suffix(".crt")?;
    if path.parent()? != depot.root() {
        return None;
    }
    let name = crate::pki::names::EntryName::new(stem).ok()?;
    match crate::authority::keys::CaKeySource::of(depot, &name) {
        Ok(Some(crate::authority::keys::CaKeySource::File(p))) => Some(format!("file {}", p.display())),
        Ok(Some(crate::authority::keys::CaKeySource::Token(p))) => Some(match crate::authority::keys::read_uri(&p) {
            Ok(uri) => super::pkcs11::status(&uri, &args.pass.token).location,
            Err(e) => format!("{e:#}"),
        }),
        Ok(None) => Some("not in the depot (this CA cannot sign here)".into()),
        Err(e) => Some(format!("{e:#}")),
    }
}

fn render(r: &FileReport) -> String {
    let mut out = String::new();
    for obj in &r.objects {
        let lines = match obj {
            Described::Certificate(c) => {
                let mut l = cert_lines(c);
                if let Some(k) = &r.ca_key {
                    l.push(("CA key", k.clone()));
                }
                l
            }
            Described::TokenKey(k) => token_key_lines(k),
            Described::Csr(c) => csr_lines(c),
            Described::Crl(c) => crl_lines(c),
            Described::Key(k) => key_lines(k),
        };
        let kind = match obj {
            Described::Certificate(c) if c.is_ca => "CA certificate",
            Described::Certificate(_) => "certificate",
            Described::Csr(_) => "certificate signing request",
            Described::Crl(_) => "certificate revocation list",
            Described::Key(_) => "private key",
            Described::TokenKey(_) => "private key on a PKCS#11 token",
        };
        out.push_str(&format!("{}: {kind}\n", label(std::path::Path::new(&r.file))));
        for (k, v) in lines {
            out.push_str(&format!("  {k:<16} {v}\n"));
        }
    }
    out
}

type Lines = Vec<(&'static str, String)>;

fn token_key_lines(k: &TokenKeyDesc) -> Lines {
    let mut l = vec![("where", k.location.clone()), ("URI", k.uri.clone())];
    l.push((
        "public key",
        k.key.as_ref().map_or_else(|| "not readable without logging in".into(), |i| i.description.clone()),
    ));
    l.push((
        "belongs to",
        if k.belongs_to.is_empty() { "no certificate in the depot".into() } else { k.belongs_to.join(", ") },
    ));
    l
}

fn cert_lines(c: &CertInfo) -> Lines {
    let left = match c.status.as_str() {
        "expired" => format!("EXPIRED {} days ago", -c.days_left),
        "not yet valid" => "NOT YET VALID".to_string(),
        _ => format!("{} days left", c.days_left),
    };
    let mut l: Lines = vec![
        ("subject", c.subject.clone()),
        ("issuer", if c.self_signed { format!("{} (self-signed)", c.issuer) } else { c.issuer.clone() }),
        ("serial", c.serial.clone()),
        ("valid", format!("{} to {} ({left})", c.not_before, c.not_after)),
        ("key", c.key.description.clone()),
        ("signature", c.signature_algorithm.clone()),
    ];
    for (kind, list) in [
        ("SANs DNS", &c.sans.dns),
        ("SANs IP", &c.sans.ip),
        ("SANs URI", &c.sans.uri),
        ("SANs email", &c.sans.email),
        ("SANs other", &c.sans.other),
    ] {
        if !list.is_empty() {
            l.push((kind, list.join(", ")));
        }
    }
    if c.sans.is_empty() && !c.is_ca {
        l.push(("SANs", "none: Go, grpcio and rustls will refuse it as a server certificate".into()));
    }
    let crit = |c: Option<bool>| if c == Some(true) { " (critical)" } else { "" };
    l.push((
        "basic constr.",
        match (c.is_ca, c.path_len) {
            (true, Some(n)) => format!("CA:TRUE, pathLen {n}{}", crit(c.basic_constraints_critical)),
            (true, None) => format!("CA:TRUE{}", crit(c.basic_constraints_critical)),
            (false, _) if c.basic_constraints_critical.is_some() => {
                format!("CA:FALSE{}", crit(c.basic_constraints_critical))
            }
            (false, _) => "absent".into(),
        },
    ));
    l.push((
        "key usage",
        if c.key_usage.is_empty() {
            "absent".into()
        } else {
            format!("{}{}", c.key_usage.join(", "), crit(c.key_usage_critical))
        },
    ));
    if !c.is_ca {
        let eku =
            if c.extended_key_usage.is_empty() { "absent (any)".to_string() } else { c.extended_key_usage.join(", ") };
        l.push(("ext. key usage", format!("{eku} -> profile {}", c.profile)));
    }
    if let Some(nc) = &c.name_constraints {
        l.push((
            "name constr.",
            format!("permitted: {}; excluded: {}", list_or_none(&nc.permitted), list_or_none(&nc.excluded)),
        ));
    }
    l.push(("subject key id", c.subject_key_id.clone().unwrap_or_else(|| "absent".into())));
    if !c.self_signed {
        l.push(("authority key id", c.authority_key_id.clone().unwrap_or_else(|| "absent".into())));
    }
    l.push(("SHA-256", c.fingerprints.sha256.clone()));
    l.push(("SHA-1", c.fingerprints.sha1.clone()));
    l
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn csr_lines(c: &CsrInfo) -> Lines {
    vec![
        ("subject", c.subject.clone()),
        ("key", c.key.description.clone()),
        ("SANs", c.sans.summary()),
        (
            "signature",
            if c.signature_valid {
                "valid".into()
            } else {
                format!("INVALID: {}", c.signature_problem.clone().unwrap_or_default())
            },
        ),
    ]
}

fn crl_lines(c: &CrlInfo) -> Lines {
    let mut l: Lines = vec![
        ("issuer", c.issuer.clone()),
        ("CRL number", c.crl_number.clone().unwrap_or_else(|| "absent".into())),
        ("this update", c.this_update.clone()),
        (
            "next update",
            match (&c.next_update, c.days_to_next_update) {
                (Some(t), Some(d)) if d < 0 => format!("{t} (OUT OF DATE for {} days)", -d),
                (Some(t), Some(d)) => format!("{t} (in {d} days)"),
                _ => "absent".into(),
            },
        ),
        ("entries", c.entries.len().to_string()),
    ];
    for e in &c.entries {
        l.push((
            "  revoked",
            format!(
                "{} on {}{}",
                e.serial,
                e.revoked_at,
                e.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ));
    }
    l
}

fn key_lines(k: &KeyDesc) -> Lines {
    let mut l: Lines = vec![
        ("key", k.key.as_ref().map_or_else(|| "unknown until decrypted".into(), |k| k.description.clone())),
        ("encrypted", if k.encrypted { "yes (PKCS#8)".into() } else { "no".into() }),
    ];
    if let Some(p) = &k.problem {
        l.push(("note", p.clone()));
    } else {
        l.push((
            "belongs to",
            if k.belongs_to.is_empty() { "no certificate in the depot".into() } else { k.belongs_to.join(", ") },
        ));
    }
    l
}
