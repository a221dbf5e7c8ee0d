//! The authority: what a CA *does* with its depot, shared by the commands,
//! the ACME server and the installers. It loads a CA (a key file, a PKCS#11
//! token key, or a sealed local CA and its issuing CA), issues a leaf into
//! the depot with its chain files, archives what a re-issue replaces,
//! revokes into the CRL, and finds and lists depot entries.
//!
//! Below it: [`crate::pki`] (pure certificate logic) and [`crate::depot`]
//! (the only module that reads and writes the depot). It never prints and
//! never names a command-line flag: warnings come back as data, and the
//! binary words them.

pub mod listing;
