//! `certforge quickstart`: the files of the gRPC TLS guide's openssl script, in one
//! command, from the plan in `templates/plans/quickstart.toml`, followed by
//! which file goes to which parameter in Python, Go, Ruby and Rust.

use anyhow::{anyhow, Result};

use super::apply::{execute, report, Run};
use super::common::{print_stdout, usage};
use crate::cli::QuickstartArgs;
use crate::depot::{read_file, Depot};
use crate::pki::plan::{Options, Plan};
use crate::pki::san::San;

const PLAN: &str = include_str!("../../templates/plans/quickstart.toml");
const USAGE: &str = include_str!("../../templates/quickstart-usage.txt");

/// Runs `quickstart`.
pub fn run(depot: &Depot, args: &QuickstartArgs) -> Result<()> {
    let opts = Run::from_args(&args.run)?;
    let mut plan = Plan::parse(
        PLAN,
        "templates/plans/quickstart.toml",
        &Options { deterministic: opts.seed.is_some(), load_template: &|p| Err(format!("no template {p}")) },
    )
    .map_err(|e| anyhow!("the built-in quickstart plan is broken: {e}"))?;
    let server = plan
        .entries
        .iter_mut()
        .find(|e| e.name.as_str() == "server")
        .ok_or_else(|| anyhow!("the quickstart plan has no server"))?;
    for h in &args.host {
        let san = San::domain(h).map_err(|e| usage(e.to_string().replace("--domain", "--host")))?;
        if !server.sans.contains(&san) {
            server.sans.push(san);
        }
    }
    for ip in &args.ip {
        let san = San::ip(ip).map_err(|e| usage(e.to_string()))?;
        if !server.sans.contains(&san) {
            server.sans.push(san);
        }
    }
    let sans = server.sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let summary = execute(depot, &plan, &opts)?;
    report(&summary, &opts)?;
    if opts.json || opts.dry_run {
        return Ok(());
    }
    let dir = depot.root().display().to_string();
    if args.print_env {
        let pem = |stem: &str, ext: &str| -> Result<String> {
            let bytes = read_file(&depot.root().join(format!("{stem}.{ext}")))?;
            let text = String::from_utf8(bytes).map_err(|_| anyhow!("{stem}.{ext} is not text"))?;
            Ok(format!("'{}'", text.replace('\'', "'\\''")))
        };
        let mut out = String::new();
        for (var, stem, ext) in [
            ("TLS_SERVER_CERT", "server", "crt"),
            ("TLS_SERVER_KEY", "server", "key"),
            ("TLS_CLIENT_CERT", "client", "crt"),
            ("TLS_CLIENT_KEY", "client", "key"),
            ("TLS_ROOT_CA", "ca", "crt"),
        ] {
            out.push_str(&format!("export {var}={}\n", pem(stem, ext)?));
        }
        return print_stdout(&out);
    }
    print_stdout(&USAGE.replace("{dir}", &dir).replace("{sans}", &sans))
}
