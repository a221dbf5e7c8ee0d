//! Finding what a user names on the command line: a file path, a file in
//! the depot, or a depot entry name ("gRPC Root CA" -> gRPC_Root_CA.crt).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::common::usage;
use crate::authority::listing::{self, candidates, stems_with, CertFileError, Wanted};
use crate::depot::{read_file, Depot};
use crate::pki::names::shell_word;
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
    if let Some(missing) = missing_depot(depot) {
        bail!("no file or depot entry named {arg:?}: {arg} does not exist, and {missing}");
    }
    let tried: Vec<String> = exts.iter().map(|e| format!("{}.{e}", crate::pki::names::sanitize(arg))).collect();
    let have = stems_with(depot, exts);
    bail!(
        "no file or depot entry named {arg:?}: looked for ./{arg} and, in the depot {}, for {}.{}",
        depot.root().display(),
        tried.join(", "),
        suggestion(depot, arg, "entries", &have, "check the name or --depot-path")
    )
}

/// How the errors name a `wanted` entry: one, and many.
fn noun(wanted: Wanted) -> (&'static str, &'static str) {
    match wanted {
        Wanted::Ca => ("CA", "CAs"),
        Wanted::Request => ("request", "requests"),
        Wanted::Certificate => ("certificate", "certificates"),
    }
}

/// The error for a name that is not in the depot: what was looked for, the
/// closest name there is ("did you mean"), what there is, and `fix`.
pub fn not_found(depot: &Depot, raw: &str, wanted: Wanted, fix: &str) -> anyhow::Error {
    let (one, many) = noun(wanted);
    if let Some(missing) = missing_depot(depot) {
        return anyhow::anyhow!("no {one} named {raw:?}: {missing}");
    }
    let file = depot.root().join(format!("{}.{}", crate::pki::names::sanitize(raw), wanted.ext()));
    let have = candidates(depot, wanted);
    anyhow::anyhow!(
        "no {one} named {raw:?} in the depot {} ({} does not exist).{}",
        depot.root().display(),
        file.display(),
        suggestion(depot, raw, many, &have, fix)
    )
}

/// What to say when the depot directory does not exist, in place of "it
/// holds nothing yet": that, and the depot beside it the user most likely
/// meant (`--depot-path cert` for `certs`), or how to start one.
pub fn missing_depot(depot: &Depot) -> Option<String> {
    if depot.root().is_dir() {
        return None;
    }
    let root = depot.root().display().to_string();
    let mut out = format!("the depot directory {root} does not exist");
    let nearby: Vec<String> = depot.nearby().iter().map(|p| p.display().to_string()).collect();
    let file_name = |p: &str| Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned());
    let names: Vec<String> = nearby.iter().filter_map(|p| file_name(p)).collect();
    let best = file_name(&root)
        .and_then(|want| crate::pki::names::closest(&want, &names).map(str::to_string))
        .and_then(|best| nearby.iter().find(|p| file_name(p).as_deref() == Some(best.as_str())));
    match (best, nearby.as_slice()) {
        (Some(best), _) => out.push_str(&format!(". Did you mean --depot-path {}?", shell_word(best))),
        (None, []) => out.push_str(&format!(
            ". Give the depot with --depot-path (or $CERTFORGE_DEPOT_PATH), or start one there: certforge --depot-path {} init --cn <name>",
            shell_word(&root)
        )),
        (None, some) => out.push_str(&format!(
            ". Depots beside it: {}; give one with --depot-path",
            some.iter().map(|p| shell_word(p)).collect::<Vec<_>>().join(", ")
        )),
    }
    Some(out)
}

/// The name of the depot entry `stem` as the user types it: the CN of its
/// certificate or request when the stem was made from that CN ("gRPC Root
/// CA" for `gRPC_Root_CA.crt`, which `--CA` takes as it is), else the stem.
fn typed_name(depot: &Depot, stem: &str) -> String {
    let common_name = |object: Object| -> Option<String> {
        match object {
            Object::Certificate(der) => x509_parser::parse_x509_certificate(&der)
                .ok()
                .and_then(|(_, c)| crate::pki::subject::common_name(c.subject())),
            Object::Request(der) => {
                use x509_parser::prelude::{FromDer, X509CertificationRequest};
                X509CertificationRequest::from_der(&der)
                    .ok()
                    .and_then(|(_, r)| crate::pki::subject::common_name(&r.certification_request_info.subject))
            }
            _ => None,
        }
    };
    ["crt", "csr"]
        .iter()
        .map(|ext| depot.root().join(format!("{stem}.{ext}")))
        .filter(|p| p.is_file())
        .find_map(|p| read_objects(&read_file(&p).ok()?, "").ok()?.into_iter().next().and_then(common_name))
        .filter(|cn| crate::pki::names::sanitize(cn) == stem)
        .unwrap_or_else(|| stem.to_string())
}

/// " Did you mean "X"? CAs in DIR: "X", "Y"." followed by `fix`; names as
/// the user types them.
fn suggestion(depot: &Depot, raw: &str, many: &str, have: &[String], fix: &str) -> String {
    /// Enough names to spot the right one; `list` shows the rest.
    const SHOWN: usize = 12;
    let mut out = String::new();
    if let Some(best) = crate::pki::names::closest(raw, have) {
        out.push_str(&format!(" Did you mean {:?}?", typed_name(depot, best)));
    }
    if have.is_empty() {
        out.push_str(&format!(" The depot {} holds no {many} yet.", depot.root().display()));
    } else {
        let mut shown =
            have.iter().take(SHOWN).map(|stem| format!("{:?}", typed_name(depot, stem))).collect::<Vec<_>>().join(", ");
        if have.len() > SHOWN {
            shown.push_str(&format!(" and {} more (`certforge list` shows them)", have.len() - SHOWN));
        }
        out.push_str(&format!(" {} in {}: {shown}.", capitalize(many), depot.root().display()));
    }
    if !fix.is_empty() {
        out.push(' ');
        out.push_str(&capitalize(fix));
        if !fix.ends_with('.') {
            out.push('.');
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Every certificate in a file (a bundle gives several). A file that
/// holds none was named by mistake: a usage error.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>> {
    listing::read_certs(path).map_err(|e| match e {
        CertFileError::NoCertificate(_) => usage(e.to_string()),
        CertFileError::Unreadable(e) => e,
    })
}

/// A short label for a path: its file name.
pub fn label(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
