//! `certforge sign`: turn a CSR into a leaf or intermediate certificate.

use anyhow::{bail, Result};
use time::OffsetDateTime;

use super::common::{load_template, note, print_stdout, usage, warn};
use super::inputs::not_found;
use super::report;
use super::request_cert::list;
use crate::authority::issue::{leaf_writes, ChainPool};
use crate::authority::keys::CaKeySource;
use crate::authority::listing::Wanted;
use crate::authority::load::{self, LoadError, SigningCa};
use crate::cli::SignArgs;
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::crl::CrlState;
use crate::pki::csr::{parse_csr, ParsedCsr};
use crate::pki::issue::{self, CertSpec};
use crate::pki::lint::no_sans;
use crate::pki::names::shell_word;
use crate::pki::names::EntryName;
use crate::pki::profile::{Kind, LeafProfile};
use crate::pki::san::{HostName, San, SANS_ONLY};
use crate::pki::template::TemplateKind;
use crate::pki::to_pem;
use crate::pki::validity::fmt_time;

/// The depot name of the CA `raw` (`--CA`).
pub fn ca_name(raw: &str) -> Result<EntryName> {
    EntryName::new(raw).map_err(|e| usage(format!("--CA: {e}")))
}

/// Why the CA `raw` (as the user named it) cannot be loaded, with the
/// command that fixes it.
pub fn load_error(depot: &Depot, raw: &str, e: LoadError) -> anyhow::Error {
    match e {
        LoadError::NoCert { .. } => {
            let hint = format!(
                "to make it: certforge --depot-path {} init --common-name {}",
                shell_word(&depot.root().display().to_string()),
                shell_word(raw)
            );
            not_found(depot, raw, Wanted::Ca, &hint)
        }
        LoadError::SealedRoot { issuing, .. } => anyhow::anyhow!(
            "{raw:?} is a sealed local CA: its key was wiped once it signed {issuing:?}, so it cannot sign, renew or revoke anything itself; {issuing:?} signs for it (sign --CA {})",
            shell_word(raw)
        ),
        LoadError::NoKey { key_path, uri_file, .. } => anyhow::anyhow!(
            "{} does not exist, so {raw:?} cannot sign; a CA needs its key beside its certificate (or {uri_file} naming its key on a PKCS#11 token)",
            key_path.display()
        ),
        LoadError::Issuing { issuing, source } => load_error(depot, &issuing, *source),
        LoadError::Other(e) => super::flags::worded(e),
        e => e.into(),
    }
}

/// Loads the CA `ca_raw` itself from the depot and checks it can sign.
pub fn load_ca(depot: &Depot, ca_raw: &str, pass: &crate::cli::PassArgs) -> Result<CaSigner> {
    let name = ca_name(ca_raw)?;
    let ca = load::load_ca(depot, &name, &mut pass.unlock()?).map_err(|e| load_error(depot, ca_raw, e))?;
    ca.warnings.iter().for_each(|w| warn(w));
    Ok(ca.signer)
}

/// The CA that signs for `ca_raw`: the CA itself, or for a sealed local CA
/// (`init --local`) its issuing intermediate, said in a note.
pub fn load_signing_ca(depot: &Depot, ca_raw: &str, pass: &crate::cli::PassArgs) -> Result<SigningCa> {
    let name = ca_name(ca_raw)?;
    let ca = load::load_signing_ca(depot, &name, &mut pass.unlock()?).map_err(|e| load_error(depot, ca_raw, e))?;
    if let Some(issuing) = &ca.issuing {
        note(&format!("{ca_raw:?} is a sealed local CA; {issuing:?} signs for it"));
    }
    ca.warnings.iter().for_each(|w| warn(w));
    Ok(ca)
}

/// Runs `sign`.
pub fn run(depot: &Depot, args: &SignArgs) -> Result<()> {
    let raw_name = match (&args.name, &args.csr) {
        (Some(n), _) => n.clone(),
        (None, Some(path)) => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        (None, None) => {
            return Err(usage("name the request to sign, e.g. `certforge sign --CA \"gRPC Root CA\" localhost`"))
        }
    };
    let name = EntryName::new(&raw_name).map_err(|e| usage(format!("{raw_name:?}: {e}")))?;
    let request = args.validity.request().map_err(|e| usage(e.to_string()))?;

    let _lock = depot.lock()?;
    let cert_path = args.cert.clone().unwrap_or_else(|| depot.path(&name, "crt"));
    if std::fs::symlink_metadata(&cert_path).is_ok() {
        return Err(already_signed(depot, &name, &cert_path, args.cert.is_some()));
    }
    let csr_path = args.csr.clone().unwrap_or_else(|| depot.path(&name, "csr"));
    if !csr_path.exists() {
        // A name that is a host gets it as its SAN; any other names a client.
        let names = match San::from_host_cn(&raw_name) {
            Some(san) => san.request_flag(),
            None => format!("--cn {}", shell_word(&raw_name)),
        };
        let fix = format!(
            "to make the request first: certforge --depot-path {} request-cert {names}",
            shell_word(&depot.root().display().to_string()),
        );
        if args.csr.is_some() {
            bail!("{} does not exist; {fix}", csr_path.display());
        }
        return Err(not_found(depot, &raw_name, Wanted::Request, &fix));
    }
    let csr = parse_csr(&depot::read_file(&csr_path)?, &csr_path.display().to_string())?;
    let ca = load_signing_ca(depot, &args.ca, &args.pass)?.signer;
    // A leaf that serves TLS needs its host name in a DNS or IP SAN. A
    // request that names none is refused for an explicit server or peer
    // profile; certstrap's default leaf is signed as certstrap signs it,
    // and works as a client certificate (its `sign grpc_client`). A URI SAN
    // (SPIFFE) names the peer for the clients that check it, so a request
    // with one is signed too.
    let serving = serving_profile(args);
    let mut host = HostName::of(&csr.sans, csr.common_name.as_deref());
    if let (None, HostName::FromCn(san)) = (args.profile, &host) {
        // Nor is the default leaf refused for a CN its CA may not name
        // (`--cn client1` under `init --local`): it is a client's then.
        if !ca.names_outside_constraints(std::slice::from_ref(san), None).is_empty() {
            host = HostName::Missing;
        }
    }
    let spiffe = csr.sans.iter().any(|s| matches!(s, San::Uri(_)));
    if let (Some(profile), HostName::Missing, Some(_), false) = (serving, &host, args.profile, spiffe) {
        return Err(nameless_request(depot, args, &csr, &csr_path, profile));
    }

    let now = OffsetDateTime::now_utc();
    let template = load_template(args.template.as_deref(), &[TemplateKind::Intermediate, TemplateKind::Leaf], "sign")?;
    let kind = match template {
        Some(mut t) => {
            if t.kind == TemplateKind::Intermediate {
                let asked = if args.exclude_path_length { None } else { args.path_length.or(t.path_len) };
                t.path_len = intermediate_path_len(&ca, asked)?;
            }
            Kind::Custom { template: Box::new(t), root: false }
        }
        None if args.intermediate => Kind::Intermediate {
            path_len: intermediate_path_len(&ca, if args.exclude_path_length { None } else { args.path_length })?,
        },
        None => Kind::Leaf { profile: args.profile.unwrap_or(LeafProfile::Peer), code_signing: args.codesigning },
    };
    if kind.is_ca() && args.cert.is_none() && depot.exists(&name, "crl") {
        bail!(
            "{} already exists; certforge never overwrites a CRL, and a new intermediate gets a fresh one. Move the old one aside first",
            depot.path(&name, "crl").display()
        );
    }
    // An intermediate is capped at its CA below; so is a leaf.
    let mut validity =
        request.resolve(now, kind.default_lifetime()).map_err(|e| usage(e.naming(super::flags::validity)))?;
    if ca.not_after <= now && request.not_after.is_none() {
        bail!(
            "the CA {:?} expired on {}; it cannot sign new certificates. Make a new CA (or, for a deliberately expired test chain, give --not-before and --not-after inside the CA's validity)",
            ca.name,
            fmt_time(ca.not_after)
        );
    }
    if validity.not_after > ca.not_after {
        warn(&format!(
            "the certificate would outlive its CA {:?}, which expires on {}; its notAfter is capped there (a client rejects a chain once any certificate in it expires)",
            ca.name,
            fmt_time(ca.not_after)
        ));
        validity.not_after = ca.not_after;
        if validity.not_after <= validity.not_before {
            bail!("after capping at the CA's expiry, the validity period is empty; give a --not-before inside the CA's validity");
        }
    }
    // RFC 5280 §4.1.2.6: with an empty subject the SAN extension is the
    // only name, so a request with neither names nothing at all.
    if csr.sans.is_empty() && csr.subject.iter().next().is_none() {
        bail!("{} has an empty subject and no SANs, so the certificate would name nothing; make the request with a --cn or --domain", csr_path.display());
    }
    let sans = if serving.is_some() { host.sans(&csr.sans) } else { csr.sans.clone() };
    let outside = ca.names_outside_constraints(&sans, csr.common_name.as_deref());
    if !outside.is_empty() {
        bail!(
            "the CA {:?} has name constraints, and {}; clients that trust it would refuse the certificate, so nothing was signed. Re-run request-cert without those names, or sign with a CA that may issue them",
            ca.name,
            outside.join("; ")
        );
    }

    let spec = CertSpec { sans: sans.clone(), ..CertSpec::from_csr(&csr, kind.clone(), validity) };
    let der = issue::signed_by(&spec, &csr.spki_der, &ca)?;
    let pem = to_pem("CERTIFICATE", &der);
    // Chain files go beside a depot entry, and only under an intermediate:
    // under a root the certificate alone is the chain a server sends.
    let pool = if args.cert.is_some() || ca.self_signed { ChainPool::None } else { ChainPool::Depot };
    let mut writes = leaf_writes(depot, &name, &der, pool);
    writes[0].path = cert_path.clone();
    let mut crl_skipped = None;
    if args.cert.is_none() && kind.is_ca() {
        match empty_crl(depot, &name, &der, &args.pass, now) {
            Ok(w) => writes.push(w),
            Err(why) => crl_skipped = Some(why),
        }
    }
    let extra_files: Vec<(&'static str, std::path::PathBuf)> = writes[1..]
        .iter()
        .map(|w| (if w.path.extension().is_some_and(|x| x == "crl") { "CRL" } else { "chain" }, w.path.clone()))
        .collect();
    depot::write_all(&writes)?;

    let who = csr.common_name.clone().unwrap_or_else(|| raw_name.clone());
    let mut details = vec![format!("names: {}", if sans.is_empty() { "none".to_string() } else { list(&sans) })];
    details.push(match &kind {
        Kind::Leaf { profile, code_signing } => format!(
            "usage: {}{}",
            match profile {
                LeafProfile::Server => "serverAuth (TLS server)",
                LeafProfile::Client => "clientAuth (TLS client, e.g. gRPC mTLS)",
                LeafProfile::Peer => "serverAuth + clientAuth (TLS server and client)",
            },
            if *code_signing { " + codeSigning" } else { "" }
        ),
        Kind::Intermediate { path_len } => format!(
            "CA:TRUE{}; sign with it using --CA {}",
            path_len.map_or(String::new(), |n| format!(", pathLen {n}")),
            shell_word(name.as_str())
        ),
        Kind::Custom { template, .. } => format!(
            "from your template{}",
            template.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        Kind::Root { .. } => unreachable!("sign never makes a root"),
    });
    details.push(format!("signed by: {:?}", ca.name));
    report::print(&report::Made {
        what: format!("{} for {:?}", kind.describe(), who),
        details,
        files: std::iter::once(("certificate", cert_path.clone())).chain(extra_files).collect(),
        not_after: Some(validity.not_after),
        now,
    });
    match (serving, &host) {
        (Some(_), HostName::FromCn(san)) => {
            note(&format!("{} names no host in its SANs, so its CN went in as {san}: {SANS_ONLY}", csr_path.display()))
        }
        (Some(profile), HostName::Missing) => note(&format!(
            "{}: {}",
            cert_path.display(),
            no_sans(profile == LeafProfile::Server, csr.common_name.as_deref()).message
        )),
        _ => {}
    }
    if let Some(why) = crl_skipped {
        note(&format!(
            "no CRL was written for the new CA: {why}. The first `certforge revoke --CA {}` writes one",
            shell_word(name.as_str())
        ));
    }
    if !csr.ignored.is_empty() {
        note(&format!(
            "ignored the CSR's requested {}: the {} profile decides these",
            csr.ignored.join(", "),
            kind.describe()
        ));
    }
    if args.stdout {
        print_stdout(&pem)?;
    }
    Ok(())
}

/// The profile of a leaf that serves TLS (`server`, `peer`, or no
/// `--profile`, which is certstrap's leaf for both), which needs its host
/// name in a DNS or IP SAN.
fn serving_profile(args: &SignArgs) -> Option<LeafProfile> {
    match (&args.template, args.intermediate, args.profile.unwrap_or(LeafProfile::Peer)) {
        (None, false, p @ (LeafProfile::Server | LeafProfile::Peer)) => Some(p),
        _ => None,
    }
}

/// The refusal of `--profile server` or `peer` for a request that names
/// no host, with the two commands that work: a request that names one, and
/// this one signed as a client certificate.
fn nameless_request(
    depot: &Depot,
    args: &SignArgs,
    csr: &ParsedCsr,
    csr_path: &std::path::Path,
    profile: LeafProfile,
) -> anyhow::Error {
    let cn = csr
        .common_name
        .as_deref()
        .map_or("no CN".to_string(), |cn| format!("its CN {cn:?} is not a host name or IP address"));
    let depot_flag = format!("--depot-path {}", shell_word(&depot.root().display().to_string()));
    let mut client = format!("certforge {depot_flag} sign --CA {} --profile client", shell_word(&args.ca));
    for (flag, path) in [("--csr", &args.csr), ("--cert", &args.cert)] {
        if let Some(p) = path {
            client.push_str(&format!(" {flag} {}", shell_word(&p.display().to_string())));
        }
    }
    if let Some(n) = &args.name {
        client.push_str(&format!(" {}", shell_word(n)));
    }
    anyhow::anyhow!(
        "{} names no host (no DNS or IP SAN) and {cn}, so a {} certificate from it would be valid for no host: {SANS_ONLY}. Nothing was signed. For a server, make a request that names it: certforge {depot_flag} request-cert --domain <host> (or --ip <address>), and sign that. For a client certificate: {client}",
        csr_path.display(),
        profile.name()
    )
}

/// The error for signing over an existing certificate: certforge never
/// overwrites one, and `renew` is what re-issues it (the old one goes to
/// archive/), with `--rekey` for a new key, which a revoked one needs.
fn already_signed(depot: &Depot, name: &EntryName, cert_path: &std::path::Path, own_path: bool) -> anyhow::Error {
    let exists = format!("{} already exists, and certforge never overwrites a certificate", cert_path.display());
    if own_path {
        return anyhow::anyhow!("{exists}; give another --cert path, or move that file away first");
    }
    let view = crate::authority::listing::scan(depot, OffsetDateTime::now_utc());
    let Some(entry) = view.get(name.as_str()).filter(|e| e.issuer_stem.is_some()) else {
        return anyhow::anyhow!(
            "{exists}, and its CA is not in the depot {}, so it cannot be renewed here; to sign {} again, move the old certificate out of the depot first",
            depot.root().display(),
            name.file("csr")
        );
    };
    let renew = format!(
        "certforge --depot-path {} renew {}",
        shell_word(&depot.root().display().to_string()),
        shell_word(name.as_str())
    );
    let archive = depot.root().join("archive");
    match &entry.revoked {
        Some(when) => anyhow::anyhow!(
            "{exists}. It was revoked on {when}; to issue a new one with a new key: {renew} --rekey (the old certificate and key go to {}/)",
            archive.display()
        ),
        None => anyhow::anyhow!(
            "{exists}. To re-issue it: {renew} (same key), or {renew} --rekey (a new key); the old one goes to {}/. To sign a new {} instead, move the old certificate out of the depot first",
            archive.display(),
            name.file("csr")
        ),
    }
}

/// The empty CRL a new intermediate gets beside it, as `init` and `apply`
/// give every CA: relying parties that check revocation (`openssl verify
/// -crl_check_all`) need one from every CA in the chain. It must be signed
/// with the intermediate's own key, which `request-cert` left in the depot;
/// when that key is elsewhere or cannot be opened, says why instead.
fn empty_crl(
    depot: &Depot,
    name: &EntryName,
    cert_der: &[u8],
    pass: &crate::cli::PassArgs,
    now: OffsetDateTime,
) -> std::result::Result<Write1, String> {
    let Some(source) = CaKeySource::of(depot, name).map_err(|e| format!("{e:#}"))? else {
        return Err(format!("its key {} is not in the depot", depot.path(name, "key").display()));
    };
    let mut unlock = pass.unlock().map_err(|e| format!("{e:#}"))?;
    let key = source.load(&mut unlock).map_err(|e| format!("{:#}", super::flags::worded(e)))?;
    let signer = CaSigner::new(cert_der.to_vec(), key, &name.file("crt"), &source.path().display().to_string())
        .map_err(|e| super::flags::ca_error(&e))?;
    let crl = CrlState::default().sign(&signer, now).map_err(|e| e.to_string())?;
    Ok(Write1 {
        path: depot.path(name, "crl"),
        bytes: to_pem("X509 CRL", &crl).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: false,
    })
}

/// The pathLen for a new intermediate. Under a CA with pathLen N the
/// intermediate may have at most N-1 (RFC 5280 §4.2.1.9); N = 0 forbids
/// intermediates entirely, which certstrap only discovered at verify time.
fn intermediate_path_len(ca: &CaSigner, asked: Option<u8>) -> Result<Option<u8>> {
    match ca.path_len {
        None => Ok(asked),
        Some(0) => bail!(
            "the CA {:?} has pathLen 0: it may sign leaf certificates only, and an intermediate under it would fail verification. Sign the intermediate with a CA made without --path-length, or with --path-length 1 or more",
            ca.name
        ),
        Some(n) => {
            let max = u8::try_from(n - 1).unwrap_or(u8::MAX);
            match asked {
                Some(a) if a > max => Err(usage(format!(
                    "--path-length {a} is more than the CA {:?} allows below it (its pathLen is {n}, so at most {max})",
                    ca.name
                ))),
                Some(a) => Ok(Some(a)),
                None => Ok(Some(max)),
            }
        }
    }
}
