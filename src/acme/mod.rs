//! The ACME server's protocol core (RFC 8555), free of sockets and files,
//! along the roles Pebble names: the web front end (`wfe`: routing, JWS
//! authentication, the handlers), the state changes of orders,
//! authorizations and challenges (`orders`, pure functions), validation
//! (`va`), issuance (`ca`) and storage (`db`). Around them: request
//! signatures (`jws`), problem documents (`problem`), nonces, rate limits
//! (`limits`), the objects
//! and their JSON (`model`), and what may be certified (`policy`).
//! `crate::serve` puts it on the network and on the depot.

pub mod ari;
pub mod ca;
pub mod db;
pub mod eab;
pub mod jws;
pub mod limits;
pub mod model;
pub mod nonce;
pub mod orders;
pub mod policy;
pub mod problem;
pub mod va;
pub mod wfe;

pub use ca::{Issuer, MemIssuer};
pub use db::{MemStore, Store};
pub use va::{SkipValidation, Validator};
pub use wfe::{Engine, HttpRequest, Reply, Route};
