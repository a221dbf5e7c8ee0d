//! `certforge quickstart`: the files of the gRPC TLS guide's openssl script, in one
//! command, from the plan in `templates/plans/quickstart.toml`, followed by
//! which file goes to which parameter in Python, Go, Ruby and Rust. With
//! `--local`, the plan's CA becomes a sealed local CA (see `local_ca`):
//! ca.crt is a name-constrained root to trust, and "ca Issuing" signs.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use time::OffsetDateTime;

use super::apply::{execute, execute_with, report, Change, Run, Seed, Summary};
use super::common::{print_stdout, read_key, refuse_key_on_terminal, usage, warn};
use super::inputs::read_certs;
use super::local_ca::{self, LocalSpec};
use crate::authority::keys::CaKeySource;
use crate::authority::local::{self, SEALED};
use crate::cli::QuickstartArgs;
use crate::depot::{read_file, Depot};
use crate::pki::ca::CaSigner;
use crate::pki::constraints::{effective, LocalPreset, NameConstraints};
use crate::pki::names::EntryName;
use crate::pki::names::{sh_quote, shell_word};
use crate::pki::plan::{Options, Plan, PlanEntry, Role};
use crate::pki::san::{San, SanField};
use crate::pki::subject::Subject;
use crate::pki::validity::BACKDATE;

const PLAN: &str = include_str!("../../templates/plans/quickstart.toml");
const USAGE: &str = include_str!("../../templates/quickstart-usage.txt");

/// Runs `quickstart`.
pub fn run(depot: &Depot, args: &QuickstartArgs) -> Result<()> {
    let opts = Run::from_args(&args.run)?;
    // Refused before anything is made, so the same command with its
    // output redirected is all it takes.
    if args.print_env && !opts.json && !opts.dry_run {
        refuse_key_on_terminal(args.force, "--print-env's output", "")?;
    }
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
        let san = San::domain(h).map_err(|e| usage(e.naming(quickstart_flag)))?;
        if !server.sans.contains(&san) {
            server.sans.push(san);
        }
    }
    for ip in &args.ip {
        let san = San::ip(ip).map_err(|e| usage(e.naming(quickstart_flag)))?;
        if !server.sans.contains(&san) {
            server.sans.push(san);
        }
    }
    let sans = server.sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let dropped = dropped_names(depot, &server.sans);
    let (summary, notes, chain_ext) = match args.local {
        None if depot.exists(&EntryName::new("ca")?, SEALED) => {
            return Err(usage(format!(
                "{} is a local CA made by `quickstart --local`; run `quickstart --local` again for this depot",
                depot.root().join("ca.crt").display()
            )))
        }
        None => (execute(depot, &plan, &opts)?, Vec::new(), "crt"),
        Some(preset) => {
            let (summary, notes) = local(depot, plan, &opts, preset)?;
            (summary, notes, "fullchain.crt")
        }
    };
    report(&summary, &opts)?;
    if !dropped.is_empty() && summary.reissued.iter().any(|c| c.name == "server") {
        warn(&keep_names_hint(depot, args, &dropped, opts.dry_run));
    }
    if opts.json || opts.dry_run {
        return Ok(());
    }
    if !opts.quiet {
        notes.iter().for_each(|n| eprintln!("{n}"));
    }
    let dir = depot.root().display().to_string();
    if args.print_env {
        let pem = |stem: &str, ext: &str| -> Result<String> {
            let bytes = read_file(&depot.root().join(format!("{stem}.{ext}")))?;
            let text = String::from_utf8(bytes).map_err(|_| anyhow!("{stem}.{ext} is not text"))?;
            Ok(sh_quote(&text))
        };
        let mut out = String::new();
        for (var, stem, ext) in [
            ("TLS_SERVER_CERT", "server", chain_ext),
            ("TLS_SERVER_KEY", "server", "key"),
            ("TLS_CLIENT_CERT", "client", chain_ext),
            ("TLS_CLIENT_KEY", "client", "key"),
            ("TLS_ROOT_CA", "ca", "crt"),
        ] {
            out.push_str(&format!("export {var}={}\n", pem(stem, ext)?));
        }
        return print_stdout(&out);
    }
    // Under the intermediate, each peer must send its chain: the
    // fullchain files hold leaf + "ca Issuing" (+ the root, which peers
    // ignore), so that is what goes where the guide puts server.crt.
    let usage_text = USAGE.replace("server.crt", &format!("server.{chain_ext}"));
    let usage_text = usage_text.replace("client.crt", &format!("client.{chain_ext}"));
    print_stdout(&usage_text.replace("{dir}", &dir).replace("{sans}", &sans))
}

/// The names the depot's server.crt has that `want` lacks: those an
/// earlier `--host` or `--ip` added, which this run would drop.
fn dropped_names(depot: &Depot, want: &[San]) -> Vec<San> {
    let Ok(der) = read_certs(&depot.root().join("server.crt")).map(|mut c| c.swap_remove(0)) else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else { return Vec::new() };
    crate::pki::san::of_cert(&cert).into_iter().filter(|s| !want.contains(s)).collect()
}

/// Which names the re-issued server.crt no longer has, and the command
/// that keeps them: this run's own flags plus a `--host`/`--ip` for each.
fn keep_names_hint(depot: &Depot, args: &QuickstartArgs, dropped: &[San], dry_run: bool) -> String {
    let value = |s: &San| match s {
        San::Dns(d) => d.clone(),
        San::Ip(ip) => ip.to_string(),
        other => other.to_string(),
    };
    let shown: Vec<String> = dropped.iter().map(value).collect();
    let mut line = format!("certforge --depot-path {} quickstart", shell_word(&depot.root().display().to_string()));
    let hosts = args.host.iter().cloned().chain(dropped.iter().filter_map(|s| match s {
        San::Dns(d) => Some(d.clone()),
        _ => None,
    }));
    let ips = args.ip.iter().cloned().chain(dropped.iter().filter_map(|s| match s {
        San::Ip(ip) => Some(ip.to_string()),
        _ => None,
    }));
    for (flag, value) in hosts.map(|h| ("--host", h)).chain(ips.map(|i| ("--ip", i))) {
        line.push_str(&format!(" {flag} {}", shell_word(&value)));
    }
    match args.local {
        Some(LocalPreset::Loopback) => line.push_str(" --local"),
        Some(LocalPreset::Lan) => line.push_str(" --local=lan"),
        None => {}
    }
    format!(
        "server.crt {} without {}, which an earlier --host or --ip added; to keep {}, pass {} again: {line}",
        if dry_run { "would be re-issued" } else { "was re-issued" },
        shown.join(", "),
        if dropped.len() == 1 { "it" } else { "them" },
        if dropped.len() == 1 { "it" } else { "them" },
    )
}

/// `quickstart --local`: the plan's [[ca]] becomes a sealed local CA,
/// made (or found, on a second run) under the depot lock, and the leaves
/// are signed by its intermediate. Also returns the lines to say once the
/// summary is out.
fn local(depot: &Depot, mut plan: Plan, opts: &Run, preset: LocalPreset) -> Result<(Summary, Vec<String>)> {
    if opts.seed.is_some() {
        return Err(usage("--local and --deterministic-seed do not mix: anyone with the seed could rebuild the root key that --local destroys; use one or the other"));
    }
    let at = plan
        .entries
        .iter()
        .position(|e| e.role == Role::Root)
        .ok_or_else(|| anyhow!("the quickstart plan has no CA"))?;
    let ca = plan.entries.remove(at);
    let permit = preset.subtrees();
    let constraints = NameConstraints { permitted: effective(&permit).0, excluded: Vec::new() };
    let issuing = EntryName::new(&local::issuing_name(ca.name.as_str()))?;
    for e in &mut plan.entries {
        if let Some(why) = e.sans.iter().find_map(|s| constraints.violation(s)) {
            return Err(usage(format!(
                "{why}: a --local CA may only sign names of its preset; use --local=lan for private networks, or a name under .test"
            )));
        }
        e.issuer = Some(issuing.clone());
    }
    let mut leak_line = None;
    let summary =
        execute_with(depot, &plan, opts, |now| seed(depot, &ca, &issuing, permit, opts, now, &mut leak_line))?;
    let notes = leak_line
        .into_iter()
        .chain([format!(
            "{} is the root to trust (certforge trust install --CA ca); its key was never written, and {:?} signs.",
            depot.path(&ca.name, "crt").display(),
            local::issuing_name(ca.name.as_str())
        )])
        .collect();
    Ok((summary, notes))
}

/// The local CA for `quickstart --local`: the one a previous run made, or a
/// new one (its files then join the plan's atomic write).
fn seed(
    depot: &Depot,
    ca: &PlanEntry,
    issuing: &EntryName,
    permit: Vec<String>,
    opts: &Run,
    now: OffsetDateTime,
    leak_line: &mut Option<String>,
) -> Result<Seed> {
    let change = |name: &str| Change { name: name.to_string(), reason: None };
    let names = vec![change(ca.name.as_str()), change(issuing.as_str())];
    if depot.exists(&ca.name, SEALED) {
        let files = crate::authority::load::ca_files(depot, issuing)
            .map_err(|e| super::sign::load_error(depot, issuing.as_str(), e))?;
        files.warnings.iter().for_each(|w| warn(w));
        let (cert_der, crt_what, source) = (files.cert_der, files.crt_what, files.key);
        let CaKeySource::File(key_path) = source else {
            bail!(
                "{} names a key on a PKCS#11 token; quickstart's local CA keeps its issuing key in a file",
                source.path().display()
            );
        };
        let key = read_key(&key_path, &mut opts.passphrase.clone())?;
        let signer =
            CaSigner::new(cert_der, key, &crt_what, &key_path.display().to_string()).map_err(super::flags::worded)?;
        let root_der = read_certs(&depot.path(&ca.name, "crt"))?.swap_remove(0);
        return Ok(Seed {
            signers: vec![(issuing.clone(), Arc::new(signer))],
            above: vec![root_der],
            summary: Summary { kept: names, ..Summary::default() },
            ..Seed::default()
        });
    }
    if depot.exists(&ca.name, "crt") {
        bail!(
            "{} is a CA from `quickstart` without --local; it has a key on disk and no name constraints, so it cannot become a local CA. Use another --depot-path for --local",
            depot.path(&ca.name, "crt").display()
        );
    }
    local_ca::refuse_existing(depot, ca.name.as_str())?;
    let not_after = ca.validity.after(now).ok_or_else(|| anyhow!("the quickstart CA's validity runs past 9999"))?;
    let spec = LocalSpec {
        root: ca.name.as_str().to_string(),
        root_cn: ca.cn.clone(),
        subject: Subject { common_name: None, ..Subject::default() },
        permit,
        key: ca.key,
        validity: crate::pki::validity::Validity { not_before: now - BACKDATE, not_after },
        passphrase: opts.passphrase.clone(),
    };
    let made = local_ca::build(depot, spec, now)?;
    *leak_line = Some(made.leak_line);
    Ok(Seed {
        signers: vec![(made.issuing_name, Arc::new(made.issuing))],
        above: vec![made.root_der],
        writes: made.writes,
        summary: Summary { made: names, ..Summary::default() },
    })
}

/// quickstart's flags for the SANs it takes: `--host` for host names (DNS
/// names or addresses) and `--ip`.
fn quickstart_flag(field: SanField) -> &'static str {
    match field {
        SanField::Ip => "--ip",
        _ => "--host",
    }
}
