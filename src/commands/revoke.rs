//! `certforge revoke`: add a certificate to its CA's CRL, exactly once.

use anyhow::{bail, Result};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::common::{note, usage};
use super::inputs::{not_found, Wanted};
use super::sign::load_signing_ca;
use crate::cli::RevokeArgs;
use crate::depot::{self, Depot, Write1, PUBLIC_MODE};
use crate::pki::crl::CrlState;
use crate::pki::names::EntryName;
use crate::pki::serial::hex;
use crate::pki::validity::fmt_time;
use crate::pki::{from_pem_or_der, to_pem};

/// Runs `revoke`.
pub fn run(depot: &Depot, args: &RevokeArgs) -> Result<()> {
    let name = EntryName::new(&args.cn).map_err(|e| usage(format!("--CN: {e}")))?;
    // The CRL is read, extended and rewritten: hold the depot lock so that
    // two revokes cannot both start from the same old list.
    let _lock = depot.lock()?;
    // A sealed local CA's certificates are revoked in its intermediate's CRL.
    let (ca_name, ca) = load_signing_ca(depot, &args.ca, &args.pass)?;

    let crt_path = depot.path(&name, "crt");
    if !crt_path.is_file() {
        return Err(not_found(
            depot,
            &args.cn,
            Wanted::Certificate,
            "give --CN the name the certificate was signed under (the NAME of `sign NAME`)",
        ));
    }
    let bytes = depot::read_file(&crt_path)?;
    let der = from_pem_or_der(&bytes, "CERTIFICATE").map_err(|e| anyhow::anyhow!("{}: {e}", crt_path.display()))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| anyhow::anyhow!("{} is not a certificate: {e}", crt_path.display()))?;
    let ca_cert = ca.cert();
    if cert.issuer().as_raw() != ca_cert.subject().as_raw()
        || crate::pki::signature::verify_cert(&cert, ca_cert.public_key()).is_err()
    {
        bail!(
            "{} was not issued by {:?} (its issuer is {}); give the CA that signed it with --CA",
            crt_path.display(),
            ca.name,
            cert.issuer()
        );
    }
    let serial = cert.raw_serial().to_vec();

    let crl_path = depot.path(&ca_name, "crl");
    let crl_what = crl_path.display().to_string();
    let mut state = if crl_path.exists() {
        CrlState::read(&depot::read_file(&crl_path)?, &crl_what, &ca)?
    } else {
        note(&format!("{crl_what} did not exist; starting a new CRL"));
        CrlState::default()
    };
    let now = OffsetDateTime::now_utc();
    if let Some(entry) = state.find(&serial) {
        eprintln!(
            "{} (serial {}) is already revoked in {crl_what} since {}; the CRL is unchanged",
            name.file("crt"),
            hex(&serial),
            fmt_time(entry.revoked_at)
        );
        return Ok(());
    }
    state.revoke(&serial, now, args.reason);
    let crl_der = state.sign(&ca, now)?;
    depot::write_all(&[Write1 {
        path: crl_path.clone(),
        bytes: to_pem("X509 CRL", &crl_der).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: true,
    }])?;

    eprintln!("Revoked {} (serial {}) issued by {:?}", name.file("crt"), hex(&serial), ca.name);
    eprintln!("  CRL          {crl_what}");
    eprintln!("  CRL number   {}", state.number);
    eprintln!("  entries      {}", state.entries.len());
    if let Some(reason) = args.reason {
        let name = clap::ValueEnum::to_possible_value(&reason).map(|v| v.get_name().to_string()).unwrap_or_default();
        eprintln!("  reason       {name}");
    }
    Ok(())
}
