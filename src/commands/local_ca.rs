//! `init --local`: a CA that is safe to put in trust stores. Name
//! constraints on a root are ignored by Java 17, and a root key that
//! survives can sign an unconstrained intermediate, so:
//!
//! 1. the root NAME and the intermediate "NAME Issuing" both carry the same
//!    name constraints, and the intermediate has pathLen 0, so its key
//!    cannot make a CA either;
//! 2. the root's key only ever exists in memory: it signs the intermediate
//!    and the root's CRL, then is wiped, and `NAME.sealed` records that;
//! 3. the root is what `trust install` installs, and `sign --CA NAME` signs
//!    with the intermediate.

use anyhow::{bail, Result};
use time::OffsetDateTime;

use zeroize::Zeroizing;

use super::common::{usage, KeyChoice};
use super::report;
use crate::cli::InitArgs;
use crate::depot::{self, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::constraints::{effective, LocalPreset, Subtree};
use crate::pki::crl::CrlState;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::KeySpec;
use crate::pki::names::EntryName;
use crate::pki::profile::Kind;
use crate::pki::subject::Subject;
use crate::pki::template::Template;
use crate::pki::to_pem;
use crate::pki::validity::{fmt_time, Validity};

pub use crate::authority::local::{issuing_name, SEALED};

/// What a local CA is made of; `init --local` and `quickstart --local` fill it.
pub struct LocalSpec {
    /// The root's depot name; its CN is `root_cn`.
    pub root: String,
    pub root_cn: String,
    /// The rest of both subjects (O, OU, C, ...); the CN is set here.
    pub subject: Subject,
    /// Preset and --permit-domain values, each already checked.
    pub permit: Vec<String>,
    pub key: KeySpec,
    pub validity: Validity,
    pub passphrase: Option<Zeroizing<String>>,
}

/// A local CA made in memory: its files, the intermediate that signs, and
/// what to tell the user. Nothing is on disk yet.
pub struct LocalCa {
    pub writes: Vec<Write1>,
    pub issuing_name: EntryName,
    pub issuing: CaSigner,
    pub root_der: Vec<u8>,
    pub made: report::Made,
    /// The one line on what a leaked key could and could not do.
    pub leak_line: String,
}

/// The depot names of the local CA `root` and of its intermediate.
fn names(root: &str) -> Result<(EntryName, EntryName)> {
    let name = |raw: &str| EntryName::new(raw).map_err(|e| usage(format!("--common-name: {e}")));
    Ok((name(root)?, name(&issuing_name(root))?))
}

/// Refuses when any file of the local CA `root` already exists.
pub fn refuse_existing(depot: &Depot, root: &str) -> Result<()> {
    let (root_name, inter_name) = names(root)?;
    for (n, ext) in [(&root_name, "crt"), (&root_name, "key"), (&root_name, "crl"), (&root_name, SEALED)]
        .into_iter()
        .chain(["crt", "key", "crl"].map(|e| (&inter_name, e)))
    {
        if depot.exists(n, ext) {
            bail!(
                "{} already exists; certforge never overwrites a CA. Choose another --common-name or move the old files aside",
                depot.path(n, ext).display()
            );
        }
    }
    Ok(())
}

/// Makes the root, its intermediate and their CRLs, and seals the root:
/// its key signs the intermediate and the root CRL and is then wiped.
pub fn build(depot: &Depot, spec: LocalSpec, now: OffsetDateTime) -> Result<LocalCa> {
    let (root_name, inter_name) = names(&spec.root)?;
    let inter_raw = issuing_name(&spec.root);
    let inter_cn = issuing_name(&spec.root_cn);
    let dn = |cn: &str| Subject { common_name: Some(cn.to_string()), ..spec.subject.clone() }.to_dn();
    let (root_dn, inter_dn) = (dn(&spec.root_cn).map_err(|e| usage(e.to_string()))?, dn(&inter_cn)?);

    // The root: constrained, pathLen 1 (its one intermediate), key in memory.
    let root_kind = Kind::Root { path_len: Some(1), permit_domains: spec.permit.clone() };
    let root_key = crate::pki::keys::PrivateKey::generate(spec.key)?;
    let root_der = issue::self_signed(&CertSpec::new(root_dn, Vec::new(), root_kind, spec.validity), &root_key)?;
    let root = CaSigner::new(root_der.clone(), root_key, &root_name.file("crt"), "the root key (in memory)")?;

    // The intermediate: the same constraints, pathLen 0, its own key.
    let inter_key = crate::pki::keys::PrivateKey::generate(spec.key)?;
    let builtin = Template::builtin("intermediate").expect("built-in template").clone();
    let inter_kind = Kind::Custom {
        template: Box::new(Template { path_len: Some(0), permit_domains: spec.permit.clone(), ..builtin }),
        root: false,
    };
    let inter_spec = CertSpec::new(inter_dn, Vec::new(), inter_kind, spec.validity);
    let inter_der = issue::signed_by(&inter_spec, &inter_key.spki_der(), &root)?;
    let root_crl = CrlState::default().sign(&root, now)?;
    // Sealing: the root's key is wiped here, before anything is written.
    drop(root);
    let inter_key_file = inter_name.file("key");
    let inter_pem = inter_key.to_pem(spec.passphrase.as_deref().map(String::as_str))?;
    let key_desc = inter_key.describe();
    let inter = CaSigner::new(inter_der.clone(), inter_key, &inter_name.file("crt"), &inter_key_file)?;
    let inter_crl = CrlState::default().sign(&inter, now)?;
    let sealed = format!(
        "The private key of {:?} was never written to disk: it signed {inter_cn:?} and its CRL on {} and was then wiped from memory.\nissuing: {inter_raw}\n",
        spec.root_cn,
        fmt_time(now)
    );

    let public = |path, bytes: Vec<u8>| Write1 { path, bytes: bytes.into(), mode: PUBLIC_MODE, replace: false };
    let writes = vec![
        public(depot.path(&root_name, "crt"), to_pem("CERTIFICATE", &root_der).into_bytes()),
        public(depot.path(&root_name, "crl"), to_pem("X509 CRL", &root_crl).into_bytes()),
        public(depot.path(&root_name, SEALED), sealed.into_bytes()),
        public(depot.path(&inter_name, "crt"), to_pem("CERTIFICATE", &inter_der).into_bytes()),
        public(depot.path(&inter_name, "crl"), to_pem("X509 CRL", &inter_crl).into_bytes()),
        Write1 {
            path: depot.path(&inter_name, "key"),
            bytes: inter_pem.as_bytes().to_vec().into(),
            mode: KEY_MODE,
            replace: false,
        },
    ];

    let (subtrees, _) = effective(&spec.permit);
    let names: Vec<String> = subtrees.iter().map(|s| s.flag_value()).collect();
    let made = report::Made {
        what: format!("local CA {:?}, signing through {inter_cn:?}", spec.root_cn),
        details: vec![
            report::key_line(&key_desc, spec.passphrase.is_some()),
            format!("name constraints on both: {}", names.join(", ")),
            format!("root key: none; it signed {inter_cn:?} and was wiped ({} records it)", root_name.file(SEALED)),
        ],
        files: vec![
            ("root (trust this)", depot.path(&root_name, "crt")),
            ("root CRL", depot.path(&root_name, "crl")),
            ("issuing cert", depot.path(&inter_name, "crt")),
            ("issuing key", depot.path(&inter_name, "key")),
            ("issuing CRL", depot.path(&inter_name, "crl")),
        ],
        not_after: Some(spec.validity.not_after),
        now,
    };
    let leak_line = format!(
        "If {inter_key_file} leaked, it could sign certificates for {} only, never for another site, and no CA: pathLen 0, and no key exists for {:?}.",
        names.join(", "),
        spec.root_cn
    );
    Ok(LocalCa { writes, issuing_name: inter_name, issuing: inter, root_der, made, leak_line })
}

/// The preset's subtrees plus each --permit-domain value, checked.
pub fn permitted(preset: LocalPreset, extra: &[String]) -> Result<Vec<String>> {
    let mut permit = preset.subtrees();
    for d in extra {
        Subtree::parse(d).map_err(|why| usage(format!("--permit-domain {d:?}: {why}")))?;
        permit.push(d.clone());
    }
    Ok(permit)
}

/// Runs `init --local`.
pub fn run(depot: &Depot, args: &InitArgs, preset: LocalPreset) -> Result<()> {
    let permit = permitted(preset, &args.permit_domain)?;
    let request = args.validity.request().map_err(|e| usage(e.to_string()))?;
    let KeyChoice::Generate(key) = args.key.choice(4096)? else {
        return Err(usage("--local makes its own keys; drop --key"));
    };
    let subject = args.subject.subject(None);
    subject.to_dn().map_err(|e| usage(e.naming(super::flags::subject)))?;

    let _lock = depot.lock()?;
    refuse_existing(depot, &args.common_name)?;
    let passphrase = args.pass.for_new_key(&names(&args.common_name)?.1.file("key"))?;
    let now = OffsetDateTime::now_utc();
    let root_kind = Kind::Root { path_len: Some(1), permit_domains: permit.clone() };
    let validity =
        request.resolve(now, root_kind.default_lifetime()).map_err(|e| usage(e.naming(super::flags::validity)))?;
    let spec = LocalSpec {
        root: args.common_name.clone(),
        root_cn: args.common_name.clone(),
        subject,
        permit,
        key,
        validity,
        passphrase,
    };
    let ca = build(depot, spec, now)?;
    depot.ensure_dir()?;
    depot::write_all(&ca.writes)?;
    report::print(&ca.made);
    eprintln!("{}", ca.leak_line);
    eprintln!(
        "Next: certforge --depot-path {} request-cert --domain localhost --ip 127.0.0.1,::1, then sign --CA {}",
        crate::pki::names::shell_word(&depot.root().display().to_string()),
        crate::pki::names::shell_word(&args.common_name)
    );
    Ok(())
}
