//! What `probe` saw, and what it tells the user: which side is at fault
//! (the client certificate, the protocols offered by ALPN, the port) and
//! the fix. Pure: it reads a report and writes text.

use rustls::AlertDescription;
use serde::Serialize;

use super::alpn;
use crate::commands::verify::render;
use crate::pki::verify::{Outcome, Purpose};

/// What the probe saw.
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub address: String,
    pub server_name: String,
    pub handshake: bool,
    pub protocol: Option<String>,
    pub cipher_suite: Option<String>,
    /// The protocols offered by ALPN (RFC 7301), most preferred first.
    pub alpn_offered: Vec<String>,
    /// The protocol the server chose by ALPN, if any.
    pub alpn_protocol: Option<String>,
    /// The chain as sent: subject, issuer, notAfter of each certificate.
    pub chain: Vec<ChainEntry>,
    /// Whether the server asked for a client certificate (mutual TLS).
    pub client_cert_requested: bool,
    /// The CA names the server said it accepts for client certificates.
    pub acceptable_client_cas: Vec<String>,
    pub client_cert_sent: Option<String>,
    /// The issuer of the client certificate sent.
    pub client_cert_issuer: Option<String>,
    /// The server's refusal, if it refused the handshake or the client cert.
    pub server_error: Option<String>,
    /// The TLS alert the server sent, by its RFC 8446 name (e.g. unknown_ca).
    pub server_alert: Option<String>,
    /// A second connection offering the default protocols, made when the
    /// server closed the first one without an alert and without ALPN.
    pub alpn_retry: Option<AlpnRetry>,
    /// Our verification of the server's chain.
    pub verification: Option<Outcome>,
    /// One line a person can act on, when something is wrong.
    pub diagnosis: Vec<String>,
}

/// One certificate the server sent.
#[derive(Debug, Serialize)]
pub struct ChainEntry {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    /// Typed, as `list --json` gives them.
    pub sans: Vec<crate::pki::inspect::SanEntry>,
}

/// The second connection of [`ProbeReport::alpn_retry`].
#[derive(Debug, Serialize)]
pub struct AlpnRetry {
    pub offered: Vec<String>,
    pub alpn_protocol: Option<String>,
    /// The server kept this connection open (or answered on it).
    pub accepted: bool,
}

/// How the server ended a connection before we did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// A fatal TLS alert (RFC 8446 §6.2).
    Alert(AlertDescription),
    /// The connection closed without an alert (a bare TCP close or reset).
    Closed,
    /// No answer within the timeout, in seconds.
    TimedOut(u64),
    /// A failure on our side of the handshake.
    Failed(String),
}

impl Ending {
    /// The text of `server_error`.
    pub fn text(&self) -> String {
        match self {
            Ending::Alert(a) => format!("the server sent the TLS alert {}", alert_name(*a)),
            Ending::Closed => "the server closed the connection without a TLS alert".into(),
            Ending::TimedOut(secs) => format!("the server did not answer within {secs} s"),
            Ending::Failed(e) => e.clone(),
        }
    }

    /// The alert's RFC name, for `server_alert`.
    pub fn alert(&self) -> Option<String> {
        match self {
            Ending::Alert(a) => Some(alert_name(*a)),
            _ => None,
        }
    }
}

/// The RFC 8446 §6 name of an alert ("unknown_ca"), as openssl and
/// BoringSSL print them, rather than rustls's CamelCase.
pub fn alert_name(a: AlertDescription) -> String {
    match a {
        AlertDescription::Unknown(n) => return format!("alert {n}"),
        AlertDescription::UnrecognisedName => return "unrecognized_name".into(),
        _ => {}
    }
    let camel: Vec<char> = format!("{a:?}").chars().collect();
    let mut out = String::new();
    for (i, &c) in camel.iter().enumerate() {
        let after_lower = i > 0 && camel[i - 1].is_ascii_lowercase();
        let acronym_end =
            i > 0 && camel[i - 1].is_ascii_uppercase() && camel.get(i + 1).is_some_and(char::is_ascii_lowercase);
        if c.is_ascii_uppercase() && (after_lower || acronym_end) {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The alerts a server sends when it refuses a client certificate, or a
/// missing one (RFC 8446 §4.4.2.4; OpenSSL sends handshake_failure for a
/// missing one under TLS 1.2).
fn about_client_cert(a: AlertDescription) -> bool {
    use AlertDescription as A;
    matches!(
        a,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::HandshakeFailure
    )
}

/// The lines a person can act on, from what the probe saw.
pub fn diagnose(r: &ProbeReport, ending: Option<&Ending>) -> Vec<String> {
    let Some(ending) = ending else { return Vec::new() };
    let err = ending.text();
    let line = match ending {
        Ending::Alert(AlertDescription::NoApplicationProtocol) => format!(
            "the server speaks none of the protocols offered by ALPN ({}) ({err}): pass --alpn with one it speaks (gRPC servers speak h2)",
            alpn::shown(&r.alpn_offered)
        ),
        Ending::Alert(a) if about_client_cert(*a) && r.client_cert_sent.is_none() => {
            if r.client_cert_requested || *a == AlertDescription::CertificateRequired {
                demands(r, &err)
            } else {
                failed(r, &err)
            }
        }
        Ending::Alert(a) if about_client_cert(*a) && r.client_cert_requested => {
            format!("the server refused the client certificate {} ({err}): {}", sent(r), refusal_fix(r, Some(*a)))
        }
        Ending::Closed => closed(r, &err),
        _ => failed(r, &err),
    };
    vec![line]
}

/// The server closed without saying why. A server that requires ALPN
/// (gRPC servers require h2) and one that refuses a client certificate both
/// do that (grpcio's BoringSSL sends no alert for either), so a second
/// connection offering the default protocols tells them apart.
fn closed(r: &ProbeReport, err: &str) -> String {
    if !r.handshake && r.chain.is_empty() {
        return format!("{err} before sending a certificate; is it a TLS port?");
    }
    let when = if r.handshake { "right after the handshake" } else { "during the handshake" };
    if let Some(AlpnRetry { offered, alpn_protocol: Some(p), accepted: true }) = &r.alpn_retry {
        let fix = if r.alpn_offered.is_empty() { "drop --alpn none" } else { "drop --alpn" };
        return format!(
            "the server requires a protocol by ALPN (gRPC servers require h2): it closed the connection {when} without a TLS alert when offered {}, and kept it when offered {} (it chose {p}): {fix}, or pass --alpn {p}",
            alpn::shown(&r.alpn_offered),
            alpn::shown(offered)
        );
    }
    match (r.client_cert_requested, &r.client_cert_sent) {
        (true, None) => demands(r, &format!("it asked for one, then closed the connection {when} without a TLS alert")),
        (true, Some(_)) => format!(
            "the server closed the connection {when} without a TLS alert, so it most likely refused the client certificate {}: {}; the server's log says why",
            sent(r),
            refusal_fix(r, None)
        ),
        (false, _) => format!("the server closed the connection {when} without a TLS alert, so it gave no reason: its log says why"),
    }
}

fn demands(r: &ProbeReport, err: &str) -> String {
    let cas = if r.acceptable_client_cas.is_empty() {
        String::new()
    } else {
        format!(" signed by {}", r.acceptable_client_cas.join(" or "))
    };
    format!("the server demands a client certificate (mutual TLS) and none was given ({err}): pass --cert and --key with a client certificate{cas}")
}

/// "grpc_client.crt (issued by CN=gRPC Root CA)".
fn sent(r: &ProbeReport) -> String {
    let name = r.client_cert_sent.as_deref().unwrap_or("given");
    match &r.client_cert_issuer {
        Some(issuer) => format!("{name} (issued by {issuer})"),
        None => name.to_string(),
    }
}

/// What a refused client certificate needs, after the alert that said why.
fn refusal_fix(r: &ProbeReport, alert: Option<AlertDescription>) -> String {
    let cas = if !r.acceptable_client_cas.is_empty() {
        r.acceptable_client_cas.join(" or ")
    } else {
        // gRPC servers name no CAs; the guide's servers trust the CA that
        // issued their own certificate, which is worth a look.
        match r.chain.first().map(|c| &c.issuer) {
            Some(issuer) if r.client_cert_issuer.as_ref() != Some(issuer) => {
                format!("a CA the server trusts (the server's own certificate is from {issuer})")
            }
            _ => "a CA the server trusts".to_string(),
        }
    };
    match alert {
        Some(AlertDescription::CertificateExpired) => "it has expired: renew it".to_string(),
        Some(AlertDescription::CertificateRevoked) => "it is revoked: issue a new one".to_string(),
        Some(AlertDescription::UnknownCA) => {
            format!("the server does not trust its issuer: it must be signed by {cas}")
        }
        _ => format!("it must be signed by {cas} and carry clientAuth (sign it with --profile client or peer)"),
    }
}

fn failed(r: &ProbeReport, err: &str) -> String {
    if r.chain.is_empty() {
        format!("the handshake failed before the server sent a certificate ({err}); is it a TLS port?")
    } else {
        format!("the handshake failed: {err}")
    }
}

/// The report as text.
pub fn render_report(r: &ProbeReport) -> String {
    let mut s = format!("{} (server name {})\n", r.address, r.server_name);
    if let (Some(p), Some(c)) = (&r.protocol, &r.cipher_suite) {
        s.push_str(&format!("  TLS          {p}, {c}\n"));
    }
    let offered = alpn::shown(&r.alpn_offered);
    let alpn = match (&r.alpn_protocol, r.alpn_offered.is_empty(), r.handshake) {
        (Some(p), _, _) => format!("{p} (offered {offered})"),
        (None, true, _) => "none offered (--alpn none)".into(),
        (None, false, true) => format!("none agreed (offered {offered})"),
        (None, false, false) => format!("offered {offered}"),
    };
    s.push_str(&format!("  ALPN         {alpn}\n"));
    if let Some(retry) = &r.alpn_retry {
        let outcome = match (&retry.alpn_protocol, retry.accepted) {
            (Some(p), true) => format!("chose {p} and kept the connection"),
            (None, true) => "chose none and kept the connection".into(),
            (_, false) => "closed it again".into(),
        };
        s.push_str(&format!("  ALPN retry   offered {}: the server {outcome}\n", alpn::shown(&retry.offered)));
    }
    for (i, c) in r.chain.iter().enumerate() {
        s.push_str(&format!(
            "  chain #{}     {} (issuer {}; expires {}; SANs {})\n",
            i + 1,
            c.subject,
            c.issuer,
            c.not_after,
            crate::pki::inspect::summary(&c.sans)
        ));
    }
    let cas = if r.acceptable_client_cas.is_empty() {
        "no CA names given".to_string()
    } else {
        format!("CAs: {}", r.acceptable_client_cas.join(", "))
    };
    let mtls = match (r.client_cert_requested, &r.client_cert_sent) {
        (false, _) => "not requested".to_string(),
        (true, None) => format!("requested ({cas}), none sent"),
        (true, Some(c)) => format!("requested ({cas}), sent {c}"),
    };
    s.push_str(&format!("  client cert  {mtls}\n"));
    if let Some(v) = &r.verification {
        let text = render(v, std::slice::from_ref(&r.server_name), Some(Purpose::Server));
        s.push_str(&text.lines().map(|l| format!("  {l}\n")).collect::<String>());
    }
    for d in &r.diagnosis {
        s.push_str(&format!("  - {d}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ProbeReport {
        ProbeReport {
            address: "localhost:50051".into(),
            server_name: "localhost".into(),
            handshake: true,
            protocol: Some("TLS 1.3".into()),
            cipher_suite: Some("TLS13_AES_256_GCM_SHA384".into()),
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            alpn_protocol: None,
            chain: vec![ChainEntry {
                subject: "CN=localhost".into(),
                issuer: "CN=gRPC Root CA".into(),
                not_after: String::new(),
                sans: Vec::new(),
            }],
            client_cert_requested: true,
            acceptable_client_cas: Vec::new(),
            client_cert_sent: Some("grpc_client.crt".into()),
            client_cert_issuer: Some("CN=gRPC Root CA".into()),
            server_error: None,
            server_alert: None,
            alpn_retry: None,
            verification: None,
            diagnosis: Vec::new(),
        }
    }

    fn one(r: &ProbeReport, e: Ending) -> String {
        diagnose(r, Some(&e)).remove(0)
    }

    #[test]
    fn alert_names_are_the_rfc_ones() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(alert_name(AlertDescription::CertificateRequired), "certificate_required");
        assert_eq!(alert_name(AlertDescription::NoApplicationProtocol), "no_application_protocol");
        assert_eq!(alert_name(AlertDescription::UnknownPSKIdentity), "unknown_psk_identity");
        assert_eq!(alert_name(AlertDescription::UnrecognisedName), "unrecognized_name");
        assert_eq!(alert_name(AlertDescription::Unknown(200)), "alert 200");
    }

    #[test]
    fn alerts_about_the_client_certificate_blame_it() {
        let r = report();
        let d = one(&r, Ending::Alert(AlertDescription::UnknownCA));
        assert!(d.contains("refused the client certificate grpc_client.crt") && d.contains("unknown_ca"), "{d}");
        let d = one(&r, Ending::Alert(AlertDescription::CertificateExpired));
        assert!(d.contains("renew it"), "{d}");
        let none = ProbeReport { client_cert_sent: None, client_cert_issuer: None, ..report() };
        let d = one(&none, Ending::Alert(AlertDescription::CertificateRequired));
        assert!(d.contains("demands a client certificate") && d.contains("--cert and --key"), "{d}");
    }

    #[test]
    fn no_protocol_overlap_is_not_blamed_on_the_certificate() {
        let d = one(&report(), Ending::Alert(AlertDescription::NoApplicationProtocol));
        assert!(d.contains("none of the protocols offered by ALPN (h2, http/1.1)") && d.contains("--alpn"), "{d}");
        assert!(!d.contains("certificate"), "{d}");
    }

    #[test]
    fn a_silent_close_that_alpn_cures_names_alpn_not_the_certificate() {
        let r = ProbeReport {
            alpn_offered: Vec::new(),
            alpn_retry: Some(AlpnRetry {
                offered: vec!["h2".into(), "http/1.1".into()],
                alpn_protocol: Some("h2".into()),
                accepted: true,
            }),
            ..report()
        };
        let d = one(&r, Ending::Closed);
        assert!(
            d.contains("requires a protocol by ALPN") && d.contains("drop --alpn none") && d.contains("--alpn h2"),
            "{d}"
        );
        assert!(!d.contains("grpc_client.crt"), "{d}");
    }

    #[test]
    fn a_silent_close_alpn_does_not_cure_points_at_the_certificate() {
        let d = one(&report(), Ending::Closed);
        assert!(
            d.contains("most likely refused the client certificate grpc_client.crt (issued by CN=gRPC Root CA)"),
            "{d}"
        );
        let none = ProbeReport { client_cert_sent: None, client_cert_issuer: None, ..report() };
        let d = one(&none, Ending::Closed);
        assert!(d.contains("demands a client certificate"), "{d}");
        let plain = ProbeReport { client_cert_requested: false, ..none };
        let d = one(&plain, Ending::Closed);
        assert!(d.contains("gave no reason") && !d.contains("client certificate"), "{d}");
        let not_tls = ProbeReport { handshake: false, chain: Vec::new(), ..plain };
        assert!(one(&not_tls, Ending::Closed).contains("is it a TLS port?"));
    }
}
