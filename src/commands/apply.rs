//! `certforge apply PLAN`: make or update a whole PKI from one file. What
//! exists and matches is kept, what is missing is made, what differs is
//! re-issued with the old one archived. Keys and signatures are made in
//! parallel, and everything is written in one atomic set at the end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::common::{print_stdout, usage, warn};
use crate::authority::archive::archive_writes;
use crate::authority::chain::missing_chain_files;
use crate::authority::keys::uri_write;
use crate::cli::{ApplyArgs, PlanRunArgs};
use crate::depot::{self, read_file, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::ca::{CaKey, CaSigner};
use crate::pki::crl::CrlState;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::PrivateKey;
use crate::pki::keys::{describe_spki, KeySpec};
use crate::pki::names::EntryName;
use crate::pki::plan::{Options, Plan, PlanEntry, Role};
use crate::pki::san::{self, San};
use crate::pki::subject::Subject;
use crate::pki::validity::{fmt_time, parse_rfc3339, Expiry, Validity, BACKDATE};
use crate::pki::{deterministic, to_pem};

/// What happened to one entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    /// Why it was re-issued; absent for made and kept entries.
    pub reason: Option<String>,
}

/// The summary of a run.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    pub made: Vec<Change>,
    pub kept: Vec<Change>,
    pub reissued: Vec<Change>,
    /// Chain files written beside kept certificates that lacked them (made
    /// by an older certforge); made and re-issued ones get theirs anyway.
    pub chain_files_added: usize,
    /// Certificates in the depot that the plan does not name (left by a
    /// smaller `count` or a removed entry). `apply` never deletes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outside_plan: Vec<Outside>,
    /// The command that deletes those entries' files, as printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_outside_plan: Option<String>,
}

/// A depot entry that the plan does not name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outside {
    pub name: String,
    /// Its files in the depot: certificate, key, CSR, chain files, CRL.
    pub files: Vec<String>,
}

/// The resolved run options.
pub struct Run {
    pub dry_run: bool,
    pub renew_within: Option<Expiry>,
    pub seed: Option<String>,
    /// Every certificate's notBefore, when anchored.
    pub anchor: Option<OffsetDateTime>,
    pub passphrase: Option<Zeroizing<String>>,
    /// Where the plan's `key_uri` keys are reached.
    pub token: crate::pkcs11::Options,
    pub quiet: bool,
    pub json: bool,
}

impl Run {
    /// Checks the shared plan flags.
    pub fn from_args(a: &PlanRunArgs) -> Result<Run> {
        let passphrase = a.pass.given()?.filter(|p| !p.is_empty());
        if a.deterministic_seed.is_some() && passphrase.is_some() {
            return Err(usage("--deterministic-seed makes keys anyone with the seed can rebuild, so encrypting them protects nothing; drop --passphrase (or CERTFORGE_PASSPHRASE)"));
        }
        if a.deterministic_seed.as_deref() == Some("") {
            return Err(usage("--deterministic-seed is empty; give a seed string"));
        }
        Ok(Run {
            token: a.pass.token.options(),
            dry_run: a.dry_run,
            renew_within: a
                .renew_within
                .as_deref()
                .map(Expiry::parse)
                .transpose()
                .map_err(|e| usage(e.naming(super::flags::span("--renew-within"))))?,
            seed: a.deterministic_seed.clone(),
            anchor: a
                .not_before
                .as_deref()
                .map(|t| parse_rfc3339("--not-before", t))
                .transpose()
                .map_err(|e| usage(e.to_string()))?,
            passphrase,
            quiet: a.quiet,
            json: a.json,
        })
    }
}

/// Runs `apply`.
pub fn run(depot: &Depot, args: &ApplyArgs) -> Result<()> {
    let opts = Run::from_args(&args.run)?;
    let text = String::from_utf8(read_file(&args.plan)?)
        .map_err(|_| usage(format!("{}: the plan is not UTF-8 text", args.plan.display())))?;
    let dir = args.plan.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let load = |p: &str| -> Result<crate::pki::template::Template, String> {
        let path = dir.join(p);
        let bytes = read_file(&path).map_err(|e| format!("template {p:?}: {e:#}"))?;
        let t = String::from_utf8(bytes).map_err(|_| format!("template {p:?} is not UTF-8"))?;
        crate::pki::template::Template::parse(&t, &path.display().to_string()).map_err(|e| e.to_string())
    };
    let plan = Plan::parse(
        &text,
        &args.plan.display().to_string(),
        &Options { deterministic: opts.seed.is_some(), load_template: &load },
    )
    .map_err(|e| usage(e.to_string()))?;
    let mut summary = execute(depot, &plan, &opts)?;
    outside_plan(depot, &plan, &mut summary);
    report(&summary, &opts)
}

/// Notes the depot's certificates that `plan` does not name, and the `rm`
/// command that removes them.
fn outside_plan(depot: &Depot, plan: &Plan, summary: &mut Summary) {
    let named: std::collections::HashSet<&str> = plan.entries.iter().map(|e| e.name.as_str()).collect();
    summary.outside_plan = depot
        .files("crt")
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|stem| !named.contains(stem.as_str()))
        .map(|stem| Outside {
            files: crate::authority::listing::files_of(depot, &stem).iter().map(|p| p.display().to_string()).collect(),
            name: stem,
        })
        .collect();
    if !summary.outside_plan.is_empty() {
        let files = summary.outside_plan.iter().flat_map(|o| &o.files).map(|f| crate::pki::names::shell_word(f));
        summary.remove_outside_plan = Some(format!("rm -- {}", files.collect::<Vec<_>>().join(" ")));
    }
}

/// Prints the summary.
pub fn report(s: &Summary, opts: &Run) -> Result<()> {
    if opts.json {
        return print_stdout(&(serde_json::to_string_pretty(s)? + "\n"));
    }
    let verb = |done: &str, would: &str| if s.dry_run { would.to_string() } else { done.to_string() };
    if !opts.quiet {
        let show = |list: &[Change], what: &str| {
            if list.len() > 20 {
                eprintln!("{what} {} certificates ({} ... {})", list.len(), list[0].name, list[list.len() - 1].name);
            } else {
                for c in list {
                    eprintln!("{what} {}{}", c.name, c.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default());
                }
            }
        };
        show(&s.made, &verb("made", "would make"));
        show(&s.reissued, &verb("re-issued", "would re-issue"));
    }
    if s.made.is_empty() && s.reissued.is_empty() && s.chain_files_added > 0 {
        eprintln!(
            "all {} certificate(s) match the plan; {} {} missing chain file(s)",
            s.kept.len(),
            verb("wrote", "would write"),
            s.chain_files_added
        );
    } else if s.made.is_empty() && s.reissued.is_empty() {
        eprintln!("nothing to do: all {} certificate(s) match the plan; nothing was written", s.kept.len());
    } else {
        eprintln!(
            "{}: {} {}, {} {}, {} {}",
            if s.dry_run { "dry run, nothing written" } else { "done" },
            verb("made", "would make"),
            s.made.len(),
            verb("kept", "would keep"),
            s.kept.len(),
            verb("re-issued", "would re-issue"),
            s.reissued.len()
        );
    }
    if let Some(rm) = &s.remove_outside_plan {
        let names: Vec<&str> = s.outside_plan.iter().map(|o| o.name.as_str()).collect();
        let shown = match names.as_slice() {
            [first, .., last] if names.len() > 20 => format!("{first} ... {last}"),
            _ => names.join(", "),
        };
        eprintln!("{} {} certificate(s) the plan does not name: {shown}", verb("kept", "would keep"), names.len());
        eprintln!("  to remove them: {rm}");
    }
    if opts.seed.is_some() {
        warn("deterministic mode: anyone who knows the --deterministic-seed value can rebuild these private keys. Use them as test fixtures only");
    }
    Ok(())
}

/// What apply does to one entry.
enum Action {
    Make,
    Keep,
    /// Re-issue it, for this reason.
    Reissue(String),
}

struct Done {
    /// The entry's name; the reason is in `action`.
    name: String,
    action: Action,
    writes: Vec<Write1>,
    signer: Option<Arc<CaSigner>>,
}

/// Plans with fewer leaves than this are made on one thread.
const PARALLEL_FROM: usize = 16;

/// Applies `plan` to the depot.
pub fn execute(depot: &Depot, plan: &Plan, opts: &Run) -> Result<Summary> {
    execute_with(depot, plan, opts, |_| Ok(Seed::default()))
}

/// CAs made or found outside the plan, which plan entries name as issuers
/// (`quickstart --local`'s intermediate), with their files to write in the
/// same atomic set.
#[derive(Default)]
pub struct Seed {
    pub signers: Vec<(EntryName, Arc<CaSigner>)>,
    /// Certificates above those signers (the root), for the chain files.
    pub above: Vec<Vec<u8>>,
    pub writes: Vec<Write1>,
    pub summary: Summary,
}

/// Applies `plan` after `seed` has run under the depot lock.
pub fn execute_with(
    depot: &Depot,
    plan: &Plan,
    opts: &Run,
    seed: impl FnOnce(OffsetDateTime) -> Result<Seed>,
) -> Result<Summary> {
    let _lock = depot.lock()?;
    let now = OffsetDateTime::now_utc();
    let seed = seed(now)?;
    let mut cas = Signers { by_name: seed.signers.into_iter().collect(), above: seed.above };
    let mut summary = Summary { dry_run: opts.dry_run, ..seed.summary };
    let mut writes: Vec<Write1> = seed.writes;
    let (roots, leaves): (Vec<&PlanEntry>, Vec<&PlanEntry>) = plan.entries.iter().partition(|e| e.role != Role::Leaf);
    for e in roots {
        let done = process(depot, e, &cas, opts, now)?;
        if let Some(s) = &done.signer {
            cas.by_name.insert(e.name.clone(), s.clone());
        }
        record(&mut summary, &mut writes, done);
    }
    let bar = progress(leaves.len(), opts);
    let one = |e: &&PlanEntry| {
        let r = process(depot, e, &cas, opts, now);
        if let Some(b) = &bar {
            b.inc(1);
        }
        r
    };
    // A leaf takes ~0.15 ms of crypto; starting rayon's threads costs about
    // as much, so a small plan (quickstart's two leaves) stays on one thread.
    let results: Vec<Result<Done>> = if leaves.len() < PARALLEL_FROM {
        leaves.iter().map(one).collect()
    } else {
        leaves.par_iter().map(one).collect()
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for r in results {
        record(&mut summary, &mut writes, r?);
    }
    if !opts.dry_run && !writes.is_empty() {
        depot.ensure_dir()?;
        depot::write_all(&writes)?;
    }
    Ok(summary)
}

/// The CAs entries can be signed by: the plan's, by name, and the seed's.
struct Signers {
    by_name: HashMap<EntryName, Arc<CaSigner>>,
    above: Vec<Vec<u8>>,
}

fn record(summary: &mut Summary, writes: &mut Vec<Write1>, done: Done) {
    let files = done.writes.len();
    writes.extend(done.writes);
    let name = done.name;
    match done.action {
        Action::Make => summary.made.push(Change { name, reason: None }),
        Action::Keep => {
            summary.chain_files_added += files;
            summary.kept.push(Change { name, reason: None })
        }
        Action::Reissue(reason) => summary.reissued.push(Change { name, reason: Some(reason) }),
    }
}

/// A progress bar on a terminal when there is real work, never in CI or
/// with --quiet.
fn progress(n: usize, opts: &Run) -> Option<indicatif::ProgressBar> {
    if opts.quiet || opts.json || n < 50 || !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} certificates {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn validity_of(e: &PlanEntry, opts: &Run, now: OffsetDateTime) -> Result<Validity> {
    let start = opts.anchor.unwrap_or(now - BACKDATE);
    // The span counts from the anchor, or from now as `sign` counts.
    let from = opts.anchor.unwrap_or(now);
    let not_after =
        e.validity.after(from).ok_or_else(|| anyhow!("{}: the validity runs past the year 9999", e.name))?;
    Ok(Validity { not_before: start, not_after })
}

/// The token key of an entry with `key_uri`: the one there, else one made
/// of the plan's key type.
fn token_key(e: &PlanEntry, uri: &str, asked: bool, opts: &Run) -> Result<CaKey> {
    let parsed = crate::pkcs11::Pkcs11Uri::parse(uri).map_err(|x| anyhow!("line {}: {}: {x}", e.line, e.name))?;
    let key = crate::pkcs11::TokenKey::open_or_generate(&parsed, &opts.token, e.key, asked)
        .map_err(|x| anyhow!("line {}: {}: {x}", e.line, e.name))?;
    Ok(CaKey::Remote(Box::new(key)))
}

fn process(depot: &Depot, e: &PlanEntry, signers: &Signers, opts: &Run, now: OffsetDateTime) -> Result<Done> {
    if e.key_uri.is_some() && depot.exists(&e.name, "key") {
        anyhow::bail!(
            "line {}: the plan keeps {:?}'s key on a PKCS#11 token (key_uri), but the depot holds its key file {}; move that file aside (it is the old key) and apply again",
            e.line,
            e.name.as_str(),
            depot.path(&e.name, "key").display()
        );
    }
    if depot.exists(&e.name, crate::authority::local::SEALED) {
        anyhow::bail!(
            "{} is a sealed local CA: its key was destroyed on purpose, so no plan can re-issue it. Take {:?} out of the plan, or use another --depot-path",
            depot.path(&e.name, "crt").display(),
            e.name.as_str()
        );
    }
    let issuer = match &e.issuer {
        Some(i) => {
            Some(signers.by_name.get(i).cloned().ok_or_else(|| anyhow!("{}: its issuer {} was not made", e.name, i))?)
        }
        None => None,
    };
    if let Some(ca) = &issuer {
        let outside = ca.names_outside_constraints(&e.sans, Some(&e.cn));
        if !outside.is_empty() {
            anyhow::bail!(
                "line {}: {:?}: the CA {:?} has name constraints, and {}; clients that trust it would refuse the certificate, so nothing was written. Drop those names from the plan, or issue them from a CA that may",
                e.line,
                e.name.as_str(),
                ca.name,
                outside.join("; ")
            );
        }
    }
    let crt_path = depot.path(&e.name, "crt");
    // A CA whose key is on a token keeps the key's URI where a key file
    // would be (and there is no key file).
    let key_path = depot.path(&e.name, if e.key_uri.is_some() { crate::authority::keys::URI_EXT } else { "key" });
    let existing = crt_path.is_file() && key_path.is_file();
    let mut old_key: Option<CaKey> = None;
    let action = if !existing {
        if crt_path.exists() || key_path.exists() {
            Action::Reissue("only one of its .crt and .key exists".into())
        } else {
            Action::Make
        }
    } else {
        let cert_der = crate::pki::from_pem_or_der(&read_file(&crt_path)?, "CERTIFICATE")
            .map_err(|m| anyhow!("{}: {m}", crt_path.display()))?;
        let key: CaKey = match &e.key_uri {
            Some((uri, asked)) => token_key(e, uri, *asked, opts)?,
            None => PrivateKey::from_bytes(
                &Zeroizing::new(read_file(&key_path)?),
                &key_path.display().to_string(),
                &mut opts.passphrase.clone(),
            )
            .map_err(super::flags::worded)?
            .into(),
        };
        let verdict = compare(e, &cert_der, &key, issuer.as_deref(), opts, now)?;
        match verdict {
            None => {
                let signer = if e.role == Role::Leaf {
                    None
                } else {
                    let mut s = CaSigner::new(
                        cert_der.clone(),
                        key,
                        &crt_path.display().to_string(),
                        &key_path.display().to_string(),
                    )
                    .map_err(super::flags::worded)?;
                    s.crl_url = e.crl_url.clone();
                    Some(Arc::new(s))
                };
                let mut writes = chain_files(depot, e, &cert_der, signers);
                writes.extend(crl_url_file(depot, e));
                return Ok(Done { name: e.name.to_string(), action: Action::Keep, writes, signer });
            }
            Some(reason) => {
                old_key = Some(key);
                Action::Reissue(reason)
            }
        }
    };
    // The key: derived from the seed, kept when it still fits, or new.
    let key: CaKey = match (&opts.seed, old_key, &e.key_uri) {
        (_, Some(k @ CaKey::Remote(_)), _) => k,
        (_, _, Some((uri, asked))) => token_key(e, uri, *asked, opts)?,
        (Some(seed), _, _) => deterministic::key(seed, e.name.as_str())?.into(),
        (None, Some(k), _) if KeySpec::from_spki(&k.spki_der()) == Ok(e.key) => k,
        _ => PrivateKey::generate(e.key)?.into(),
    };
    let subject = Subject {
        common_name: Some(e.cn.clone()),
        organization: e.subject.organization.clone(),
        organizational_unit: e.subject.organizational_unit.clone(),
        country: e.subject.country.clone(),
        province: e.subject.province.clone(),
        locality: e.subject.locality.clone(),
    }
    .to_dn()
    .map_err(|x| anyhow!("{}: {}", e.name, x.naming(super::flags::subject)))?;
    let mut validity = validity_of(e, opts, now)?;
    if let Some(i) = &issuer {
        validity.not_after = validity.not_after.min(i.not_after);
    }
    let spec = CertSpec {
        subject,
        subject_raw: None,
        key_id: None,
        serial: opts.seed.as_deref().map(|s| deterministic::serial(s, e.name.as_str())),
        sans: e.sans.clone(),
        kind: e.kind.clone(),
        validity,
    };
    let der = match &issuer {
        None => issue::self_signed(&spec, &key)?,
        Some(i) => issue::signed_by(&spec, &key.spki_der(), i)?,
    };
    let reissue = matches!(action, Action::Reissue(_));
    let mut writes = Vec::new();
    if reissue && crt_path.is_file() {
        // The old key is archived only when the new one differs from it.
        let old_key = match (key_path.is_file(), key.file()) {
            (true, Some(k)) => {
                let old = read_file(&key_path)?;
                let new = k.to_pem(opts.passphrase.as_deref().map(String::as_str))?;
                (old != new.as_bytes()).then_some(old)
            }
            _ => None,
        };
        writes.extend(archive_writes(depot, &e.name, &read_file(&crt_path)?, old_key.as_deref()));
    }
    match key.file() {
        // The URI as the token key reports it, with its id.
        None => writes.extend(uri_write(depot, &e.name, &key)),
        Some(k) => {
            let key_pem = k.to_pem(opts.passphrase.as_deref().map(String::as_str))?;
            writes.push(Write1 {
                path: key_path,
                bytes: (key_pem.as_bytes().to_vec()).into(),
                mode: KEY_MODE,
                replace: reissue,
            });
        }
    }
    writes.push(Write1 {
        path: crt_path.clone(),
        bytes: to_pem("CERTIFICATE", &der).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: reissue,
    });
    writes.extend(chain_files(depot, e, &der, signers));
    let signer = if e.role == Role::Leaf {
        None
    } else {
        let mut s = CaSigner::new(der, key, &crt_path.display().to_string(), &e.name.file("key"))
            .map_err(super::flags::worded)?;
        s.crl_url = e.crl_url.clone();
        writes.extend(crl_url_file(depot, e));
        let crl_path = depot.path(&e.name, "crl");
        if !crl_path.exists() || reissue {
            // An empty CRL beside every CA, as `init` writes, dated at the
            // anchor so deterministic runs stay byte-identical.
            let crl = CrlState::default().sign(&s, opts.anchor.map_or(now, |a| a + BACKDATE))?;
            writes.push(Write1 {
                path: crl_path,
                bytes: to_pem("X509 CRL", &crl).into_bytes().into(),
                mode: PUBLIC_MODE,
                replace: true,
            });
        }
        Some(Arc::new(s))
    };
    Ok(Done { name: e.name.to_string(), action, writes, signer })
}

/// NAME.crl-url for a CA entry with `crl_url`, where it is missing or
/// says something else, so that `sign --CA` and `serve` put the same CRL
/// Distribution Point into what they issue.
fn crl_url_file(depot: &Depot, e: &PlanEntry) -> Option<Write1> {
    let url = e.crl_url.as_ref()?;
    let path = depot.path(&e.name, "crl-url");
    let bytes = format!("{url}\n").into_bytes();
    if read_file(&path).ok().as_deref() == Some(bytes.as_slice()) {
        return None;
    }
    Some(Write1 { path, bytes: bytes.into(), mode: PUBLIC_MODE, replace: true })
}

/// NAME.chain.crt and NAME.fullchain.crt for an entry under a plan
/// intermediate, as `sign` and `renew` write them, where they are missing
/// or stale. An entry signed by a root needs none.
fn chain_files(depot: &Depot, e: &PlanEntry, der: &[u8], signers: &Signers) -> Vec<Write1> {
    let under_intermediate = e.issuer.as_ref().and_then(|i| signers.by_name.get(i)).is_some_and(|s| !s.self_signed);
    if !under_intermediate {
        return Vec::new();
    }
    let pool: Vec<Vec<u8>> =
        signers.by_name.values().map(|s| s.cert_der().to_vec()).chain(signers.above.iter().cloned()).collect();
    missing_chain_files(depot, &e.name, der, &pool)
}

/// Why an existing certificate no longer matches its plan entry, if it
/// does not.
fn compare(
    e: &PlanEntry,
    cert_der: &[u8],
    key: &CaKey,
    issuer: Option<&CaSigner>,
    opts: &Run,
    now: OffsetDateTime,
) -> Result<Option<String>> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|x| anyhow!("{}.crt: {x}", e.name))?;
    if cert.public_key().raw != key.spki_der().as_slice() {
        return Ok(Some("its key does not match its certificate".into()));
    }
    if let Some(seed) = &opts.seed {
        if deterministic::key(seed, e.name.as_str())?.spki_der() != key.spki_der() {
            return Ok(Some("the --deterministic-seed value gives a different key".into()));
        }
    }
    let spki = key.spki_der();
    // A token key of a type the plan left open is the one to keep.
    let type_open = matches!(e.key_uri, Some((_, false)));
    if KeySpec::from_spki(&spki) != Ok(e.key) && !type_open {
        return Ok(Some(format!("its key is {}, the plan asks for {}", describe_spki(&spki), e.key)));
    }
    let cn = crate::pki::subject::common_name(cert.subject()).unwrap_or_default();
    if cn != e.cn {
        return Ok(Some(format!("its CN is {cn:?}, the plan asks for {:?}", e.cn)));
    }
    let have = san::of_cert(&cert);
    let (mut a, mut b) = (have.clone(), e.sans.clone());
    a.sort();
    b.sort();
    if a != b {
        let list = |v: &[San]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            }
        };
        return Ok(Some(format!("its SANs are {}, the plan asks for {}", list(&have), list(&e.sans))));
    }
    let template = e.kind.template();
    let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
    if is_ca != e.kind.is_ca() {
        return Ok(Some("it is not the kind of certificate the plan asks for".into()));
    }
    if is_ca
        && cert.basic_constraints().ok().flatten().and_then(|b| b.value.path_len_constraint)
            != template.path_len.map(u32::from)
    {
        return Ok(Some("its pathLen differs from the plan".into()));
    }
    let mut want_eku: Vec<String> = template.extended_key_usage.iter().map(|k| format!("{k:?}")).collect();
    let mut got_eku: Vec<String> = Vec::new();
    if let Ok(Some(x)) = cert.extended_key_usage() {
        let v = x.value;
        for (on, k) in [
            (v.server_auth, rcgen::ExtendedKeyUsagePurpose::ServerAuth),
            (v.client_auth, rcgen::ExtendedKeyUsagePurpose::ClientAuth),
            (v.code_signing, rcgen::ExtendedKeyUsagePurpose::CodeSigning),
            (v.email_protection, rcgen::ExtendedKeyUsagePurpose::EmailProtection),
            (v.time_stamping, rcgen::ExtendedKeyUsagePurpose::TimeStamping),
            (v.ocsp_signing, rcgen::ExtendedKeyUsagePurpose::OcspSigning),
        ] {
            if on {
                got_eku.push(format!("{k:?}"));
            }
        }
    }
    want_eku.sort();
    got_eku.sort();
    if want_eku != got_eku {
        return Ok(Some("its extended key usages differ from the plan's profile".into()));
    }
    match issuer {
        Some(i) => {
            let ca = i.cert();
            if cert.issuer().as_raw() != ca.subject().as_raw()
                || crate::pki::signature::verify_cert(&cert, ca.public_key()).is_err()
            {
                return Ok(Some("its issuer was re-issued or differs from the plan".into()));
            }
        }
        None => {
            if cert.issuer().as_raw() != cert.subject().as_raw() {
                return Ok(Some("the plan asks for a self-signed CA".into()));
            }
        }
    }
    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    if let Some(anchor) = opts.anchor {
        if nb != anchor {
            return Ok(Some(format!("its notBefore is {}, the run anchors {}", fmt_time(nb), fmt_time(anchor))));
        }
    }
    // The plan's lifetime, unless the certificate was capped at its issuer.
    let want_len =
        e.validity.after(nb + if opts.anchor.is_some() { time::Duration::ZERO } else { BACKDATE }).map(|t| t - nb);
    let capped = issuer.is_some_and(|i| na == i.not_after);
    if !capped && want_len.is_some_and(|w| ((na - nb) - w).abs() > time::Duration::minutes(2)) {
        return Ok(Some("its validity differs from the plan".into()));
    }
    if na <= now {
        return Ok(Some(format!("it expired on {}", fmt_time(na))));
    }
    if let Some(span) = opts.renew_within {
        if span.after(now).is_some_and(|t| na <= t) {
            return Ok(Some(format!("it expires on {}, within --renew-within", fmt_time(na))));
        }
    }
    Ok(None)
}
