//! `certforge trust`: put a depot CA where browsers, the OS and runtimes
//! look (what `mkcert -install` does), take it out again, and say where it
//! is trusted. Each store is a [`Place`] that can say whether the CA is
//! trusted there and which [`Step`]s would add or remove it; [`act`] runs
//! those steps (as root, through sudo on a terminal, or not at all, printing
//! them) and checks the result. The CA is always matched by its SHA-256
//! fingerprint, never by name or serial (mkcert's uninstall bugs, #208).

pub mod exec;
pub mod java;
// Built on every OS's test build too, so that they at least type-check
// where CI runs (it cannot run them: Linux only).
#[cfg(any(target_os = "macos", test))]
#[cfg_attr(test, allow(dead_code))]
pub mod macos;
pub mod nss;
pub mod stores;
pub mod system;
#[cfg(any(windows, test))]
#[cfg_attr(test, allow(dead_code))]
pub mod windows;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

/// The CA being trusted.
pub struct Ca {
    /// Its depot name, as the user wrote it.
    pub name: String,
    /// Its file in the depot: what is copied into the stores.
    pub file: PathBuf,
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
}

impl Ca {
    pub fn new(name: &str, file: PathBuf, der: Vec<u8>) -> Ca {
        use aws_lc_rs::digest::{digest, SHA256};
        let sha256 = digest(&SHA256, &der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ca { name: name.to_string(), file, der, sha256 }
    }

    /// The name certforge gives its entries in every store: the CA's name
    /// and the start of its fingerprint, so two CAs of the same name (a
    /// regenerated one) never share an entry.
    pub fn label(&self) -> String {
        let safe: String =
            self.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        format!("certforge-{safe}-{}", &self.sha256[..8])
    }

    pub fn is(&self, der: &[u8]) -> bool {
        der == self.der.as_slice()
    }
}

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// The OS store: the distribution's anchors on Linux, the System
    /// keychain on macOS, the ROOT store on Windows.
    System,
    /// NSS databases: Chromium on Linux, every Firefox profile.
    Nss,
    /// Java's cacerts ($JAVA_HOME, or the java on PATH).
    Java,
}

/// One change to make to a store.
#[derive(Debug, Clone)]
pub enum Step {
    /// Copy the CA's file to a path (0644).
    Copy { from: PathBuf, to: PathBuf },
    /// Make a directory (0700).
    MakeDir(PathBuf),
    /// Remove a file.
    Remove(PathBuf),
    /// Run a program, with bytes on its standard input if given.
    Run { argv: Vec<String>, stdin: Option<Vec<u8>> },
}

impl Step {
    pub fn run(argv: &[&str]) -> Step {
        Step::Run { argv: exec::argv(argv), stdin: None }
    }

    /// The command a person would type.
    pub fn shell(&self) -> String {
        let w = |s: &str| crate::pki::names::shell_word(s);
        let p = |p: &PathBuf| w(&p.display().to_string());
        match self {
            Step::Copy { from, to } => format!("install -m 0644 {} {}", p(from), p(to)),
            Step::MakeDir(d) => format!("mkdir -p -m 0700 {}", p(d)),
            Step::Remove(f) => format!("rm -f {}", p(f)),
            Step::Run { argv, stdin } => {
                let line = argv.iter().map(|a| w(a)).collect::<Vec<_>>().join(" ");
                if stdin.is_some() {
                    format!("{line} < (the certificate, PEM)")
                } else {
                    line
                }
            }
        }
    }
}

/// A place in a store: an anchor directory, one NSS database, one cacerts.
pub trait Place {
    fn store(&self) -> Store;
    /// "NSS database ~/.pki/nssdb (Chromium)", for the report.
    fn describe(&self) -> String;
    /// Whether changing it needs root.
    fn privileged(&self) -> bool;
    /// Whether clients reading this place trust `ca` now.
    fn trusted(&self, ca: &Ca) -> Result<bool>;
    /// The steps that make `ca` trusted (called only when it is not).
    fn install(&self, ca: &Ca) -> Result<Vec<Step>>;
    /// The steps that remove every entry that is exactly `ca`.
    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>>;
    /// What else removing took with it, to say so (mkcert #281).
    fn cleaned(&self, _steps: &[Step]) -> Option<String> {
        None
    }
}

/// A store that cannot be used here, and why ("certutil not found: ...").
pub struct Missing {
    pub store: Store,
    pub why: String,
}

/// What was found for the chosen stores.
#[derive(Default)]
pub struct Found {
    pub places: Vec<Box<dyn Place>>,
    pub missing: Vec<Missing>,
}

/// Finds every place of the chosen stores on this machine.
pub fn find(stores: &[Store], host: &exec::Host) -> Found {
    let mut found = Found::default();
    for s in stores {
        let (places, missing) = match s {
            Store::System => system::find(host),
            Store::Nss => nss::find(host),
            Store::Java => java::find(host),
        };
        found.places.extend(places);
        found.missing.extend(missing.into_iter().map(|why| Missing { store: *s, why }));
    }
    found
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
    Status,
}

/// The result at one place.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Trusted,
    NotTrusted,
    Installed,
    AlreadyTrusted,
    Removed,
    NotThere,
    WouldInstall,
    WouldRemove,
    /// Needs root, and there is no terminal for sudo: the commands are given.
    NeedsRoot,
    Unavailable,
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub store: Store,
    pub place: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The commands to run by hand (needs-root) or that would run (dry run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

impl Outcome {
    /// Whether this place failed, or still needs someone to run its commands.
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed | State::NeedsRoot)
    }
}

/// Runs `action` at every place found.
pub fn act(action: Action, ca: &Ca, found: &Found, dry_run: bool, host: &exec::Host) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = found
        .places
        .iter()
        .map(|p| {
            let (state, detail, commands) = match one(action, ca, p.as_ref(), dry_run, host) {
                Ok(r) => r,
                Err(e) => (State::Failed, Some(format!("{e:#}")), Vec::new()),
            };
            Outcome { store: p.store(), place: p.describe(), state, detail, commands }
        })
        .collect();
    out.extend(found.missing.iter().map(|m| Outcome {
        store: m.store,
        place: format!("{:?}", m.store).to_lowercase(),
        state: State::Unavailable,
        detail: Some(m.why.clone()),
        commands: Vec::new(),
    }));
    out
}

type Result3 = (State, Option<String>, Vec<String>);

fn one(action: Action, ca: &Ca, place: &dyn Place, dry_run: bool, host: &exec::Host) -> Result<Result3> {
    let steps = match action {
        Action::Status => {
            let state = if place.trusted(ca)? { State::Trusted } else { State::NotTrusted };
            return Ok((state, None, Vec::new()));
        }
        Action::Install if place.trusted(ca)? => return Ok((State::AlreadyTrusted, None, Vec::new())),
        Action::Install => place.install(ca)?,
        // Uninstall plans from the store's entries themselves; whether the CA
        // is trusted anyway is asked only when there is nothing to remove
        // (each question is a keytool or certutil run).
        Action::Uninstall => place.uninstall(ca)?,
    };
    if steps.is_empty() {
        if place.trusted(ca)? {
            let why = "trusted, but through no entry certforge can remove (added by hand or by another tool?)";
            return Ok((State::Trusted, Some(why.into()), Vec::new()));
        }
        return Ok((State::NotThere, None, Vec::new()));
    }
    let shown: Vec<String> = steps.iter().map(Step::shell).collect();
    if dry_run {
        let state = if action == Action::Install { State::WouldInstall } else { State::WouldRemove };
        return Ok((state, None, shown));
    }
    let how = match exec::Privilege::for_place(place.privileged(), host) {
        Some(how) => how,
        None => {
            let sudo: Vec<String> = shown.iter().map(|c| format!("sudo {c}")).collect();
            return Ok((
                State::NeedsRoot,
                Some("needs root, and there is no terminal to ask for sudo's password; run these".into()),
                sudo,
            ));
        }
    };
    for step in &steps {
        exec::perform(step, how)?;
    }
    let now = place.trusted(ca)?;
    Ok(match (action, now) {
        (Action::Install, true) => (State::Installed, None, Vec::new()),
        (Action::Install, false) => {
            (State::Failed, Some("the commands ran, but the store still does not trust the CA".into()), shown)
        }
        (_, false) => (State::Removed, place.cleaned(&steps), Vec::new()),
        (_, true) => (
            State::Failed,
            Some("removed certforge's entries, but the store still trusts the CA (added by hand?)".into()),
            shown,
        ),
    })
}
