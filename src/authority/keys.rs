//! Where a depot CA's key is, and opening it: a key file `NAME.key` beside
//! its certificate, or `NAME.key.uri`, the RFC 7512 URI of a key on a
//! PKCS#11 token (never a PIN).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use zeroize::Zeroizing;

use super::Unlock;
use crate::depot::{self, Depot, Write1};
use crate::pkcs11::Pkcs11Uri;
use crate::pki::ca::CaKey;
use crate::pki::keys::{PassphraseSource, PrivateKey};
use crate::pki::names::EntryName;

/// The depot extension of a token key's URI file.
pub const URI_EXT: &str = "key.uri";

/// A key file and a key URI file beside one certificate: which one signs
/// would be a guess.
#[derive(Debug, thiserror::Error)]
#[error("{} and {} both exist, so which key signs for {name} is unclear; move the one that is not the CA's key aside", file.display(), uri.display())]
pub struct BothKeys {
    pub name: EntryName,
    pub file: PathBuf,
    pub uri: PathBuf,
}

/// Where a depot CA's key is: a key file beside its certificate, or the
/// URI file of a key on a PKCS#11 token.
pub enum CaKeySource {
    File(PathBuf),
    Token(PathBuf),
}

impl CaKeySource {
    /// The key of the depot entry `name`, if it has one. Both at once is
    /// refused: which one signs would be a guess.
    pub fn of(depot: &Depot, name: &EntryName) -> Result<Option<CaKeySource>, BothKeys> {
        let (file, uri) = (depot.path(name, "key"), depot.path(name, URI_EXT));
        match (file.exists(), uri.exists()) {
            (true, true) => Err(BothKeys { name: name.clone(), file, uri }),
            (true, false) => Ok(Some(CaKeySource::File(file))),
            (false, true) => Ok(Some(CaKeySource::Token(uri))),
            (false, false) => Ok(None),
        }
    }

    /// The file named in messages.
    pub fn path(&self) -> &Path {
        match self {
            CaKeySource::File(p) | CaKeySource::Token(p) => p,
        }
    }

    /// Reads the key file, or opens the token key (logged in).
    pub fn load(&self, unlock: &mut Unlock) -> Result<CaKey> {
        match self {
            CaKeySource::File(p) => Ok(read_key(p, unlock.passphrase.as_mut())?.into()),
            CaKeySource::Token(p) => open_ca_key(p, &unlock.token),
        }
    }
}

/// Reads a private key file, decrypting it when needed.
pub fn read_key(path: &Path, pass: &mut dyn PassphraseSource) -> Result<PrivateKey> {
    let bytes = Zeroizing::new(depot::read_file(path)?);
    Ok(PrivateKey::from_bytes(&bytes, &path.display().to_string(), pass)?)
}

/// Reads a `NAME.key.uri` file.
pub fn read_uri(path: &Path) -> Result<Pkcs11Uri> {
    let text = String::from_utf8(depot::read_file(path)?)
        .map_err(|_| anyhow!("{} is not text; it should hold one pkcs11: URI", path.display()))?;
    Pkcs11Uri::parse(text.trim()).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Opens the token key a CA's `NAME.key.uri` names, logged in.
#[cfg(feature = "pkcs11")]
pub fn open_ca_key(path: &Path, token: &crate::pkcs11::Options) -> Result<CaKey> {
    let uri = read_uri(path)?;
    let key = crate::pkcs11::TokenKey::open(&uri, token)
        .map_err(|e| anyhow!("{e} (the CA key URI is in {})", path.display()))?;
    Ok(CaKey::Remote(Box::new(key)))
}

/// Without the `pkcs11` feature this library cannot open a token key: the
/// CA's `NAME.key.uri` is read, so the error names the key it could not use.
#[cfg(not(feature = "pkcs11"))]
pub fn open_ca_key(path: &Path, _token: &crate::pkcs11::Options) -> Result<CaKey> {
    let uri = read_uri(path)?;
    Err(anyhow!(
        "the CA key {uri} (named in {}) is on a PKCS#11 token, and this build of certforge has no PKCS#11 support; build it with the `pkcs11` feature",
        path.display()
    ))
}

/// The depot's `NAME.key.uri` for a token key: the URI with the key's id,
/// one line. None for a file key, or when the file already says so.
pub fn uri_write(depot: &Depot, name: &EntryName, key: &CaKey) -> Option<Write1> {
    let CaKey::Remote(k) = key else { return None };
    let path = depot.path(name, URI_EXT);
    let text = format!("{}\n", k.uri());
    if depot::read_file(&path).ok().as_deref() == Some(text.as_bytes()) {
        return None;
    }
    Some(Write1 { path, bytes: text.into_bytes().into(), mode: depot::PUBLIC_MODE, replace: true })
}

/// The warning for a CA key file anyone but its owner can read, if it is
/// one: whoever can read it can sign as the CA.
pub fn exposed_key_warning(key_path: &Path) -> Option<String> {
    let meta = std::fs::metadata(key_path).ok()?;
    let mode = crate::sys::mode(&meta) & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is readable by others (mode {mode:04o}): anyone who can read it can sign as this CA. Run: chmod 600 {}",
            key_path.display(),
            key_path.display()
        )
    })
}
