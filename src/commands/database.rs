//! `--database`, as `serve` and `acme` take it: a PostgreSQL URL that a
//! fleet of `serve` instances shares.

use anyhow::Result;

use super::common::usage;
use crate::serve::pg::{PgDb, PgOptions};

/// `--database` names PostgreSQL by its URL scheme, as libpq's URIs do;
/// anything else is a mistake caught before a connection is tried.
/// `without` says what happens without the flag. The value is not echoed:
/// it may hold a password.
pub fn check_url(url: &str, without: &str) -> Result<()> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
        return Ok(());
    }
    Err(usage(format!(
        "--database takes a PostgreSQL URL, postgres://USER@HOST/DATABASE (or postgresql://…){}; without --database {without}",
        scheme.map(|s| format!(", not {s}://…")).unwrap_or_default()
    )))
}

/// Opens the database for a command that has no runtime of its own (the
/// pool then runs on one that `PgDb` owns).
pub fn open(url: &str, without: &str) -> Result<PgDb> {
    check_url(url, without)?;
    PgDb::open(url, PgOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_pass_and_a_refusal_never_echoes_the_url() {
        for ok in ["postgres://u@h/db", "postgresql://u:pw@h:5433/db?sslmode=verify-full", "POSTGRES://h/db"] {
            assert!(check_url(ok, "x").is_ok(), "{ok}");
        }
        for (bad, named) in [
            ("mysql://u:hunter2@h/db", Some("not mysql://")),
            ("sqlite:///var/lib/acme.sqlite", Some("not sqlite://")),
            ("u:hunter2@h/db", None),
        ] {
            let e = check_url(bad, "the state stays in the depot's acme.sqlite").unwrap_err().to_string();
            assert!(e.contains("postgres://USER@HOST/DATABASE"), "{e}");
            assert!(e.ends_with("without --database the state stays in the depot's acme.sqlite"), "{e}");
            assert!(!e.contains("hunter2"), "the password stays out of the message: {e}");
            if let Some(named) = named {
                assert!(e.contains(named), "{e}");
            }
        }
    }
}
