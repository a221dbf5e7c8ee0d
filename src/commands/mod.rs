//! One module per subcommand: each reads its arguments, calls the pure core
//! and the depot, and reports.

pub mod acme;
pub mod apply;
pub mod common;
pub mod completions;
pub mod database;
pub mod export;
pub mod flags;
pub mod init;
pub mod inputs;
pub mod inspect;
pub mod lint;
pub mod list;
pub mod local_ca;
pub mod man;
pub mod output;
pub mod pkcs11;
pub mod probe;
pub mod quickstart;
pub mod renew;
pub mod report;
pub mod request_cert;
pub mod revoke;
pub mod serve;
pub mod sign;
pub mod templates;
pub mod trust;
pub mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::depot::Depot;

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    let depot = Depot::new(&cli.depot_path);
    match &cli.command {
        Command::Init(a) => init::run(&depot, a),
        Command::RequestCert(a) => request_cert::run(&depot, a),
        Command::Sign(a) => sign::run(&depot, a),
        Command::Revoke(a) => revoke::run(&depot, a),
        Command::Inspect(a) => inspect::run(&depot, a),
        Command::Verify(a) => verify::run(&depot, a),
        Command::Lint(a) => lint::run(&depot, a),
        Command::Probe(a) => probe::run(&depot, a),
        Command::List(a) => list::run(&depot, a),
        Command::Renew(a) => renew::run(&depot, a),
        Command::Export(a) => export::run(&depot, a),
        Command::Templates { action } => templates::run(action),
        Command::Apply(a) => apply::run(&depot, a),
        Command::Quickstart(a) => quickstart::run(&depot, a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
        Command::Trust { action } => trust::run(&depot, action),
        Command::Serve(a) => serve::run(&depot, a),
        Command::Acme(a) => acme::run(&depot, a),
    }
}
