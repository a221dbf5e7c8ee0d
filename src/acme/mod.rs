//! The ACME server's protocol core (RFC 8555), free of I/O: request
//! signatures (`jws`) and the problem documents every error becomes
//! (`problem`). Issue 13 builds `certforge serve` on it.

pub mod jws;
pub mod model;
pub mod nonce;
pub mod policy;
pub mod problem;
