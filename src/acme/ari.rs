//! ACME Renewal Information (RFC 9773): a client asks when to renew a
//! certificate, named by its CertID (authority key identifier and serial),
//! and the server answers with a window. certforge suggests the window
//! where a third of the lifetime remains, and "now" once the certificate is
//! revoked (`certforge revoke`), so ARI-aware clients (lego >= 4.18,
//! certbot >= 2.8, Caddy, cert-manager) replace it at once.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::X509Certificate;

use super::jws::{b64, unb64};
use super::problem::{malformed, Problem};
use crate::pki::validity::fmt_time;

/// How long a client should wait before asking again (RFC 9773 §4.3
/// suggests hours; six is what Let's Encrypt sends).
pub const RETRY_AFTER_SECS: u64 = 6 * 3600;

/// The CertID of `cert`: base64url(AKI keyIdentifier) "." base64url(the
/// serial's DER content bytes, leading zero included) (§4.1).
pub fn cert_id(cert: &X509Certificate<'_>) -> Option<String> {
    let aki = cert.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
        _ => None,
    })?;
    Some(format!("{}.{}", b64(&aki), b64(cert.raw_serial())))
}

/// Splits a CertID into (AKI keyIdentifier, serial bytes).
pub fn parse_cert_id(id: &str) -> Result<(Vec<u8>, Vec<u8>), Problem> {
    let (aki, serial) = id
        .split_once('.')
        .ok_or_else(|| malformed(format!("{id:?} is not a CertID (base64url AKI, a dot, base64url serial)")))?;
    let (aki, serial) = (unb64(aki, "CertID's key identifier")?, unb64(serial, "CertID's serial")?);
    if aki.is_empty() || serial.is_empty() {
        return Err(malformed("a CertID has a key identifier and a serial, both non-empty"));
    }
    Ok((aki, serial))
}

/// The suggested renewal window: the second sixth before the last third of
/// the lifetime (randomized by clients within it), or, once revoked, a
/// window that has already begun.
pub fn window(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    revoked: bool,
    now: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    if revoked {
        return (now - Duration::hours(1), now);
    }
    let life = not_after - not_before;
    (not_before + life * 2 / 3, not_before + life * 5 / 6)
}

/// The renewalInfo body (§4.2).
pub fn to_json(window: (OffsetDateTime, OffsetDateTime), revoked: bool) -> Value {
    let mut v = json!({ "suggestedWindow": { "start": fmt_time(window.0), "end": fmt_time(window.1) } });
    if revoked {
        v["explanationURL"] = json!("https://www.rfc-editor.org/rfc/rfc9773#section-4.2");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sit_in_the_last_third_or_at_once_when_revoked() {
        let nb = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let na = nb + Duration::days(45);
        let (start, end) = window(nb, na, false, nb);
        assert_eq!((start - nb, end - nb), (Duration::days(30), Duration::hours(45 * 24 * 5 / 6)));
        let now = nb + Duration::days(3);
        let (start, end) = window(nb, na, true, now);
        assert!(start < now && end <= now);
        assert_eq!(parse_cert_id("aGk.AQI").unwrap(), (b"hi".to_vec(), vec![1, 2]));
        assert!(parse_cert_id("nodot").is_err() && parse_cert_id(".AQI").is_err());
    }
}
