//! Finding what a user names on the command line: a file path, a file in
//! the depot, or a depot entry name ("gRPC Root CA" -> gRPC_Root_CA.crt).

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::common::usage;
use crate::depot::{read_file, Depot};
use crate::pki::names::EntryName;
use crate::pki::objects::{read_objects, Object};

/// Resolves `arg`: an existing path; else a file of that name in the depot;
/// else the depot entry `arg` with the first of `exts` that exists.
pub fn resolve(depot: &Depot, arg: &str, exts: &[&str]) -> Result<PathBuf> {
    let direct = PathBuf::from(arg);
    if direct.is_file() {
        return Ok(direct);
    }
    let in_depot = depot.root().join(arg);
    if !arg.contains('/') && in_depot.is_file() {
        return Ok(in_depot);
    }
    if let Ok(name) = EntryName::new(arg) {
        for ext in exts {
            let p = depot.path(&name, ext);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let tried: Vec<String> = exts.iter().map(|e| format!("{}.{e}", crate::pki::names::sanitize(arg))).collect();
    bail!(
        "no file or depot entry named {arg:?}: looked for ./{arg} and, in the depot {}, for {}; check the name or --depot-path",
        depot.root().display(),
        tried.join(", ")
    )
}

/// Every file of the depot ending in `.ext`, sorted by name.
pub fn depot_files(depot: &Depot, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(depot.root())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Hidden files are certforge's temporaries; chain files belong
            // to their certificate and are not entries of their own.
            p.is_file()
                && p.extension().is_some_and(|x| x == ext)
                && !name.starts_with('.')
                && !crate::pki::names::is_chain_file(&name)
        })
        .collect();
    out.sort();
    out
}

/// Every certificate in a file (a bundle gives several).
pub fn read_certs(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
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
        return Err(usage(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// The first certificate of every `.crt` file in the depot, with its path.
pub fn depot_certs(depot: &Depot) -> Vec<(PathBuf, Vec<u8>)> {
    depot_files(depot, "crt")
        .into_iter()
        .filter_map(|p| read_certs(&p).ok().and_then(|c| c.into_iter().next()).map(|d| (p, d)))
        .collect()
}

/// A short label for a path: its file name.
pub fn label(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
