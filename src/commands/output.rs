//! How commands talk to the person at the terminal: usage errors and exit
//! statuses, stdout that survives a closed pipe, and warnings, errors and
//! notes on stderr styled as clap styles its own. A leaf module: it imports
//! no other command module, so every command module may use it.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};

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
/// set (<https://no-color.org>) or TERM=dumb, always with CLICOLOR_FORCE.
/// Then certforge's own lines and clap's agree.
pub fn colour_for<S: anstream::stream::RawStream>(stream: &S) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// Prints a note on stderr.
pub fn note(msg: &str) {
    eprintln!("note: {msg}");
}
