//! The CA's state: the register of what it issued, its revocations, its CRL
//! number and its signed CRL, behind one trait. [`FileState`] keeps it in
//! depot files as certforge always has; a database can implement the same
//! trait, every method one transaction, and share its connections with the
//! ACME store through the one [`StorageError`].

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::depot::{self, Depot};
use crate::pki::ca::CaSigner;
use crate::pki::crl::{self, normalize_serial, CrlState, Reason};
use crate::pki::names::EntryName;
use crate::pki::san::San;
use crate::storage::StorageError;

/// A certificate the CA issued, as its state records it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The serial's magnitude, without leading zero bytes.
    pub serial: Vec<u8>,
    pub names: Vec<San>,
    pub not_after: OffsetDateTime,
    pub location: Location,
    /// The CRL entry, when it is revoked.
    pub revoked: Option<crl::Entry>,
}

/// Where an issued certificate is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A `NAME.crt` file of the depot.
    DepotFile(PathBuf),
    /// A record of a database, by its key.
    Stored(String),
}

/// What [`CaState::revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The serial was added and a CRL numbered `number`, listing `entries`
    /// certificates, was published; `started` when there was no CRL before.
    Added { number: u64, entries: usize, started: bool },
    /// The serial was revoked already; nothing changed.
    Already(crl::Entry),
    /// Recorded as revoked, `entries` revocations in all; the CRL carrying
    /// it is published by the instance holding the CRL lease, which had not
    /// done so when the state stopped waiting for it. A state that signs its
    /// CRL itself (the depot's) never answers this.
    Recorded { entries: usize },
}

/// The state of one CA. A store may hold several CAs; each value is one.
pub trait CaState: Send + Sync {
    /// Before signing: claims `serial` for `names`, so that two issuers never
    /// sign one serial (a database records it, UNIQUE, before the CA signs).
    fn reserve(&self, serial: &[u8], names: &[San], not_after: OffsetDateTime) -> Result<(), StorageError>;
    /// After signing: the certificate `cert_der` is stored where `location` says.
    fn record(&self, cert_der: &[u8], location: &Location) -> Result<(), StorageError>;
    /// The certificate with this serial, if this CA issued it.
    fn find(&self, serial: &[u8]) -> Result<Option<IssuedCert>, StorageError>;
    /// Every certificate this CA issued that the state still knows.
    fn issued(&self) -> Result<Vec<IssuedCert>, StorageError>;
    /// The revocation of `serial`, if it is revoked.
    fn revocation(&self, serial: &[u8]) -> Result<Option<crl::Entry>, StorageError>;
    /// Adds `serial` to the revocations and publishes a CRL signed by this
    /// CA with a strictly higher CRL number (RFC 5280 §5.2.3), as one change.
    fn revoke(&self, serial: &[u8], reason: Option<Reason>, now: OffsetDateTime) -> Result<Revoked, StorageError>;
    /// The CRL published now (DER), if there is one.
    fn crl(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// The certificate recorded at `Location::Stored(key)` (DER), if any:
    /// how an issuer that keeps certificates in a database finds the one a
    /// finalize already made. A state with no such records has none.
    fn stored(&self, _key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
}

/// The CA's state in depot files: each certificate is its `NAME.crt` (its
/// file name is its claim, and its serial is 128 random bits), and the
/// revocations and CRL number are those of the signed `CA.crl`, which is
/// read back (its signature checked) on every question, so a `certforge
/// revoke` beside a running server counts at once.
pub struct FileState {
    depot: Depot,
    ca: EntryName,
    signer: Arc<CaSigner>,
}

fn failed(e: anyhow::Error) -> StorageError {
    StorageError::Failed(format!("{e:#}"))
}

impl FileState {
    /// The state of the CA `ca` of `depot`, which `signer` signs for.
    pub fn new(depot: Depot, ca: EntryName, signer: Arc<CaSigner>) -> FileState {
        FileState { depot, ca, signer }
    }

    /// The CA that signs the CRL.
    pub fn signer(&self) -> &CaSigner {
        &self.signer
    }

    /// The CRL's file.
    pub fn crl_path(&self) -> PathBuf {
        self.depot.path(&self.ca, "crl")
    }

    /// The CRL as stored and its content, checked to be signed by this CA;
    /// None when there is no CRL yet.
    fn read_crl(&self) -> Result<Option<(Vec<u8>, CrlState)>, StorageError> {
        let path = self.crl_path();
        if !depot::present(&path) {
            return Ok(None);
        }
        let bytes = depot::read_file(&path).map_err(failed)?;
        let what = path.display().to_string();
        // The detail is the whole reason, the file and its fix included, so
        // the command line can say it as it is.
        let state = CrlState::read(&bytes, &what, &self.signer)
            .map_err(|e| StorageError::Damaged { what: what.clone(), detail: e.to_string() })?;
        Ok(Some((bytes, state)))
    }

    /// The serial, names and notAfter of `der` when this CA signed it.
    fn issued_by_this_ca(&self, der: &[u8]) -> Option<(Vec<u8>, Vec<San>, OffsetDateTime)> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let ca = self.signer.cert();
        if der == self.signer.cert_der()
            || cert.issuer().as_raw() != ca.subject().as_raw()
            || crate::pki::signature::verify_cert(&cert, ca.public_key()).is_err()
        {
            return None;
        }
        let serial = normalize_serial(cert.raw_serial());
        Some((serial, crate::pki::san::of_cert(&cert), cert.validity().not_after.to_datetime()))
    }
}

impl CaState for FileState {
    fn reserve(&self, _: &[u8], _: &[San], _: OffsetDateTime) -> Result<(), StorageError> {
        Ok(())
    }

    fn record(&self, _: &[u8], _: &Location) -> Result<(), StorageError> {
        Ok(())
    }

    fn find(&self, serial: &[u8]) -> Result<Option<IssuedCert>, StorageError> {
        let serial = normalize_serial(serial);
        Ok(self.issued()?.into_iter().find(|c| c.serial == serial))
    }

    fn issued(&self) -> Result<Vec<IssuedCert>, StorageError> {
        let crl = self.read_crl()?.map(|(_, s)| s).unwrap_or_default();
        Ok(super::listing::depot_certs(&self.depot)
            .into_iter()
            .filter_map(|(path, der)| {
                let (serial, names, not_after) = self.issued_by_this_ca(&der)?;
                let revoked = crl.find(&serial).cloned();
                Some(IssuedCert { serial, names, not_after, location: Location::DepotFile(path), revoked })
            })
            .collect())
    }

    fn revocation(&self, serial: &[u8]) -> Result<Option<crl::Entry>, StorageError> {
        Ok(self.read_crl()?.and_then(|(_, s)| s.find(serial).cloned()))
    }

    /// Holds the depot lock exclusively from reading the CRL to writing the
    /// new one, so two revocations never start from one old list. The lock
    /// is flock(2) on a new descriptor: a caller holding it already would
    /// wait for itself, so callers do not take it.
    fn revoke(&self, serial: &[u8], reason: Option<Reason>, now: OffsetDateTime) -> Result<Revoked, StorageError> {
        let _lock = self.depot.lock().map_err(failed)?;
        let old = self.read_crl()?;
        let started = old.is_none();
        let mut state = old.map(|(_, s)| s).unwrap_or_default();
        if let Some(entry) = state.find(serial) {
            return Ok(Revoked::Already(entry.clone()));
        }
        state.revoke(serial, now, reason);
        let crl_der = state.sign(&self.signer, now).map_err(|e| StorageError::Failed(e.to_string()))?;
        depot::write_all(&[depot::Write1 {
            path: self.crl_path(),
            bytes: crate::pki::to_pem("X509 CRL", &crl_der).into_bytes().into(),
            mode: depot::PUBLIC_MODE,
            replace: true,
        }])
        .map_err(failed)?;
        Ok(Revoked::Added { number: state.number, entries: state.entries.len(), started })
    }

    fn crl(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let Some((bytes, _)) = self.read_crl()? else { return Ok(None) };
        crate::pki::from_pem_or_der(&bytes, "X509 CRL")
            .map(Some)
            .map_err(|detail| StorageError::Damaged { what: self.crl_path().display().to_string(), detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::issue::tests::ca;
    use crate::pki::issue::{self, CertSpec};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::Kind;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};

    fn state(dir: &std::path::Path, signer: CaSigner) -> FileState {
        FileState::new(Depot::new(dir), EntryName::new("CA").unwrap(), Arc::new(signer))
    }

    #[test]
    fn a_second_revocation_changes_nothing_and_each_new_one_numbers_the_crl_higher() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), ca("State CA"));
        let now = OffsetDateTime::now_utc();
        assert_eq!(s.crl().unwrap(), None, "no CRL before the first revocation");
        assert_eq!(
            s.revoke(&[0x01, 0x42], Some(Reason::KeyCompromise), now).unwrap(),
            Revoked::Added { number: 1, entries: 1, started: true }
        );
        let first = s.crl().unwrap().expect("the CRL is published");
        match s.revoke(&[0x00, 0x01, 0x42], None, now).unwrap() {
            Revoked::Already(entry) => assert_eq!(entry.serial, [0x01, 0x42], "the same serial, by value"),
            other => panic!("revoked twice: {other:?}"),
        }
        assert_eq!(s.crl().unwrap().as_deref(), Some(first.as_slice()), "Already leaves the CRL as it was");
        assert_eq!(s.revoke(&[0x07], None, now).unwrap(), Revoked::Added { number: 2, entries: 2, started: false });
        assert!(s.revocation(&[0x01, 0x42]).unwrap().is_some());
        assert!(s.revocation(&[0x08]).unwrap().is_none());
    }

    #[test]
    fn the_crl_verifies_under_the_ca_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let signer = ca("Openssl CA");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, crate::pki::to_pem("CERTIFICATE", signer.cert_der())).unwrap();
        let s = state(dir.path(), signer);
        s.revoke(&[0x2a], None, OffsetDateTime::now_utc()).unwrap();
        let crl = dir.path().join("crl.der");
        std::fs::write(&crl, s.crl().unwrap().unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-in"])
            .arg(&crl)
            .arg("-CAfile")
            .arg(&ca_pem)
            .arg("-noout")
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl crl: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("verify OK"), "{out:?}");
    }

    #[test]
    fn a_crl_another_ca_signed_is_damaged_not_extended() {
        let dir = tempfile::tempdir().unwrap();
        state(dir.path(), ca("First CA")).revoke(&[0x01], None, OffsetDateTime::now_utc()).unwrap();
        let other = state(dir.path(), ca("First CA"));
        let err = other.revoke(&[0x02], None, OffsetDateTime::now_utc()).unwrap_err();
        assert!(matches!(&err, StorageError::Damaged { detail, .. } if detail.contains("was not signed by")), "{err}");
        assert!(other.revocation(&[0x01]).is_err(), "a CRL that does not verify answers nothing");
    }

    #[test]
    fn the_register_is_what_this_ca_signed_with_its_revocations() {
        let dir = tempfile::tempdir().unwrap();
        let signer = ca("Register CA");
        let now = OffsetDateTime::now_utc();
        let leaf_key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 day").unwrap()).unwrap();
        let kind = Kind::Leaf { profile: crate::pki::profile::LeafProfile::Server, code_signing: false };
        let dn = Subject { common_name: Some("web".into()), ..Default::default() }.to_dn().unwrap();
        let sans = vec![San::Dns("web.test".into())];
        let der =
            issue::signed_by(&CertSpec::new(dn, sans.clone(), kind, validity), &leaf_key.spki_der(), &signer).unwrap();
        let depot = Depot::new(dir.path());
        let write = |stem: &str, der: &[u8]| {
            std::fs::write(dir.path().join(format!("{stem}.crt")), crate::pki::to_pem("CERTIFICATE", der)).unwrap()
        };
        write("web", &der);
        write("CA", signer.cert_der());
        write("Other", ca("Register CA").cert_der());
        let s = state(dir.path(), signer);
        let issued = s.issued().unwrap();
        assert_eq!(issued.len(), 1, "the CA itself and another CA's certificates are not in its register");
        let serial = x509_parser::parse_x509_certificate(&der).unwrap().1.raw_serial().to_vec();
        assert_eq!(issued[0].serial, normalize_serial(&serial));
        assert_eq!(issued[0].names, sans);
        assert_eq!(issued[0].location, Location::DepotFile(depot.path(&EntryName::new("web").unwrap(), "crt")));
        assert!(issued[0].revoked.is_none());
        s.revoke(&serial, None, now).unwrap();
        assert!(s.find(&serial).unwrap().expect("found by serial").revoked.is_some());
        assert!(s.find(&[0x01]).unwrap().is_none());
    }
}
