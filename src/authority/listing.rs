//! Finding and listing the depot's entries: the certificates of a file, the
//! names a command-line argument could take (what completion offers and
//! what a typo is compared with), and the depot seen whole, every
//! certificate with its kind, issuer and revocation status, and every
//! request not signed yet (`list` shows it, `renew --all` walks it, `export`
//! finds chains in it). The directory itself is read by [`Depot::files`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::depot::{read_file, Depot};
use crate::pki::chain::issuer_of;
use crate::pki::crl::normalize_serial;
use crate::pki::inspect::{cert_info, leaf_profile, CertInfo};
use crate::pki::objects::{read_objects, Object};
use crate::pki::profile::LeafProfile;
use crate::pki::validity::fmt_time;

/// Why a file gave no certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertFileError {
    /// It cannot be read, or it holds something that does not parse.
    #[error(transparent)]
    Unreadable(#[from] anyhow::Error),
    /// It parses, but holds no certificate (a key, a request, a CRL).
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
}

/// Every certificate in a file (a bundle gives several), in file order.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, CertFileError> {
    let what = path.display().to_string();
    let objects = read_objects(&read_file(path)?, &what).map_err(anyhow::Error::msg)?;
    let certs: Vec<Vec<u8>> = objects
        .into_iter()
        .filter_map(|o| match o {
            Object::Certificate(d) => Some(d),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CertFileError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The first certificate of every `.crt` file in the depot, with its path.
pub fn depot_certs(depot: &Depot) -> Vec<(PathBuf, Vec<u8>)> {
    depot
        .files("crt")
        .into_iter()
        .filter_map(|p| read_certs(&p).ok().and_then(|c| c.into_iter().next()).map(|d| (p, d)))
        .collect()
}

/// What kind of depot entry a name on the command line should have named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// A CA certificate (`--CA`).
    Ca,
    /// A request (`.csr`) not necessarily signed yet (`sign NAME`).
    Request,
    /// A certificate (`.crt`) of any kind (`revoke --CN`, `renew`, `export`).
    Certificate,
}

impl Wanted {
    /// The extension of the file such an entry has.
    pub fn ext(self) -> &'static str {
        match self {
            Wanted::Request => "csr",
            Wanted::Ca | Wanted::Certificate => "crt",
        }
    }
}

/// The depot names a `wanted` argument could take, sorted: what completion
/// offers and what a typo is compared with.
pub fn candidates(depot: &Depot, wanted: Wanted) -> Vec<String> {
    match wanted {
        Wanted::Ca => depot
            .files("crt")
            .into_iter()
            .filter(|p| {
                read_certs(p)
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .is_some_and(|der| x509_parser::parse_x509_certificate(&der).is_ok_and(|(_, c)| c.is_ca()))
            })
            .filter_map(|p| stem(&p))
            .collect(),
        other => depot_stems(depot, other.ext()),
    }
}

/// The stems that have a file with any of `exts`, sorted, each once.
pub fn stems_with(depot: &Depot, exts: &[&str]) -> Vec<String> {
    let mut have: Vec<String> = exts.iter().flat_map(|e| depot_stems(depot, e)).collect();
    have.sort();
    have.dedup();
    have
}

/// The stems of the depot's `.ext` files (chain files and temporaries left
/// out), sorted.
pub fn depot_stems(depot: &Depot, ext: &str) -> Vec<String> {
    depot.files(ext).iter().filter_map(|p| stem(p)).collect()
}

fn stem(path: &Path) -> Option<String> {
    path.file_stem().map(|s| s.to_string_lossy().into_owned())
}

/// One certificate of the depot.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file stem, e.g. `gRPC_Root_CA`.
    pub stem: String,
    pub path: PathBuf,
    pub der: Vec<u8>,
    pub info: CertInfo,
    pub kind: EntryKind,
    /// The stem of the depot CA that issued it, if the depot holds it.
    pub issuer_stem: Option<String>,
    /// When it was revoked, per its issuer's CRL in the depot.
    pub revoked: Option<String>,
}

/// What a depot certificate is: a root, an intermediate, or a leaf of one
/// of the profiles `sign --profile` makes, told from its basicConstraints
/// and extended key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A self-signed CA.
    Ca,
    /// A CA signed by another CA.
    Intermediate,
    /// A leaf whose EKUs fit a profile (none at all: peer).
    Leaf(LeafProfile),
    /// A leaf good for neither TLS server nor client authentication.
    Other,
}

impl EntryKind {
    /// The kind of a certificate described by `info`.
    pub fn of(info: &CertInfo) -> EntryKind {
        match (info.is_ca, info.self_signed) {
            (true, true) => EntryKind::Ca,
            (true, false) => EntryKind::Intermediate,
            (false, _) => leaf_profile(&info.extended_key_usage).map_or(EntryKind::Other, EntryKind::Leaf),
        }
    }

    /// The lowercase word for it: "ca", "intermediate", "server", "client",
    /// "peer" or "other" (the `kind` label of the expiry metrics).
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Ca => "ca",
            EntryKind::Intermediate => "intermediate",
            EntryKind::Leaf(p) => p.name(),
            EntryKind::Other => "other",
        }
    }
}

impl std::fmt::Display for EntryKind {
    /// As `list` shows it: "CA", else [`EntryKind::label`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if *self == EntryKind::Ca { "CA" } else { self.label() })
    }
}

/// Everything in the depot.
#[derive(Debug, Default)]
pub struct View {
    pub entries: Vec<Entry>,
    /// Stems of requests (.csr) with no certificate yet.
    pub pending: Vec<String>,
}

impl View {
    /// The entry with this stem.
    pub fn get(&self, stem: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.stem == stem)
    }
}

/// Reads the depot. Files that do not parse are skipped, not fatal: a
/// listing should still show the rest. Certificates are read in parallel,
/// and issuers are matched by name and key identifier, checking a
/// signature only to tell apart two CAs of the same name (10,000
/// certificates list in well under a second).
pub fn scan(depot: &Depot, now: OffsetDateTime) -> View {
    use rayon::prelude::*;
    struct Read {
        entry: Entry,
        subject: Vec<u8>,
        issuer: Vec<u8>,
        serial: Vec<u8>,
    }
    let mut read: Vec<Read> = depot
        .files("crt")
        .into_par_iter()
        .filter_map(|path| {
            let der = read_certs(&path).ok()?.into_iter().next()?;
            let info = cert_info(&der, now).ok()?;
            let (_, c) = x509_parser::parse_x509_certificate(&der).ok()?;
            let (subject, issuer, serial) =
                (c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec(), normalize_serial(c.raw_serial()));
            let stem = stem(&path).unwrap_or_default();
            let kind = EntryKind::of(&info);
            Some(Read {
                entry: Entry { stem, path, der, info, kind, issuer_stem: None, revoked: None },
                subject,
                issuer,
                serial,
            })
        })
        .collect();
    read.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    let cas: Vec<(String, Vec<u8>)> =
        read.iter().filter(|r| r.entry.info.is_ca).map(|r| (r.entry.stem.clone(), r.entry.der.clone())).collect();
    let ca_keys: Vec<(usize, &Read)> = read.iter().enumerate().filter(|(_, r)| r.entry.info.is_ca).collect();
    let revoked_by = crl_index(depot, &cas);
    let issuers: Vec<Option<String>> = read
        .par_iter()
        .map(|r| {
            if r.entry.info.self_signed {
                return None;
            }
            let by_name: Vec<&Read> = ca_keys
                .iter()
                .map(|(_, c)| *c)
                .filter(|c| {
                    c.subject == r.issuer
                        && c.entry.info.subject_key_id.is_some()
                        && c.entry.info.subject_key_id == r.entry.info.authority_key_id
                })
                .collect();
            let pick = match by_name.as_slice() {
                [one] => Some(*one),
                _ => issuer_of(&r.entry.der, &cas.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>())
                    .and_then(|d| ca_keys.iter().map(|(_, c)| *c).find(|c| &c.entry.der == d)),
            };
            pick.map(|c| c.entry.stem.clone())
        })
        .collect();
    let mut entries = Vec::with_capacity(read.len());
    for (r, issuer) in read.into_iter().zip(issuers) {
        let mut e = r.entry;
        e.revoked = issuer.as_ref().and_then(|stem| revoked_by.get(stem)).and_then(|m| m.get(&r.serial)).cloned();
        e.issuer_stem = issuer;
        entries.push(e);
    }
    let have: std::collections::HashSet<&str> = entries.iter().map(|e| e.stem.as_str()).collect();
    let pending = depot_stems(depot, "csr").into_iter().filter(|s| !have.contains(s.as_str())).collect();
    View { entries, pending }
}

/// The extensions of the files an entry can have besides its certificate:
/// its key, or the PKCS#11 URI of its token key (`NAME.key.uri`), its
/// request, its chain files, for a CA its CRL and CRL URL, the trust bundle
/// `trust` writes (`NAME.bundle.pem`), and the marker of a sealed local CA
/// whose root key is gone (`NAME.sealed`).
const ENTRY_EXTS: [&str; 10] = [
    "crt",
    "key",
    super::keys::URI_EXT,
    "csr",
    "chain.crt",
    "fullchain.crt",
    "crl",
    "crl-url",
    BUNDLE_EXT,
    super::local::SEALED,
];

/// The trust bundle `trust` writes beside a CA: `NAME.bundle.pem`.
pub const BUNDLE_EXT: &str = "bundle.pem";

/// The files of the entry `stem` that exist: its certificate, key (or
/// token key URI), CSR, chain files, and for a CA its CRL, CRL URL, trust
/// bundle and sealed marker.
pub fn files_of(depot: &Depot, stem: &str) -> Vec<PathBuf> {
    ENTRY_EXTS
        .iter()
        .map(|ext| depot.root().join(format!("{stem}.{ext}")))
        .filter(|p| crate::depot::present(p))
        .collect()
}

/// For each CA stem, the serials its CRL lists, with their revocation time.
/// Only a CRL that the CA's key signed counts. The check is against the CA
/// certificate's public key: listing needs no CA key, so
/// [`crate::pki::crl::CrlState::read`], which takes a signer, does not fit.
fn crl_index(depot: &Depot, cas: &[(String, Vec<u8>)]) -> HashMap<String, HashMap<Vec<u8>, String>> {
    let mut out = HashMap::new();
    for (stem, ca_der) in cas {
        let path = depot.root().join(format!("{stem}.crl"));
        let Ok(bytes) = read_file(&path) else { continue };
        let Ok(der) = crate::pki::from_pem_or_der(&bytes, "X509 CRL") else { continue };
        let Ok((_, crl)) = x509_parser::parse_x509_crl(&der) else { continue };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else { continue };
        if crate::pki::signature::verify(
            ca.public_key(),
            &crl.signature_algorithm,
            &crl.signature_value,
            crl.tbs_cert_list.as_ref(),
        )
        .is_err()
        {
            continue;
        }
        let map = crl
            .iter_revoked_certificates()
            .map(|r| (normalize_serial(r.raw_serial()), fmt_time(r.revocation_date.to_datetime())))
            .collect();
        out.insert(stem.clone(), map);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Ca, Leaf};

    /// A depot with a root CA, a server certificate it issued, a chain
    /// file (two certificates) and a request not signed yet.
    fn depot() -> (tempfile::TempDir, Depot) {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::new("Root").unwrap();
        ca.write_to(tmp.path(), "Root").unwrap();
        ca.issue(Leaf::server(["web.test"])).unwrap().write_to(tmp.path(), "web").unwrap();
        std::fs::write(tmp.path().join("Root.chain.crt"), ca.cert_pem().repeat(2)).unwrap();
        std::fs::write(tmp.path().join("pending.csr"), "not read").unwrap();
        let depot = Depot::new(tmp.path());
        (tmp, depot)
    }

    /// What each kind of argument can name: only CAs after `--CA`, every
    /// certificate, every request; chain files are no entries.
    #[test]
    fn candidates_offer_the_names_of_each_kind() {
        let (_tmp, depot) = depot();
        assert_eq!(candidates(&depot, Wanted::Ca), ["Root"]);
        assert_eq!(candidates(&depot, Wanted::Certificate), ["Root", "web"]);
        assert_eq!(candidates(&depot, Wanted::Request), ["pending"]);
        assert_eq!(stems_with(&depot, &["crt", "csr", "key"]), ["Root", "pending", "web"]);
    }

    /// A file with no certificate is told apart from one that cannot be
    /// read, so the command can call the first a mistake in its call; a
    /// bundle gives all its certificates.
    #[test]
    fn read_certs_tells_no_certificate_from_unreadable() {
        let (tmp, _depot) = depot();
        assert_eq!(read_certs(&tmp.path().join("Root.chain.crt")).unwrap().len(), 2);
        let key = tmp.path().join("Root.key");
        assert!(matches!(read_certs(&key), Err(CertFileError::NoCertificate(p)) if p == key));
        let err = read_certs(&key).unwrap_err().to_string();
        assert_eq!(err, format!("{} holds no certificate", key.display()));
        assert!(matches!(read_certs(&tmp.path().join("absent.crt")), Err(CertFileError::Unreadable(_))));
    }

    /// The depot seen whole: kinds, the issuer found in the depot, the
    /// request still pending, and which files belong to an entry.
    #[test]
    fn scan_finds_kinds_issuers_and_pending_requests() {
        let (tmp, depot) = depot();
        let view = scan(&depot, OffsetDateTime::now_utc());
        let rows: Vec<(&str, EntryKind, Option<&str>)> =
            view.entries.iter().map(|e| (e.stem.as_str(), e.kind, e.issuer_stem.as_deref())).collect();
        assert_eq!(rows, [("Root", EntryKind::Ca, None), ("web", EntryKind::Leaf(LeafProfile::Server), Some("Root"))]);
        assert!(view.entries.iter().all(|e| e.revoked.is_none()));
        assert_eq!(view.pending, ["pending"]);
        assert_eq!(view.get("web").map(|e| e.path.clone()), Some(tmp.path().join("web.crt")));
        let root = |f: &str| tmp.path().join(f);
        assert_eq!(files_of(&depot, "Root"), [root("Root.crt"), root("Root.key"), root("Root.chain.crt")]);
    }
}
