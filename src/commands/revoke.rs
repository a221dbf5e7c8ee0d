//! `certforge revoke`: add a certificate to its CA's CRL, exactly once.

use anyhow::{bail, Result};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::common::{note, usage};
use super::inputs::not_found;
use super::sign::load_signing_ca;
use crate::authority::listing::Wanted;
use crate::authority::state::{CaState, FileState, Revoked};
use crate::cli::RevokeArgs;
use crate::depot::{self, Depot};
use crate::pki::from_pem_or_der;
use crate::pki::names::EntryName;
use crate::pki::serial::hex;
use crate::pki::validity::fmt_time;
use crate::storage::StorageError;

/// Runs `revoke`.
pub fn run(depot: &Depot, args: &RevokeArgs) -> Result<()> {
    let name = EntryName::new(&args.cn).map_err(|e| usage(format!("--CN: {e}")))?;
    // A sealed local CA's certificates are revoked in its intermediate's CRL.
    let loaded = load_signing_ca(depot, &args.ca, &args.pass)?;
    let state = FileState::new(depot.clone(), loaded.name, std::sync::Arc::new(loaded.signer));
    let ca = state.signer();

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
    // The state takes the depot lock while it rewrites the CRL, so that two
    // revokes never start from the same old list.
    let outcome = state.revoke(&serial, args.reason, now).map_err(|e| match e {
        // The reason as it is: it names the CRL and what to do with it.
        StorageError::Damaged { detail, .. } => anyhow::anyhow!(detail),
        e => e.into(),
    })?;
    let crl_what = state.crl_path().display().to_string();
    let (number, entries) = match outcome {
        Revoked::Already(entry) => {
            eprintln!(
                "{} (serial {}) is already revoked in {crl_what} since {}; the CRL is unchanged",
                name.file("crt"),
                hex(&serial),
                fmt_time(entry.revoked_at)
            );
            return Ok(());
        }
        // A state shared by several servers through a database: the CRL
        // follows from whichever server holds the CRL lease.
        Revoked::Recorded { entries } => {
            eprintln!(
                "Revoked {} (serial {}) issued by {:?}; {entries} revocations recorded, and the CRL listing it is not published yet",
                name.file("crt"),
                hex(&serial),
                ca.name
            );
            return Ok(());
        }
        Revoked::Added { number, entries, started } => {
            if started {
                note(&format!("{crl_what} did not exist; started a new CRL"));
            }
            (number, entries)
        }
    };

    eprintln!("Revoked {} (serial {}) issued by {:?}", name.file("crt"), hex(&serial), ca.name);
    eprintln!("  CRL          {crl_what}");
    eprintln!("  CRL number   {number}");
    eprintln!("  entries      {entries}");
    if let Some(reason) = args.reason {
        let name = clap::ValueEnum::to_possible_value(&reason).map(|v| v.get_name().to_string()).unwrap_or_default();
        eprintln!("  reason       {name}");
    }
    Ok(())
}
