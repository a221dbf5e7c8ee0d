//! The authority: what a CA *does* with its depot, shared by the commands,
//! the ACME server and the installers. It loads a CA (a key file, a PKCS#11
//! token key, or a sealed local CA and its issuing CA), issues a leaf into
//! the depot with its chain files, archives what a re-issue replaces,
//! revokes into the CRL, finds and lists depot entries, and renders their
//! expiry as Prometheus gauges.
//!
//! Below it: [`crate::pki`] (pure certificate logic) and [`crate::depot`]
//! (the only module that reads and writes the depot). It never prints and
//! never names a command-line flag: warnings come back as data, and the
//! binary words them.

pub mod archive;
pub mod chain;
pub mod expiry;
pub mod issue;
pub mod keys;
pub mod listing;
pub mod load;
pub mod local;
pub mod state;

use crate::pki::keys::PassphraseSource;

/// What opening a CA's key may need: the passphrase of a key file, and
/// where the PKCS#11 module and PIN of a token key come from. The binary
/// builds it from its flags; a key that needs neither ignores it.
pub struct Unlock {
    /// Asked only when a key file turns out to be encrypted.
    pub passphrase: Box<dyn PassphraseSource + Send>,
    pub token: crate::pkcs11::Options,
}

impl Unlock {
    /// No passphrase and the default token options: for unencrypted key
    /// files, and for tests.
    pub fn none() -> Unlock {
        Unlock { passphrase: Box::new(None::<zeroize::Zeroizing<String>>), token: crate::pkcs11::Options::default() }
    }
}
