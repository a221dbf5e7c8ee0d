//! What several commands share: turning passphrase and validity flags into
//! values, reading keys, and printing.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

pub use super::output::{colour_for, error, note, print_stdout, refuse_key_on_terminal, usage, warn, Exit, UsageError};
use crate::authority::Unlock;
use crate::cli::{PassArgs, ValidityArgs};
use crate::depot;
use crate::pki::keys::{PassphraseSource, PrivateKey};
use crate::pki::validity::{parse_rfc3339, Expiry, ValidityRequest};

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

    /// What opening a CA key may need: the passphrase as [`source`](Self::source)
    /// gives it, and the token's module and PIN file.
    pub fn unlock(&self) -> Result<Unlock> {
        Ok(Unlock { passphrase: Box::new(self.source()?), token: self.token.options() })
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

/// Reads a private key file, decrypting it when needed; an encrypted key
/// with no passphrase names the flags that give one.
pub fn read_key(path: &Path, pass: &mut dyn PassphraseSource) -> Result<PrivateKey> {
    crate::authority::keys::read_key(path, pass).map_err(super::flags::worded)
}

impl ValidityArgs {
    /// The validity the flags ask for.
    pub fn request(&self) -> Result<ValidityRequest> {
        let flags = |e: crate::pki::validity::ValidityError| anyhow::anyhow!(e.naming(super::flags::validity));
        let mut expires = self.expires.as_deref().map(Expiry::parse).transpose().map_err(flags)?;
        if let Some(years) = self.years {
            expires = Some(Expiry::parse(&format!("{years} years")).map_err(flags)?);
        }
        Ok(ValidityRequest {
            expires,
            not_before: self.not_before.as_deref().map(|t| parse_rfc3339("--not-before", t)).transpose()?,
            not_after: self.not_after.as_deref().map(|t| parse_rfc3339("--not-after", t)).transpose()?,
        })
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

/// The key a new CA or request gets: an existing one (`--key PATH`) or a
/// fresh one of the chosen type. Decided before anything slow happens.
pub enum KeyChoice {
    Existing(std::path::PathBuf),
    Generate(crate::pki::keys::KeySpec),
    /// `--key pkcs11:…`: a key on a token, made there as `spec` when
    /// absent; `asked` when a key type was given, so a present key of
    /// another type is refused.
    Token {
        uri: String,
        spec: crate::pki::keys::KeySpec,
        asked: bool,
    },
}

impl crate::cli::KeyArgs {
    /// Validates the key flags. `rsa_default_bits` applies to
    /// `--key-type rsa` without `--key-bits`.
    pub fn choice(&self, rsa_default_bits: u32) -> Result<KeyChoice> {
        let spec = super::flags::key_spec(self.key_type, self.curve.as_deref(), self.key_bits, rsa_default_bits)
            .map_err(usage)?;
        match &self.existing_key {
            Some(uri) if crate::pkcs11::is_pkcs11_uri(&uri.to_string_lossy()) => Ok(KeyChoice::Token {
                uri: uri.to_string_lossy().into_owned(),
                spec,
                asked: self.key_type.is_some() || self.curve.is_some() || self.key_bits.is_some(),
            }),
            Some(_) if self.key_type.is_some() || self.curve.is_some() || self.key_bits.is_some() => Err(usage(
                "--key reuses an existing key, so --key-type, --curve and --key-bits do not apply; drop them",
            )),
            Some(path) => Ok(KeyChoice::Existing(path.clone())),
            None => Ok(KeyChoice::Generate(spec)),
        }
    }
}

impl KeyChoice {
    /// Reads or generates a key file's key; a token key is refused here,
    /// for commands that must write a key file.
    pub fn obtain(&self, pass: &PassArgs) -> Result<PrivateKey> {
        match self {
            KeyChoice::Existing(path) => read_key(path, &mut pass.source()?),
            KeyChoice::Generate(spec) => Ok(PrivateKey::generate(*spec)?),
            KeyChoice::Token { .. } => Err(usage(
                "--key pkcs11:… keeps a CA key on a token, for `init` and for an intermediate's `request-cert`; this command needs a key file",
            )),
        }
    }

    /// The key: a file key as [`obtain`](Self::obtain) makes it, or the
    /// token key (found or made, logged in). For `init` and `request-cert`.
    pub fn obtain_any(&self, pass: &PassArgs) -> Result<NewKey> {
        match self {
            KeyChoice::Token { uri, spec, asked } => {
                let key = super::pkcs11::init_key(uri, *spec, *asked, pass)?;
                let made_on_token = key.generated;
                Ok(NewKey { key: crate::pki::ca::CaKey::Remote(Box::new(key)), made_on_token })
            }
            _ => Ok(NewKey { key: self.obtain(pass)?.into(), made_on_token: false }),
        }
    }
}

impl KeyChoice {
    /// The passphrase for the new key file `file` ([`PassArgs::for_new_key`]).
    /// A token key has a PIN instead: a passphrase given anyway is refused
    /// rather than ignored, so nobody believes their key is encrypted by it.
    pub fn passphrase(&self, pass: &PassArgs, file: &str) -> Result<Option<Zeroizing<String>>> {
        if !matches!(self, KeyChoice::Token { .. }) {
            return pass.for_new_key(file);
        }
        if pass.given()?.is_some_and(|p| !p.is_empty()) {
            return Err(usage(
                "a passphrase encrypts key files, and this key stays on its PKCS#11 token; give the token's PIN with --pin-file or CERTFORGE_PKCS11_PIN instead",
            ));
        }
        Ok(None)
    }
}

/// A new CA's or request's key, and whether a token key was made just now.
pub struct NewKey {
    pub key: crate::pki::ca::CaKey,
    pub made_on_token: bool,
}

impl NewKey {
    /// What goes into the depot for the key of `name`: the PEM key file
    /// (0600, encrypted with `passphrase` when given), or the URI file.
    pub fn depot_write(
        &self,
        depot: &depot::Depot,
        name: &crate::pki::names::EntryName,
        passphrase: Option<&str>,
    ) -> Result<(depot::Write1, &'static str)> {
        // The caller checked that neither file exists, so neither is replaced.
        let fresh = |w: depot::Write1| depot::Write1 { replace: false, ..w };
        Ok(match self.key.file() {
            Some(k) => (
                depot::Write1 {
                    path: depot.path(name, "key"),
                    bytes: k.to_pem(passphrase)?.as_bytes().to_vec().into(),
                    mode: depot::KEY_MODE,
                    replace: false,
                },
                "key",
            ),
            None => (
                fresh(crate::authority::keys::uri_write(depot, name, &self.key).expect("a token key has a URI")),
                "key URI (PKCS#11)",
            ),
        })
    }

    /// The report's key line.
    pub fn key_line(&self, encrypted: bool) -> String {
        match self.key {
            crate::pki::ca::CaKey::Remote(_) => format!(
                "key: {}; {}",
                self.key.describe(),
                if self.made_on_token {
                    "made on the token now: private, sensitive, never extractable"
                } else {
                    "the key already on the token"
                }
            ),
            crate::pki::ca::CaKey::File(_) => super::report::key_line(&self.key.describe(), encrypted),
        }
    }
}

impl crate::cli::SubjectArgs {
    /// The subject DN with `common_name`, checked against RFC 5280's limits.
    pub fn dn(&self, common_name: Option<String>) -> Result<rcgen::DistinguishedName> {
        self.subject(common_name).to_dn().map_err(|e| usage(e.naming(super::flags::subject)))
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
