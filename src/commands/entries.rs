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
/// listing should still show the rest.
pub fn scan(depot: &Depot, now: OffsetDateTime) -> View {
    let mut entries = Vec::new();
    for path in depot_files(depot, "crt") {
        let Some(der) = read_certs(&path).ok().and_then(|c| c.into_iter().next()) else { continue };
        let Ok(info) = cert_info(&der, now) else { continue };
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = match (info.is_ca, info.self_signed) {
            (true, true) => "CA".to_string(),
            (true, false) => "intermediate".to_string(),
            (false, _) => info.profile.clone(),
        };
        entries.push(Entry { stem, path, der, info, kind, issuer_stem: None, revoked: None });
    }
    let cas: Vec<(String, Vec<u8>)> =
        entries.iter().filter(|e| e.info.is_ca).map(|e| (e.stem.clone(), e.der.clone())).collect();
    let pool: Vec<Vec<u8>> = cas.iter().map(|(_, d)| d.clone()).collect();
    let revoked_by = crl_index(depot, &cas);
    for e in &mut entries {
        let Some(issuer) = issuer_of(&e.der, &pool) else { continue };
        let Some((stem, _)) = cas.iter().find(|(_, d)| d == issuer) else { continue };
        e.issuer_stem = Some(stem.clone());
        let serial = normalize_serial(&serial_bytes(&e.der));
        e.revoked = revoked_by.get(stem).and_then(|m| m.get(&serial)).cloned();
    }
    let have: Vec<&str> = entries.iter().map(|e| e.stem.as_str()).collect();
    let pending = depot_files(depot, "csr")
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !have.contains(&s.as_str()))
        .collect();
    View { entries, pending }
}

fn serial_bytes(der: &[u8]) -> Vec<u8> {
    x509_parser::parse_x509_certificate(der).map(|(_, c)| c.raw_serial().to_vec()).unwrap_or_default()
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
