//! The depot seen whole: every certificate with its kind, issuer and
//! revocation status, and every request not signed yet. `list` shows it,
//! `renew --all` walks it, `export` finds chains in it.

use std::collections::HashMap;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::inputs::{depot_files, read_certs};
use crate::depot::{read_file, Depot};
use crate::pki::chain::issuer_of;
use crate::pki::crl::normalize_serial;
use crate::pki::inspect::{cert_info, CertInfo};
use crate::pki::validity::fmt_time;

/// One certificate of the depot.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file stem, e.g. `gRPC_Root_CA`.
    pub stem: String,
    pub path: PathBuf,
    pub der: Vec<u8>,
    pub info: CertInfo,
    /// "CA", "intermediate", "server", "client", "peer" or "other".
    pub kind: String,
    /// The stem of the depot CA that issued it, if the depot holds it.
    pub issuer_stem: Option<String>,
    /// When it was revoked, per its issuer's CRL in the depot.
    pub revoked: Option<String>,
}

/// Everything in the depot.
#[derive(Debug, Default)]
pub struct View {
    pub entries: Vec<Entry>,
    /// Stems of requests (.csr) with no certificate yet.
    pub pending: Vec<String>,
}

impl View {
    /// The CA certificates of the depot (DER).
    pub fn ca_pool(&self) -> Vec<Vec<u8>> {
        self.entries.iter().filter(|e| e.info.is_ca).map(|e| e.der.clone()).collect()
    }

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
    let mut read: Vec<Read> = depot_files(depot, "crt")
        .into_par_iter()
        .filter_map(|path| {
            let der = read_certs(&path).ok()?.into_iter().next()?;
            let info = cert_info(&der, now).ok()?;
            let (_, c) = x509_parser::parse_x509_certificate(&der).ok()?;
            let (subject, issuer, serial) =
                (c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec(), normalize_serial(c.raw_serial()));
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let kind = match (info.is_ca, info.self_signed) {
                (true, true) => "CA".to_string(),
                (true, false) => "intermediate".to_string(),
                (false, _) => info.profile.clone(),
            };
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
    let pending = depot_files(depot, "csr")
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !have.contains(s.as_str()))
        .collect();
    View { entries, pending }
}

/// The files of the entry `stem` that exist: its certificate, key (or
/// token key URI), CSR, chain files, and for a CA its CRL, CRL URL and
/// sealed marker.
pub fn files_of(depot: &Depot, stem: &str) -> Vec<PathBuf> {
    let exts = [
        "crt",
        "key",
        super::pkcs11::URI_EXT,
        "csr",
        "chain.crt",
        "fullchain.crt",
        "crl",
        "crl-url",
        super::trust::BUNDLE_EXT,
    ];
    exts.iter()
        .chain([&super::local_ca::SEALED])
        .map(|ext| depot.root().join(format!("{stem}.{ext}")))
        .filter(|p| crate::depot::present(p))
        .collect()
}

/// For each CA stem, the serials its CRL lists, with their revocation time.
/// Only a CRL that the CA's key signed counts.
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
