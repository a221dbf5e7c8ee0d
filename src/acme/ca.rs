//! Issuance (Pebble's `ca` role): the trait through which the front end
//! has a finalized order's CSR signed and a certificate revoked. The
//! depot's implementation is `crate::serve::issuer`; [`MemIssuer`] signs in
//! memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::problem::{Kind, Problem};
use crate::pki::ca::CaSigner;
use crate::pki::crl::Reason;
use crate::pki::csr::ParsedCsr;
use crate::pki::issue::{self, CertSpec};
use crate::pki::profile::{Kind as ProfileKind, LeafProfile};
use crate::pki::serial::hex;
use crate::pki::to_pem;
use crate::pki::validity::{Expiry, ValidityRequest};

/// Turns a finalized order's CSR into a certificate chain (PEM), writing it
/// to the depot; and revokes one.
pub trait Issuer: Send + Sync {
    /// Issues for order `order`. Called again for the same order (after a
    /// crash mid-finalize, or a store write that failed after signing) it
    /// must return the same certificate, not a second.
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem>;
    /// Revokes the certificate `der` (already checked to be one this server
    /// issued to the requester).
    fn revoke(&self, der: &[u8], reason: Reason, now: OffsetDateTime) -> Result<(), Problem>;
    /// Whether the certificate with this serial is revoked (by revokeCert
    /// or by `certforge revoke`), for ARI.
    fn is_revoked(&self, serial: &[u8]) -> bool;
    /// The other chain a client may choose for `chain` (§7.4.2), if any:
    /// with the root appended, for servers whose clients lack it.
    fn alternate(&self, chain: &str) -> Option<String>;
}

/// The leaf of a PEM chain, DER.
pub fn leaf_of(chain: &str) -> Option<Vec<u8>> {
    Some(pem::parse(chain).ok()?.into_contents())
}

/// A certificate's serial as the store indexes it.
pub fn serial_key(der: &[u8]) -> Option<String> {
    Some(hex(x509_parser::parse_x509_certificate(der).ok()?.1.raw_serial()))
}

/// An issuer in memory, beside [`crate::acme::db::MemStore`]: the engine's
/// tests and the fuzz target run the protocol on it. It signs one-day
/// server certificates with `ca`, keeps the contract above (a second
/// `issue` for an order returns the first chain), and records revocations.
pub struct MemIssuer {
    ca: Arc<CaSigner>,
    /// Order id → chain (PEM).
    issued: Mutex<HashMap<String, String>>,
    /// What revokeCert revoked, in order: (certificate DER, reason).
    pub revoked: Mutex<Vec<(Vec<u8>, Reason)>>,
}

impl MemIssuer {
    pub fn new(ca: Arc<CaSigner>) -> MemIssuer {
        MemIssuer { ca, issued: Mutex::default(), revoked: Mutex::default() }
    }

    /// How many certificates it signed.
    pub fn signed(&self) -> usize {
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Issuer for MemIssuer {
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(chain) = issued.get(order) {
            return Ok(chain.clone());
        }
        let internal = |e: &dyn std::fmt::Display| Problem::new(Kind::ServerInternal, e.to_string());
        let validity = ValidityRequest::default()
            .resolve(now, Expiry::parse("1 day").map_err(|e| internal(&e))?)
            .map_err(|e| internal(&e))?;
        let kind = ProfileKind::Leaf { profile: LeafProfile::Server, code_signing: false };
        let der = issue::signed_by(&CertSpec::from_csr(csr, kind, validity), &csr.spki_der, &self.ca)
            .map_err(|e| internal(&e))?;
        let chain = to_pem("CERTIFICATE", &der) + &to_pem("CERTIFICATE", self.ca.cert_der());
        issued.insert(order.to_string(), chain.clone());
        Ok(chain)
    }

    fn revoke(&self, der: &[u8], reason: Reason, _: OffsetDateTime) -> Result<(), Problem> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).push((der.to_vec(), reason));
        Ok(())
    }

    fn is_revoked(&self, serial: &[u8]) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        revoked
            .iter()
            .any(|(der, _)| x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| c.raw_serial() == serial))
    }

    fn alternate(&self, chain: &str) -> Option<String> {
        Some(format!("{chain}{}", to_pem("CERTIFICATE", self.ca.cert_der())))
    }
}

impl<T: Issuer + ?Sized> Issuer for Arc<T> {
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        (**self).issue(order, csr, now)
    }

    fn revoke(&self, der: &[u8], reason: Reason, now: OffsetDateTime) -> Result<(), Problem> {
        (**self).revoke(der, reason, now)
    }

    fn is_revoked(&self, serial: &[u8]) -> bool {
        (**self).is_revoked(serial)
    }

    fn alternate(&self, chain: &str) -> Option<String> {
        (**self).alternate(chain)
    }
}
