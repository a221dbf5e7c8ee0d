//! The ACME engine's [`Issuer`] on a depot CA: every certificate becomes an
//! ordinary depot entry (`list`, `verify`, `revoke` and `renew` see it), and
//! revokeCert goes into the CA's CRL, as `certforge revoke` would.

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
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(Kind::ServerInternal, e.to_string())
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
        })
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
}

impl Issuer for DepotIssuer {
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        let name = Self::entry_name(order, csr);
        // Shared: other serve threads and processes add entries beside us;
        // a CLI command that rewrites the depot holds it exclusively.
        let _lock = self.depot.lock_shared().map_err(internal)?;
        // A finalize that a crash interrupted after the write: hand out the
        // certificate already made, if it is for this key.
        if let Some(der) = already_issued(&self.depot, &name, &csr.spki_der).map_err(internal)? {
            return Ok(to_pem("CERTIFICATE", &der) + &self.chain_pem);
        }
        // RFC 8555 §7.4 lets the CA decide the subject; only the names the
        // order authorized go in (the CSR's O, OU and the like do not).
        let mut subject = DistinguishedName::new();
        if let Some(cn) = &csr.common_name {
            subject.push(DnType::CommonName, cn.clone());
        }
        let kind = Profile::Leaf { profile: self.profile, code_signing: false };
        let mut spec = CertSpec::new(subject, csr.sans.clone(), kind, self.validity(now)?);
        // The serial is chosen before signing, so the state can claim it first.
        let serial = random_serial().to_bytes();
        self.state.reserve(&serial, &spec.sans, spec.validity.not_after).map_err(internal)?;
        spec.serial = Some(serial);
        let der = issue::signed_by(&spec, &csr.spki_der, &self.ca).map_err(internal)?;
        // Chain files only under an intermediate: under a root the leaf is
        // the whole chain, and building it would cost a signature check.
        let pool = if self.root_pem.is_some() { ChainPool::Known(&self.pool) } else { ChainPool::None };
        let writes = leaf_writes(&self.depot, &name, &der, pool);
        let location = Location::DepotFile(writes[0].path.clone());
        depot::write_all(&writes).map_err(internal)?;
        self.state.record(&der, &location).map_err(internal)?;
        Ok(to_pem("CERTIFICATE", &der) + &self.chain_pem)
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
            Ok(Revoked::Added { .. }) => Ok(()),
            Ok(Revoked::Already(_)) => Err(Problem::new(
                Kind::AlreadyRevoked,
                format!("the certificate is already in {}", self.ca_name.file("crl")),
            )),
            Err(e) => Err(internal(e)),
        }
    }
}
