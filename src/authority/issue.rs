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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::issue::{self, CertSpec};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::Kind;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};

    #[test]
    fn a_leaf_is_written_once_and_handed_out_again_only_for_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let depot = Depot::new(dir.path());
        let name = EntryName::new("web").unwrap();
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let validity = ValidityRequest::default()
            .resolve(time::OffsetDateTime::now_utc(), Expiry::parse("1 day").unwrap())
            .unwrap();
        let dn = Subject { common_name: Some("web".into()), ..Default::default() }.to_dn().unwrap();
        let kind = Kind::Root { path_len: None, permit_domains: vec![] };
        let der = issue::self_signed(&CertSpec::new(dn, vec![], kind, validity), &key).unwrap();

        assert!(already_issued(&depot, &name, &key.spki_der()).unwrap().is_none());
        let writes = leaf_writes(&depot, &name, &der, ChainPool::Known(&[]));
        assert_eq!(writes.len(), 1, "no chain files without an intermediate");
        assert!(!writes[0].replace, "a certificate is never overwritten");
        depot::write_all(&writes).unwrap();
        assert_eq!(already_issued(&depot, &name, &key.spki_der()).unwrap(), Some(der));
        let other = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let err = already_issued(&depot, &name, &other.spki_der()).unwrap_err();
        assert!(err.to_string().contains("web.crt exists for another key"), "{err}");
    }
}
