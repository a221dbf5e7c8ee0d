//! The ACME server's protocol core (RFC 8555), free of sockets and files:
//! request signatures (`jws`), the problem documents every error becomes
//! (`problem`), nonces, the objects and their JSON (`model`), what may be
//! certified (`policy`), where state lives (`store`), and the request
//! handling itself (`engine`), which reaches the depot only through its
//! `Issuer` and challenge checks only through its `Validator`. Issue 13
//! builds `certforge serve` (HTTP, TLS, SQLite, validators) on it.

pub mod ari;
pub mod eab;
pub mod engine;
pub mod jws;
pub mod model;
pub mod nonce;
pub mod policy;
pub mod problem;
pub mod store;
