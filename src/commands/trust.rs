//! `certforge trust install|uninstall|status`: picks the CA, warns before
//! trusting one that could intercept any site, and reports per store. The
//! stores themselves are in `src/trust/`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::common::{note, print_stdout, usage, warn, Exit};
use super::inputs::{not_found, read_certs};
use super::local_ca::SEALED;
use crate::authority::listing::{depot_certs, Wanted};
use crate::cli::TrustAction;
use crate::depot::{self, read_file, Depot, Write1, PUBLIC_MODE};
use crate::pki::constraints::NameConstraints;
use crate::pki::names::{shell_word, EntryName};
use crate::pki::to_pem;
use crate::trust::exec::Host;
use crate::trust::{self, stores, Action, Ca, Outcome, State, Store};

/// The bundle of the system's roots and the CA, `NAME.bundle.pem`, for the
/// runtimes that replace their roots with one file, while the system
/// bundle does not hold the CA.
pub use crate::authority::listing::BUNDLE_EXT;

/// Runs `trust`.
pub fn run(depot: &Depot, action: &TrustAction) -> Result<()> {
    let (act, args) = match action {
        TrustAction::Install(a) => (Action::Install, a),
        TrustAction::Uninstall(a) => (Action::Uninstall, a),
        TrustAction::Status(a) => (Action::Status, a),
    };
    let (name, ca) = choose(depot, args.ca.as_deref())?;
    if act == Action::Install && !args.print_env {
        warn_if_unsafe(depot, &name, &ca)?;
    }
    let host = Host::detect();
    // Always in this order, whatever the flag's: the system store first, so
    // that on uninstall its Debian hook entry in cacerts is gone before the
    // Java store is looked at.
    let chosen: Vec<Store> = [Store::System, Store::Nss, Store::Java]
        .into_iter()
        .filter(|s| args.store.is_empty() || args.store.contains(s))
        .collect();
    let found = trust::find(&chosen, &host);
    let outcomes = trust::act(act, &ca, &found, args.dry_run, &host);
    // The bundle is written when it is asked for: by install, or by status
    // printing the lines that name it; a plain status only reads.
    let write = !args.dry_run && (act == Action::Install || (act == Action::Status && args.print_env));
    let (env, about) = runtime_env(depot, &name, &ca, &host, act, write)?;
    if args.print_env {
        if let Some(about) = &about {
            note(about);
        }
        print_stdout(&env)?;
    } else if args.json {
        let value = serde_json::json!({
            "ca": name,
            "file": ca.file,
            "sha256": ca.sha256,
            "dry_run": args.dry_run,
            "stores": outcomes,
            "env": env.trim_end(),
            "env_bundle": about,
        });
        print_stdout(&(serde_json::to_string_pretty(&value)? + "\n"))?;
    } else {
        let text = report(act, &Cmd::new(depot, &name), &ca, &outcomes, (&env, about.as_deref()), args.dry_run);
        if act == Action::Status {
            print_stdout(&text)?;
        } else {
            eprint!("{text}");
        }
    }
    if outcomes.iter().any(Outcome::failed) {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// The CA named by --CA, or the depot's only root; an intermediate is
/// refused, naming its root, since clients need the root in their store.
fn choose(depot: &Depot, raw: Option<&str>) -> Result<(String, Ca)> {
    let file = |name: &str| -> Result<PathBuf> {
        let n = EntryName::new(name).map_err(|e| usage(format!("--CA: {e}")))?;
        let path = depot.path(&n, "crt");
        Ok(std::path::absolute(&path).unwrap_or(path))
    };
    let name = match raw {
        Some(n) => n.to_string(),
        None => {
            // Each certificate is read once: the roots are the self-signed CAs.
            let roots: Vec<String> = depot_certs(depot)
                .into_iter()
                .filter(|(_, d)| X509Certificate::from_der(d).is_ok_and(|(_, c)| c.is_ca()) && self_signed(d))
                .filter_map(|(p, _)| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            let sealed: Vec<&String> =
                roots.iter().filter(|n| EntryName::new(n).is_ok_and(|e| depot.exists(&e, SEALED))).collect();
            match (roots.as_slice(), sealed.as_slice()) {
                ([], _) => {
                    if let Some(missing) = super::inputs::missing_depot(depot) {
                        return Err(usage(format!("no CA to trust: {missing}")));
                    }
                    return Err(usage(format!(
                        "the depot {} has no CA to trust; make one that is safe to trust: certforge --depot-path {} init --local --cn \"Dev CA\"",
                        depot.root().display(),
                        shell_word(&depot.root().display().to_string())
                    )));
                }
                ([one], _) => one.clone(),
                (_, [one]) => {
                    note(&format!("trusting {one:?}, the depot's local CA (name another with --CA)"));
                    (*one).clone()
                }
                (all, _) => {
                    return Err(usage(format!(
                        "the depot has several root CAs ({}); name the one to trust with --CA",
                        all.join(", ")
                    )))
                }
            }
        }
    };
    let path = file(&name)?;
    if !path.is_file() {
        return Err(not_found(depot, &name, Wanted::Ca, "trust takes a CA of the depot"));
    }
    let der = read_certs(&path)?.swap_remove(0);
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !cert.is_ca() {
        return Err(usage(format!("{} is not a CA certificate; trust the CA that issued it", path.display())));
    }
    if !self_signed(&der) {
        let root = depot_certs(depot)
            .into_iter()
            .find(|(_, d)| {
                X509Certificate::from_der(d).is_ok_and(|(_, c)| c.subject().as_raw() == cert.issuer().as_raw())
            })
            .map(|(p, _)| super::inputs::label(&p));
        return Err(usage(format!(
            "{name:?} is an intermediate CA; clients need the root in their store. Trust its root{}",
            root.map(|r| format!(" ({r}): certforge trust install --CA {}", r.trim_end_matches(".crt")))
                .unwrap_or_default()
        )));
    }
    // Shown by its CN ("Dev CA"), found by its file name ("Dev_CA").
    let shown = crate::pki::subject::common_name(cert.subject()).unwrap_or_else(|| name.clone());
    let ca = Ca::new(&shown, path, der);
    Ok((name, ca))
}

fn self_signed(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
}

/// Installing a CA whose key is in the depot and that may sign any name
/// works, but first says what that means.
fn warn_if_unsafe(depot: &Depot, name: &str, ca: &Ca) -> Result<()> {
    let entry = EntryName::new(name)?;
    if depot.exists(&entry, super::pkcs11::URI_EXT) {
        note(&format!(
            "{name:?} keeps its key on a PKCS#11 token ({}): nobody can copy it from the depot, but whoever holds the token and its PIN can sign for any name this CA may",
            depot.path(&entry, super::pkcs11::URI_EXT).display()
        ));
        return Ok(());
    }
    if !depot.exists(&entry, "key") {
        return Ok(());
    }
    let (_, cert) = X509Certificate::from_der(&ca.der).map_err(|e| anyhow!("{}: {e}", ca.file.display()))?;
    if NameConstraints::of(&cert).is_empty() {
        warn(&format!(
            "{name:?} has no name constraints and its key is {}: anyone who reads that file can intercept HTTPS to any site from this machine. For a CA that is safe to trust: certforge init --local --cn \"Dev CA\"",
            depot.path(&entry, "key").display()
        ));
    } else {
        note(&format!(
            "{name:?} is name-constrained, but its key is on disk and Java ignores name constraints on a root; `init --local` makes a root with no key"
        ));
    }
    Ok(())
}

/// The `export` line for Node, requests and gRPC core. Node adds
/// NODE_EXTRA_CA_CERTS to its own roots, so the CA file is right there;
/// requests (certifi) and gRPC core *replace* theirs with the file they are
/// given, and with the CA alone every call to a public site would fail. So
/// those two get the system bundle when it holds the CA, else a bundle of
/// the system's roots and the CA, written beside the CA in the depot (not
/// when `write` is false). Returns the line, and what that bundle is when
/// there is one.
fn runtime_env(
    depot: &Depot,
    name: &str,
    ca: &Ca,
    host: &Host,
    act: Action,
    write: bool,
) -> Result<(String, Option<String>)> {
    let vars = "REQUESTS_CA_BUNDLE and GRPC_DEFAULT_SSL_ROOTS_FILE_PATH";
    let replacing = format!("{vars} replace a runtime's roots");
    let system = stores::system_store(&host.os_release).map(|s| Path::new(s.bundle));
    let roots = system.map(trust::system::certs_in).unwrap_or_default();
    let Some(system) = system.filter(|_| !roots.is_empty()) else {
        // An uninstall prints no such line, so the warning would be noise.
        if act != Action::Uninstall {
            warn(&format!(
            "no system CA bundle was found{}, so {replacing} with {} alone, and Python requests and gRPC calls to public sites fail",
                system.map(|p| format!(" at {}", p.display())).unwrap_or_default(),
                ca.file.display(),
            ));
        }
        return Ok((stores::env_lines(&ca.file, None), None));
    };
    if roots.iter().any(|d| ca.is(d)) {
        return Ok((stores::env_lines(&ca.file, Some(system)), None));
    }
    let entry = EntryName::new(name).map_err(|e| usage(format!("--CA: {e}")))?;
    let path = depot.path(&entry, BUNDLE_EXT);
    let path = std::path::absolute(&path).unwrap_or(path);
    let pem: String = roots.iter().chain([&ca.der]).map(|d| to_pem("CERTIFICATE", d)).collect();
    let fresh = read_file(&path).is_ok_and(|b| b == pem.as_bytes());
    if write && !fresh {
        let written = depot.lock().and_then(|_lock| {
            let file = Write1 { path: path.clone(), bytes: pem.into_bytes().into(), mode: PUBLIC_MODE, replace: true };
            depot::write_all(&[file])
        });
        // The stores' report matters more than this file: say what it costs.
        if let Err(e) = written {
            warn(&format!(
                "{e:#}; so {replacing} with {} alone, and Python requests and gRPC calls to public sites fail. Run certforge as the depot's owner to write the bundle",
                ca.file.display()
            ));
            return Ok((stores::env_lines(&ca.file, None), None));
        }
    }
    let cmd = Cmd::new(depot, name);
    let about = format!(
        "{replacing} and the system bundle lacks {:?}, so they name {}{}: the system's {} roots and this CA; once `{}` puts it in the system bundle, that bundle is enough",
        ca.name,
        path.display(),
        if !write && !fresh {
            format!(", once written (by `{}` or `{}`)", cmd.line("trust install"), cmd.line("trust status --print-env"))
        } else {
            String::new()
        },
        roots.len(),
        cmd.line("trust install --store system"),
    );
    Ok((stores::env_lines(&ca.file, Some(&path)), Some(about)))
}

/// A certforge command line for this depot and CA that works as printed.
struct Cmd {
    depot: String,
    ca: String,
}

impl Cmd {
    fn new(depot: &Depot, ca: &str) -> Cmd {
        Cmd { depot: shell_word(&depot.root().display().to_string()), ca: shell_word(ca) }
    }

    /// `certforge --depot-path D SUBCOMMAND --CA NAME`.
    fn line(&self, subcommand: &str) -> String {
        format!("certforge --depot-path {} {subcommand} --CA {}", self.depot, self.ca)
    }
}

fn report(act: Action, cmd: &Cmd, ca: &Ca, outcomes: &[Outcome], env: (&str, Option<&str>), dry_run: bool) -> String {
    let mut s = format!("{:?} ({}, SHA-256 {})\n", ca.name, ca.file.display(), &ca.sha256);
    for o in outcomes {
        let state = match o.state {
            State::Trusted => "trusted",
            State::NotTrusted => "not trusted",
            State::Installed => "installed",
            State::AlreadyTrusted => "already trusted",
            State::Removed => "removed",
            State::NotThere => "not there",
            State::WouldInstall => "would install",
            State::WouldRemove => "would remove",
            State::NeedsRoot => "needs root",
            State::Unavailable => "skipped",
            State::Failed => "FAILED",
        };
        s.push_str(&format!("  {state:<15} {}\n", o.place));
        if let Some(d) = &o.detail {
            s.push_str(&format!("                  {d}\n"));
        }
        for c in &o.commands {
            s.push_str(&format!("                  $ {c}\n"));
        }
    }
    if dry_run {
        s.push_str("Dry run: nothing was changed.\n");
    }
    if act != Action::Uninstall {
        s.push_str("Runtimes that ignore the OS store:\n");
        s.push_str(&format!("  {}", env.0));
        if let Some(about) = env.1 {
            s.push_str(&format!("  ({about})\n"));
        }
        s.push_str(&format!("  (or: eval \"$({})\")\n", cmd.line("trust status --print-env")));
        let java = outcomes.iter().any(|o| {
            o.store == Store::Java && matches!(o.state, State::Trusted | State::Installed | State::AlreadyTrusted)
        });
        if java {
            s.push_str("  Java: trusted through its cacerts; no flag needed.\n");
        } else {
            s.push_str(&format!(
                "  Java: {}, or: certforge --depot-path {} export {} --format truststore --password changeit --out ca.p12\n        and run java -Djavax.net.ssl.trustStore=ca.p12 -Djavax.net.ssl.trustStorePassword=changeit\n",
                cmd.line("trust install --store java"),
                cmd.depot,
                cmd.ca
            ));
        }
    }
    s
}
