//! Where `GET /crl/NAME.crl` finds the CRL it serves: the depot's file, or,
//! when several servers share the CA's state in a database, the bytes of the
//! CRL stored there, kept in memory by a loop that polls the database.
//! Serving from memory needs no database call, so the last published CRL is
//! still served while the database is down, and every server hands out the
//! very bytes that were stored, never a CRL of its own signing.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The CRL last seen in the shared state: its number and its DER.
#[derive(Debug, Default)]
pub struct CrlCache(RwLock<Option<(u64, Arc<[u8]>)>>);

impl CrlCache {
    /// The number and bytes held, None before the first CRL.
    pub fn get(&self) -> Option<(u64, Arc<[u8]>)> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The number held, None before the first CRL.
    pub fn number(&self) -> Option<u64> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(n, _)| *n)
    }

    /// Holds the CRL numbered `number`, unless one with a higher number is
    /// held already (two pollers racing never step it back); says whether
    /// it replaced what was held.
    pub fn set(&self, number: u64, der: Arc<[u8]>) -> bool {
        let mut held = self.0.write().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_some_and(|(n, _)| *n >= number) {
            return false;
        }
        *held = Some((number, der));
        true
    }
}

/// Where one CA's CRL is served from.
#[derive(Debug, Clone)]
pub enum CrlSource {
    /// A depot file (PEM or DER), read on each request, so a `certforge
    /// revoke` beside the server counts at once.
    File(PathBuf),
    /// The CRL stored in the shared database, as the poller last saw it.
    Shared(Arc<CrlCache>),
}

impl CrlSource {
    /// The CRL now (DER), None when there is none yet, and an error naming
    /// the file when it is there but not a CRL.
    pub fn current(&self) -> Result<Option<Vec<u8>>, String> {
        match self {
            CrlSource::File(path) => {
                let Ok(bytes) = crate::depot::read_file(path) else { return Ok(None) };
                crate::pki::from_pem_or_der(&bytes, "X509 CRL")
                    .map(Some)
                    .map_err(|e| format!("{} is damaged: {e}", path.display()))
            }
            CrlSource::Shared(cache) => Ok(cache.get().map(|(_, der)| der.to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_the_highest_number_it_was_given() {
        let cache = Arc::new(CrlCache::default());
        let source = CrlSource::Shared(cache.clone());
        assert_eq!(source.current().unwrap(), None, "nothing before the first CRL");
        assert!(cache.set(5, Arc::from(&b"five"[..])));
        assert!(!cache.set(4, Arc::from(&b"four"[..])), "a late poller with an older CRL does not step it back");
        assert!(!cache.set(5, Arc::from(&b"again"[..])));
        assert_eq!(cache.number(), Some(5));
        assert_eq!(source.current().unwrap().as_deref(), Some(&b"five"[..]));
        assert!(cache.set(9, Arc::from(&b"nine"[..])));
        assert_eq!(cache.get().map(|(n, d)| (n, d.to_vec())), Some((9, b"nine".to_vec())));
    }

    #[test]
    fn a_file_source_reads_the_depot_file_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CA.crl");
        let source = CrlSource::File(path.clone());
        assert_eq!(source.current().unwrap(), None, "no file yet: no CRL");
        std::fs::write(&path, crate::pki::to_pem("X509 CRL", b"\x30\x00")).unwrap();
        assert_eq!(source.current().unwrap(), Some(b"\x30\x00".to_vec()), "PEM in the depot, DER served");
        std::fs::write(&path, crate::pki::to_pem("CERTIFICATE", b"\x30\x00")).unwrap();
        let err = source.current().unwrap_err();
        assert!(err.contains("CA.crl"), "{err}");
    }
}
