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
use crate::pki::san::{San, SanError};
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
    /// The SANs, or why a name given for them is not valid, which
    /// [`Ca::issue`] reports.
    sans: Result<Vec<San>, SanError>,
    profile: LeafProfile,
    key: KeySpec,
    validity: Expiry,
}

/// An issued certificate with its key.
///
/// ```
/// use certforge::{Ca, Leaf};
///
/// let ca = Ca::new("Test CA")?;
/// let issued = ca.issue(Leaf::server(["localhost"]))?;
/// let cert: &[u8] = issued.cert_der(); // DER, e.g. for rustls' CertificateDer
/// let key: &[u8] = issued.key_der(); // PKCS#8 DER, e.g. for PrivatePkcs8KeyDer
/// assert!(issued.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(issued.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
/// // Under a root, the chain is the certificate alone.
/// assert_eq!(issued.chain_pem(), issued.cert_pem());
/// # assert!(!cert.is_empty() && !key.is_empty());
///
/// let dir = tempfile::tempdir()?;
/// issued.write_to(dir.path(), "server")?; // server.crt, server.key (0600)
/// assert!(dir.path().join("server.key").is_file());
/// # Ok::<(), anyhow::Error>(())
/// ```
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

fn names<I, S>(names: I) -> Result<Vec<San>, SanError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names.into_iter().map(|n| San::domain(n.as_ref())).collect()
}

impl Ca {
    /// A root CA with an ECDSA P-256 key, valid for 10 years.
    ///
    /// ```
    /// let ca = certforge::Ca::new("Test CA")?;
    /// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn new(common_name: &str) -> Result<Ca> {
        Ca::with_key(common_name, KeySpec::EcdsaP256, Expiry { months: 120, seconds: 0 })
    }

    /// A root CA with the given key type and lifetime.
    ///
    /// ```
    /// use certforge::pki::keys::KeySpec;
    /// use certforge::{Ca, Expiry};
    ///
    /// let ca = Ca::with_key("RSA Test CA", KeySpec::Rsa(3072), Expiry::parse("1 year")?)?;
    /// # let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der())?;
    /// # assert_eq!(KeySpec::from_spki(cert.public_key().raw), Ok(KeySpec::Rsa(3072)));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
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

    /// An intermediate CA signed by this one (ECDSA P-256, 5 years, never
    /// past this CA). What it issues carries it in [`Issued::chain_pem`].
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let root = Ca::new("Test Root")?;
    /// let issuing = root.intermediate("Test Issuing CA")?;
    /// let server = issuing.issue(Leaf::server(["localhost"]))?;
    /// // The leaf, then the intermediate; clients trust the root.
    /// assert_eq!(server.chain_pem().matches("BEGIN CERTIFICATE").count(), 2);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
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

    /// Issues `leaf`, signed by this CA, with a fresh key. Its lifetime
    /// ends no later than this CA's. A name [`Leaf::server`] or
    /// [`Leaf::peer`] could not take is an error naming it.
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let server = ca.issue(Leaf::server(["localhost", "127.0.0.1"]))?;
    /// assert!(server.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    ///
    /// let err = ca.issue(Leaf::server(["localhost", "bad name!"])).err().expect("refused");
    /// assert!(err.to_string().starts_with("invalid name \"bad name!\""));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn issue(&self, leaf: Leaf) -> Result<Issued> {
        let key = PrivateKey::generate(leaf.key)?;
        let mut v = validity(leaf.validity)?;
        v.not_after = v.not_after.min(self.signer.not_after);
        let sans = leaf.sans.map_err(|e| anyhow!("invalid name {:?}: {}", e.value, e.why))?;
        let spec =
            CertSpec::new(dn(&leaf.common_name)?, sans, Kind::Leaf { profile: leaf.profile, code_signing: false }, v);
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
    /// addresses; the first is also its CN. Each name is a DNS SAN, or an IP
    /// SAN when it is an IP address; [`Ca::issue`] refuses a name that is
    /// neither.
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let server = ca.issue(Leaf::server(["api.test", "*.api.test", "::1"]))?;
    /// # let (_, cert) = x509_parser::parse_x509_certificate(server.cert_der())?;
    /// # assert_eq!(certforge::pki::san::of_cert(&cert).len(), 3);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn server<I: IntoIterator<Item = S>, S: AsRef<str>>(names_: I) -> Leaf {
        Leaf::named(names_, LeafProfile::Server)
    }

    /// A client certificate (clientAuth) for mutual TLS, named by its CN
    /// only.
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let client = ca.issue(Leaf::client("grpc-client"))?;
    /// assert!(client.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn client(common_name: &str) -> Leaf {
        Leaf {
            common_name: common_name.to_string(),
            sans: Ok(vec![]),
            profile: LeafProfile::Client,
            key: KeySpec::EcdsaP256,
            validity: Expiry { months: 24, seconds: 0 },
        }
    }

    /// A certificate good as server and client (serverAuth and
    /// clientAuth), for these names, as [`Leaf::server`] takes them.
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let node = ca.issue(Leaf::peer(["node-1.cluster.test", "10.0.0.1"]))?;
    /// # assert!(!node.cert_der().is_empty());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn peer<I: IntoIterator<Item = S>, S: AsRef<str>>(names_: I) -> Leaf {
        Leaf::named(names_, LeafProfile::Peer)
    }

    fn named<I: IntoIterator<Item = S>, S: AsRef<str>>(list: I, profile: LeafProfile) -> Leaf {
        let list: Vec<String> = list.into_iter().map(|s| s.as_ref().to_string()).collect();
        let common_name = list.first().cloned().unwrap_or_default();
        // An invalid name is reported by `Ca::issue`, so that these stay
        // plain constructors.
        let sans = names(&list);
        Leaf { common_name, sans, profile, key: KeySpec::EcdsaP256, validity: Expiry { months: 24, seconds: 0 } }
    }

    /// Uses another key type (default ECDSA P-256).
    ///
    /// ```
    /// use certforge::pki::keys::KeySpec;
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let server = ca.issue(Leaf::server(["localhost"]).key_type(KeySpec::Ed25519))?;
    /// # let (_, cert) = x509_parser::parse_x509_certificate(server.cert_der())?;
    /// # assert_eq!(KeySpec::from_spki(cert.public_key().raw), Ok(KeySpec::Ed25519));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn key_type(mut self, key: KeySpec) -> Leaf {
        self.key = key;
        self
    }

    /// Sets the lifetime (default 2 years; never past the CA's).
    ///
    /// ```
    /// use certforge::{Ca, Expiry, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let short = ca.issue(Leaf::server(["localhost"]).valid_for(Expiry::parse("1 day")?))?;
    /// # let (_, cert) = x509_parser::parse_x509_certificate(short.cert_der())?;
    /// # let life = cert.validity().time_to_expiration().unwrap();
    /// # assert!(life.whole_hours() <= 24);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn valid_for(mut self, span: Expiry) -> Leaf {
        self.validity = span;
        self
    }

    /// Sets the common name (default: the first name).
    ///
    /// ```
    /// use certforge::{Ca, Leaf};
    ///
    /// let ca = Ca::new("Test CA")?;
    /// let server = ca.issue(Leaf::server(["localhost"]).common_name("My Test Server"))?;
    /// # let (_, cert) = x509_parser::parse_x509_certificate(server.cert_der())?;
    /// # assert_eq!(cert.subject().to_string(), "CN=My Test Server");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_name_is_an_error_naming_it_and_never_changes_the_other_sans() {
        let ca = Ca::new("Test CA").unwrap();
        let err = ca.issue(Leaf::server(["localhost", "bad name!", "127.0.0.1"])).err().unwrap().to_string();
        assert!(err.starts_with("invalid name \"bad name!\": "), "{err}");
        assert!(err.contains("outside letters, digits"), "{err}");
        assert!(ca.issue(Leaf::peer(["ok.test", "a..b"])).err().unwrap().to_string().contains("\"a..b\""));

        let good = ca.issue(Leaf::server(["localhost", "127.0.0.1"])).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(good.cert_der()).unwrap();
        let want = vec![San::Dns("localhost".into()), San::Ip("127.0.0.1".parse().unwrap())];
        assert_eq!(crate::pki::san::of_cert(&cert), want);
    }
}
