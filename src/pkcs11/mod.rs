//! CA keys on PKCS#11 tokens (SoftHSM, YubiKey PIV through OpenSC, cloud
//! HSMs): the key never leaves the token, and certforge signs there through
//! the `cryptoki` crate.
//!
//! - [`uri`]: RFC 7512 URIs naming the key (pure; it lives in
//!   [`crate::pki::pkcs11_uri`], so that plans parse them without this module).
//! - [`public`]: the key's type and SubjectPublicKeyInfo from token
//!   attributes (pure).
//!
//! With the `pkcs11` feature (cryptoki), which the binary has:
//!
//! - `module`: which module to load (`--pkcs11-module`, the environment,
//!   the URI's module-path, then p11-kit-proxy, OpenSC and SoftHSM).
//! - `pin`: where the PIN comes from; it is wiped after login.
//! - `token`: finding the token and key, logging in, generating a key.
//! - `signer`: the key as rcgen's remote signing key (`TokenKey`).
//! - `raw`: the module's own C_Sign, for keys that take their PIN at
//!   each signature.

#[cfg(feature = "pkcs11")]
pub mod module;
#[cfg(feature = "pkcs11")]
pub mod pin;
pub mod public;
#[cfg(feature = "pkcs11")]
pub mod raw;
#[cfg(feature = "pkcs11")]
pub mod signer;
#[cfg(feature = "pkcs11")]
pub mod token;
pub use crate::pki::pkcs11_uri as uri;

#[cfg(feature = "pkcs11")]
pub use signer::TokenKey;
pub use uri::{is_pkcs11_uri, Pkcs11Uri};

use std::path::PathBuf;

/// Where the module and PIN come from, besides the URI.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--pkcs11-module` or `CERTFORGE_PKCS11_MODULE`.
    pub module: Option<PathBuf>,
    /// `--pin-file`.
    pub pin_file: Option<PathBuf>,
}

/// Why a token key cannot be used. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Uri(#[from] uri::UriError),
    #[error("no PKCS#11 module found (tried {tried}); give its path with --pkcs11-module PATH or CERTFORGE_PKCS11_MODULE, or install one (Debian: `apt install softhsm2` or `apt install opensc`)")]
    NoModule { tried: String },
    #[error("PKCS#11 module {path}: {detail}; check the path given by {source_name}{}", if path.contains("softhsm") { ", and that SOFTHSM2_CONF names a readable config whose tokendir exists" } else { "" })]
    ModuleLoad { path: String, detail: String, source_name: String },
    #[error("no token matching {wanted} (looked in {modules}); present: {seen}. Plug the device in, or fix token= in the URI (list tokens: pkcs11-tool --module {first} --list-token-slots)")]
    TokenAbsent { wanted: String, modules: String, first: String, seen: String },
    #[error("{count} tokens match {wanted} in {module} ({seen}); add token=LABEL or serial=… to the URI to say which")]
    TokenAmbiguous { wanted: String, module: String, count: usize, seen: String },
    #[error("token {token:?} needs its PIN: give it with --pin-file FILE, CERTFORGE_PKCS11_PIN, or pin-source=file:PATH in the URI (or run at a terminal to be asked)")]
    NeedPin { token: String },
    #[error("{what}: {detail}")]
    PinFile { what: String, detail: String },
    #[error("token {token:?}: wrong PIN ({tries}); nothing was signed")]
    WrongPin { token: String, tries: String },
    #[error("token {token:?}: the user PIN is locked after too many wrong tries; unblock it with the SO PIN (pkcs11-tool --unblock-pin, or softhsm2-util for SoftHSM)")]
    PinLocked { token: String },
    #[error("no private key {object} on token {token:?}; {seen}. Check object=/id= in the URI and that this is the token the key was made on; a deleted key cannot be made again (the CA certificate names it): restore it from a backup of the token, or start a new CA")]
    KeyNotFound { object: String, token: String, seen: String },
    #[error("{count} private keys match {object} on token {token:?} (ids {ids}); add id=… to the URI to say which")]
    KeyAmbiguous { object: String, token: String, count: usize, ids: String },
    #[error("the key {object} on token {token:?} is {found}, but {wanted} was asked for; drop --key-type/--curve/--key-bits to use it as it is, or name another object")]
    WrongKeyType { object: String, token: String, found: String, wanted: String },
    #[error("the key {object} on token {token:?} is {found}, which certforge cannot sign with; use ECDSA P-256/P-384, RSA 2048-4096 or Ed25519")]
    UnsupportedKey { object: String, token: String, found: String },
    #[error("token {token:?} cannot {action}: it lacks the mechanism {mechanism}; {advice} (the token lists its mechanisms: pkcs11-tool --module {module} --list-mechanisms)")]
    Mechanism { token: String, action: String, mechanism: String, module: String, advice: String },
    #[error("the key {object} on token {token:?} asks for the PIN at every signature (CKA_ALWAYS_AUTHENTICATE), and certforge cannot give it through the module {module}: {detail}. Name the token's own module with --pkcs11-module PATH (a YubiKey through OpenSC: /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so; SoftHSM: /usr/lib/softhsm/libsofthsm2.so); nothing was signed")]
    PerSignaturePin { object: String, token: String, module: String, detail: String },
    #[error("the key {object} on token {token:?} has no public key certforge can read: {detail}")]
    NoPublicKey { object: String, token: String, detail: String },
    #[error("token {token:?}: {action} failed: {detail}")]
    Token { token: String, action: String, detail: String },
}
