//! `init --local`: a CA that is safe to put in trust stores. Name
//! constraints on a root are ignored by Java 17, and a root key that
//! survives can sign an unconstrained intermediate, so (issue 12):
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

use super::common::{usage, KeyChoice};
use super::report;
use crate::cli::InitArgs;
use crate::depot::{self, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::constraints::{effective, LocalPreset};
use crate::pki::crl::CrlState;
use crate::pki::issue::{self, CertSpec};
use crate::pki::names::EntryName;
use crate::pki::profile::Kind;
use crate::pki::template::Template;
use crate::pki::to_pem;
use crate::pki::validity::fmt_time;

/// The file that says a root's key is gone, and which CA signs for it.
pub const SEALED: &str = "sealed";

/// The name of the intermediate that signs for the local CA `root`.
pub fn issuing_name(root: &str) -> String {
    format!("{root} Issuing")
}

/// The intermediate a sealed root's `NAME.sealed` names, if `name` is one.
pub fn issuing_of(depot: &Depot, name: &EntryName) -> Option<String> {
    let text = depot::read_file(&depot.path(name, SEALED)).ok()?;
    String::from_utf8_lossy(&text).lines().find_map(|l| l.strip_prefix("issuing: ").map(str::to_string))
}

/// Makes the root, its intermediate and their CRLs, and seals the root.
pub fn run(depot: &Depot, args: &InitArgs, preset: LocalPreset) -> Result<()> {
    let root_name = EntryName::new(&args.common_name).map_err(|e| usage(format!("--common-name: {e}")))?;
    let inter_cn = issuing_name(&args.common_name);
    let inter_name = EntryName::new(&inter_cn).map_err(|e| usage(format!("--common-name: {e}")))?;
    let mut permit = preset.subtrees();
    for d in &args.permit_domain {
        crate::pki::constraints::Subtree::parse(d).map_err(|why| usage(format!("--permit-domain {d:?}: {why}")))?;
        permit.push(d.clone());
    }
    let request = args.validity.request().map_err(|e| usage(e.to_string()))?;
    let KeyChoice::Generate(spec) = args.key.choice(4096)? else {
        return Err(usage("--local makes its own keys; drop --key"));
    };

    let _lock = depot.lock()?;
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
    let inter_key_file = inter_name.file("key");
    let passphrase = args.pass.for_new_key(&inter_key_file)?;
    let now = OffsetDateTime::now_utc();

    // The root: constrained, pathLen 1 (its one intermediate), key in memory.
    let root_kind = Kind::Root { path_len: Some(1), permit_domains: permit.clone() };
    let validity = request.resolve(now, root_kind.default_lifetime()).map_err(|e| usage(e.to_string()))?;
    let root_key = crate::pki::keys::PrivateKey::generate(spec)?;
    let root_spec = CertSpec::new(args.subject.dn(Some(args.common_name.clone()))?, Vec::new(), root_kind, validity);
    let root_der = issue::self_signed(&root_spec, &root_key)?;
    let root = CaSigner::new(root_der.clone(), root_key, &root_name.file("crt"), "the root key (in memory)")?;

    // The intermediate: the same constraints, pathLen 0, its own key.
    let inter_key = crate::pki::keys::PrivateKey::generate(spec)?;
    let builtin = Template::builtin("intermediate").expect("built-in template").clone();
    let inter_kind = Kind::Custom {
        template: Box::new(Template { path_len: Some(0), permit_domains: permit.clone(), ..builtin }),
        root: false,
    };
    let inter_spec = CertSpec::new(args.subject.dn(Some(inter_cn.clone()))?, Vec::new(), inter_kind, validity);
    let inter_der = issue::signed_by(&inter_spec, &inter_key.spki_der(), &root)?;
    let root_crl = CrlState::default().sign(&root, now)?;
    // Sealing: the root's key is wiped here, before anything is written.
    drop(root);
    let inter_pem = inter_key.to_pem(passphrase.as_deref().map(String::as_str))?;
    let key_desc = inter_key.describe();
    let inter = CaSigner::new(inter_der.clone(), inter_key, &inter_name.file("crt"), &inter_key_file)?;
    let inter_crl = CrlState::default().sign(&inter, now)?;
    let sealed = format!(
        "The private key of {:?} was never written to disk: it signed {inter_cn:?} and its CRL on {} and was then wiped from memory.\nissuing: {inter_cn}\n",
        args.common_name,
        fmt_time(now)
    );

    depot.ensure_dir()?;
    let public = |path, bytes: Vec<u8>| Write1 { path, bytes: bytes.into(), mode: PUBLIC_MODE, replace: false };
    depot::write_all(&[
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
    ])?;

    let (subtrees, _) = effective(&permit);
    let names: Vec<String> = subtrees.iter().map(|s| s.flag_value()).collect();
    report::print(&report::Made {
        what: format!("local CA {:?}, signing through {inter_cn:?}", args.common_name),
        details: vec![
            report::key_line(&key_desc, passphrase.is_some()),
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
        not_after: Some(validity.not_after),
        now,
    });
    eprintln!(
        "If {} leaked, it could sign certificates for {} only, never for another site, and no CA: pathLen 0, and no key exists for {:?}.",
        inter_key_file,
        names.join(", "),
        args.common_name
    );
    eprintln!(
        "Next: certforge --depot-path {} request-cert --domain localhost --ip 127.0.0.1,::1, then sign --CA {}",
        super::init::shell_word(&depot.root().display().to_string()),
        super::init::shell_word(&args.common_name)
    );
    Ok(())
}
