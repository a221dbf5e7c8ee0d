//! The ACME directory's own HTTPS certificate: issued by the served CA for
//! the listen names when `serve` starts, kept in memory, and replaced when
//! two thirds of its life have passed. Clients then need only the depot's
//! CA file (Pebble makes users find a separate test root; its #416).

use std::sync::{Arc, RwLock};

use anyhow::{anyhow, bail, Result};
use rcgen::{DistinguishedName, DnType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature_with_raw_key, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use time::{Duration, OffsetDateTime};

use crate::pki::ca::CaSigner;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::{KeySpec, PrivateKey};
use crate::pki::profile::{Kind, LeafProfile};
use crate::pki::san::San;
use crate::pki::validity::{Validity, BACKDATE};

/// How long the server's own certificate lives; it is renewed long before.
pub const LIFETIME: Duration = Duration::days(7);

/// The certificate rustls serves, swapped in place on renewal.
#[derive(Debug)]
pub struct OwnCert {
    current: RwLock<(Arc<CertifiedKey>, OffsetDateTime)>,
}

impl OwnCert {
    pub fn new(key: CertifiedKey, renew_at: OffsetDateTime) -> OwnCert {
        OwnCert { current: RwLock::new((Arc::new(key), renew_at)) }
    }

    /// When the current certificate should be replaced.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1
    }

    pub fn replace(&self, key: CertifiedKey, renew_at: OffsetDateTime) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(key), renew_at);
    }
}

impl ResolvesServerCert for OwnCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone())
    }
}

/// Issues the server's certificate for `names`, with the CA chain `chain`
/// (DER, leaf excluded) after it. Returns it with the time to renew it.
pub fn issue_own(
    ca: &CaSigner,
    chain: &[Vec<u8>],
    names: &[San],
    now: OffsetDateTime,
) -> Result<(CertifiedKey, OffsetDateTime)> {
    let outside = ca.names_outside_constraints(names, None);
    if !outside.is_empty() {
        bail!(
            "the CA {:?} may not certify the server's own names: {}; listen on, or give --hostname, names inside its constraints",
            ca.name,
            outside.join("; ")
        );
    }
    let not_after = (now + LIFETIME).min(ca.not_after);
    if not_after <= now {
        bail!("the CA {:?} has expired; serve cannot issue its own certificate", ca.name);
    }
    let validity = Validity { not_before: now - BACKDATE, not_after };
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "certforge ACME server");
    let spec = CertSpec::new(
        subject,
        names.to_vec(),
        Kind::Leaf { profile: LeafProfile::Server, code_signing: false },
        validity,
    );
    let key = PrivateKey::generate(KeySpec::EcdsaP256)?;
    let der = issue::signed_by(&spec, &key.spki_der(), ca)?;
    let certs: Vec<CertificateDer<'static>> =
        std::iter::once(der).chain(chain.iter().cloned()).map(CertificateDer::from).collect();
    let key_der = PrivateKeyDer::try_from(key.pkcs8_der().to_vec()).map_err(|e| anyhow!("{e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(certs, key_der, &provider)?;
    Ok((certified, now + (not_after - now) * 2 / 3))
}

/// A client's check of a server it does not authenticate by its
/// certificate (a tls-alpn-01 challenge; a database at `sslmode=require`):
/// any certificate passes, but the handshake's signature must verify under
/// its key, so the server holds that key.
#[derive(Debug)]
pub struct AnyCertificate(pub WebPkiSupportedAlgorithms);

impl AnyCertificate {
    /// Accepts whatever certificate the server sends, checking only the
    /// handshake's signature under its key.
    pub fn of(provider: &rustls::crypto::CryptoProvider) -> AnyCertificate {
        AnyCertificate(provider.signature_verification_algorithms)
    }

    /// `signature` of `message` under the bare public key of `cert`, not
    /// under `cert` itself: webpki refuses to parse a certificate with a
    /// critical extension it does not know (RFC 5280 §4.2), and a
    /// tls-alpn-01 certificate carries one (RFC 8737 §3).
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let spki = SubjectPublicKeyInfoDer::from(parsed.tbs_certificate.subject_pki.raw);
        if tls13 {
            return verify_tls13_signature_with_raw_key(message, &spki, dss, &self.0);
        }
        // TLS 1.2 schemes can map to several algorithms; any may verify,
        // as in rustls's own verify_tls12_signature.
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let mut algorithms = self.0.mapping.iter().filter(|(scheme, _)| *scheme == dss.scheme).flat_map(|(_, a)| *a);
        match algorithms.any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok()) {
            true => Ok(HandshakeSignatureValid::assertion()),
            false => Err(rustls::Error::InvalidCertificate(CertificateError::BadSignature)),
        }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};

    fn ca(lifetime: &str, now: OffsetDateTime) -> CaSigner {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let dn = Subject { common_name: Some("Own CA".into()), ..Default::default() }.to_dn().unwrap();
        let validity = ValidityRequest::default().resolve(now, Expiry::parse(lifetime).unwrap()).unwrap();
        let spec = CertSpec::new(dn, vec![], Kind::Root { path_len: None, permit_domains: vec![] }, validity);
        CaSigner::new(issue::self_signed(&spec, &key).unwrap(), key, "ca", "key").unwrap()
    }

    #[test]
    fn the_own_certificate_is_renewed_at_two_thirds_and_never_outlives_the_ca() {
        let now = OffsetDateTime::now_utc();
        let names = [San::Dns("localhost".into()), San::ip("127.0.0.1").unwrap()];
        let (key, renew_at) = issue_own(&ca("1 year", now), &[], &names, now).unwrap();
        assert_eq!(renew_at, now + LIFETIME * 2 / 3);
        let own = OwnCert::new(key, renew_at);
        let short = ca("3 days", now);
        let (key, renew_at) = issue_own(&short, &[], &names, now).unwrap();
        assert!(renew_at < now + Duration::days(2) + Duration::minutes(1), "2/3 of what the CA has left");
        let (_, leaf) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        assert_eq!(leaf.validity().not_after.to_datetime(), short.not_after);
        own.replace(key, renew_at);
        assert_eq!(own.renew_at(), renew_at, "the replacement is what is served now");
    }
}
