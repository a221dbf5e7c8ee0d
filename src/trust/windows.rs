//! Windows: the LocalMachine ROOT store, through certutil.exe, which names
//! a certificate by its SHA-1 thumbprint. Not tested here: certforge's CI
//! runs on Linux only.

use anyhow::Result;

use super::exec::{argv, capture, Host};
use super::{Ca, Place, Step, Store};

pub fn find(_host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    (vec![Box::new(RootStore)], Vec::new())
}

struct RootStore;

fn thumbprint(ca: &Ca) -> String {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
    digest(&SHA1_FOR_LEGACY_USE_ONLY, &ca.der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Place for RootStore {
    fn store(&self) -> Store {
        Store::System
    }

    fn describe(&self) -> String {
        "Windows ROOT store (LocalMachine)".into()
    }

    fn privileged(&self) -> bool {
        true
    }

    fn trusted(&self, ca: &Ca) -> Result<bool> {
        // `certutil -store ROOT HASH` fails when no certificate has that hash.
        Ok(capture(&argv(&["certutil", "-store", "ROOT", &thumbprint(ca)]), None).is_ok())
    }

    fn install(&self, ca: &Ca) -> Result<Vec<Step>> {
        Ok(vec![Step::run(&["certutil", "-addstore", "-f", "ROOT", &ca.file.display().to_string()])])
    }

    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>> {
        if !self.trusted(ca)? {
            return Ok(Vec::new());
        }
        Ok(vec![Step::run(&["certutil", "-delstore", "ROOT", &thumbprint(ca)])])
    }
}
