//! What real clients will reject or mishandle in a certificate, found
//! before a handshake does: Go's SAN rule, Python 3.13's strict CA checks,
//! Apple's 825-day limit, RFC 5280's key usage rules.

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::inspect::{cert_info, CertInfo};
use super::san::{San, SANS_ONLY};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
}

/// The finding for a leaf with serverAuth but no DNS or IP SAN; `sign`
/// prints it too, so that the two say the same. A server certificate
/// (`server_only`) is then valid for no host; one that is also for clients
/// still works as a client certificate, which needs no SAN.
pub fn no_sans(server_only: bool, common_name: Option<&str>) -> Finding {
    let fix = match common_name.and_then(San::from_host_cn) {
        Some(san) => format!("request-cert {}", san.request_flag()),
        None => "request-cert --domain <host> (or --ip <address>)".to_string(),
    };
    let (severity, message) = if server_only {
        (
            Severity::Error,
            format!("no DNS or IP SANs, so it is valid for no host: {SANS_ONLY}. Re-issue it from a request made with {fix}"),
        )
    } else {
        (
            Severity::Warning,
            format!("no DNS or IP SANs, so it works as a TLS client certificate only: {SANS_ONLY}. As a client certificate it needs nothing (`sign --profile client` makes one without serverAuth); to serve TLS, re-issue it from a request made with {fix}"),
        )
    };
    Finding { severity, code: "no_sans", message }
}

/// Apple platforms refuse TLS server certificates valid for more than 825
/// days (Apple support note HT210176).
const APPLE_MAX_DAYS: i64 = 825;

/// Lints `der`. `others` are the other certificates of the depot (DER),
/// used to see whether a CA's pathLen blocks an intermediate it issued.
pub fn lint(der: &[u8], others: &[Vec<u8>], now: OffsetDateTime) -> Result<Vec<Finding>, String> {
    let info = cert_info(der, now)?;
    let mut out = Vec::new();
    use Severity::{Error, Warning};

    let server = !info.is_ca && matches!(info.profile.as_str(), "server" | "peer");
    if server && info.sans.dns.is_empty() && info.sans.ip.is_empty() {
        let cn = X509Certificate::from_der(der).ok().and_then(|(_, c)| super::subject::common_name(c.subject()));
        out.push(no_sans(info.profile == "server", cn.as_deref()));
    }
    let mut add = |severity, code, message: String| out.push(Finding { severity, code, message });
    for ip in &info.sans.ip {
        if ip == "0.0.0.0" || ip == "::" {
            add(
                Warning,
                "unspecified_ip",
                format!(
                    "IP:{ip} matches nothing a client dials (clients connect to 127.0.0.1 or a real address); drop it"
                ),
            );
        }
    }
    for d in &info.sans.dns {
        if d.contains('*') {
            if let Err(why) = super::san::check_dns_name(d) {
                add(Error, "bad_wildcard", format!("DNS:{d}: {why}"));
            }
        }
    }
    if info.is_ca {
        lint_ca(&info, &mut add);
        lint_path_len(der, &info, others, &mut add);
    }
    lint_name_constraints(der, info.is_ca, others, &mut add);
    lint_key_usage(&info, &mut add);
    if info.key.algorithm == "rsa" && info.key.bits.is_some_and(|b| b < 2048) {
        add(Error, "weak_key", format!("{} is too weak: OpenSSL 3, Go and rustls refuse RSA below 2048 bits; re-issue with --key-bits 2048 or an ECDSA key", info.key.description));
    }
    let sig = info.signature_algorithm.to_ascii_lowercase();
    if sig.contains("sha1") || sig.contains("md5") {
        add(
            Error,
            "weak_signature",
            format!("signed with {}, which modern clients refuse; re-sign with SHA-256", info.signature_algorithm),
        );
    }
    if server && !info.self_signed {
        let days = validity_days(der)?;
        if days > APPLE_MAX_DAYS {
            add(Warning, "apple_825_days", format!("valid for {days} days: Apple platforms refuse server certificates valid for more than {APPLE_MAX_DAYS} days; sign with --expires \"2 years\" or less"));
        }
    }
    if info.status == "expired" {
        add(Warning, "expired", format!("expired on {}; renew it", info.not_after));
    } else if info.status == "not yet valid" {
        add(Warning, "not_yet_valid", format!("not valid until {}", info.not_before));
    }
    Ok(out)
}

fn validity_days(der: &[u8]) -> Result<i64, String> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    Ok((c.validity().not_after.to_datetime() - c.validity().not_before.to_datetime()).whole_days())
}

fn lint_ca(info: &CertInfo, add: &mut impl FnMut(Severity, &'static str, String)) {
    // Python 3.13 sets VERIFY_X509_STRICT, under which OpenSSL refuses a CA
    // whose basicConstraints is not critical or that has no keyUsage.
    if info.basic_constraints_critical != Some(true) {
        add(Severity::Error, "ca_basic_constraints", "basicConstraints is not critical: Python 3.13 (VERIFY_X509_STRICT) refuses this CA; make the CA with certforge".into());
    }
    match info.key_usage_critical {
        None => add(
            Severity::Error,
            "ca_key_usage",
            "the CA has no keyUsage: Python 3.13 (VERIFY_X509_STRICT) refuses it; make the CA with certforge".into(),
        ),
        Some(false) => add(
            Severity::Warning,
            "ca_key_usage",
            "the CA's keyUsage is not critical (RFC 5280 §4.2.1.3 says it should be)".into(),
        ),
        Some(true) => {}
    }
    if info.key_usage_critical.is_some() && !info.key_usage.iter().any(|k| k == "keyCertSign") {
        add(
            Severity::Error,
            "ca_key_cert_sign",
            "the CA's keyUsage lacks keyCertSign, so nothing it signs verifies".into(),
        );
    }
}

fn lint_key_usage(info: &CertInfo, add: &mut impl FnMut(Severity, &'static str, String)) {
    let has = |n: &str| info.key_usage.iter().any(|k| k == n);
    match info.key.algorithm.as_str() {
        "rsa" if has("keyAgreement") => add(Severity::Error, "key_usage_key_type", "keyAgreement on an RSA key: RSA cannot do key agreement (RFC 5280 §4.2.1.3), and strict clients refuse it (certstrap's defect)".into()),
        "ecdsa" | "ed25519" if has("keyEncipherment") => add(
            Severity::Error,
            "key_usage_key_type",
            format!("keyEncipherment on an {} key: only RSA keys encipher keys (RFC 8813 §3); strict clients and pkilint refuse it", info.key.description),
        ),
        "ed25519" if has("keyAgreement") => add(Severity::Error, "key_usage_key_type", "keyAgreement on an Ed25519 key, which only signs (RFC 8410 §5)".into()),
        _ => {}
    }
}

/// A CA whose DNS-only constraints leave IP addresses open, and a
/// certificate carrying a name its issuer (found among `others`) may not
/// issue for (RFC 5280 §4.2.1.10).
fn lint_name_constraints(
    der: &[u8],
    is_ca: bool,
    others: &[Vec<u8>],
    add: &mut impl FnMut(Severity, &'static str, String),
) {
    use super::constraints::{NameConstraints, Subtree};
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return };
    let own = NameConstraints::of(&cert);
    if is_ca
        && own.permitted.iter().any(|s| matches!(s, Subtree::Dns(_)))
        && !own.permitted.iter().any(|s| matches!(s, Subtree::Ip { .. }))
    {
        add(Severity::Warning, "ip_unconstrained", "its name constraints list DNS names but no IP range, so RFC 5280 leaves IP addresses unconstrained: it can sign IP:8.8.8.8 and clients accept it. Re-make it with certforge (which adds the loopback ranges) or with --permit-domain naming your IP ranges".into());
    }
    let Some(issuer_der) = super::chain::issuer_of(der, others) else { return };
    let Ok((_, issuer)) = X509Certificate::from_der(issuer_der) else { return };
    let nc = NameConstraints::of(&issuer);
    if nc.is_empty() {
        return;
    }
    let issuer_name = super::subject::common_name(issuer.subject()).unwrap_or_else(|| issuer.subject().to_string());
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for san in ext.value.general_names.iter().filter_map(|g| super::san::from_general_name(g).ok()) {
            if let Some(why) = nc.violation(&san) {
                add(Severity::Error, "name_constraints", format!("{why}, as its issuer '{issuer_name}' says in its name constraints: clients refuse it. Re-issue it without that name"));
            }
        }
    }
}

fn lint_path_len(
    der: &[u8],
    info: &CertInfo,
    others: &[Vec<u8>],
    add: &mut impl FnMut(Severity, &'static str, String),
) {
    let Some(limit) = info.path_len else { return };
    let depth = ca_depth_below(der, others, 0);
    if depth > limit as usize {
        add(
            Severity::Error,
            "path_len_blocks",
            format!("pathLen {limit}, but the depot holds a chain of {depth} intermediate CA(s) below it; those chains fail verification (openssl error 25). Re-issue this CA with --path-length {depth} or without one"),
        );
    }
}

/// The longest chain of CA certificates in `others` issued below `ca`.
fn ca_depth_below(ca: &[u8], others: &[Vec<u8>], guard: usize) -> usize {
    let Ok((_, parent)) = X509Certificate::from_der(ca) else { return 0 };
    if guard > 8 {
        return 0;
    }
    others
        .iter()
        .filter(|d| d.as_slice() != ca)
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| (d, c)))
        .filter(|(_, c)| {
            c.is_ca() && c.issuer().as_raw() == parent.subject().as_raw() && c.subject().as_raw() != c.issuer().as_raw()
        })
        .filter(|(_, c)| super::signature::verify_cert(c, parent.public_key()).is_ok())
        .map(|(d, _)| 1 + ca_depth_below(d, others, guard + 1))
        .max()
        .unwrap_or(0)
}
