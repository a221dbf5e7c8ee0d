//! Certificate revocation lists. Every CRL certforge writes is a v2 CRL with
//! a CRL number and an AKI, and no empty revokedCertificates list (RFC 5280
//! §5.1.2.6, §5.2.1, §5.2.3), which is where certstrap's CRLs failed pkilint.

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::ca::CaSigner;
use super::validity::BACKDATE;

/// How long a CRL stays current. A development or staging PKI has no job
/// that re-signs CRLs every few days, so a short nextUpdate would make
/// CRL-checking clients (`openssl verify -crl_check`, Java) fail on their
/// own after a week; a year, capped at the CA's own expiry, does not.
pub const CRL_LIFETIME: Duration = Duration::days(365);

/// Checks a CRL Distribution Point URL: http or https (RFC 5280 §4.2.1.13
/// says http; openssl's -crl_download fetches only http), printable ASCII,
/// no spaces.
pub fn check_crl_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        None => {
            Err(format!("{url:?} is not an http:// URL; relying parties fetch CRLs over http (RFC 5280 §4.2.1.13)"))
        }
        Some(r) if r.is_empty() || r.starts_with('/') => Err(format!("{url:?} names no host")),
        Some(_) if !url.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(format!("{url:?} has spaces or non-ASCII characters; percent-encode them"))
        }
        Some(_) => Ok(()),
    }
}

/// `revoke --reason` values, named as in RFC 5280 §5.3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Reason {
    #[cfg_attr(feature = "clap", value(name = "unspecified"))]
    Unspecified,
    #[cfg_attr(feature = "clap", value(name = "keyCompromise", alias = "key-compromise"))]
    KeyCompromise,
    #[cfg_attr(feature = "clap", value(name = "caCompromise", alias = "ca-compromise"))]
    CaCompromise,
    #[cfg_attr(feature = "clap", value(name = "affiliationChanged", alias = "affiliation-changed"))]
    AffiliationChanged,
    #[cfg_attr(feature = "clap", value(name = "superseded"))]
    Superseded,
    #[cfg_attr(feature = "clap", value(name = "cessationOfOperation", alias = "cessation-of-operation"))]
    CessationOfOperation,
    #[cfg_attr(feature = "clap", value(name = "certificateHold", alias = "certificate-hold"))]
    CertificateHold,
    #[cfg_attr(feature = "clap", value(name = "privilegeWithdrawn", alias = "privilege-withdrawn"))]
    PrivilegeWithdrawn,
}

impl Reason {
    /// The reason with RFC 5280 §5.3.1 code `code` (ACME's revokeCert
    /// sends codes); none for 7 (unused), 8 (removeFromCRL, delta CRLs
    /// only), 10 (aACompromise, attribute certificates) and beyond.
    pub fn from_code(code: u64) -> Option<Reason> {
        Some(match code {
            0 => Reason::Unspecified,
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            6 => Reason::CertificateHold,
            9 => Reason::PrivilegeWithdrawn,
            _ => return None,
        })
    }

    /// Its RFC 5280 §5.3.1 CRLReason code, as a database stores it.
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::PrivilegeWithdrawn => 9,
        }
    }

    fn to_rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::CertificateHold => RevocationReason::CertificateHold,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// The CRLReason with RFC 5280 §5.3.1 code `code`, as a CRL entry carries it.
pub fn reason_from_code(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The serial's big-endian magnitude, without leading zero bytes.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    pub reason: Option<RevocationReason>,
}

/// The content of a CA's CRL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrlState {
    pub number: u64,
    pub entries: Vec<Entry>,
}

/// Why a CRL could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error(
        "{what} is not a CRL certforge can read: {detail}; move it aside and run revoke again to start a fresh one"
    )]
    Unreadable { what: String, detail: String },
    #[error("{what} was not signed by {ca}'s key, so it cannot be extended; move it aside and run revoke again to start a fresh one")]
    ForeignSignature { what: String, ca: String },
    #[error("could not sign the CRL: {0}")]
    Build(String),
}

/// Strips leading zero bytes, so serials compare by value.
pub fn normalize_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// A CRL's number (0 when it has none) and its thisUpdate, from its DER;
/// None when it is not a CRL or its number does not fit in 64 bits.
pub fn number_and_this_update(der: &[u8]) -> Option<(u64, OffsetDateTime)> {
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    let number = match crl.crl_number() {
        None => 0,
        Some(n) => u64::try_from(n).ok()?,
    };
    Some((number, crl.last_update().to_datetime()))
}

impl CrlState {
    /// Reads a CRL (PEM or DER), checking that `ca` signed it.
    pub fn read(bytes: &[u8], what: &str, ca: &CaSigner) -> Result<CrlState, CrlError> {
        let unreadable = |detail: String| CrlError::Unreadable { what: what.to_string(), detail };
        let der = match pem::parse(bytes) {
            Ok(block) if block.tag() == "X509 CRL" => block.into_contents(),
            Ok(block) => return Err(unreadable(format!("a {} PEM block, not an X509 CRL", block.tag()))),
            Err(_) => bytes.to_vec(),
        };
        let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| unreadable(e.to_string()))?;
        verify_under(&crl, ca)
            .map_err(|_| CrlError::ForeignSignature { what: what.to_string(), ca: ca.name.clone() })?;
        let number = match crl.crl_number() {
            None => 0,
            Some(n) => u64::try_from(n).map_err(|_| unreadable("its CRL number does not fit in 64 bits".into()))?,
        };
        let entries = crl
            .iter_revoked_certificates()
            .map(|r| Entry {
                serial: normalize_serial(r.raw_serial()),
                revoked_at: r.revocation_date.to_datetime(),
                reason: r.reason_code().and_then(|(_, code)| reason_from_code(code.0)),
            })
            .collect();
        Ok(CrlState { number, entries })
    }

    /// The entry for `serial`, if it is already revoked.
    pub fn find(&self, serial: &[u8]) -> Option<&Entry> {
        let serial = normalize_serial(serial);
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// Adds a revocation unless the serial is already listed; returns whether
    /// it was added. A serial is never listed twice (certstrap's was).
    pub fn revoke(&mut self, serial: &[u8], at: OffsetDateTime, reason: Option<Reason>) -> bool {
        if self.find(serial).is_some() {
            return false;
        }
        self.entries.push(Entry {
            serial: normalize_serial(serial),
            revoked_at: at,
            reason: reason.map(Reason::to_rcgen),
        });
        true
    }

    /// Signs the next CRL: the CRL number goes up by one, thisUpdate is
    /// `now` (backdated for clock skew), nextUpdate is [`CRL_LIFETIME`] later
    /// but never past the CA's notAfter.
    pub fn sign(&mut self, ca: &CaSigner, now: OffsetDateTime) -> Result<Vec<u8>, CrlError> {
        let number = self.number + 1;
        self.sign_numbered(ca, now, number)
    }

    /// Signs the CRL numbered `number`, which the caller chose (a shared
    /// store derives it with [`next_number`]); otherwise as [`CrlState::sign`].
    /// The state takes the number only once the CRL is signed.
    pub fn sign_numbered(&mut self, ca: &CaSigner, now: OffsetDateTime, number: u64) -> Result<Vec<u8>, CrlError> {
        let this_update = now - BACKDATE;
        let next_update = (now + CRL_LIFETIME).min(ca.not_after).max(this_update + Duration::hours(1));
        let ca_cert = ca.cert();
        let ski = ca_cert.iter_extensions().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            // Written as a positive INTEGER without leading zeros (RFC 5280
            // §5.2.3), whatever the top bit.
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: self
                .entries
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial),
                    revocation_time: e.revoked_at,
                    reason_code: e.reason,
                    invalidity_date: None,
                })
                .collect(),
            // The AKI must equal the CA's SKI (RFC 5280 §5.2.1).
            key_identifier_method: ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
        };
        let issuer = Issuer::from_ca_cert_der(&ca.cert_der().into(), ca.key())
            .map_err(|e| CrlError::Build(ca.key().explain(e)))?;
        let crl = params.signed_by(&issuer).map_err(|e| CrlError::Build(ca.key().explain(e)))?;
        let der = crl.der().to_vec();
        // Parsed back and checked under the CA's key before anyone writes
        // it, as certificates are: a token that signed with another key,
        // or a bad signature encoding, stops here.
        CertificateRevocationList::from_der(&der)
            .map_err(|e| e.to_string())
            .and_then(|(_, crl)| verify_under(&crl, ca))
            .map_err(|why| {
                CrlError::Build(format!(
                    "the CRL certforge just signed fails its own check ({why}); nothing was written"
                ))
            })?;
        self.number = number;
        Ok(der)
    }
}

/// The number of the next CRL when several signers share one CA: its
/// thisUpdate in nanoseconds since 1970, as Boulder numbers its CRLs, or
/// one past the previous number if that is not higher, so the number
/// strictly increases for the issuer (RFC 5280 §5.2.3) even when a clock
/// steps back.
pub fn next_number(prev: u64, this_update: OffsetDateTime) -> u64 {
    let nanos = u64::try_from(this_update.unix_timestamp_nanos()).unwrap_or(0);
    nanos.max(prev + 1)
}

/// Checks a CRL's signature under the CA certificate's key.
fn verify_under(crl: &CertificateRevocationList<'_>, ca: &CaSigner) -> Result<(), String> {
    let ca_cert = ca.cert();
    super::signature::verify(
        ca_cert.public_key(),
        &crl.signature_algorithm,
        &crl.signature_value,
        crl.tbs_cert_list.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_number_is_this_update_in_nanoseconds_and_never_repeats_or_goes_back() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).unwrap();
        assert_eq!(next_number(0, t), 1_800_000_000_123_456_789, "a first CRL is numbered by its thisUpdate");
        assert_eq!(next_number(7, t), 1_800_000_000_123_456_789, "a depot's small numbers are passed at once");
        let same = next_number(1_800_000_000_123_456_789, t);
        assert_eq!(same, 1_800_000_000_123_456_790, "two CRLs in one nanosecond still differ");
        let earlier = t - Duration::hours(1);
        assert_eq!(next_number(same, earlier), same + 1, "a clock that stepped back does not lower the number");
        let before_1970 = OffsetDateTime::from_unix_timestamp(-5).unwrap();
        assert_eq!(next_number(3, before_1970), 4);
    }

    #[test]
    fn every_reason_code_reads_back_as_its_reason() {
        for code in 0..=10u64 {
            let Some(reason) = Reason::from_code(code) else { continue };
            assert_eq!(u64::from(reason.code()), code);
            assert_eq!(reason_from_code(reason.code()), Some(reason.to_rcgen()));
        }
    }
}
