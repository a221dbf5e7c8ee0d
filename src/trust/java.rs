//! Java's own trust store, cacerts: Java ignores the OS store. Found from
//! $JAVA_HOME or the java on PATH; a missing or broken Java is reported and
//! never stops the other stores (mkcert #472).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::exec::{self, capture, Host};
use super::stores::parse_keytool_list;
use super::{Ca, Place, Step, Store};

/// The password every JDK ships cacerts with.
const STOREPASS: &str = "changeit";

/// The JDK home: $JAVA_HOME, or two levels above the real java on PATH.
fn java_home(host: &Host) -> Option<PathBuf> {
    host.java_home.clone().or_else(|| {
        let java = std::fs::canonicalize(exec::which("java")?).ok()?;
        Some(java.parent()?.parent()?.to_path_buf())
    })
}

/// keytool from the JDK home, else from PATH.
pub fn keytool(host: &Host) -> Option<PathBuf> {
    java_home(host).map(|h| h.join("bin/keytool")).filter(|k| k.is_file()).or_else(|| exec::which("keytool"))
}

pub fn find(host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    let Some(home) = java_home(host) else {
        return (Vec::new(), vec!["no Java found (no JAVA_HOME, no java on PATH)".into()]);
    };
    // JDK 9+ keeps it in lib/security, JDK 8 in jre/lib/security.
    let Some(cacerts) =
        ["lib/security/cacerts", "jre/lib/security/cacerts"].iter().map(|p| home.join(p)).find(|p| p.exists())
    else {
        return (Vec::new(), vec![format!("{} has no lib/security/cacerts; is JAVA_HOME a JDK?", home.display())]);
    };
    let Some(keytool) = keytool(host) else {
        return (Vec::new(), vec![format!("keytool not found in {}/bin or on PATH", home.display())]);
    };
    (vec![Box::new(Cacerts { cacerts, keytool })], Vec::new())
}

/// The aliases in `keystore` whose certificate is exactly `ca`.
pub fn aliases_of(keytool: &Path, keystore: &Path, ca: &Ca) -> Result<Vec<String>> {
    let out = capture(
        &exec::argv(&[
            &keytool.display().to_string(),
            "-list",
            "-rfc",
            "-keystore",
            &keystore.display().to_string(),
            "-storepass",
            STOREPASS,
        ]),
        None,
    )?;
    Ok(parse_keytool_list(&out).into_iter().filter(|(_, der)| ca.is(der)).map(|(a, _)| a).collect())
}

/// The step that deletes `alias` from `keystore`.
pub fn delete_step(keytool: &Path, keystore: &Path, alias: &str) -> Step {
    Step::run(&[
        &keytool.display().to_string(),
        "-delete",
        "-alias",
        alias,
        "-keystore",
        &keystore.display().to_string(),
        "-storepass",
        STOREPASS,
    ])
}

struct Cacerts {
    cacerts: PathBuf,
    keytool: PathBuf,
}

impl Place for Cacerts {
    fn store(&self) -> Store {
        Store::Java
    }

    fn describe(&self) -> String {
        // Debian links it to /etc/ssl/certs/java/cacerts: show where it is.
        match std::fs::canonicalize(&self.cacerts) {
            Ok(real) if real != self.cacerts => {
                format!("Java cacerts {} (-> {})", self.cacerts.display(), real.display())
            }
            _ => format!("Java cacerts {}", self.cacerts.display()),
        }
    }

    fn privileged(&self) -> bool {
        !exec::writable(&std::fs::canonicalize(&self.cacerts).unwrap_or_else(|_| self.cacerts.clone()))
    }

    fn trusted(&self, ca: &Ca) -> Result<bool> {
        Ok(!aliases_of(&self.keytool, &self.cacerts, ca)?.is_empty())
    }

    fn install(&self, ca: &Ca) -> Result<Vec<Step>> {
        Ok(vec![Step::run(&[
            &self.keytool.display().to_string(),
            "-importcert",
            "-noprompt",
            "-alias",
            &ca.label(),
            "-file",
            &ca.file.display().to_string(),
            "-keystore",
            &self.cacerts.display().to_string(),
            "-storepass",
            STOREPASS,
        ])])
    }

    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>> {
        let aliases = aliases_of(&self.keytool, &self.cacerts, ca)?;
        Ok(aliases.iter().map(|a| delete_step(&self.keytool, &self.cacerts, a)).collect())
    }
}
