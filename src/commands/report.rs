//! What certforge tells a person after it made something: what, for which
//! names, where the files are, and when it expires (after mkcert).

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::pki::validity::{fmt_time, relative};

/// A summary of what a command made.
pub struct Made {
    /// "CA \"gRPC Root CA\"", "peer certificate for \"localhost\"", ...
    pub what: String,
    /// Lines such as "names: DNS:localhost, IP:127.0.0.1".
    pub details: Vec<String>,
    /// ("key", path) pairs.
    pub files: Vec<(&'static str, PathBuf)>,
    /// When it expires, if it is a certificate.
    pub not_after: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

/// Prints the summary on stderr.
pub fn print(m: &Made) {
    eprintln!("Created {}", m.what);
    for d in &m.details {
        eprintln!("  {d}");
    }
    let width = m.files.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, path) in &m.files {
        eprintln!("  {label:<width$}  {}", path.display());
    }
    if let Some(t) = m.not_after {
        let when = if t <= m.now { format!("EXPIRED {}", relative(t, m.now)) } else { relative(t, m.now) };
        eprintln!("  expires {} ({when})", fmt_time(t));
    }
}

/// "ECDSA P-256, unencrypted (0600)" for a key line.
pub fn key_line(desc: &str, encrypted: bool) -> String {
    format!(
        "key type: {desc}, {}",
        if encrypted { "encrypted with your passphrase (PKCS#8, AES-256)" } else { "unencrypted" }
    )
}
