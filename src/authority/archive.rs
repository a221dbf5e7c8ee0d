//! What a re-issue replaces goes to `archive/` (`apply`, `renew`): the old
//! certificate, and its key when the key changes, named by the old serial.
//! Nothing there is ever overwritten, and archiving bytes already there
//! writes nothing, so running the same re-issue again changes nothing.

use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::depot::{self, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::names::EntryName;

/// The depot folder that keeps what re-issues replaced.
pub const ARCHIVE: &str = "archive";

/// The writes that archive the certificate file `old_crt` of `name`, and
/// its key file `old_key` when given (the caller passes it only when the
/// key is replaced): `archive/NAME.SERIAL.crt` and `.key`. A file already
/// there with the same bytes is left as it is and not written again; one
/// with other bytes (a deterministic serial reused) is kept too, and the new
/// one goes beside it as `NAME.SERIAL.2.crt`, and so on.
pub fn archive_writes(depot: &Depot, name: &EntryName, old_crt: &[u8], old_key: Option<&[u8]>) -> Vec<Write1> {
    let stem = stem(name, old_crt);
    let dir = depot.root().join(ARCHIVE);
    [(old_crt, "crt", PUBLIC_MODE)]
        .into_iter()
        .chain(old_key.map(|k| (k, "key", KEY_MODE)))
        .filter_map(|(bytes, ext, mode)| match slot(&dir, &stem, ext, bytes) {
            (path, true) => Some(Write1 { path, bytes: bytes.to_vec().into(), mode, replace: false }),
            (_, false) => None,
        })
        .collect()
}

/// Where [`archive_writes`] keeps (or has kept) the certificate `old_crt`.
pub fn archived_cert(depot: &Depot, name: &EntryName, old_crt: &[u8]) -> PathBuf {
    slot(&depot.root().join(ARCHIVE), &stem(name, old_crt), "crt", old_crt).0
}

/// `NAME.SERIAL` of the certificate file `crt`, "unreadable" standing for
/// the serial of one that does not parse.
fn stem(name: &EntryName, crt: &[u8]) -> String {
    let serial = crate::pki::from_pem_or_der(crt, "CERTIFICATE")
        .ok()
        .and_then(|der| {
            X509Certificate::from_der(&der).ok().map(|(_, c)| crate::pki::serial::hex(c.raw_serial()).replace(':', ""))
        })
        .unwrap_or_else(|| "unreadable".into());
    format!("{name}.{serial}")
}

/// The `STEM[.N].EXT` of `dir` that holds `bytes` (false), or else the
/// first free one (true).
fn slot(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> (PathBuf, bool) {
    for n in 1.. {
        let path = match n {
            1 => dir.join(format!("{stem}.{ext}")),
            n => dir.join(format!("{stem}.{n}.{ext}")),
        };
        if !depot::present(&path) {
            return (path, true);
        }
        if depot::read_file(&path).ok().as_deref() == Some(bytes) {
            return (path, false);
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRT: &[u8] = b"not a certificate";

    fn apply(writes: &[Write1]) {
        depot::write_all(writes).unwrap();
    }

    #[test]
    fn archiving_the_same_bytes_again_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let depot = Depot::new(dir.path());
        let name = EntryName::new("api").unwrap();
        let first = archive_writes(&depot, &name, CRT, Some(b"key"));
        assert_eq!(
            first.iter().map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>(),
            ["api.unreadable.crt", "api.unreadable.key"]
        );
        assert!(first.iter().all(|w| !w.replace), "an archive is never overwritten");
        assert_eq!(first[1].mode, KEY_MODE, "an archived key stays private");
        apply(&first);
        assert!(archive_writes(&depot, &name, CRT, Some(b"key")).is_empty(), "a re-run archives nothing twice");
    }

    #[test]
    fn other_bytes_under_a_taken_name_go_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let depot = Depot::new(dir.path());
        let name = EntryName::new("api").unwrap();
        apply(&archive_writes(&depot, &name, CRT, None));
        let second = archive_writes(&depot, &name, b"other bytes", None);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].path, dir.path().join("archive/api.unreadable.2.crt"));
        apply(&second);
        assert_eq!(std::fs::read(dir.path().join("archive/api.unreadable.crt")).unwrap(), CRT, "the first is kept");
        assert!(archive_writes(&depot, &name, b"other bytes", None).is_empty());
    }
}
