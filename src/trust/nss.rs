//! NSS databases: Chromium on Linux trusts only ~/.pki/nssdb (never
//! /etc/ssl/certs), and each Firefox profile has its own. certutil does
//! the work; the trust flags must be "C,," (",," still fails, mkcert #662).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::exec::{self, capture, Host};
use super::stores::{self, parse_certutil_list, NssEntry};
use super::{Ca, Place, Step, Store};

pub fn find(host: &Host) -> (Vec<Box<dyn Place>>, Vec<String>) {
    let Some(certutil) = exec::which("certutil") else {
        return (
            Vec::new(),
            vec![format!(
                "certutil not found: install {} (Chromium and Firefox read NSS databases)",
                stores::certutil_package(&host.os_release)
            )],
        );
    };
    let Some(home) = &host.home else {
        return (Vec::new(), vec!["HOME is not set, so there are no user NSS databases to find".into()]);
    };
    let (dbs, profile_parents) = stores::nss_dirs(home);
    let mut places: Vec<Box<dyn Place>> = Vec::new();
    let mut add = |what: String, dir: PathBuf, create: bool| {
        if let Some(prefix) = db_prefix(&dir).or(create.then_some("sql")) {
            places.push(Box::new(NssDb { what, dir, prefix, create, certutil: certutil.clone() }));
        }
    };
    for (i, (what, dir)) in dbs.into_iter().enumerate() {
        // Headless Chromium never makes ~/.pki/nssdb in a fresh HOME, so
        // certforge makes it (mkcert refuses instead).
        add(what.to_string(), dir, i == 0);
    }
    for (what, parent) in profile_parents {
        let Ok(entries) = std::fs::read_dir(&parent) else { continue };
        let mut profiles: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        profiles.sort();
        for p in profiles {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            add(format!("{what} profile {name}"), p, false);
        }
    }
    add("system-wide".into(), PathBuf::from(stores::SYSTEM_NSSDB), false);
    (places, Vec::new())
}

/// "sql" for cert9.db, "dbm" for the old cert8.db, none when it is no database.
fn db_prefix(dir: &Path) -> Option<&'static str> {
    if dir.join("cert9.db").is_file() {
        Some("sql")
    } else if dir.join("cert8.db").is_file() {
        Some("dbm")
    } else {
        None
    }
}

struct NssDb {
    what: String,
    dir: PathBuf,
    prefix: &'static str,
    /// Made on install when missing (~/.pki/nssdb only).
    create: bool,
    certutil: PathBuf,
}

impl NssDb {
    fn db(&self) -> String {
        format!("{}:{}", self.prefix, self.dir.display())
    }

    fn certutil(&self, words: &[&str]) -> Vec<String> {
        let db = self.db();
        let mut argv = vec![self.certutil.display().to_string(), words[0].to_string(), "-d".into(), db];
        argv.extend(words[1..].iter().map(|w| w.to_string()));
        argv
    }

    fn exists(&self) -> bool {
        db_prefix(&self.dir).is_some()
    }

    /// Every entry and the certificates under its nickname (NSS gives all
    /// certificates of one subject the same nickname).
    fn entries(&self) -> Result<Vec<(NssEntry, Vec<Vec<u8>>)>> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let list = parse_certutil_list(&capture(&self.certutil(&["-L"]), None)?);
        list.into_iter()
            .map(|e| {
                let pem = capture(&self.certutil(&["-L", "-n", &e.nickname, "-a"]), None)?;
                let certs = pem::parse_many(pem.as_bytes()).unwrap_or_default();
                Ok((e, certs.into_iter().map(pem::Pem::into_contents).collect()))
            })
            .collect()
    }
}

impl Place for NssDb {
    fn store(&self) -> Store {
        Store::Nss
    }

    fn describe(&self) -> String {
        format!("NSS database {} ({})", self.dir.display(), self.what)
    }

    fn privileged(&self) -> bool {
        !exec::writable(&self.dir)
    }

    fn trusted(&self, ca: &Ca) -> Result<bool> {
        Ok(self.entries()?.iter().any(|(e, certs)| e.trusted_for_tls() && certs.iter().any(|d| ca.is(d))))
    }

    fn install(&self, ca: &Ca) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        if !self.exists() && self.create {
            steps.push(Step::MakeDir(self.dir.clone()));
            steps.push(Step::Run { argv: self.certutil(&["-N", "--empty-password"]), stdin: None });
        }
        // Present but not trusted for TLS: change its flags, keep its name.
        let present = self.entries()?.into_iter().find(|(_, certs)| certs.iter().any(|d| ca.is(d)));
        let argv = match present {
            Some((e, _)) => self.certutil(&["-M", "-n", &e.nickname, "-t", "C,,"]),
            None => self.certutil(&["-A", "-t", "C,,", "-n", &ca.label(), "-i", &ca.file.display().to_string()]),
        };
        steps.push(Step::Run { argv, stdin: None });
        Ok(steps)
    }

    fn uninstall(&self, ca: &Ca) -> Result<Vec<Step>> {
        // `certutil -L -n NICK` lists every certificate with NICK's subject,
        // so a group can hold another CA of the same name (a regenerated
        // one, mkcert #208), while `-D -n NICK` deletes NICK's own
        // certificate. So: delete certforge's own nickname for this
        // fingerprint; else only nicknames whose whole group is this CA.
        let entries = self.entries()?;
        let ours: Vec<&(NssEntry, Vec<Vec<u8>>)> =
            entries.iter().filter(|(_, certs)| certs.iter().any(|d| ca.is(d))).collect();
        let delete = |nick: &str| Step::Run { argv: self.certutil(&["-D", "-n", nick]), stdin: None };
        if ours.iter().any(|(e, _)| e.nickname == ca.label()) {
            return Ok(vec![delete(&ca.label())]);
        }
        let mut steps = Vec::new();
        for (e, certs) in ours {
            if certs.iter().all(|d| ca.is(d)) {
                steps.extend(certs.iter().map(|_| delete(&e.nickname)));
            } else {
                bail!(
                    "{:?} holds this CA together with another one of the same subject; certforge will not guess which `certutil -D` removes. Check with: certutil -L -d {} -n {:?}",
                    e.nickname,
                    self.db(),
                    e.nickname
                );
            }
        }
        Ok(steps)
    }
}
