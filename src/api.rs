//! The library face: certificates for a Rust test suite, made in memory
//! with no files, on the same core as the CLI.
//!
//! ```
//! use certforge::{Ca, Leaf};
//!
//! let ca = certforge::Ca::new("Test CA")?;
//! let server = ca.issue(Leaf::server(["localhost", "127.0.0.1"]))?;
//! let client = ca.issue(Leaf::client("grpc-client"))?;
//! assert!(server.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(client.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
//!
//! // Files too, when a server under test reads them from disk:
//! let dir = tempfile::tempdir()?;
//! ca.write_to(dir.path(), "ca")?;          // ca.crt, ca.key (0600)
//! server.write_to(dir.path(), "server")?;  // server.crt, server.key
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::path::Path;

use anyhow::{anyhow, Result};
use time::OffsetDateTime;

use crate::depot::{write_all, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::{KeySpec, PrivateKey};
use crate::pki::profile::{Kind, LeafProfile};
use crate::pki::san::San;
use crate::pki::subject::Subject;
use crate::pki::to_pem;
use crate::pki::validity::{Expiry, ValidityRequest};

/// A certificate authority held in memory.
pub struct Ca {
    signer: CaSigner,
    /// Intermediates between this CA and its root, nearest first (DER).
    chain: Vec<Vec<u8>>,
}

/// What to issue: a server, client or peer certificate.
#[derive(Debug, Clone)]
pub struct Leaf {
    common_name: String,
    sans: Vec<San>,
    profile: LeafProfile,
    key: KeySpec,
    validity: Expiry,
}

/// An issued certificate with its key.
pub struct Issued {
    cert_der: Vec<u8>,
    key: PrivateKey,
    chain: Vec<Vec<u8>>,
}

fn dn(cn: &str) -> Result<rcgen::DistinguishedName> {
    Ok(Subject { common_name: Some(cn.to_string()), ..Default::default() }.to_dn()?)
}

fn validity(span: Expiry) -> Result<crate::pki::validity::Validity> {
    Ok(ValidityRequest::default().resolve(OffsetDateTime::now_utc(), span)?)
}

fn names<I, S>(names: I) -> Result<Vec<San>, crate::pki::san::SanError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names.into_iter().map(|n| San::domain(n.as_ref())).collect()
}

impl Ca {
    /// A root CA with an ECDSA P-256 key, valid for 10 years.
    pub fn new(common_name: &str) -> Result<Ca> {
        Ca::with_key(common_name, KeySpec::EcdsaP256, Expiry { months: 120, seconds: 0 })
    }

    /// A root CA with the given key type and lifetime.
    pub fn with_key(common_name: &str, key: KeySpec, valid_for: Expiry) -> Result<Ca> {
        let key = PrivateKey::generate(key)?;
        let spec = CertSpec::new(
            dn(common_name)?,
            vec![],
            Kind::Root { path_len: None, permit_domains: vec![] },
            validity(valid_for)?,
        );
        let der = issue::self_signed(&spec, &key)?;
        Ok(Ca { signer: CaSigner::new(der, key, common_name, "its key")?, chain: vec![] })
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str) -> Result<Ca> {
        let key = PrivateKey::generate(KeySpec::EcdsaP256)?;
        let mut v = validity(Expiry { months: 60, seconds: 0 })?;
        v.not_after = v.not_after.min(self.signer.not_after);
        let spec = CertSpec::new(dn(common_name)?, vec![], Kind::Intermediate { path_len: None }, v);
        let der = issue::signed_by(&spec, &key.spki_der(), &self.signer)?;
        let mut chain = vec![self.signer.cert_der().to_vec()];
        chain.extend(self.chain.iter().cloned());
        chain.pop_if(|c| {
            x509_parser::parse_x509_certificate(c).is_ok_and(|(_, x)| x.subject().as_raw() == x.issuer().as_raw())
        });
        Ok(Ca { signer: CaSigner::new(der, key, common_name, "its key")?, chain })
    }

    /// Issues `leaf`, signed by this CA.
    pub fn issue(&self, leaf: Leaf) -> Result<Issued> {
        let key = PrivateKey::generate(leaf.key)?;
        let mut v = validity(leaf.validity)?;
        v.not_after = v.not_after.min(self.signer.not_after);
        let spec = CertSpec::new(
            dn(&leaf.common_name)?,
            leaf.sans,
            Kind::Leaf { profile: leaf.profile, code_signing: false },
            v,
        );
        let cert_der = issue::signed_by(&spec, &key.spki_der(), &self.signer)?;
        // Below an intermediate, the chain a server sends holds it and the
        // intermediates above it, never the root.
        let mut chain = vec![];
        if !self.signer.self_signed {
            chain.push(self.signer.cert_der().to_vec());
            chain.extend(self.chain.iter().cloned());
        }
        Ok(Issued { cert_der, key, chain })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        self.signer.cert_der()
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> String {
        to_pem("CERTIFICATE", self.cert_der())
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.signer.key().file().and_then(|k| k.to_pem(None).ok()).map(|p| p.to_string()).unwrap_or_default()
    }

    /// Writes `<stem>.crt` and `<stem>.key` (0600) into `dir`, never
    /// overwriting.
    pub fn write_to(&self, dir: &Path, stem: &str) -> Result<()> {
        write_pair(dir, stem, self.cert_pem(), self.key_pem())
    }
}

impl Leaf {
    /// A server certificate (serverAuth) for these DNS names and IP
    /// addresses; the first is also its CN.
    pub fn server<I: IntoIterator<Item = S>, S: AsRef<str>>(names_: I) -> Leaf {
        Leaf::named(names_, LeafProfile::Server)
    }

    /// A client certificate (clientAuth) for mutual TLS.
    pub fn client(common_name: &str) -> Leaf {
        Leaf {
            common_name: common_name.to_string(),
            sans: vec![],
            profile: LeafProfile::Client,
            key: KeySpec::EcdsaP256,
            validity: Expiry { months: 24, seconds: 0 },
        }
    }

    /// A certificate good as server and client, for these names.
    pub fn peer<I: IntoIterator<Item = S>, S: AsRef<str>>(names_: I) -> Leaf {
        Leaf::named(names_, LeafProfile::Peer)
    }

    fn named<I: IntoIterator<Item = S>, S: AsRef<str>>(list: I, profile: LeafProfile) -> Leaf {
        let list: Vec<String> = list.into_iter().map(|s| s.as_ref().to_string()).collect();
        let common_name = list.first().cloned().unwrap_or_default();
        // Invalid names surface when the leaf is issued.
        let sans = names(&list).unwrap_or_else(|_| list.iter().map(|n| San::Dns(n.clone())).collect());
        Leaf { common_name, sans, profile, key: KeySpec::EcdsaP256, validity: Expiry { months: 24, seconds: 0 } }
    }

    /// Uses another key type (default ECDSA P-256).
    pub fn key_type(mut self, key: KeySpec) -> Leaf {
        self.key = key;
        self
    }

    /// Sets the lifetime, e.g. `Expiry::parse("1 day")?`.
    pub fn valid_for(mut self, span: Expiry) -> Leaf {
        self.validity = span;
        self
    }

    /// Sets the common name (default: the first name).
    pub fn common_name(mut self, cn: &str) -> Leaf {
        self.common_name = cn.to_string();
        self
    }
}

impl Issued {
    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.cert_der)
    }

    /// The certificate followed by its intermediates: what a server sends.
    pub fn chain_pem(&self) -> String {
        let mut s = self.cert_pem();
        for c in &self.chain {
            s.push_str(&to_pem("CERTIFICATE", c));
        }
        s
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> &[u8] {
        self.key.pkcs8_der()
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.to_pem(None).map(|p| p.to_string()).unwrap_or_default()
    }

    /// Writes `<stem>.crt` (with its chain) and `<stem>.key` (0600) into
    /// `dir`, never overwriting.
    pub fn write_to(&self, dir: &Path, stem: &str) -> Result<()> {
        write_pair(dir, stem, self.chain_pem(), self.key_pem())
    }
}

fn write_pair(dir: &Path, stem: &str, cert: String, key: String) -> Result<()> {
    let name = crate::pki::names::EntryName::new(stem).map_err(|e| anyhow!("{stem:?}: {e}"))?;
    write_all(&[
        Write1 { path: dir.join(name.file("key")), bytes: (key.into_bytes()).into(), mode: KEY_MODE, replace: false },
        Write1 {
            path: dir.join(name.file("crt")),
            bytes: (cert.into_bytes()).into(),
            mode: PUBLIC_MODE,
            replace: false,
        },
    ])
}
