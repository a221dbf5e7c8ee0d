//! A leaf into the depot: `NAME.crt` and, under an intermediate, its chain
//! files, written as one set that never overwrites anything.

use anyhow::{anyhow, Result};

use super::chain::{chain_files, chain_writes};
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::names::EntryName;
use crate::pki::{from_pem_or_der, to_pem};

/// Where the CA certificates of a leaf's chain files come from.
pub enum ChainPool<'a> {
    /// No chain files: the leaf's issuer is a root, so the leaf alone is
    /// the chain a server sends.
    None,
    /// The CA certificates in the depot.
    Depot,
    /// These CA certificates (DER): a server knows its CA's chain and need
    /// not read the whole depot.
    Known(&'a [Vec<u8>]),
}

/// `NAME.crt` for the certificate `der` and its chain files from `pool`,
/// none of which may exist yet.
pub fn leaf_writes(depot: &Depot, name: &EntryName, der: &[u8], pool: ChainPool<'_>) -> Vec<Write1> {
    let cert = Write1 {
        path: depot.path(name, "crt"),
        bytes: to_pem("CERTIFICATE", der).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: false,
    };
    let chain = match pool {
        ChainPool::None => Vec::new(),
        ChainPool::Depot => chain_writes(depot, name, der, false),
        ChainPool::Known(pool) => chain_files(depot, name, der, pool, false),
    };
    std::iter::once(cert).chain(chain).collect()
}

/// The certificate already at `NAME.crt` when it is for the key `spki_der`
/// (a write that a crash interrupted after it landed, asked for again),
/// None when there is none, and an error when one is there for another key.
pub fn already_issued(depot: &Depot, name: &EntryName, spki_der: &[u8]) -> Result<Option<Vec<u8>>> {
    let path = depot.path(name, "crt");
    if !path.exists() {
        return Ok(None);
    }
    let der = from_pem_or_der(&depot::read_file(&path)?, "CERTIFICATE").map_err(anyhow::Error::msg)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    if cert.public_key().raw != spki_der {
        return Err(anyhow!("{} exists for another key", path.display()));
    }
    Ok(Some(der))
}
