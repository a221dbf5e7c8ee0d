//! `certforge serve`: the ACME protocol core (`crate::acme`) put on the
//! network and on the depot. Everything here does I/O: the HTTPS server,
//! the store in the depot, the challenge checks and the issuer that writes
//! depot entries.
pub mod sqlite;
