//! Loading a depot CA to sign with: its certificate, its key (a file or a
//! PKCS#11 token key), its CRL Distribution Point, and for a sealed local
//! CA the issuing intermediate that signs for it.

use std::path::PathBuf;

use super::keys::{exposed_key_warning, BothKeys, CaKeySource, URI_EXT};
use super::local::{issuing_of, SEALED};
use super::Unlock;
use crate::depot::{self, Depot};
use crate::pki::ca::CaSigner;
use crate::pki::from_pem_or_der;
use crate::pki::names::EntryName;

/// Why a depot CA cannot be loaded. The binary words `NoCert`, `SealedRoot`
/// and `NoKey` with the name as the user typed it and the command to run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `NAME.crt` is not in the depot.
    #[error("{} does not exist, so {name} is not a CA of this depot", crt.display())]
    NoCert { name: EntryName, crt: PathBuf },
    /// A sealed local CA asked to sign itself: its key is gone, and
    /// `issuing` signs for it.
    #[error("{name} is a sealed local CA: its key was wiped once it signed {issuing:?}, so {issuing:?} signs for it")]
    SealedRoot { name: EntryName, issuing: String },
    /// Neither a key file nor a key URI file is beside the certificate.
    #[error("{} does not exist, so {name} cannot sign; a CA needs its key beside its certificate (or {uri_file} naming its key on a PKCS#11 token)", key_path.display())]
    NoKey { name: EntryName, key_path: PathBuf, uri_file: String },
    /// Both a key file and a key URI file: which one signs would be a guess.
    #[error(transparent)]
    BothKeys(#[from] BothKeys),
    /// A file of the CA that does not hold what it should.
    #[error("{what}: {detail}")]
    Unreadable { what: String, detail: String },
    /// Loading `issuing`, the CA that signs for a sealed local CA, failed.
    #[error("{issuing:?}, which signs for a sealed local CA, cannot be loaded")]
    Issuing { issuing: String, source: Box<LoadError> },
    /// Reading a file, opening the key or checking the pair failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A CA's certificate and where its key is, before the key is opened.
pub struct CaFiles {
    pub cert_der: Vec<u8>,
    /// The certificate's file, for messages.
    pub crt_what: String,
    pub key: CaKeySource,
    /// Said to the user, e.g. a key file others can read.
    pub warnings: Vec<String>,
}

/// A CA ready to sign.
pub struct SigningCa {
    /// The depot name of the CA that signs (where its CRL is).
    pub name: EntryName,
    pub signer: CaSigner,
    /// When the CA asked for is a sealed local CA: the name of the issuing
    /// CA that signs for it, as its `NAME.sealed` spells it.
    pub issuing: Option<String>,
    /// Said to the user, e.g. a key file others can read.
    pub warnings: Vec<String>,
}

/// The CA `name`'s certificate and where its key is, once a key file is
/// found; each miss is its own [`LoadError`].
pub fn ca_files(depot: &Depot, name: &EntryName) -> Result<CaFiles, LoadError> {
    let crt = depot.path(name, "crt");
    if !crt.is_file() {
        return Err(LoadError::NoCert { name: name.clone(), crt });
    }
    let cert_bytes = depot::read_file(&crt)?;
    let crt_what = crt.display().to_string();
    let cert_der = from_pem_or_der(&cert_bytes, "CERTIFICATE")
        .map_err(|e| LoadError::Unreadable { what: crt_what.clone(), detail: e.to_string() })?;
    let Some(key) = CaKeySource::of(depot, name)? else {
        if let Some(issuing) = issuing_of(depot, name) {
            return Err(LoadError::SealedRoot { name: name.clone(), issuing });
        }
        return Err(LoadError::NoKey {
            name: name.clone(),
            key_path: depot.path(name, "key"),
            uri_file: name.file(URI_EXT),
        });
    };
    let warnings = match &key {
        CaKeySource::File(path) => exposed_key_warning(path).into_iter().collect(),
        CaKeySource::Token(_) => Vec::new(),
    };
    Ok(CaFiles { cert_der, crt_what, key, warnings })
}

/// The CA's CRL Distribution Point from `NAME.crl-url` (`init --crl-url`).
pub fn crl_url(depot: &Depot, name: &EntryName) -> Result<Option<String>, LoadError> {
    let path = depot.path(name, "crl-url");
    if !path.exists() {
        return Ok(None);
    }
    let text = String::from_utf8(depot::read_file(&path)?)
        .map_err(|_| anyhow::anyhow!("{} is not text; it should hold one URL", path.display()))?;
    let url = text.trim().to_string();
    crate::pki::crl::check_crl_url(&url)
        .map_err(|detail| LoadError::Unreadable { what: path.display().to_string(), detail })?;
    Ok(Some(url))
}

/// Loads the CA `name` itself and checks it can sign.
pub fn load_ca(depot: &Depot, name: &EntryName, unlock: &mut Unlock) -> Result<SigningCa, LoadError> {
    let files = ca_files(depot, name)?;
    let key = files.key.load(unlock)?;
    let mut signer = CaSigner::new(files.cert_der, key, &files.crt_what, &files.key.path().display().to_string())
        .map_err(anyhow::Error::from)?;
    signer.crl_url = crl_url(depot, name)?;
    Ok(SigningCa { name: name.clone(), signer, issuing: None, warnings: files.warnings })
}

/// The CA that signs for `name`: the CA itself, or for a sealed local CA
/// (`init --local`) its issuing intermediate.
pub fn load_signing_ca(depot: &Depot, name: &EntryName, unlock: &mut Unlock) -> Result<SigningCa, LoadError> {
    let issuing = Some(name)
        .filter(|name| matches!(CaKeySource::of(depot, name), Ok(None)))
        .and_then(|name| issuing_of(depot, name));
    let Some(issuing) = issuing else { return load_ca(depot, name, unlock) };
    let inter = EntryName::new(&issuing).map_err(|e| LoadError::Unreadable {
        what: depot.path(name, SEALED).display().to_string(),
        detail: e.to_string(),
    })?;
    let mut ca = load_ca(depot, &inter, unlock)
        .map_err(|e| LoadError::Issuing { issuing: issuing.clone(), source: Box::new(e) })?;
    ca.issuing = Some(issuing);
    Ok(ca)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::pki::issue::{self, CertSpec};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::Kind;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};
    use std::os::unix::fs::PermissionsExt;

    /// A root CA `stem` in the depot at `dir`: its certificate and key file.
    fn root(dir: &std::path::Path, stem: &str) {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let dn = Subject { common_name: Some(stem.into()), ..Default::default() }.to_dn().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 year").unwrap()).unwrap();
        let spec = CertSpec::new(dn, vec![], Kind::Root { path_len: None, permit_domains: vec![] }, validity);
        let der = issue::self_signed(&spec, &key).unwrap();
        std::fs::write(dir.join(format!("{stem}.crt")), crate::pki::to_pem("CERTIFICATE", &der)).unwrap();
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&key_path, key.to_pem(None).unwrap()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn name(s: &str) -> EntryName {
        EntryName::new(s).unwrap()
    }

    #[test]
    fn each_reason_a_ca_cannot_load_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let depot = Depot::new(dir.path());
        let load = |n: &str| load_signing_ca(&depot, &name(n), &mut Unlock::none());
        assert!(matches!(load("Missing"), Err(LoadError::NoCert { .. })));

        root(dir.path(), "Root");
        let ca = load("Root").unwrap();
        assert_eq!((ca.name.as_str(), ca.issuing, ca.warnings.len()), ("Root", None, 0));

        std::fs::write(dir.path().join("Root.key.uri"), "pkcs11:object=x\n").unwrap();
        assert!(matches!(load("Root"), Err(LoadError::BothKeys(_))));
        std::fs::remove_file(dir.path().join("Root.key")).unwrap();
        std::fs::remove_file(dir.path().join("Root.key.uri")).unwrap();
        assert!(matches!(load("Root"), Err(LoadError::NoKey { .. })));

        // A sealed root: asked for itself it refuses; asked who signs for
        // it, its issuing CA, whose own failures say whose they are.
        std::fs::write(dir.path().join("Root.sealed"), "issuing: Root Issuing\n").unwrap();
        assert!(
            matches!(load_ca(&depot, &name("Root"), &mut Unlock::none()), Err(LoadError::SealedRoot { issuing, .. }) if issuing == "Root Issuing")
        );
        assert!(
            matches!(load("Root"), Err(LoadError::Issuing { issuing, source }) if issuing == "Root Issuing" && matches!(*source, LoadError::NoCert { .. }))
        );
        root(dir.path(), "Root_Issuing");
        let ca = load("Root").unwrap();
        assert_eq!((ca.name.as_str(), ca.issuing.as_deref()), ("Root_Issuing", Some("Root Issuing")));
    }

    #[test]
    fn a_key_file_others_can_read_comes_back_as_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        root(dir.path(), "CA");
        std::fs::set_permissions(dir.path().join("CA.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let ca = load_ca(&Depot::new(dir.path()), &name("CA"), &mut Unlock::none()).unwrap();
        assert_eq!(ca.warnings.len(), 1);
        assert!(ca.warnings[0].contains("readable by others (mode 0644)"), "{:?}", ca.warnings);
    }
}
