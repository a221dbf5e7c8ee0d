//! macOS: the System keychain, through `security` (the commands mkcert
//! uses). Not tested here: certforge's CI runs on Linux only.

use std::path::Path;

use anyhow::Result;

use super::exec::{argv, capture, Host};
use super::{Ca, Place, Step, Store};

const KEYCHAIN: &str = "/Library/Keychains/System.keychain";

pub fn find(_host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    (vec![Box::new(Keychain)], Vec::new())
}

struct Keychain;

impl Place for Keychain {
    fn store(&self) -> Store {
        Store::System
    }

    fn describe(&self) -> String {
        format!("macOS System keychain ({KEYCHAIN})")
    }

    fn privileged(&self) -> bool {
        !super::exec::writable(Path::new(KEYCHAIN))
    }

    fn trusted(&self, ca: &Ca) -> Result<bool> {
        // -Z prints "SHA-256 hash: <HEX>" for every certificate.
        let out = capture(&argv(&["security", "find-certificate", "-a", "-Z", KEYCHAIN]), None)?;
        let wanted = ca.sha256.to_ascii_uppercase();
        Ok(out.lines().any(|l| l.trim() == format!("SHA-256 hash: {wanted}")))
    }

    fn install(&self, ca: &Ca) -> Result<Vec<Step>> {
        let file = ca.file.display().to_string();
        Ok(vec![Step::run(&["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", KEYCHAIN, &file])])
    }

    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>> {
        if !self.trusted(ca)? {
            return Ok(Vec::new());
        }
        let file = ca.file.display().to_string();
        Ok(vec![
            Step::run(&["security", "remove-trusted-cert", "-d", &file]),
            Step::run(&["security", "delete-certificate", "-Z", &ca.sha256.to_ascii_uppercase(), KEYCHAIN]),
        ])
    }
}
