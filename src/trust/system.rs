//! The OS trust store. On Linux: the distribution's anchor directory and
//! update command (table in `stores.rs`); trusted once the CA is in the
//! bundle OpenSSL, GnuTLS, curl, Python and Go read. macOS and Windows have
//! their own modules.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::exec::{self, Host};
use super::stores::{self, SystemStore};
use super::{java, Ca, Place, Step, Store};

/// The system store's place on this machine, or why there is none.
pub fn find(host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    #[cfg(target_os = "macos")]
    return super::macos::find(host);
    #[cfg(windows)]
    return super::windows::find(host);
    #[allow(unreachable_code)]
    linux(host)
}

fn linux(host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    let Some(table) = stores::system_store(&host.os_release) else {
        let id = host.os_release.lines().find(|l| l.starts_with("ID=")).unwrap_or("ID unknown");
        return (Vec::new(), vec![format!(
            "this distribution ({id}) is not one certforge knows (Debian/Ubuntu, Alpine, RHEL/Fedora, Arch, openSUSE); add the CA to its anchors by hand"
        )]);
    };
    let Some(update) = exec::which(table.update[0]) else {
        return (Vec::new(), vec![format!("{} not found: install the ca-certificates package", table.update[0])]);
    };
    let keytool = table.java_hook.and_then(|(ks, _)| Path::new(ks).exists().then(|| java::keytool(host)).flatten());
    (vec![Box::new(Anchors { table, update, keytool })], Vec::new())
}

/// The anchor directory of a Linux distribution.
struct Anchors {
    table: &'static SystemStore,
    /// The update program, found on PATH.
    update: PathBuf,
    /// keytool, to clean Debian's Java hook entries on uninstall.
    keytool: Option<PathBuf>,
}

impl Anchors {
    fn command(&self, words: &[&str]) -> Step {
        let mut argv = vec![self.update.display().to_string()];
        argv.extend(words[1..].iter().map(|w| w.to_string()));
        Step::Run { argv, stdin: None }
    }
}

impl Place for Anchors {
    fn store(&self) -> Store {
        Store::System
    }

    fn describe(&self) -> String {
        format!("{} system store ({})", self.table.family, self.table.anchors)
    }

    fn privileged(&self) -> bool {
        !exec::writable(Path::new(self.table.anchors))
    }

    fn trusted(&self, ca: &Ca) -> Result<bool> {
        Ok(certs_in(Path::new(self.table.bundle)).iter().any(|d| ca.is(d)))
    }

    fn install(&self, ca: &Ca) -> Result<Vec<Step>> {
        let to = Path::new(self.table.anchors).join(format!("{}.crt", ca.label()));
        let mut steps = Vec::new();
        match std::fs::read(&to) {
            Ok(_) if certs_in(&to).iter().any(|d| ca.is(d)) => {}
            Ok(_) => bail!("{} exists and holds another certificate; certforge never overwrites it", to.display()),
            Err(_) => steps.push(Step::Copy { from: ca.file.clone(), to }),
        }
        steps.push(self.command(self.table.update));
        Ok(steps)
    }

    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>> {
        let mut steps: Vec<Step> = anchor_files(Path::new(self.table.anchors))
            .into_iter()
            .filter(|f| certs_in(f).iter().any(|d| ca.is(d)))
            .map(Step::Remove)
            .collect();
        if !steps.is_empty() {
            steps.push(self.command(self.table.update_after_remove));
        }
        // Debian's hook put the anchor into Java's cacerts as "debian:FILE.pem",
        // and --fresh does not take it out again: remove it by fingerprint.
        if let (Some((keystore, prefix)), Some(keytool)) = (self.table.java_hook, &self.keytool) {
            let aliases = java::aliases_of(keytool, Path::new(keystore), ca)?;
            steps.extend(
                aliases
                    .iter()
                    .filter(|a| a.starts_with(prefix))
                    .map(|a| java::delete_step(keytool, Path::new(keystore), a)),
            );
        }
        Ok(steps)
    }

    fn cleaned(&self, steps: &[Step]) -> Option<String> {
        let aliases: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Run { argv, .. } if argv.iter().any(|a| a == "-delete") => {
                    argv.iter().skip_while(|a| *a != "-alias").nth(1).map(String::as_str)
                }
                _ => None,
            })
            .collect();
        let (keystore, _) = self.table.java_hook?;
        (!aliases.is_empty()).then(|| format!("and Debian's Java copy {} from {keystore}", aliases.join(", ")))
    }
}

/// Every certificate in a PEM file (none if it is missing or unreadable).
pub fn certs_in(path: &Path) -> Vec<Vec<u8>> {
    let Ok(bytes) = std::fs::read(path) else { return Vec::new() };
    pem::parse_many(&bytes)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect()
}

/// The files in an anchor directory and its subdirectories (Debian reads
/// one level down).
fn anchor_files(dir: &Path) -> Vec<PathBuf> {
    let list = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
    };
    list(dir).into_iter().flat_map(|p| if p.is_dir() { list(&p) } else { vec![p] }).filter(|p| p.is_file()).collect()
}
