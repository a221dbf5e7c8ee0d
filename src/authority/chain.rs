//! NAME.chain.crt (leaf + intermediates) and NAME.fullchain.crt (+ root)
//! beside a certificate signed by an intermediate: servers must send the
//! intermediates, and most want them in one file after the leaf.

use crate::authority::listing::depot_certs;
use crate::depot::{Depot, Write1, PUBLIC_MODE};
use crate::pki::chain::build;
use crate::pki::names::EntryName;
use crate::pki::to_pem;

/// The chain files for `leaf_der`, or none when its issuer is a root (the
/// certificate alone is then the whole chain a server sends).
pub fn chain_writes(depot: &Depot, name: &EntryName, leaf_der: &[u8], replace: bool) -> Vec<Write1> {
    let pool: Vec<Vec<u8>> = depot_certs(depot)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| x509_parser::parse_x509_certificate(d).is_ok_and(|(_, c)| c.is_ca()))
        .collect();
    chain_files(depot, name, leaf_der, &pool, replace)
}

/// The chain files for `leaf_der` whose bytes are not on disk yet: what
/// `apply` writes for an entry under a plan intermediate (its CAs come from
/// the plan, `pool`, not from the depot as it was), made or kept, so that a
/// second run of an unchanged plan writes nothing.
pub fn missing_chain_files(depot: &Depot, name: &EntryName, leaf_der: &[u8], pool: &[Vec<u8>]) -> Vec<Write1> {
    chain_files(depot, name, leaf_der, pool, true)
        .into_iter()
        .filter(|w| crate::depot::read_file(&w.path).ok().as_deref() != Some(w.bytes.as_slice()))
        .collect()
}

/// The chain files for `leaf_der` built from the CA certificates `pool`
/// (`serve` knows its CA's chain and need not read the whole depot).
pub fn chain_files(depot: &Depot, name: &EntryName, leaf_der: &[u8], pool: &[Vec<u8>], replace: bool) -> Vec<Write1> {
    let chain = build(leaf_der, pool);
    if chain.intermediates.is_empty() {
        return Vec::new();
    }
    let mut pem = to_pem("CERTIFICATE", leaf_der);
    for i in &chain.intermediates {
        pem.push_str(&to_pem("CERTIFICATE", i));
    }
    let mut out = vec![Write1 {
        path: depot.path(name, "chain.crt"),
        bytes: (pem.clone().into_bytes()).into(),
        mode: PUBLIC_MODE,
        replace,
    }];
    if let Some(root) = &chain.root {
        pem.push_str(&to_pem("CERTIFICATE", root));
        out.push(Write1 {
            path: depot.path(name, "fullchain.crt"),
            bytes: (pem.into_bytes()).into(),
            mode: PUBLIC_MODE,
            replace,
        });
    }
    out
}
