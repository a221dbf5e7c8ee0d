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

/// Where a depot CA's key is: a key file beside its certificate, or the
/// URI file of a key on a PKCS#11 token.
pub enum CaKeySource {
    File(std::path::PathBuf),
    Token(std::path::PathBuf),
}

impl CaKeySource {
    /// The key of the depot entry `name`, if it has one. Both at once is
    /// refused: which one signs would be a guess.
    pub fn of(depot: &depot::Depot, name: &crate::pki::names::EntryName) -> Result<Option<CaKeySource>> {
        let (file, uri) = (depot.path(name, "key"), depot.path(name, super::pkcs11::URI_EXT));
        match (file.exists(), uri.exists()) {
            (true, true) => anyhow::bail!(
                "{} and {} both exist, so which key signs for {name} is unclear; move the one that is not the CA's key aside",
                file.display(),
                uri.display()
            ),
            (true, false) => Ok(Some(CaKeySource::File(file))),
            (false, true) => Ok(Some(CaKeySource::Token(uri))),
            (false, false) => Ok(None),
        }
    }

    /// The file named in messages.
    pub fn path(&self) -> &Path {
        match self {
            CaKeySource::File(p) | CaKeySource::Token(p) => p,
        }
    }

    /// Reads the key file, or opens the token key (logged in).
    pub fn load(&self, pass: &PassArgs) -> Result<crate::pki::ca::CaKey> {
        match self {
            CaKeySource::File(p) => Ok(read_key(p, &mut pass.source()?)?.into()),
            CaKeySource::Token(p) => super::pkcs11::open_ca_key(p, pass),
        }
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

/// Prints to stdout. A closed pipe (`certforge … --stdout | head -1`) ends
/// the output quietly instead of panicking; the files are written already.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// Private keys stay off a terminal, whose scrollback, screen sharing and
/// session recordings keep what is shown: printing one on stdout needs
/// stdout redirected (a file, a pipe, `$(...)`) or `--force`. `other` is
/// any other way the command offers ("write it with --out FILE, ").
pub fn refuse_key_on_terminal(force: bool, what: &str, other: &str) -> Result<()> {
    if force || !std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(usage(format!(
        "{what} holds the private key, and stdout is a terminal; {other}redirect it to a file or a pipe, or pass --force"
    )))
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
    eprintln!("{} {msg}", prefix("warning:", clap::builder::styling::AnsiColor::Yellow));
}

/// Prints an error on stderr, its `error:` as clap prints its own.
pub fn error(msg: &str) {
    eprintln!("{} {msg}", prefix("error:", clap::builder::styling::AnsiColor::Red));
}

/// `label` in bold `colour` when stderr takes colour, as clap styles its
/// `error:` (its default `Styles::styled()`).
fn prefix(label: &str, colour: clap::builder::styling::AnsiColor) -> String {
    if !colour_for(&std::io::stderr()) {
        return label.to_string();
    }
    let style = colour.on_default().bold();
    format!("{}{label}{}", style.render(), style.render_reset())
}

/// Whether to colour what goes to `stream`, decided as clap decides for
/// its help and errors (anstream): only at a terminal, never with NO_COLOR
/// set (https://no-color.org) or TERM=dumb, always with CLICOLOR_FORCE.
/// Then certforge's own lines and clap's agree.
pub fn colour_for<S: anstream::stream::RawStream>(stream: &S) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
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
        let spec = crate::pki::keys::KeySpec::from_flags(
            self.key_type,
            self.curve.as_deref(),
            self.key_bits,
            rsa_default_bits,
        )
        .map_err(|e| usage(e.to_string()))?;
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
                fresh(super::pkcs11::uri_write(depot, name, &self.key).expect("a token key has a URI")),
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
