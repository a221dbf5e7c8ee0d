//! `certforge request-cert`: a private key and a CSR carrying the SANs.

use anyhow::Result;
use time::OffsetDateTime;

use super::common::{load_template, print_stdout, usage, warn, KeyChoice};
use super::report;
use crate::cli::RequestCertArgs;
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::csr::{make_csr, parse_csr};
use crate::pki::names::shell_word;
use crate::pki::names::EntryName;
use crate::pki::san::San;
use crate::pki::template::TemplateKind;
use crate::pki::to_pem;

/// Runs `request-cert`.
pub fn run(depot: &Depot, args: &RequestCertArgs) -> Result<()> {
    let sans = parse_sans(args)?;
    // Files are named after --cn, else the first --domain, --uri, --ip or
    // --email (certstrap: cn, domain, uri).
    let raw_name = args
        .common_name
        .as_deref()
        .or(args.domain.first().map(String::as_str))
        .or(args.uri.first().map(String::as_str))
        .or(args.ip.first().map(String::as_str))
        .or(args.email.first().map(String::as_str))
        .ok_or_else(|| {
            usage("give a --common-name (--cn) or at least one --domain, --ip, --uri or --email to name the request")
        })?;
    let name = EntryName::new(raw_name).map_err(|e| usage(format!("cannot name the files after {raw_name:?}: {e}")))?;

    // certstrap puts the first domain (or IP) in the CN when --cn is absent.
    // It is left out when it would break RFC 5280's 64-character limit: the
    // SAN carries the name anyway, and clients match SANs only.
    let common_name = args
        .common_name
        .clone()
        .or_else(|| args.domain.first().or(args.ip.first()).filter(|d| d.chars().count() <= 64).cloned());
    let cn_text = subject_text(common_name.as_deref());
    let template = load_template(
        args.template.as_deref(),
        &[TemplateKind::Ca, TemplateKind::Intermediate, TemplateKind::Leaf],
        "request-cert",
    )?;
    let subject_args =
        template.as_ref().map_or_else(|| args.subject.clone(), |t| args.subject.with_defaults(&t.subject));
    let subject = subject_args.dn(common_name)?;
    let key_choice = match template.as_ref().and_then(|t| t.key_type) {
        Some(spec) if args.key.unset() => KeyChoice::Generate(spec),
        _ => args.key.choice(2048)?,
    };

    let _lock = depot.lock()?;
    let key_path = depot.path(&name, "key");
    let csr_path = args.csr.clone().unwrap_or_else(|| depot.path(&name, "csr"));
    for p in [&key_path, &depot.path(&name, super::pkcs11::URI_EXT), &csr_path] {
        if std::fs::symlink_metadata(p).is_ok() {
            anyhow::bail!(
                "{} already exists, so a request named {:?} was made before; certforge never overwrites it. Choose another --cn, or sign the existing request",
                p.display(),
                name.as_str()
            );
        }
    }

    // Ask for a passphrase (at a terminal only) before a slow RSA keygen.
    let passphrase = key_choice.passphrase(&args.pass, &name.file("key"))?;
    let new_key = key_choice.obtain_any(&args.pass)?;
    let csr_der = make_csr(&subject, &sans, &new_key.key)?;
    // Read our own CSR back as `sign` will, so a request we write always signs.
    parse_csr(&csr_der, &csr_path.display().to_string())?;
    let (key_write, key_label) = new_key.depot_write(depot, &name, passphrase.as_deref().map(String::as_str))?;
    let key_path = key_write.path.clone();
    let csr_pem = to_pem("CERTIFICATE REQUEST", &csr_der);

    depot.ensure_dir()?;
    depot::write_all(&[
        key_write,
        Write1 {
            path: csr_path.clone(),
            bytes: (csr_pem.clone().into_bytes()).into(),
            mode: PUBLIC_MODE,
            replace: false,
        },
    ])?;

    let mut details = vec![
        format!("subject: {cn_text}"),
        format!(
            "names: {}",
            if sans.is_empty() {
                "none (fine for a client certificate; a server certificate needs --domain or --ip)".to_string()
            } else {
                list(&sans)
            }
        ),
        new_key.key_line(passphrase.is_some()),
    ];
    if new_key.key.file().is_some() && args.key.existing_key.is_some() {
        details.push("key reused from --key and copied into the depot".into());
    }
    report::print(&report::Made {
        what: format!("a key and certificate request for {:?}", raw_name),
        details,
        files: vec![(key_label, key_path), ("request", csr_path)],
        not_after: None,
        now: OffsetDateTime::now_utc(),
    });
    for w in sans.iter().filter_map(San::warning) {
        warn(&w);
    }
    eprintln!(
        "Next: certforge --depot-path {} sign --CA <CA name> {}",
        shell_word(&depot.root().display().to_string()),
        shell_word(name.as_str())
    );
    if args.stdout {
        print_stdout(&csr_pem)?;
    }
    Ok(())
}

fn parse_sans(args: &RequestCertArgs) -> Result<Vec<San>> {
    let mut sans: Vec<San> = Vec::new();
    let groups: [(&Vec<String>, crate::pki::san::SanParser); 4] =
        [(&args.domain, San::domain), (&args.ip, San::ip), (&args.uri, San::uri), (&args.email, San::email)];
    for (values, parse) in groups {
        for v in values {
            let san = parse(v.trim()).map_err(|e| usage(e.naming(super::flags::san)))?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
    }
    Ok(sans)
}

fn subject_text(cn: Option<&str>) -> String {
    cn.map_or_else(|| "(empty; the SANs identify it)".to_string(), |cn| format!("CN={cn}"))
}

/// "DNS:localhost, IP:127.0.0.1".
pub fn list(sans: &[San]) -> String {
    sans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
