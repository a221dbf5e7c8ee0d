//! certforge: a certstrap-compatible private CA for development, CI and
//! staging. This is its library; the `certforge` command is a binary built
//! on it. The pure certificate logic lives in [`pki`]; [`depot`] is the only
//! module that touches the depot on disk, and [`trust`] the only one that
//! changes the machine's trust stores. [`authority`] is what a CA does with
//! its depot (load, issue, archive, revoke, list), and [`acme`] with
//! [`serve`] is the ACME server.
//!
//! A Rust test suite makes its fixtures in memory with [`Ca`] and [`Leaf`]
//! (see [`api`]). Below them, the core needs no files either:
//!
//! ```
//! use certforge::pki::ca::CaSigner;
//! use certforge::pki::csr::{make_csr, parse_csr};
//! use certforge::pki::issue::{self, CertSpec};
//! use certforge::pki::keys::{KeySpec, PrivateKey};
//! use certforge::pki::profile::{Kind, LeafProfile};
//! use certforge::pki::san::San;
//! use certforge::pki::subject::Subject;
//! use certforge::pki::validity::{Expiry, ValidityRequest};
//!
//! let now = time::OffsetDateTime::now_utc();
//! let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 day")?)?;
//! let dn = |cn: &str| Subject { common_name: Some(cn.into()), ..Default::default() }.to_dn();
//!
//! // A root CA.
//! let ca_key = PrivateKey::generate(KeySpec::EcdsaP256)?;
//! let root = Kind::Root { path_len: None, permit_domains: vec![] };
//! let ca_spec = CertSpec::new(dn("Test CA")?, vec![], root, validity);
//! let ca_der = issue::self_signed(&ca_spec, &ca_key)?;
//! let ca = CaSigner::new(ca_der, ca_key, "Test CA", "Test CA key")?;
//!
//! // A server key and CSR, signed by the CA.
//! let key = PrivateKey::generate(KeySpec::EcdsaP256)?;
//! let sans = vec![San::domain("localhost")?, San::ip("127.0.0.1")?];
//! let csr = parse_csr(&make_csr(&dn("localhost")?, &sans, &key)?, "in memory")?;
//! let server = Kind::Leaf { profile: LeafProfile::Server, code_signing: false };
//! let spec = CertSpec::from_csr(&csr, server, validity);
//! let cert_der = issue::signed_by(&spec, &csr.spki_der, &ca)?;
//!
//! let pem = certforge::pki::to_pem("CERTIFICATE", &cert_der);
//! assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod acme;
pub mod api;
pub mod authority;
pub mod depot;
pub mod fuzz;
pub mod pkcs11;
pub mod pki;
#[cfg(feature = "server")]
pub mod serve;
pub mod storage;
pub mod sys;
pub mod trust;

pub use api::{Ca, Issued, Leaf};
pub use pki::keys::KeySpec;
pub use pki::validity::Expiry;
