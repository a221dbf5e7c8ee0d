//! `certforge renew`: re-issue a certificate from what it already is (its
//! subject, SANs, profile and issuer) with a fresh serial and validity. The
//! old certificate (and key, with --rekey) is kept under archive/.

use anyhow::{anyhow, bail, Result};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::common::{note, usage, Exit};
use super::inputs::not_found;
use super::sign::load_ca;
use crate::authority::archive::{archive_writes, archived_cert};
use crate::authority::chain::chain_writes;
use crate::authority::listing::Wanted;
use crate::authority::listing::{scan, Entry, View};
use crate::cli::RenewArgs;
use crate::depot::{self, read_file, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::ca::CaSigner;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::{KeySpec, PrivateKey};
use crate::pki::names::shell_word;
use crate::pki::names::EntryName;
use crate::pki::profile::{Kind, LeafProfile};
use crate::pki::san::{self, San};
use crate::pki::serial::hex;
use crate::pki::subject::dn_from_x509;
use crate::pki::to_pem;
use crate::pki::validity::{fmt_time, relative, Expiry, Validity};

/// The window a renewal is checked against when `--expiring-within` is not
/// given: the one the README's CI pipeline uses.
const DEFAULT_WINDOW: &str = "30d";

/// The window that selected a renewal: a renewed certificate must not be
/// due under it again, or `list --expiring-within W || renew --all
/// --expiring-within W` would fail on every run.
struct Window<'a> {
    span: &'a str,
    now: OffsetDateTime,
    until: OffsetDateTime,
}

/// Runs `renew`.
pub fn run(depot: &Depot, args: &RenewArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let span = args.expiring_within.as_deref().unwrap_or(DEFAULT_WINDOW);
    let until = Expiry::parse(span)
        .map_err(|e| usage(e.naming(super::flags::span("--expiring-within"))))?
        .after(now)
        .ok_or_else(|| usage("--expiring-within is too long"))?;
    let window = Window { span, now, until };
    if let Some(missing) = super::inputs::missing_depot(depot) {
        bail!("nothing to renew: {missing}");
    }
    let _lock = depot.lock()?;
    let view = scan(depot, now);
    if !args.all {
        let raw = args.name.as_deref().unwrap_or_default();
        let name = EntryName::new(raw).map_err(|e| usage(format!("{raw:?}: {e}")))?;
        let entry = view.get(name.as_str()).ok_or_else(|| not_found(depot, raw, Wanted::Certificate, ""))?;
        return renew(depot, entry, args, now, &window);
    }
    let mut due: Vec<&Entry> = view
        .entries
        .iter()
        .filter(|e| e.revoked.is_none())
        .filter(|e| {
            OffsetDateTime::parse(&e.info.not_after, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| t <= until)
        })
        .collect();
    if due.is_empty() {
        eprintln!("nothing expires within {span}; nothing renewed");
        return Ok(());
    }
    // CAs first, each before the CAs it signed, so that what is renewed
    // after them is capped at their new expiry rather than the old one.
    due.sort_by_key(|e| (depth(&view, e), e.stem.clone()));
    let mut failed = 0;
    for e in &due {
        if let Err(err) = renew(depot, e, args, now, &window) {
            super::common::error(&format!("renewing {}: {err:#}", e.stem));
            failed += 1;
        }
    }
    eprintln!("renewed {} of {} certificate(s) due within {span}", due.len() - failed, due.len());
    if failed > 0 {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// 0 for a root, 1 + its issuer's for an intermediate, after every CA for
/// a leaf.
fn depth(view: &View, e: &Entry) -> usize {
    const LEAF: usize = usize::MAX;
    if !e.info.is_ca {
        return LEAF;
    }
    let mut d = 0;
    let mut at = e;
    // Bounded: a depot cannot hold a longer chain than it has CAs.
    while let Some(up) = at.issuer_stem.as_deref().and_then(|s| view.get(s)) {
        if up.stem == at.stem || d > view.entries.len() {
            break;
        }
        d += 1;
        at = up;
    }
    d
}

/// What the old certificate was, so the new one is the same.
fn kind_of(cert: &X509Certificate<'_>, e: &Entry, signer: &CaSigner) -> Result<Kind> {
    let bc = cert.basic_constraints().ok().flatten().map(|b| b.value.path_len_constraint);
    let path_len = |p: Option<u32>| p.map(|n| u8::try_from(n).unwrap_or(u8::MAX));
    Ok(match (e.info.is_ca, e.info.self_signed) {
        (true, true) => Kind::Root {
            path_len: path_len(bc.flatten()),
            // The root signs itself, so its signer holds its own constraints.
            permit_domains: signer.constraints.permitted.iter().map(|s| s.flag_value()).collect(),
        },
        (true, false) => Kind::Intermediate { path_len: path_len(bc.flatten()) },
        (false, _) => Kind::Leaf {
            profile: match e.info.profile.as_str() {
                "server" => LeafProfile::Server,
                "client" => LeafProfile::Client,
                "peer" => LeafProfile::Peer,
                _ => bail!(
                    "{} has extended key usages certforge does not make ({}); sign a new request instead",
                    e.stem,
                    e.info.extended_key_usage.join(", ")
                ),
            },
            code_signing: e.info.extended_key_usage.iter().any(|k| k == "codeSigning"),
        },
    })
}

fn renew(depot: &Depot, e: &Entry, args: &RenewArgs, now: OffsetDateTime, window: &Window<'_>) -> Result<()> {
    let (_, cert) = X509Certificate::from_der(&e.der).map_err(|err| anyhow!("{}: {err}", e.path.display()))?;
    let self_signed = e.info.is_ca && e.info.self_signed;
    let signer: CaSigner = match &e.issuer_stem {
        _ if self_signed => load_ca(depot, &e.stem, &args.pass)?,
        Some(stem) => load_ca(depot, stem, &args.pass)?,
        None => {
            bail!("the CA that issued {} ({}) is not in the depot, so it cannot be renewed here", e.stem, e.info.issuer)
        }
    };
    let kind = kind_of(&cert, e, &signer)?;
    if args.rekey && kind.is_ca() {
        return Err(usage(format!("{} is a CA: renewing it keeps its key, so that what it signed keeps verifying; drop --rekey (to replace a CA key, make a new CA)", e.stem)));
    }
    let name = EntryName::new(&e.stem).map_err(|err| anyhow!("{err}"))?;
    let subject = dn_from_x509(cert.subject(), &e.path.display().to_string())?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for g in &ext.value.general_names {
            sans.push(
                san::from_general_name(g)
                    .map_err(|why| anyhow!("{} carries {why}, which certforge cannot copy", e.path.display()))?,
            );
        }
    }
    let validity = lifetime(depot, e, &cert, &kind, &signer, args, window)?;
    let ski = crate::pki::inspect::cert_info(&e.der, now).ok().and_then(|i| i.subject_key_id).map(|h| hex_bytes(&h));
    let mut writes = Vec::new();
    let old_crt = read_file(&e.path)?;
    let (spki, new_key) = if args.rekey {
        if depot.exists(&name, crate::authority::keys::URI_EXT) {
            return Err(usage(format!(
                "{} keeps its key on a PKCS#11 token ({}), and --rekey writes a key file; make a new key on the token with `request-cert --key pkcs11:…` under another object name and sign that instead",
                e.stem,
                depot.path(&name, crate::authority::keys::URI_EXT).display()
            )));
        }
        let old_key_path = depot.path(&name, "key");
        let spec = same_key_type(depot, e, &cert, &kind)?;
        let key = PrivateKey::generate(spec)?;
        let pass = args.pass.given()?.filter(|p| !p.is_empty());
        let old_key_bytes = read_file(&old_key_path).ok();
        writes.extend(archive_writes(depot, &name, &old_crt, old_key_bytes.as_deref()));
        let encrypted = old_key_bytes.as_ref().is_some_and(|b| String::from_utf8_lossy(b).contains("ENCRYPTED"));
        let pem = key.to_pem(if encrypted { pass.as_deref().map(String::as_str) } else { None })?;
        if encrypted && pass.is_none() {
            bail!(
                "{} is encrypted; give the passphrase for the new key with --passphrase-file",
                old_key_path.display()
            );
        }
        writes.push(Write1 {
            path: old_key_path,
            bytes: (pem.as_bytes().to_vec()).into(),
            mode: KEY_MODE,
            replace: true,
        });
        (key.spki_der(), Some(key))
    } else {
        writes.extend(archive_writes(depot, &name, &old_crt, None));
        (cert.public_key().raw.to_vec(), None)
    };
    let spec = CertSpec {
        subject,
        subject_raw: Some(cert.subject().as_raw().to_vec()),
        key_id: if kind.is_ca() { ski } else { None },
        serial: None,
        sans: sans.clone(),
        kind: kind.clone(),
        validity,
    };
    let der = match &kind {
        Kind::Root { .. } => issue::self_signed(&spec, signer.key())?,
        _ => issue::signed_by(&spec, &spki, &signer)?,
    };
    writes.push(Write1 {
        path: e.path.clone(),
        bytes: to_pem("CERTIFICATE", &der).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: true,
    });
    writes.extend(chain_writes(depot, &name, &der, true));
    depot::write_all(&writes)?;
    drop(new_key);

    let new_serial = x509_parser::parse_x509_certificate(&der).map(|(_, c)| hex(c.raw_serial())).unwrap_or_default();
    let names = if sans.is_empty() {
        "no SANs".to_string()
    } else {
        sans.iter().map(San::to_string).collect::<Vec<_>>().join(", ")
    };
    eprintln!("Renewed {} {} ({names})", kind.describe(), e.path.display());
    eprintln!("  serial   {new_serial} (was {})", hex(cert.raw_serial()));
    eprintln!(
        "  key      {}",
        if args.rekey { "new key written to the depot; the old one is archived" } else { "kept" }
    );
    eprintln!("  expires  {} ({})", fmt_time(validity.not_after), relative(validity.not_after, now));
    eprintln!("  old one  {}", archived_cert(depot, &name, &old_crt).display());
    if kind.is_ca() {
        note("same subject and key, so every certificate it signed keeps verifying; hand the new CA certificate to its clients");
    }
    Ok(())
}

/// The new validity: the same lifetime as before; the profile's default
/// when the old one would leave the certificate due within the window
/// again; `--expires`/`--not-after` over both. Capped at the CA's expiry.
fn lifetime(
    depot: &Depot,
    e: &Entry,
    cert: &X509Certificate<'_>,
    kind: &Kind,
    signer: &CaSigner,
    args: &RenewArgs,
    window: &Window<'_>,
) -> Result<Validity> {
    let now = window.now;
    let request = args.validity.request().map_err(|err| usage(err.to_string()))?;
    let explicit = request.expires.is_some() || request.not_after.is_some();
    let old_len = (cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime()).whole_seconds();
    let same = Expiry { months: 0, seconds: u64::try_from(old_len.max(3600)).unwrap_or(3600) };
    let mut validity = request.resolve(now, same).map_err(|err| usage(err.naming(super::flags::validity)))?;
    if !explicit && validity.not_after <= window.until {
        let default = kind.default_lifetime();
        validity = request.resolve(now, default).map_err(|err| usage(err.naming(super::flags::validity)))?;
        if validity.not_after <= window.until {
            return Err(usage(format!(
                "{}: neither its old lifetime ({}) nor the {} default of {default} outlasts the {} window, so the renewed certificate would be due at once; give a longer --expires",
                e.stem,
                rounded(same),
                kind.describe(),
                window.span
            )));
        }
        note(&format!(
            "{}: its old lifetime ({}) would leave it due within {} again, so it gets the {} default of {default} (--expires chooses another)",
            e.stem,
            rounded(same),
            window.span,
            kind.describe()
        ));
    }
    if !matches!(kind, Kind::Root { .. }) && validity.not_after > signer.not_after {
        if signer.not_after <= window.until {
            bail!(
                "its CA {:?} expires on {}, within {}, so a renewed certificate would be due at once; renew the CA first: certforge --depot-path {} renew {} (or renew --all, which renews CAs first)",
                signer.name,
                fmt_time(signer.not_after),
                window.span,
                shell_word(&depot.root().display().to_string()),
                shell_word(e.issuer_stem.as_deref().unwrap_or(&signer.name))
            );
        }
        super::common::warn(&format!(
            "{}: capped at the expiry of its CA {:?}, {}",
            e.stem,
            signer.name,
            fmt_time(signer.not_after)
        ));
        validity.not_after = signer.not_after;
    }
    if explicit && validity.not_after <= window.until {
        super::common::warn(&format!(
            "{}: the renewed certificate expires on {}, within {}, as your --expires/--not-after asks; it is due again at once",
            e.stem,
            fmt_time(validity.not_after),
            window.span
        ));
    }
    Ok(validity)
}

/// A lifetime as a person would say it: whole days from two days up, else
/// whole hours (the 10-minute backdate makes "10 days" 14,410 minutes).
fn rounded(span: Expiry) -> Expiry {
    let unit = if span.seconds >= 2 * 86_400 { 86_400 } else { 3600 };
    Expiry { months: span.months, seconds: ((span.seconds + unit / 2) / unit).max(1) * unit }
}

fn hex_bytes(colon_hex: &str) -> Vec<u8> {
    colon_hex.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect()
}

/// The key type of `cert`'s key, for --rekey: refused, before anything is
/// written, when certforge cannot make a key of that type again, as
/// silently making another type (or size) would change what the entry is.
fn same_key_type(depot: &Depot, e: &Entry, cert: &X509Certificate<'_>, kind: &Kind) -> Result<KeySpec> {
    let spki = cert.public_key().raw;
    let cannot = |what: String| {
        format!(
            "{} has an {what} key, which certforge cannot generate; to renew it with the same key, drop --rekey",
            e.stem
        )
    };
    let spec = KeySpec::from_spki(spki).map_err(|unknown| usage(cannot(unknown.to_string())))?;
    let (Err(_), KeySpec::Rsa(bits), Kind::Leaf { profile, code_signing }) = (spec.can_generate(), spec, kind) else {
        return Ok(spec);
    };
    // A new key of the same size, and a request like the certificate
    // (subject, SANs), made by openssl, which certforge signs as any CSR.
    let new = format!("{}-rekeyed", e.stem);
    let file = |ext: &str| shell_word(&depot.root().join(format!("{new}.{ext}")).display().to_string());
    Err(usage(format!(
        "{}. For a new RSA {bits} key, make it and a request like this certificate with openssl, and sign that as {new}: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} -out {} && openssl x509 -x509toreq -in {} -key {} -copy_extensions copyall -out {} && certforge --depot-path {} sign {} --CA {} --profile {}{}",
        cannot(spec.to_string()),
        file("key"),
        shell_word(&e.path.display().to_string()),
        file("key"),
        file("csr"),
        shell_word(&depot.root().display().to_string()),
        shell_word(&new),
        shell_word(e.issuer_stem.as_deref().unwrap_or_default()),
        profile.name(),
        if *code_signing { " --codesigning" } else { "" },
    )))
}
