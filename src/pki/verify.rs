//! Why a TLS handshake will fail, before it does. The checks here mirror
//! what clients do (rustls-webpki, Go, BoringSSL, OpenSSL) and report every
//! reason, not just the first, each with its fix. rustls-webpki then gives
//! the final verdict, so nothing it would refuse passes silently; it does
//! not check a trust anchor's own validity or pathLen (RFC 5280 §6.1.1 makes
//! the anchor an input, not a certificate to check), which the path checks
//! below do.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::inspect::{display_name, Sans};
use super::san::{dns_matches, SanField};
use super::validity::{fmt_time, relative};

/// What the certificate must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A TLS server certificate (serverAuth).
    Server,
    /// A TLS client certificate (clientAuth), as mutual TLS needs.
    Client,
}

/// What to verify, and against what.
#[derive(Debug, Clone)]
pub struct Input {
    /// The certificate (DER) and how to name it in messages.
    pub leaf: Vec<u8>,
    pub leaf_label: String,
    /// Trusted CA certificates (DER).
    pub anchors: Vec<Vec<u8>>,
    /// Intermediate certificates that may complete the path (DER).
    pub chain: Vec<Vec<u8>>,
    /// Host names or IP addresses a client will dial.
    pub hosts: Vec<String>,
    pub purpose: Option<Purpose>,
    /// CRLs (DER) to check revocation against.
    pub crls: Vec<Vec<u8>>,
    /// A private key's SubjectPublicKeyInfo, and its label, to check the pair.
    pub key: Option<(String, Vec<u8>)>,
    /// The time to verify at.
    pub at: OffsetDateTime,
}

/// One reason the certificate will be refused, with its fix.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// A stable identifier, e.g. `name_mismatch`.
    pub code: &'static str,
    /// One line a person can act on.
    pub message: String,
}

/// The verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub certificate: String,
    pub subject: String,
    pub at: String,
    pub valid: bool,
    /// The chain found, leaf first, as display names.
    pub path: Vec<String>,
    pub problems: Vec<Problem>,
}

struct Parsed<'a> {
    cert: X509Certificate<'a>,
}

impl<'a> Parsed<'a> {
    fn name(&self) -> String {
        display_name(self.cert.subject())
    }
    fn issued(&self, by: &Parsed<'_>) -> bool {
        self.cert.issuer().as_raw() == by.cert.subject().as_raw()
            && super::signature::verify_cert(&self.cert, by.cert.public_key()).is_ok()
    }
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<Parsed<'a>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| Parsed { cert })
        .map_err(|e| format!("{what} is not a certificate: {e}"))
}

/// Runs every check and returns the verdict. `san_flag` names the caller's
/// way to ask for a SAN of each kind, for the fix of a host the certificate
/// is not valid for (the binary: `request-cert`'s `--domain` and `--ip`).
pub fn verify(input: &Input, san_flag: impl Fn(SanField) -> &'static str) -> Result<Outcome, String> {
    let leaf = parse(&input.leaf, &input.leaf_label)?;
    let anchors = input.anchors.iter().map(|d| parse(d, "a --ca certificate")).collect::<Result<Vec<_>, _>>()?;
    let chain = input.chain.iter().map(|d| parse(d, "a --chain certificate")).collect::<Result<Vec<_>, _>>()?;
    let label = &input.leaf_label;
    let mut problems = Vec::new();
    let mut add = |code: &'static str, message: String| problems.push(Problem { code, message });

    check_time(&leaf, label, input.at, "", &mut add);
    check_hosts(&leaf, label, &input.hosts, &san_flag, &mut add);
    if let Some(purpose) = input.purpose {
        check_purpose(&leaf, purpose, &mut add);
    }
    if let Some((key_label, spki)) = &input.key {
        if leaf.cert.public_key().raw != spki.as_slice() {
            add("key_mismatch", format!("key does not match certificate: {key_label} holds a different public key than {label}; use the key made with its CSR, or re-issue"));
        }
    }

    // Build the path leaf -> intermediates -> anchor.
    let mut path: Vec<&Parsed<'_>> = vec![&leaf];
    let mut anchor: Option<&Parsed<'_>> = None;
    while path.len() <= 8 {
        let current = *path.last().expect("never empty");
        if let Some(a) = anchors.iter().find(|a| current.issued(a)) {
            anchor = Some(a);
            break;
        }
        match chain.iter().find(|c| current.issued(c) && !path.iter().any(|p| p.cert.as_raw() == c.cert.as_raw())) {
            Some(next) => path.push(next),
            None => {
                add("unknown_issuer", unknown_issuer(current, path.len() == 1, label, &anchors));
                break;
            }
        }
    }
    if anchors.is_empty() {
        add("no_ca", "no CA to verify against: give the CA with --ca FILE|NAME".into());
    }

    // Every CA in the path: validity, CA-ness, pathLen, name constraints.
    let cas: Vec<&Parsed<'_>> = path.iter().skip(1).copied().chain(anchor).collect();
    for (i, ca) in cas.iter().enumerate() {
        let what = format!("the CA '{}'", ca.name());
        check_time(ca, &what, input.at, "CA ", &mut add);
        let bc = ca.cert.basic_constraints().ok().flatten();
        if !bc.as_ref().is_some_and(|b| b.value.ca) {
            add(
                "not_a_ca",
                format!(
                    "'{}' sits in the chain but is not a CA (no basicConstraints CA:TRUE); sign with a real CA",
                    ca.name()
                ),
            );
            continue;
        }
        if let Some(n) = bc.and_then(|b| b.value.path_len_constraint) {
            // RFC 5280 §4.2.1.9: the intermediates below this CA, leaf excluded.
            let below = i;
            if (n as usize) < below {
                let names: Vec<String> = cas[..i].iter().map(|c| format!("'{}'", c.name())).collect();
                add(
                    "path_len",
                    format!(
                        "'{}' has pathLen {n}, but {below} intermediate CA(s) ({}) sit below it; re-issue '{}' with a larger --path-length, or without one",
                        ca.name(),
                        names.join(", "),
                        ca.name()
                    ),
                );
            }
        }
        check_name_constraints(ca, &leaf, label, &mut add);
    }

    // Revocation: each certificate against its issuer's CRLs.
    let issuers: Vec<&Parsed<'_>> = cas.clone();
    for (cert, issuer) in path.iter().zip(issuers.iter()) {
        check_revocation(
            cert,
            issuer,
            &input.crls,
            input.at,
            if std::ptr::eq(*cert, &leaf) { label.clone() } else { format!("'{}'", cert.name()) },
            &mut add,
        );
    }

    // webpki's verdict, so nothing a rustls or tonic peer would refuse passes.
    if problems.is_empty() && !anchors.is_empty() {
        if let Err(e) = webpki_verdict(input, &leaf) {
            problems.push(Problem { code: "webpki", message: format!("rustls-webpki refuses it: {e}") });
        }
    }
    let mut names: Vec<String> = path.iter().map(|p| p.name()).collect();
    names.extend(anchor.map(|a| a.name()));
    Ok(Outcome {
        certificate: label.clone(),
        subject: leaf.cert.subject().to_string(),
        at: fmt_time(input.at),
        valid: problems.is_empty(),
        path: names,
        problems,
    })
}

fn check_time(
    p: &Parsed<'_>,
    what: &str,
    at: OffsetDateTime,
    prefix: &str,
    add: &mut impl FnMut(&'static str, String),
) {
    let nb = p.cert.validity().not_before.to_datetime();
    let na = p.cert.validity().not_after.to_datetime();
    let (expired, early) =
        if prefix.is_empty() { ("expired", "not_yet_valid") } else { ("ca_expired", "ca_not_yet_valid") };
    if at > na {
        add(expired, format!("{what} {} (notAfter {}); renew it", relative_past("expired", na, at), fmt_time(na)));
    } else if at < nb {
        add(
            early,
            format!(
                "{what} is not valid until {} ({}); wait, fix the clock, or re-issue with an earlier --not-before",
                fmt_time(nb),
                relative(nb, at)
            ),
        );
    }
}

fn relative_past(verb: &str, t: OffsetDateTime, at: OffsetDateTime) -> String {
    format!("{verb} {}", relative(t, at))
}

fn sans_of(cert: &X509Certificate<'_>) -> Sans {
    let der = cert.as_raw();
    super::inspect::cert_info(der, OffsetDateTime::now_utc()).map(|i| i.sans).unwrap_or_default()
}

fn check_hosts(
    leaf: &Parsed<'_>,
    label: &str,
    hosts: &[String],
    san_flag: &impl Fn(SanField) -> &'static str,
    add: &mut impl FnMut(&'static str, String),
) {
    if hosts.is_empty() {
        return;
    }
    let sans = sans_of(&leaf.cert);
    for host in hosts {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let (ok, field) = match host.parse::<IpAddr>() {
            Ok(ip) => (sans.ip.iter().any(|s| s.parse::<IpAddr>().is_ok_and(|s| s == ip)), SanField::Ip),
            Err(_) => (sans.dns.iter().any(|d| dns_matches(d, host)), SanField::Domain),
        };
        let flag = san_flag(field);
        if ok {
            continue;
        }
        if sans.dns.is_empty() && sans.ip.is_empty() {
            let cn = super::subject::common_name(leaf.cert.subject())
                .map(|c| format!(" (its CN is {c})"))
                .unwrap_or_default();
            add(
                "no_sans",
                format!("{label} has no DNS or IP SANs{cn}, so it is valid for no host: {}. Re-issue it from a request made with request-cert {flag} {host}", super::san::SANS_ONLY),
            );
        } else {
            add(
                "name_mismatch",
                format!(
                    "{label} is not valid for {host}: its SANs are {}; re-issue with {flag} {host}",
                    sans.summary()
                ),
            );
        }
    }
}

fn check_purpose(leaf: &Parsed<'_>, purpose: Purpose, add: &mut impl FnMut(&'static str, String)) {
    if leaf.cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca) {
        add("ca_as_leaf", format!("'{}' is a CA certificate; TLS peers refuse a CA as a server or client certificate. Sign a leaf with `certforge sign`", leaf.name()));
    }
    let eku = leaf.cert.extended_key_usage().ok().flatten();
    if let Some(e) = eku {
        let e = e.value;
        let (has, want, fix) = match purpose {
            Purpose::Server => (e.server_auth, "serverAuth", "sign with --profile server or peer"),
            Purpose::Client => (e.client_auth, "clientAuth", "sign with --profile client or peer"),
        };
        if !has && !e.any {
            let names = super::inspect::cert_info(leaf.cert.as_raw(), OffsetDateTime::now_utc())
                .map(|i| i.profile)
                .unwrap_or_default();
            add("wrong_purpose", format!("no {want} in EKU (profile {names}): {fix}"));
        }
    }
    if let Ok(Some(ku)) = leaf.cert.key_usage() {
        if !ku.value.digital_signature() {
            add(
                "key_usage",
                "keyUsage lacks digitalSignature, which TLS needs to sign the handshake; re-issue it with certforge"
                    .into(),
            );
        }
    }
}

fn unknown_issuer(current: &Parsed<'_>, is_leaf: bool, label: &str, anchors: &[Parsed<'_>]) -> String {
    let issuer = display_name(current.cert.issuer());
    let given: Vec<String> = anchors.iter().map(|a| format!("'{}'", a.name())).collect();
    let given = if given.is_empty() { "none".to_string() } else { given.join(", ") };
    let who = if is_leaf { label.to_string() } else { format!("the intermediate '{}'", current.name()) };
    if current.cert.subject().as_raw() == current.cert.issuer().as_raw() {
        return format!("{who} is self-signed and is not one of the CAs you gave ({given}); trust it with --ca, or sign it with your CA");
    }
    if anchors.iter().any(|a| a.cert.subject().as_raw() == current.cert.issuer().as_raw()) {
        return format!("{who} names '{issuer}' as its issuer, but the CA you gave under that name did not sign it (another key with the same name: was the CA made again?); re-sign it with the CA you trust");
    }
    format!("{who} was issued by '{issuer}', not by the CA you gave ({given}); trust '{issuer}' with --ca, or if '{issuer}' is an intermediate below your CA, pass it with --chain")
}

fn check_name_constraints(ca: &Parsed<'_>, leaf: &Parsed<'_>, label: &str, add: &mut impl FnMut(&'static str, String)) {
    let nc = super::constraints::NameConstraints::of(&ca.cert);
    if nc.is_empty() {
        return;
    }
    let names = super::san::of_cert(&leaf.cert);
    for why in names.iter().filter_map(|n| nc.violation(n)) {
        add(
            "name_constraints",
            format!("{label}: {why}, as '{}' says in its name constraints (RFC 5280 §4.2.1.10); every client that checks them refuses it. Re-issue it without that name, or from a CA allowed to issue it", ca.name()),
        );
    }
}

fn check_revocation(
    cert: &Parsed<'_>,
    issuer: &Parsed<'_>,
    crls: &[Vec<u8>],
    at: OffsetDateTime,
    what: String,
    add: &mut impl FnMut(&'static str, String),
) {
    use x509_parser::revocation_list::CertificateRevocationList;
    let serial = super::crl::normalize_serial(cert.cert.raw_serial());
    for der in crls {
        let Ok((_, crl)) = CertificateRevocationList::from_der(der) else { continue };
        if crl.issuer().as_raw() != issuer.cert.subject().as_raw()
            || super::signature::verify(
                issuer.cert.public_key(),
                &crl.signature_algorithm,
                &crl.signature_value,
                crl.tbs_cert_list.as_ref(),
            )
            .is_err()
        {
            continue;
        }
        if let Some(r) =
            crl.iter_revoked_certificates().find(|r| super::crl::normalize_serial(r.raw_serial()) == serial)
        {
            let reason =
                r.reason_code().map(|(_, c)| format!(" ({})", super::inspect::reason_name(c.0))).unwrap_or_default();
            add(
                "revoked",
                format!(
                    "{what} was revoked on {}{reason} by '{}'; issue a new certificate",
                    fmt_time(r.revocation_date.to_datetime()),
                    issuer.name()
                ),
            );
        }
        if let Some(next) = crl.next_update() {
            if next.to_datetime() < at {
                add("crl_expired", format!("the CRL of '{}' went out of date on {}: clients that check CRLs refuse the chain; re-sign the CRL", issuer.name(), fmt_time(next.to_datetime())));
            }
        }
    }
}

fn webpki_verdict(input: &Input, _leaf: &Parsed<'_>) -> Result<(), String> {
    use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
    let anchors_der: Vec<CertificateDer<'_>> =
        input.anchors.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let anchors = anchors_der
        .iter()
        .map(|d| webpki::anchor_from_trusted_cert(d).map_err(|e| format!("{e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let chain: Vec<CertificateDer<'_>> = input.chain.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let leaf_der = CertificateDer::from(input.leaf.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| format!("{e:?}"))?;
    let crl_ders: Vec<CertificateRevocationListDer<'_>> =
        input.crls.iter().map(|d| CertificateRevocationListDer::from(d.as_slice())).collect();
    let crls = crl_ders
        .iter()
        .filter_map(|d| webpki::OwnedCertRevocationList::from_der(d).ok().map(webpki::CertRevocationList::from))
        .collect::<Vec<_>>();
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
        b.with_status_policy(webpki::UnknownStatusPolicy::Allow)
            .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
            .build()
    });
    let secs = u64::try_from(input.at.unix_timestamp()).map_err(|_| "a time before 1970".to_string())?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let usage = match input.purpose {
        Some(Purpose::Client) => webpki::KeyUsage::client_auth(),
        _ => webpki::KeyUsage::server_auth(),
    };
    // Without --purpose, judge the leaf as what it claims to be.
    let info = super::inspect::cert_info(&input.leaf, input.at).map_err(|e| e.to_string())?;
    let usage =
        if input.purpose.is_none() && info.profile == "client" { webpki::KeyUsage::client_auth() } else { usage };
    ee.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &anchors, &chain, time, usage, revocation, None)
        .map_err(|e| format!("{e:?}"))?;
    for host in &input.hosts {
        let name =
            ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']')).map_err(|e| e.to_string())?;
        ee.verify_is_valid_for_subject_name(&name).map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::CaSigner;
    use crate::pki::issue::{self_signed, signed_by, CertSpec};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::{Kind, LeafProfile};
    use crate::pki::san::San;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};

    #[test]
    fn a_missing_host_is_asked_for_in_the_callers_words() {
        let now = OffsetDateTime::now_utc();
        let validity = ValidityRequest::default().resolve(now, Expiry { months: 12, seconds: 0 }).unwrap();
        let dn = |cn: &str| Subject { common_name: Some(cn.into()), ..Default::default() }.to_dn().unwrap();
        let ca_key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let root = Kind::Root { path_len: None, permit_domains: vec![] };
        let ca_der = self_signed(&CertSpec::new(dn("Unit CA"), vec![], root, validity), &ca_key).unwrap();
        let ca = CaSigner::new(ca_der.clone(), ca_key, "ca.crt", "ca.key").unwrap();
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let kind = Kind::Leaf { profile: LeafProfile::Server, code_signing: false };
        let spec = CertSpec::new(dn("leaf"), vec![San::domain("leaf.test").unwrap()], kind, validity);
        let input = Input {
            leaf: signed_by(&spec, &key.spki_der(), &ca).unwrap(),
            leaf_label: "leaf.crt".into(),
            anchors: vec![ca_der],
            chain: vec![],
            hosts: vec!["::1".into(), "other.test".into()],
            purpose: None,
            crls: vec![],
            key: None,
            at: now,
        };
        let messages: Vec<String> =
            verify(&input, SanField::noun).unwrap().problems.into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "leaf.crt is not valid for ::1: its SANs are DNS:leaf.test; re-issue with IP address ::1",
                "leaf.crt is not valid for other.test: its SANs are DNS:leaf.test; re-issue with DNS name other.test",
            ]
        );
    }
}
