//! What several commands share: turning passphrase and validity flags into
//! values, reading keys, and printing.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::cli::{PassArgs, ValidityArgs};
use crate::depot;
use crate::pki::keys::{PassphraseSource, PrivateKey};
use crate::pki::validity::{parse_rfc3339, Expiry, ValidityRequest};

/// A mistake in how the command was called: exit status 2, like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A command that already said everything (e.g. `verify` listing why a
/// certificate is not valid) and only needs its exit status.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Exit(pub u8);

/// Builds a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

impl PassArgs {
    /// The passphrase given by flag, file or environment, if any.
    /// `Some("")` means "explicitly none".
    pub fn given(&self) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = &self.passphrase {
            return Ok(Some(Zeroizing::new(p.clone())));
        }
        if let Some(path) = &self.passphrase_file {
            let bytes = Zeroizing::new(depot::read_file(path).with_context(|| "--passphrase-file".to_string())?);
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                usage(format!("--passphrase-file {}: the passphrase is not UTF-8 text", path.display()))
            })?;
            let line = text.lines().next().unwrap_or("");
            return Ok(Some(Zeroizing::new(line.to_string())));
        }
        Ok(None)
    }

    /// The passphrase to encrypt a new key with. When none was given and a
    /// person is at a terminal, asks twice, as certstrap does; with no
    /// terminal (CI) it never asks and the key is left unencrypted.
    pub fn for_new_key(&self, file: &str) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = self.given()? {
            return Ok(Some(p).filter(|p| !p.is_empty()));
        }
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Passphrase for {file} (empty for none): "))
                .context("cannot read the passphrase from the terminal")?,
        );
        if first.is_empty() {
            return Ok(None);
        }
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if *first != *again {
            return Err(usage("the two passphrases differ; nothing was written"));
        }
        Ok(Some(first))
    }

    /// A source that gives the passphrase from the flags, or asks at a
    /// terminal, only when a key turns out to be encrypted.
    pub fn source(&self) -> Result<Prompt> {
        Ok(Prompt { given: self.given()? })
    }
}

/// See [`PassArgs::source`].
pub struct Prompt {
    given: Option<Zeroizing<String>>,
}

impl PassphraseSource for Prompt {
    fn passphrase_for(&mut self, what: &str) -> Option<Zeroizing<String>> {
        if let Some(p) = &self.given {
            return Some(p.clone());
        }
        if !std::io::stdin().is_terminal() {
            return None;
        }
        rpassword::prompt_password(format!("Passphrase for {what}: ")).ok().map(Zeroizing::new)
    }
}

/// Reads a private key file, decrypting it when needed.
pub fn read_key(path: &Path, pass: &mut dyn PassphraseSource) -> Result<PrivateKey> {
    let bytes = Zeroizing::new(depot::read_file(path)?);
    Ok(PrivateKey::from_bytes(&bytes, &path.display().to_string(), pass)?)
}

impl ValidityArgs {
    /// The validity the flags ask for.
    pub fn request(&self) -> Result<ValidityRequest> {
        let mut expires = self.expires.as_deref().map(Expiry::parse).transpose()?;
        if let Some(years) = self.years {
            expires = Some(Expiry::parse(&format!("{years} years"))?);
        }
        Ok(ValidityRequest {
            expires,
            not_before: self.not_before.as_deref().map(|t| parse_rfc3339("--not-before", t)).transpose()?,
            not_after: self.not_after.as_deref().map(|t| parse_rfc3339("--not-after", t)).transpose()?,
        })
    }
}

/// Prints to stdout. A closed pipe (`certforge … --stdout | head -1`) ends
/// the output quietly instead of panicking; the files are written already.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// Reads a `--template` file and checks it is of one of the `allowed` kinds
/// for the command `cmd`.
pub fn load_template(
    path: Option<&Path>,
    allowed: &[crate::pki::template::TemplateKind],
    cmd: &str,
) -> Result<Option<crate::pki::template::Template>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = depot::read_file(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| usage(format!("--template {}: not UTF-8 text", path.display())))?;
    let t =
        crate::pki::template::Template::parse(text, &path.display().to_string()).map_err(|e| usage(e.to_string()))?;
    if !allowed.contains(&t.kind) {
        return Err(usage(format!(
            "--template {}: `{cmd}` cannot use a template of kind {:?}; it takes {allowed:?}",
            path.display(),
            t.kind
        )));
    }
    Ok(Some(t))
}

impl crate::cli::SubjectArgs {
    /// Fills the fields the command line left out from a template's defaults.
    pub fn with_defaults(&self, d: &crate::pki::template::SubjectDefaults) -> crate::cli::SubjectArgs {
        crate::cli::SubjectArgs {
            organization: self.organization.clone().or_else(|| d.organization.clone()),
            organizational_unit: self.organizational_unit.clone().or_else(|| d.organizational_unit.clone()),
            country: self.country.clone().or_else(|| d.country.clone()),
            province: self.province.clone().or_else(|| d.province.clone()),
            locality: self.locality.clone().or_else(|| d.locality.clone()),
        }
    }
}

impl crate::cli::KeyArgs {
    /// True when no key flag was given, so a template's key type applies.
    pub fn unset(&self) -> bool {
        self.key_type.is_none() && self.curve.is_none() && self.key_bits.is_none() && self.existing_key.is_none()
    }
}

/// Prints a warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Prints a note on stderr.
pub fn note(msg: &str) {
    eprintln!("note: {msg}");
}

/// The key a new CA or request gets: an existing one (`--key PATH`) or a
/// fresh one of the chosen type. Decided before anything slow happens.
pub enum KeyChoice {
    Existing(std::path::PathBuf),
    Generate(crate::pki::keys::KeySpec),
}

impl crate::cli::KeyArgs {
    /// Validates the key flags. `rsa_default_bits` applies to
    /// `--key-type rsa` without `--key-bits`.
    pub fn choice(&self, rsa_default_bits: u32) -> Result<KeyChoice> {
        let spec = crate::pki::keys::KeySpec::from_flags(
            self.key_type,
            self.curve.as_deref(),
            self.key_bits,
            rsa_default_bits,
        )
        .map_err(|e| usage(e.to_string()))?;
        match &self.existing_key {
            Some(_) if self.key_type.is_some() || self.curve.is_some() || self.key_bits.is_some() => Err(usage(
                "--key reuses an existing key, so --key-type, --curve and --key-bits do not apply; drop them",
            )),
            Some(path) => Ok(KeyChoice::Existing(path.clone())),
            None => Ok(KeyChoice::Generate(spec)),
        }
    }
}

impl KeyChoice {
    /// Reads or generates the key.
    pub fn obtain(&self, pass: &PassArgs) -> Result<PrivateKey> {
        match self {
            KeyChoice::Existing(path) => read_key(path, &mut pass.source()?),
            KeyChoice::Generate(spec) => Ok(PrivateKey::generate(*spec)?),
        }
    }
}

impl crate::cli::SubjectArgs {
    /// The subject DN with `common_name`, checked against RFC 5280's limits.
    pub fn dn(&self, common_name: Option<String>) -> Result<rcgen::DistinguishedName> {
        self.subject(common_name).to_dn().map_err(|e| usage(e.to_string()))
    }

    /// The subject these flags describe, with `common_name`.
    pub fn subject(&self, common_name: Option<String>) -> crate::pki::subject::Subject {
        crate::pki::subject::Subject {
            common_name,
            organization: self.organization.clone(),
            organizational_unit: self.organizational_unit.clone(),
            country: self.country.clone(),
            province: self.province.clone(),
            locality: self.locality.clone(),
        }
    }
}

/// What [`add_to_crl`] did.
pub enum CrlChange {
    /// The serial was listed already; nothing was written.
    Already(crate::pki::crl::Entry),
    /// The CRL was re-signed with the serial; `started` when there was no
    /// CRL before.
    Added { state: crate::pki::crl::CrlState, started: bool },
}

/// Adds `serial` to the CRL of the CA `ca_name` (signed by `ca`) and
/// rewrites it atomically: `revoke` and `serve`'s revokeCert. The caller
/// holds the depot lock, so two revocations never start from one old list.
pub fn add_to_crl(
    depot: &crate::depot::Depot,
    ca_name: &crate::pki::names::EntryName,
    ca: &crate::pki::ca::CaSigner,
    serial: &[u8],
    reason: Option<crate::pki::crl::Reason>,
    now: time::OffsetDateTime,
) -> Result<(std::path::PathBuf, CrlChange)> {
    use crate::pki::crl::CrlState;
    let crl_path = depot.path(ca_name, "crl");
    let started = !crl_path.exists();
    let mut state = if started {
        CrlState::default()
    } else {
        CrlState::read(&crate::depot::read_file(&crl_path)?, &crl_path.display().to_string(), ca)?
    };
    if let Some(entry) = state.find(serial) {
        return Ok((crl_path, CrlChange::Already(entry.clone())));
    }
    state.revoke(serial, now, reason);
    let crl_der = state.sign(ca, now)?;
    crate::depot::write_all(&[crate::depot::Write1 {
        path: crl_path.clone(),
        bytes: crate::pki::to_pem("X509 CRL", &crl_der).into_bytes().into(),
        mode: crate::depot::PUBLIC_MODE,
        replace: true,
    }])?;
    Ok((crl_path, CrlChange::Added { state, started }))
}
