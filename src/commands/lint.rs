//! `certforge lint`: warn about what real TLS clients will reject or
//! mishandle, for given certificates or the whole depot.

use anyhow::Result;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::{print_stdout, Exit};
use super::inputs::{label, read_certs, resolve};
use crate::authority::listing::depot_certs;
use crate::cli::LintArgs;
use crate::depot::Depot;
use crate::pki::lint::{lint, Finding, Severity};

#[derive(Serialize)]
struct Report {
    file: String,
    findings: Vec<Finding>,
}

/// Runs `lint`.
pub fn run(depot: &Depot, args: &LintArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let depot_ders: Vec<Vec<u8>> = depot_certs(depot).into_iter().map(|(_, d)| d).collect();
    let targets: Vec<(String, Vec<u8>)> = if args.all {
        depot_certs(depot).into_iter().map(|(p, d)| (label(&p), d)).collect()
    } else {
        let mut out = Vec::new();
        for t in &args.targets {
            let p = resolve(depot, t, &["crt"])?;
            for (i, der) in read_certs(&p)?.into_iter().enumerate() {
                let name = if i == 0 { label(&p) } else { format!("{} #{}", label(&p), i + 1) };
                out.push((name, der));
            }
        }
        out
    };
    if let (true, Some(missing)) = (targets.is_empty(), super::inputs::missing_depot(depot)) {
        return Err(super::common::usage(missing));
    }
    if targets.is_empty() {
        return Err(super::common::usage(format!(
            "the depot {} holds no certificates to lint",
            depot.root().display()
        )));
    }
    let mut reports = Vec::new();
    for (name, der) in &targets {
        let findings = lint(der, &depot_ders, now).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        reports.push(Report { file: name.clone(), findings });
    }
    let worst = reports.iter().flat_map(|r| r.findings.iter().map(|f| f.severity)).max();
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&reports)? + "\n"))?;
    } else {
        let mut s = String::new();
        for r in &reports {
            if r.findings.is_empty() {
                s.push_str(&format!("{}: ok\n", r.file));
            }
            for f in &r.findings {
                let sev = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                s.push_str(&format!("{}: {sev}: {}\n", r.file, f.message));
            }
        }
        let (e, w) = reports.iter().flat_map(|r| &r.findings).fold((0, 0), |(e, w), f| {
            if f.severity == Severity::Error {
                (e + 1, w)
            } else {
                (e, w + 1)
            }
        });
        s.push_str(&format!("{} certificate(s): {e} error(s), {w} warning(s)\n", reports.len()));
        print_stdout(&s)?;
    }
    match worst {
        Some(Severity::Error) => Err(Exit(1).into()),
        Some(Severity::Warning) if args.strict => Err(Exit(1).into()),
        _ => Ok(()),
    }
}
