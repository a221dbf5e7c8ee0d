//! What PostgreSQL said, as the engine tells it apart (`StorageError`):
//! what may pass on a retry (the server down, restarting, read-only, a
//! lock or statement timeout, a serialization failure) is `Unavailable`,
//! answered 503; a unique violation is a `Conflict`; the rest `Failed`.
//! SQLSTATE codes: PostgreSQL's "Appendix A. Error Codes".

use crate::storage::StorageError;

/// How an SQLSTATE is answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Unavailable,
    Conflict,
    Failed,
}

pub(crate) fn class(sqlstate: &str) -> Class {
    match sqlstate {
        "23505" => Class::Conflict,
        // read_only_sql_transaction (a standby, or a primary demoted under
        // us), serialization_failure, deadlock_detected, lock_not_available
        // (lock_timeout), query_canceled (statement_timeout), admin /
        // crash shutdown, cannot_connect_now (starting up), too_many_connections.
        "25006" | "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300" => Class::Unavailable,
        // Class 08: connection exceptions.
        s if s.starts_with("08") => Class::Unavailable,
        _ => Class::Failed,
    }
}

/// `e` with its causes, one line: tokio-postgres's own Display says only
/// the kind ("db error"), the server's words are in the source.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string().replace('\n', " "));
        cause = c.source();
    }
    out
}

/// A failed statement while doing `what`.
pub(crate) fn storage(what: &str, e: &tokio_postgres::Error) -> StorageError {
    let text = format!("PostgreSQL, {what}: {}", chain(e));
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let class = match e.code() {
        Some(code) => class(code.code()),
        None if e.is_closed() || io || unreachable_kind(&e.to_string()) => Class::Unavailable,
        None => Class::Failed,
    };
    match class {
        Class::Unavailable => StorageError::Unavailable(text),
        Class::Conflict => StorageError::Conflict(text),
        Class::Failed => StorageError::Failed(text),
    }
}

/// tokio-postgres's Display of an error without a cause is its kind; these
/// are the server out of reach (a refused or timed-out connect, a failed
/// TLS handshake, a dropped connection), unlike a column that does not
/// convert, which is a bug.
fn unreachable_kind(kind: &str) -> bool {
    matches!(
        kind,
        "error connecting to server"
            | "timeout waiting for server"
            | "error performing TLS handshake"
            | "connection closed"
            | "error communicating with the server"
    )
}

/// No connection from the pool for `what`.
pub(crate) fn pool(what: &str, e: deadpool_postgres::PoolError) -> StorageError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => storage(what, &e),
        PoolError::Timeout(_) => {
            StorageError::Unavailable(format!("PostgreSQL, {what}: no connection to the database within its timeout"))
        }
        PoolError::Closed => StorageError::Unavailable(format!("PostgreSQL, {what}: the connection pool is closed")),
        other => StorageError::Failed(format!("PostgreSQL, {what}: {}", chain(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_what_the_client_should_do() {
        assert_eq!(class("23505"), Class::Conflict);
        for transient in ["25006", "40001", "40P01", "55P03", "57014", "57P01", "57P03", "53300", "08006", "08001"] {
            assert_eq!(class(transient), Class::Unavailable, "{transient}");
        }
        // A foreign key, a syntax error, a missing table: a bug or a wrong
        // database, not worth a retry.
        for failed in ["23503", "42601", "42P01", "22P02"] {
            assert_eq!(class(failed), Class::Failed, "{failed}");
        }
    }

    #[test]
    fn a_chain_keeps_every_cause_on_one_line() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("ERROR: boom\nDETAIL: why"));
        assert_eq!(chain(&e), "db error: ERROR: boom DETAIL: why");
    }
}
