//! certforge: a certstrap-compatible private CA for development, CI and
//! staging. The pure certificate logic lives in [`pki`]; [`depot`] is the
//! only module that touches the disk; [`commands`] wires them to the CLI.

pub mod cli;
pub mod commands;
pub mod depot;
pub mod pki;
