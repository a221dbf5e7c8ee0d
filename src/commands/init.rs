//! `certforge init`: a self-signed CA with its key and an empty CRL.

use anyhow::Result;
use time::OffsetDateTime;

use super::common::{load_template, usage, KeyChoice};
use super::report;
use crate::cli::InitArgs;
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::constraints::{effective, Subtree};
use crate::pki::crl::CrlState;
use crate::pki::issue::{self, CertSpec};
use crate::pki::names::shell_word;
use crate::pki::names::EntryName;
use crate::pki::profile::Kind;
use crate::pki::template::TemplateKind;
use crate::pki::to_pem;

/// Runs `init`.
pub fn run(depot: &Depot, args: &InitArgs) -> Result<()> {
    if let Some(preset) = args.local {
        return super::local_ca::run(depot, args, preset);
    }
    let name = EntryName::new(&args.common_name).map_err(|e| usage(format!("--common-name: {e}")))?;
    let template = load_template(args.template.as_deref(), &[TemplateKind::Ca], "init")?;
    let subject_args =
        template.as_ref().map_or_else(|| args.subject.clone(), |t| args.subject.with_defaults(&t.subject));
    let subject = subject_args.dn(Some(args.common_name.clone()))?;
    for d in &args.permit_domain {
        Subtree::parse(d).map_err(|why| usage(format!("--permit-domain {d:?}: {why}")))?;
    }
    if let Some(url) = &args.crl_url {
        crate::pki::crl::check_crl_url(url).map_err(|e| usage(format!("--crl-url: {e}")))?;
    }
    // A template's crl_url unless the command line gives one.
    let crl_url = args.crl_url.clone().or_else(|| template.as_ref().and_then(|t| t.crl_url.clone()));
    let request = args.validity.request().map_err(|e| usage(e.to_string()))?;
    let key_choice = match template.as_ref().and_then(|t| t.key_type) {
        Some(spec) if args.key.unset() => KeyChoice::Generate(spec),
        _ => args.key.choice(4096)?,
    };

    // Refuse before the (possibly slow) key generation.
    let _lock = depot.lock()?;
    for ext in ["key", crate::authority::keys::URI_EXT, "crt", "crl", "crl-url"] {
        if depot.exists(&name, ext) {
            anyhow::bail!(
                "a CA named {:?} already exists ({} is there); certforge never overwrites a CA. Choose another --common-name or move the old files aside",
                args.common_name,
                depot.path(&name, ext).display()
            );
        }
    }

    // Ask for a passphrase (at a terminal only) before a slow RSA keygen;
    // a key on a token has its PIN instead.
    let key_file = name.file("key");
    let passphrase = key_choice.passphrase(&args.pass, &key_file)?;
    let new_key = key_choice.obtain_any(&args.pass)?;
    let key = &new_key.key;
    let now = OffsetDateTime::now_utc();
    let kind = match template {
        // The command line's --path-length and --permit-domain override the template's.
        Some(mut t) => {
            if args.exclude_path_length {
                t.path_len = None;
            } else if args.path_length.is_some() {
                t.path_len = args.path_length;
            }
            if !args.permit_domain.is_empty() {
                t.permit_domains = args.permit_domain.clone();
            }
            Kind::Custom { template: Box::new(t), root: true }
        }
        None => Kind::Root {
            path_len: if args.exclude_path_length { None } else { args.path_length },
            permit_domains: args.permit_domain.clone(),
        },
    };
    let validity =
        request.resolve(now, kind.default_lifetime()).map_err(|e| usage(e.naming(super::flags::validity)))?;
    let kind_path_len = kind.template().path_len;
    let permit = kind.template().permit_domains;
    let cert_spec = CertSpec::new(subject, Vec::new(), kind, validity);
    let cert_der = issue::self_signed(&cert_spec, key)?;

    let (key_write, key_label) = new_key.depot_write(depot, &name, passphrase.as_deref().map(String::as_str))?;
    let key_line = new_key.key_line(passphrase.is_some());
    let ca = CaSigner::new(cert_der.clone(), new_key.key, &name.file("crt"), &key_file)?;
    let crl_der = CrlState::default().sign(&ca, now)?;
    let cert_pem = to_pem("CERTIFICATE", &cert_der);

    depot.ensure_dir()?;
    let mut files = vec![(key_label, key_write.path.clone())];
    let mut writes = vec![
        key_write,
        Write1 {
            path: depot.path(&name, "crt"),
            bytes: (cert_pem.clone().into_bytes()).into(),
            mode: PUBLIC_MODE,
            replace: false,
        },
        Write1 {
            path: depot.path(&name, "crl"),
            bytes: to_pem("X509 CRL", &crl_der).into_bytes().into(),
            mode: PUBLIC_MODE,
            replace: false,
        },
    ];
    files.extend([("certificate", depot.path(&name, "crt")), ("CRL", depot.path(&name, "crl"))]);
    if let Some(url) = &crl_url {
        writes.push(Write1 {
            path: depot.path(&name, "crl-url"),
            bytes: format!("{url}\n").into_bytes().into(),
            mode: PUBLIC_MODE,
            replace: false,
        });
        files.push(("CRL URL", depot.path(&name, "crl-url")));
    }
    depot::write_all(&writes)?;

    let mut details = vec![key_line];
    if let Some(n) = kind_path_len {
        details.push(format!("pathLen: {n} (at most {n} intermediate CA(s) below it)"));
    }
    if !permit.is_empty() {
        let (subtrees, added) = effective(&permit);
        let list: Vec<String> = subtrees.iter().map(ToString::to_string).collect();
        details.push(format!(
            "name constraints (RFC 5280 §4.2.1.10): it may only issue for {} (a DNS name covers itself and every name below it)",
            list.join(", ")
        ));
        if added {
            details.push(
                "the loopback ranges IP:127.0.0.0/8 and IP:::1/128 were added: with DNS names alone, every IP address would stay unconstrained; give --permit-domain with an IP range to choose others".into(),
            );
        }
    }
    if let Some(url) = &crl_url {
        details.push(format!("CRL distribution point: {url}, in every certificate it issues"));
    }
    report::print(&report::Made {
        what: format!("CA {:?}", args.common_name),
        details,
        files,
        not_after: Some(validity.not_after),
        now,
    });
    eprintln!(
        "Next: certforge --depot-path {} request-cert --domain <host>",
        shell_word(&depot.root().display().to_string())
    );
    if args.stdout {
        super::common::print_stdout(&cert_pem)?;
    }
    Ok(())
}
