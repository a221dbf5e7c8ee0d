//! `certforge revoke`: add a certificate to its CA's CRL, exactly once.

use anyhow::{bail, Result};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::common::{add_to_crl, note, usage, CrlChange};
use super::inputs::not_found;
use super::sign::load_signing_ca;
use crate::authority::listing::Wanted;
use crate::cli::RevokeArgs;
use crate::depot::{self, Depot};
use crate::pki::from_pem_or_der;
use crate::pki::names::EntryName;
use crate::pki::serial::hex;
use crate::pki::validity::fmt_time;

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

    let now = OffsetDateTime::now_utc();
    let (crl_path, outcome) = add_to_crl(depot, &ca_name, &ca, &serial, args.reason, now)?;
    let crl_what = crl_path.display().to_string();
    let state = match outcome {
        CrlChange::Already(entry) => {
            eprintln!(
                "{} (serial {}) is already revoked in {crl_what} since {}; the CRL is unchanged",
                name.file("crt"),
                hex(&serial),
                fmt_time(entry.revoked_at)
            );
            return Ok(());
        }
        CrlChange::Added { state, started } => {
            if started {
                note(&format!("{crl_what} did not exist; started a new CRL"));
            }
            state
        }
    };

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
