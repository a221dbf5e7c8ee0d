//! The ACME engine's [`Issuer`] on a depot CA: every certificate becomes an
//! ordinary depot entry (`list`, `verify`, `revoke` and `renew` see it), and
//! revokeCert goes into the CA's CRL, as `certforge revoke` would. When
//! several servers share one CA through a database, the certificates and
//! the CRL live in that database instead ([`Sink::Database`]).

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use rcgen::{DistinguishedName, DnType};
use time::{Duration, OffsetDateTime};

use crate::acme::problem::{Kind, Problem};
use crate::acme::Issuer;
use crate::authority::issue::{already_issued, leaf_writes, ChainPool};
use crate::authority::listing::depot_certs;
use crate::authority::state::{CaState, FileState, Location, Revoked};
use crate::depot::{self, Depot};
use crate::pki::ca::CaSigner;
use crate::pki::chain::build;
use crate::pki::crl::Reason;
use crate::pki::csr::ParsedCsr;
use crate::pki::issue::{self, CertSpec};
use crate::pki::names::{sanitize, EntryName};
use crate::pki::profile::{Kind as Profile, LeafProfile};
use crate::pki::san::San;
use crate::pki::serial::random_serial;
use crate::pki::to_pem;
use crate::pki::validity::{Validity, BACKDATE};
use crate::storage::StorageError;

/// Where issued certificates are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Depot files, `NAME.crt` and its chain files, under the depot lock.
    Depot,
    /// The CA's state only, keyed by order: servers that share the state
    /// in a database have one record of every certificate, and no server
    /// writes files another cannot see.
    Database,
}

pub struct DepotIssuer {
    pub depot: Depot,
    /// The depot name of the CA that signs (its CRL is `NAME.crl`).
    pub ca_name: EntryName,
    pub ca: std::sync::Arc<CaSigner>,
    /// What the CA issued and revoked, and its CRL.
    pub state: Box<dyn CaState>,
    /// The CA certificates a server must send after the leaf: the signing
    /// CA unless it is the root, and any intermediates above it (DER).
    pub chain: Vec<Vec<u8>>,
    /// What follows the leaf in the chain handed to clients, PEM: `chain`,
    /// or the root when the root signs leaves itself.
    pub chain_pem: String,
    /// The root's file in the depot: what clients trust.
    pub root_file: PathBuf,
    /// The signing CA, the CAs above it and the root: the pool its chain
    /// files are built from.
    pub pool: Vec<Vec<u8>>,
    /// The root, PEM, when the signing CA is an intermediate: the
    /// alternate chain ends with it.
    pub root_pem: Option<String>,
    /// Server, or server + client (`--profile peer`).
    pub profile: LeafProfile,
    pub lifetime: Duration,
    /// Where each certificate goes.
    pub sink: Sink,
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(Kind::ServerInternal, e.to_string())
}

/// A state that cannot be reached now (its database down) is a 503 the
/// client retries; any other failure is internal, in the state's words.
fn state_failed(e: StorageError) -> Problem {
    if e.is_transient() {
        e.into()
    } else {
        internal(e)
    }
}

impl DepotIssuer {
    /// The issuer for `ca` (depot name `ca_name`), with the CAs above it
    /// found among the depot's certificates.
    pub fn new(
        depot: &Depot,
        ca_name: EntryName,
        ca: CaSigner,
        profile: LeafProfile,
        lifetime: Duration,
    ) -> Result<DepotIssuer> {
        let certs = depot_certs(depot);
        let pool: Vec<Vec<u8>> = certs.iter().map(|(_, d)| d.clone()).collect();
        let above = build(ca.cert_der(), &pool);
        let root = if ca.self_signed { Some(ca.cert_der().to_vec()) } else { above.root };
        let root = root.ok_or_else(|| {
            anyhow!("the root above {:?} is not in the depot; clients need it to trust the server", ca.name)
        })?;
        let root_file = certs.into_iter().find(|(_, d)| *d == root).map(|(p, _)| p).expect("found in this list");
        let chain: Vec<Vec<u8>> = if ca.self_signed {
            Vec::new()
        } else {
            std::iter::once(ca.cert_der().to_vec()).chain(above.intermediates).collect()
        };
        let pem = |ders: &[Vec<u8>]| ders.iter().map(|d| to_pem("CERTIFICATE", d)).collect::<String>();
        let ca = std::sync::Arc::new(ca);
        Ok(DepotIssuer {
            depot: depot.clone(),
            state: Box::new(FileState::new(depot.clone(), ca_name.clone(), ca.clone())),
            ca_name,
            ca,
            // Under a root that signs leaves itself the chain would be the
            // leaf alone, and certbot refuses a chain of one ("less than 2
            // certificates"): the root goes after it then.
            chain_pem: if chain.is_empty() { pem(std::slice::from_ref(&root)) } else { pem(&chain) },
            root_pem: (!chain.is_empty()).then(|| pem(std::slice::from_ref(&root))),
            pool: chain.iter().cloned().chain(std::iter::once(root)).collect(),
            chain,
            root_file,
            profile,
            lifetime,
            sink: Sink::Depot,
        })
    }

    /// The same issuer with its CA's state in `state` and its certificates
    /// kept as `sink` says.
    pub fn with_state(self, state: Box<dyn CaState>, sink: Sink) -> DepotIssuer {
        DepotIssuer { state, sink, ..self }
    }

    /// The depot entry for an order: its first name and the order id, so
    /// `list` shows what it is for and two orders never share a file.
    pub fn entry_name(order: &str, csr: &ParsedCsr) -> EntryName {
        let first = match csr.sans.first() {
            Some(San::Dns(d)) => d.clone(),
            Some(San::Ip(ip)) => ip.to_string(),
            _ => csr.common_name.clone().unwrap_or_default(),
        };
        let first: String = sanitize(&first.replace('*', "wildcard")).chars().take(120).collect();
        EntryName::new(&format!("{first}.acme-{order}")).expect("letters, digits and the order id")
    }

    /// notBefore backdated as every certforge certificate is; notAfter
    /// `lifetime` later, never past the CA.
    fn validity(&self, now: OffsetDateTime) -> Result<Validity, Problem> {
        let validity = Validity { not_before: now - BACKDATE, not_after: (now + self.lifetime).min(self.ca.not_after) };
        if validity.not_after <= now {
            return Err(internal(format!("the CA {:?} has expired; it cannot issue", self.ca.name)));
        }
        Ok(validity)
    }

    /// Reserves a random serial in the state and signs the CSR's names
    /// under it. RFC 8555 §7.4 lets the CA decide the subject; only the
    /// names the order authorized go in (the CSR's O, OU and the like do not).
    fn sign(&self, csr: &ParsedCsr, now: OffsetDateTime) -> Result<Vec<u8>, Problem> {
        let mut subject = DistinguishedName::new();
        if let Some(cn) = &csr.common_name {
            subject.push(DnType::CommonName, cn.clone());
        }
        let kind = Profile::Leaf { profile: self.profile, code_signing: false };
        let mut spec = CertSpec::new(subject, csr.sans.clone(), kind, self.validity(now)?);
        // The serial is chosen before signing, so the state can claim it first.
        let serial = random_serial().to_bytes();
        self.state.reserve(&serial, &spec.sans, spec.validity.not_after).map_err(state_failed)?;
        spec.serial = Some(serial);
        issue::signed_by(&spec, &csr.spki_der, &self.ca).map_err(internal)
    }

    fn chain(&self, der: &[u8]) -> String {
        to_pem("CERTIFICATE", der) + &self.chain_pem
    }

    fn issue_to_depot(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        let name = Self::entry_name(order, csr);
        // Shared: other serve threads and processes add entries beside us;
        // a CLI command that rewrites the depot holds it exclusively.
        let _lock = self.depot.lock_shared().map_err(internal)?;
        // A finalize that a crash interrupted after the write: hand out the
        // certificate already made, if it is for this key.
        if let Some(der) = already_issued(&self.depot, &name, &csr.spki_der).map_err(internal)? {
            return Ok(self.chain(&der));
        }
        let der = self.sign(csr, now)?;
        // Chain files only under an intermediate: under a root the leaf is
        // the whole chain, and building it would cost a signature check.
        let pool = if self.root_pem.is_some() { ChainPool::Known(&self.pool) } else { ChainPool::None };
        let writes = leaf_writes(&self.depot, &name, &der, pool);
        let location = Location::DepotFile(writes[0].path.clone());
        depot::write_all(&writes).map_err(internal)?;
        self.state.record(&der, &location).map_err(internal)?;
        Ok(self.chain(&der))
    }

    /// The certificate the state holds for `key`, when there is one: an
    /// error when it is for another key than the CSR's.
    fn stored_for(&self, key: &str, csr: &ParsedCsr) -> Result<Option<Vec<u8>>, Problem> {
        let Some(der) = self.state.stored(key).map_err(state_failed)? else { return Ok(None) };
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(internal)?;
        if cert.public_key().raw != csr.spki_der.as_slice() {
            return Err(internal(format!("the certificate recorded for {key} is for another key than the CSR's")));
        }
        Ok(Some(der))
    }

    /// No depot lock and no file: the state's records are shared by every
    /// server of the CA, and one certificate per order is enforced there.
    fn issue_to_database(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        let key = format!("order:{order}");
        // A finalize asked again (its reply was lost, or the server that
        // signed died before answering) gets the certificate already made.
        if let Some(der) = self.stored_for(&key, csr)? {
            return Ok(self.chain(&der));
        }
        let der = self.sign(csr, now)?;
        match self.state.record(&der, &Location::Stored(key.clone())) {
            Ok(()) => Ok(self.chain(&der)),
            // Another server recorded this order's certificate first: that
            // one is the order's, and ours (reserved, never handed out) is not.
            Err(StorageError::Conflict(why)) => match self.stored_for(&key, csr)? {
                Some(der) => Ok(self.chain(&der)),
                None => Err(internal(why)),
            },
            Err(e) => Err(state_failed(e)),
        }
    }
}

impl Issuer for DepotIssuer {
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        match self.sink {
            Sink::Depot => self.issue_to_depot(order, csr, now),
            Sink::Database => self.issue_to_database(order, csr, now),
        }
    }

    fn alternate(&self, chain: &str) -> Option<String> {
        self.root_pem.as_ref().map(|root| format!("{chain}{root}"))
    }

    /// Asked of the CA's state, so a `certforge revoke` run beside the
    /// server counts at once.
    fn is_revoked(&self, serial: &[u8]) -> bool {
        self.state.revocation(serial).ok().flatten().is_some()
    }

    /// The state takes the depot lock itself while it rewrites the CRL.
    fn revoke(&self, der: &[u8], reason: Reason, now: OffsetDateTime) -> Result<(), Problem> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(internal)?;
        match self.state.revoke(cert.raw_serial(), Some(reason), now) {
            // Recorded: the CRL that lists it follows from the instance
            // holding the CRL lease; the revocation itself is done.
            Ok(Revoked::Added { .. } | Revoked::Recorded { .. }) => Ok(()),
            Ok(Revoked::Already(_)) => Err(Problem::new(
                Kind::AlreadyRevoked,
                format!("the certificate is already in {}", self.ca_name.file("crl")),
            )),
            Err(e) => Err(state_failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::pki::crl::Entry;
    use crate::pki::csr::{make_csr, parse_csr};
    use crate::pki::issue::tests::ca;
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::subject::Subject;
    use crate::storage::StorageError;

    /// The records a database keeps, in memory: each serial reserved once,
    /// one certificate per key. `race` plays another server that records
    /// its certificate for the order just before this one does.
    #[derive(Default)]
    struct Records {
        reserved: Mutex<Vec<Vec<u8>>>,
        stored: Mutex<HashMap<String, Vec<u8>>>,
        race: Mutex<Option<Vec<u8>>>,
    }

    struct Shared(Arc<Records>);

    impl CaState for Shared {
        fn reserve(&self, serial: &[u8], _: &[San], _: OffsetDateTime) -> Result<(), StorageError> {
            let mut reserved = self.0.reserved.lock().unwrap();
            if reserved.iter().any(|s| s == serial) {
                return Err(StorageError::Conflict("serial taken".into()));
            }
            reserved.push(serial.to_vec());
            Ok(())
        }
        fn record(&self, der: &[u8], location: &Location) -> Result<(), StorageError> {
            let Location::Stored(key) = location else { panic!("a file location in database mode: {location:?}") };
            let mut stored = self.0.stored.lock().unwrap();
            if let Some(winner) = self.0.race.lock().unwrap().take() {
                stored.insert(key.clone(), winner);
            }
            if stored.contains_key(key) {
                return Err(StorageError::Conflict(format!("{key} has its certificate")));
            }
            stored.insert(key.clone(), der.to_vec());
            Ok(())
        }
        fn find(&self, _: &[u8]) -> Result<Option<crate::authority::state::IssuedCert>, StorageError> {
            Ok(None)
        }
        fn issued(&self) -> Result<Vec<crate::authority::state::IssuedCert>, StorageError> {
            Ok(Vec::new())
        }
        fn revocation(&self, _: &[u8]) -> Result<Option<Entry>, StorageError> {
            Ok(None)
        }
        fn revoke(&self, _: &[u8], _: Option<Reason>, _: OffsetDateTime) -> Result<Revoked, StorageError> {
            Ok(Revoked::Recorded { entries: 1 })
        }
        fn crl(&self) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(None)
        }
        fn stored(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(self.0.stored.lock().unwrap().get(key).cloned())
        }
    }

    /// A depot holding only its CA, an issuer on it keeping certificates
    /// in `Records`, and a client key.
    fn fleet() -> (tempfile::TempDir, Arc<Records>, DepotIssuer, PrivateKey) {
        let dir = tempfile::tempdir().unwrap();
        let records = Arc::new(Records::default());
        let signer = ca("Fleet CA");
        std::fs::write(dir.path().join("CA.crt"), to_pem("CERTIFICATE", signer.cert_der())).unwrap();
        let name = EntryName::new("CA").unwrap();
        let issuer = DepotIssuer::new(&Depot::new(dir.path()), name, signer, LeafProfile::Server, Duration::days(1))
            .unwrap()
            .with_state(Box::new(Shared(records.clone())), Sink::Database);
        (dir, records, issuer, PrivateKey::generate(KeySpec::EcdsaP256).unwrap())
    }

    fn csr(key: &PrivateKey) -> ParsedCsr {
        let dn = Subject { common_name: Some("web.test".into()), ..Default::default() }.to_dn().unwrap();
        parse_csr(&make_csr(&dn, &[San::Dns("web.test".into())], key).unwrap(), "csr").unwrap()
    }

    fn leaf(chain: &str) -> Vec<u8> {
        crate::pki::from_pem_or_der(chain.as_bytes(), "CERTIFICATE").unwrap()
    }

    #[test]
    fn in_a_database_a_finalize_asked_again_gets_the_same_certificate_and_no_file_is_written() {
        let (dir, records, issuer, key) = fleet();
        let now = OffsetDateTime::now_utc();
        let first = issuer.issue("o1", &csr(&key), now).unwrap();
        assert_eq!(issuer.issue("o1", &csr(&key), now).unwrap(), first, "the recorded certificate, not a new one");
        assert_eq!(records.reserved.lock().unwrap().len(), 1, "signed once");
        assert_eq!(records.stored.lock().unwrap().get("order:o1"), Some(&leaf(&first)));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["CA.crt"], "nothing written beside the CA");
        let other = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let refused = issuer.issue("o1", &csr(&other), now).unwrap_err();
        assert!(refused.detail.contains("another key"), "{refused}");
        assert_ne!(leaf(&issuer.issue("o2", &csr(&key), now).unwrap()), leaf(&first), "another order, another serial");
    }

    #[test]
    fn in_a_database_the_certificate_another_server_recorded_first_is_the_orders() {
        let (_dir, records, issuer, key) = fleet();
        let now = OffsetDateTime::now_utc();
        let winner = leaf(&issuer.issue("elsewhere", &csr(&key), now).unwrap());
        *records.race.lock().unwrap() = Some(winner.clone());
        let got = issuer.issue("o1", &csr(&key), now).unwrap();
        assert_eq!(leaf(&got), winner, "both clients get the one recorded certificate");
        assert_eq!(records.reserved.lock().unwrap().len(), 2, "ours was signed, reserved, and never handed out");
    }
}
