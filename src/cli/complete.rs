//! The values TAB offers after `--CA`, `sign`, `revoke --CN`, `renew`,
//! `export`, `verify` and `inspect`: the names in the depot that the line
//! being completed names (`--depot-path`, else `$CERTFORGE_DEPOT_PATH`,
//! else `./out`). clap runs these when the shell asks certforge for
//! completions (see `install/completion.rs` for the scripts that ask).

use std::ffi::OsStr;
use std::path::PathBuf;

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};

use crate::authority::listing::{candidates, stems_with, Wanted};
use crate::depot::Depot;

/// The shells `certforge completions` writes a script for.
// PowerShell is the shell's own name, as clap_complete spells it.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    #[value(name = "powershell")]
    PowerShell,
    Elvish,
}

/// The depot of the command line being completed. The shell passes the
/// words after `--`; a value can follow `--depot-path` as the next word, or
/// after `=` (bash splits `--depot-path=DIR` into three words).
fn depot_being_completed() -> Depot {
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let mut found: Option<String> = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let flag = w.trim_start_matches('-');
        if (w.starts_with('-') && flag == "depot-path") && i + 1 < words.len() {
            let mut next = i + 1;
            if words[next] == "=" && next + 1 < words.len() {
                next += 1;
            }
            found = Some(words[next].clone());
            i = next;
        } else if let Some(v) = flag.strip_prefix("depot-path=").filter(|_| w.starts_with('-')) {
            found = Some(v.to_string());
        }
        i += 1;
    }
    let raw = found.or_else(|| std::env::var("CERTFORGE_DEPOT_PATH").ok()).unwrap_or_else(|| "out".into());
    Depot::new(expand(&raw))
}

/// What the shell would make of a typed path: quotes dropped, `~/` as $HOME.
fn expand(raw: &str) -> PathBuf {
    let unquoted = raw.trim_matches(|c| c == '"' || c == '\'');
    match (unquoted.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(unquoted),
    }
}

/// The names that start with what was typed, ignoring case, so that `x`
/// completes to the CA `X`.
fn matching(names: Vec<String>, current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().to_ascii_lowercase();
    names.into_iter().filter(|n| n.to_ascii_lowercase().starts_with(&typed)).map(CompletionCandidate::new).collect()
}

/// `--CA`: the depot's CA certificates.
pub fn ca_names(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(candidates(&depot_being_completed(), Wanted::Ca), current)
}

/// `sign NAME`: the depot's requests.
pub fn request_names(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(candidates(&depot_being_completed(), Wanted::Request), current)
}

/// `revoke --CN`, `renew`, `export`: the depot's certificates.
pub fn cert_names(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(candidates(&depot_being_completed(), Wanted::Certificate), current)
}

/// `verify`, `lint`: certificates in the depot, or files.
pub fn cert_names_or_files(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut out = cert_names(current);
    out.extend(PathCompleter::any().complete(current));
    out
}

/// `verify --ca`, `probe --ca`: CAs in the depot, or files.
pub fn ca_names_or_files(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut out = ca_names(current);
    out.extend(PathCompleter::any().complete(current));
    out
}

/// `inspect`: any depot entry (certificate, request, CRL or key), or files.
pub fn entry_names_or_files(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = stems_with(&depot_being_completed(), &["crt", "csr", "crl", "key"]);
    let mut out = matching(names, current);
    out.extend(PathCompleter::any().complete(current));
    out
}
