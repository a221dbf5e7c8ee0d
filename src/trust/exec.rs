//! How `trust` touches the machine: who it runs as, finding programs, and
//! running a [`Step`] directly or through sudo, every program with a time
//! limit so that a hung keytool or certutil cannot hang certforge.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::Step;
use crate::depot::{self, Write1, PUBLIC_MODE};

/// What `trust` needs to know about the machine and the user.
pub struct Host {
    pub home: Option<PathBuf>,
    pub root: bool,
    /// A terminal on stdin, where sudo can ask for a password.
    pub interactive: bool,
    pub os_release: String,
    pub java_home: Option<PathBuf>,
}

impl Host {
    pub fn detect() -> Host {
        Host {
            home: std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            root: crate::sys::is_root(),
            interactive: std::io::stdin().is_terminal(),
            os_release: std::fs::read_to_string("/etc/os-release")
                .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
                .unwrap_or_default(),
            java_home: std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
        }
    }
}

/// How a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Direct,
    Sudo,
}

impl Privilege {
    /// Directly when the place is ours or we are root; through sudo only on
    /// a terminal (sudo may ask for a password); else not at all.
    pub fn for_place(privileged: bool, host: &Host) -> Option<Privilege> {
        if !privileged || host.root {
            Some(Privilege::Direct)
        } else if host.interactive && which("sudo").is_some() {
            Some(Privilege::Sudo)
        } else {
            None
        }
    }
}

/// A program on PATH, or in the sbin directories a user's PATH often
/// lacks (update-ca-certificates is in /usr/sbin).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether this process may write `path` (or create it, when it is missing).
pub fn writable(path: &Path) -> bool {
    let probe = if path.exists() { path } else { path.parent().unwrap_or(path) };
    crate::sys::can_write(probe)
}

/// How long one store program may take.
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `argv` with `stdin`, within `LIMIT`; returns stdout, or fails
/// with the program's own words when it exits non-zero.
pub fn capture(argv: &[String], stdin: Option<&[u8]>) -> Result<String> {
    let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes).with_context(|| format!("cannot write to {program}"))?;
    }
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not finish within {} s and was stopped", argv.join(" "), LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if !status.success() {
        let said = format!("{}{}", err.trim(), if err.trim().is_empty() { out.trim() } else { "" });
        bail!("`{}` failed ({status}): {said}", argv.join(" "));
    }
    Ok(out)
}

/// Strings for an argv.
pub fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// Makes one change.
pub fn perform(step: &Step, how: Privilege) -> Result<()> {
    let path = |p: &PathBuf| p.display().to_string();
    match (step, how) {
        (Step::Copy { from, to }, Privilege::Direct) => {
            let bytes = depot::read_file(from)?;
            depot::write_all(&[Write1 { path: to.clone(), bytes: bytes.into(), mode: PUBLIC_MODE, replace: false }])
        }
        (Step::MakeDir(dir), Privilege::Direct) => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
        }
        (Step::Remove(file), Privilege::Direct) => match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", file.display()))
            }
            _ => Ok(()),
        },
        (Step::Run { argv, stdin }, Privilege::Direct) => capture(argv, stdin.as_deref()).map(drop),
        (Step::Copy { from, to }, Privilege::Sudo) => {
            capture(&argv(&["sudo", "install", "-m", "0644", &path(from), &path(to)]), None).map(drop)
        }
        (Step::MakeDir(dir), Privilege::Sudo) => {
            capture(&argv(&["sudo", "mkdir", "-p", "-m", "0700", &path(dir)]), None).map(drop)
        }
        (Step::Remove(file), Privilege::Sudo) => capture(&argv(&["sudo", "rm", "-f", &path(file)]), None).map(drop),
        (Step::Run { argv: words, stdin }, Privilege::Sudo) => {
            let mut full = vec!["sudo".to_string()];
            full.extend(words.iter().cloned());
            capture(&full, stdin.as_deref()).map(drop)
        }
    }
}
