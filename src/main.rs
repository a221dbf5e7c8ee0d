//! The certforge binary: parse, run, print the error, pick the exit code.

use std::process::ExitCode;

// The command line, the commands and the installers are the binary's own
// modules; everything below them comes from the library, under the same
// paths (`crate::pki`, `crate::authority`, …) the library uses itself.
mod cli;
mod commands;
mod install;

#[allow(unused_imports)]
use certforge::{acme, api, authority, depot, pkcs11, pki, serve, storage, sys, trust};

use cli::{normalize_args, Cli};
use commands::common::{self, Exit, UsageError};

fn main() -> ExitCode {
    // A shell asking for completions (COMPLETE=bash certforge -- ...) is
    // answered here and exits; otherwise this returns at once.
    answer_if_asked();
    let cli = Cli::parse_args(normalize_args(std::env::args_os().collect()));
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Exit>().is_some() => ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.0)),
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            common::error(&msg);
            // 2 for a mistake in the call, as clap does; 1 for a failure.
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Answers a completion request when the shell made one (`COMPLETE` is
/// set) and exits; otherwise returns at once, having built nothing, so a
/// normal run pays only for one environment lookup.
fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var(install::completion::VAR)
        .complete();
}
