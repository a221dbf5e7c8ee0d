//! One error type for every store of the CA's state: the depot files of
//! [`crate::authority`]'s state and the ACME server's [`crate::acme`] store.
//! One type for both lets a single database implementation serve as the
//! CA's register and as the ACME store over one connection pool.

/// Why a store could not answer. What the caller does next depends on the
/// variant, never on the message: a front end answers `Unavailable` with
/// "try again later" (HTTP 503 and Retry-After, RFC 9110 §15.6.4), and every
/// other variant as an internal error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The store cannot be reached now (a database down, a lock not taken in
    /// time); the same request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The change collides with one already made: a serial already taken,
    /// a record already claimed by another writer.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored record exists but cannot be read back (a file or row that
    /// does not parse, a CRL whose signature does not verify).
    #[error("{what} is damaged: {detail}")]
    Damaged { what: String, detail: String },
    /// Any other read or write failure (a full disk, a permission denied).
    #[error("{0}")]
    Failed(String),
}

impl StorageError {
    /// A failed read or write of `what`, keeping the cause's words.
    pub fn failed(what: impl std::fmt::Display, cause: impl std::fmt::Display) -> Self {
        StorageError::Failed(format!("{what}: {cause}"))
    }

    /// Whether the same request may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_worth_retrying() {
        assert!(StorageError::Unavailable("db down".into()).is_transient());
        assert!(!StorageError::Conflict("serial taken".into()).is_transient());
        assert!(!StorageError::failed("writing x", "disk full").is_transient());
        let damaged = StorageError::Damaged { what: "ca.crl".into(), detail: "bad signature".into() };
        assert_eq!(damaged.to_string(), "ca.crl is damaged: bad signature");
    }
}
