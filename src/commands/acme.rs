//! `certforge acme`: the ACME server's state. `eab add|list`: External
//! Account Binding keys for `serve --require-eab`, in the depot's ACME
//! store or, with `--database`, the fleet's. `list` and `revoke`: the
//! certificates a fleet of `serve --database` instances issued.

use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::json;
use time::OffsetDateTime;

use super::common::usage;
use super::database;
use crate::acme::jws::{b64, random_b64};
use crate::cli::{AcmeAction, AcmeArgs, EabAction};
use crate::depot::Depot;
use crate::pki::crl::{normalize_serial, Reason};
use crate::pki::inspect::reason_name;
use crate::pki::names::shell_word;
use crate::pki::serial::hex;
use crate::pki::validity::fmt_time;
use crate::serve::pg::state::{record_revocation, wait_crl, CaKey, Marked};
use crate::serve::pg::{CertFilter, FleetCert, PgDb};
use crate::serve::sqlite::{SqlStore, FILE};

/// How long `revoke` waits for a running instance to publish a CRL that
/// carries the revocation: one publishes at once, or within a lease
/// (5 s) when the one holding it has just died.
const CRL_WAIT: Duration = Duration::from_secs(10);

pub fn run(depot: &Depot, args: &AcmeArgs) -> Result<()> {
    let fleet_only = |what: &str| {
        usage(format!(
            "`certforge acme {what}` works on a fleet's PostgreSQL database: give --database postgres://… (or set CERTFORGE_DATABASE_URL), as given to `serve --database`. Certificates in a depot, and those a `serve` without --database issued, are listed by `certforge list` and revoked with `certforge revoke --CN NAME --CA CA`"
        ))
    };
    // What the command does without --database, for the refusal of a URL
    // that is not PostgreSQL's.
    let without = match args.action {
        AcmeAction::Eab { .. } => "`acme eab` keeps its keys in the depot's acme.sqlite",
        _ => "`certforge list` and `certforge revoke` work on the depot's certificates",
    };
    match (&args.action, &args.database) {
        (AcmeAction::Eab { action }, None) => eab_in_depot(depot, action),
        (AcmeAction::Eab { action }, Some(url)) => eab_in_database(&database::open(url, without)?, action),
        (AcmeAction::List { .. }, None) => Err(fleet_only("list")),
        (AcmeAction::Revoke { .. }, None) => Err(fleet_only("revoke")),
        (AcmeAction::List { json, all }, Some(url)) => list(&database::open(url, without)?, *json, *all),
        (AcmeAction::Revoke { target, reason, all }, Some(url)) => {
            revoke(&database::open(url, without)?, target, *reason, *all)
        }
    }
}

/// A new kid and 256-bit HMAC key: HS256's key size (RFC 7518 §3.2 wants
/// at least the hash's output).
fn new_eab_key() -> Result<(String, [u8; 32])> {
    let key = aws_lc_rs::rand::generate::<[u8; 32]>(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| anyhow!("the system's random generator failed"))?
        .expose();
    Ok((format!("kid-{}", random_b64(9)), key))
}

/// Says how each client takes the key, once; `KID HMAC` goes to stdout
/// for scripts.
fn show_eab_key(kid: &str, key: &[u8], name: &str, kept_in: &str) {
    let hmac = b64(key);
    eprintln!("Made an External Account Binding key for {name:?} in {kept_in}");
    eprintln!("  kid    {kid}");
    eprintln!("  hmac   {hmac}   (shown once; give it only to {name:?})");
    eprintln!();
    eprintln!("  certbot  certbot register --eab-kid {kid} --eab-hmac-key {hmac} --server URL ...");
    eprintln!("  lego     lego --eab --kid {kid} --hmac {hmac} --server URL ... run");
    eprintln!("  Caddy    acme_eab {{ key_id {kid}\n                      mac_key {hmac} }}");
    eprintln!("  serve needs --require-eab to insist on it");
    println!("{kid} {hmac}");
}

fn check_eab_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(usage("give the key a name: who it is for, e.g. `certforge acme eab add staging-ingress`"));
    }
    Ok(())
}

fn print_eab_list(rows: impl IntoIterator<Item = (String, String, String)>) {
    println!("{:<16} {:<24} CREATED", "KID", "NAME");
    for (kid, name, created) in rows {
        println!("{kid:<16} {name:<24} {created}");
    }
}

fn eab_in_depot(depot: &Depot, action: &EabAction) -> Result<()> {
    let path = depot.root().join(FILE);
    match action {
        EabAction::Add { name } => {
            check_eab_name(name)?;
            depot.ensure_dir()?;
            let store = SqlStore::open(&path)?;
            let (kid, key) = new_eab_key()?;
            store.add_eab(&kid, name, &key, &fmt_time(OffsetDateTime::now_utc()))?;
            show_eab_key(&kid, &key, name, &path.display().to_string());
            Ok(())
        }
        EabAction::List => {
            if !path.exists() {
                eprintln!(
                    "no External Account Binding keys: {} does not exist. Make one: certforge --depot-path {} acme eab add NAME",
                    path.display(),
                    shell_word(&depot.root().display().to_string())
                );
                return Ok(());
            }
            print_eab_list(SqlStore::open(&path)?.eab_list()?);
            Ok(())
        }
    }
}

fn eab_in_database(db: &PgDb, action: &EabAction) -> Result<()> {
    match action {
        EabAction::Add { name } => {
            check_eab_name(name)?;
            let (kid, key) = new_eab_key()?;
            db.add_eab(&kid, name, &key, OffsetDateTime::now_utc()).map_err(|e| anyhow!("{e}"))?;
            show_eab_key(&kid, &key, name, &format!("the database {}", db.shown()));
            Ok(())
        }
        EabAction::List => {
            let rows = db.eab_list()?;
            print_eab_list(rows.into_iter().map(|(kid, name, created)| (kid, name, fmt_time(created))));
            Ok(())
        }
    }
}

/// `acme list`: a table, or with `--json` one array of
/// `{"serial", "names", "not_after", "revoked", "order"}`.
fn list(db: &PgDb, json: bool, all: bool) -> Result<()> {
    let certs: Vec<FleetCert> = db.fleet_certs(CertFilter::All)?.into_iter().filter(|c| all || c.signed).collect();
    if json {
        let rows: Vec<_> = certs.iter().map(cert_json).collect();
        return super::output::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!("{:<47} {:<20} {:<20} NAMES\n", "SERIAL", "NOT-AFTER", "REVOKED");
    for c in &certs {
        let revoked = match (&c.revoked, c.signed) {
            (Some((at, _)), _) => fmt_time(*at),
            (None, false) => "(never signed)".to_string(),
            (None, true) => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<47} {:<20} {:<20} {}\n",
            hex(&c.serial),
            fmt_time(c.not_after),
            revoked,
            c.names.join(",")
        ));
    }
    super::output::print_stdout(&out)
}

fn cert_json(c: &FleetCert) -> serde_json::Value {
    json!({
        "serial": hex(&c.serial),
        "names": c.names,
        "not_after": fmt_time(c.not_after),
        "revoked": c.revoked.map(|(at, reason)| json!({"at": fmt_time(at), "reason": reason.map(reason_name)})),
        "order": c.order,
        "signed": c.signed,
    })
}

/// A serial as the user may write it: hex of at least 16 digits, colons
/// allowed (openssl prints `4F:2A:…`). Anything else is taken for a name.
fn parse_serial(s: &str) -> Option<Vec<u8>> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    if digits.len() < 16 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
    let bytes =
        (0..padded.len()).step_by(2).map(|i| u8::from_str_radix(&padded[i..i + 2], 16)).collect::<Result<Vec<u8>, _>>();
    bytes.ok().map(|b| normalize_serial(&b))
}

/// `acme revoke SERIAL|NAME`: records the revocation (no CA key needed
/// here), then waits for a running instance to publish a CRL carrying it.
fn revoke(db: &PgDb, target: &str, reason: Option<Reason>, all: bool) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let by_serial = parse_serial(target);
    let found = match &by_serial {
        Some(serial) => db.fleet_certs(CertFilter::Serial(serial.clone()))?,
        None => db.fleet_certs(CertFilter::Name(target.to_ascii_lowercase()))?,
    };
    let found: Vec<FleetCert> = found.into_iter().filter(|c| c.signed).collect();
    let chosen: Vec<&FleetCert> = match &by_serial {
        Some(_) => found.iter().collect(),
        // A name picks the certificates still in use: an expired or revoked
        // one needs no revoking, and naming it would make the name ambiguous.
        None => found.iter().filter(|c| c.revoked.is_none() && c.not_after > now).collect(),
    };
    match chosen.as_slice() {
        [] if by_serial.is_some() => {
            return Err(anyhow!(
                "no certificate with serial {} in the database; `certforge acme list` shows the fleet's certificates",
                hex(by_serial.as_deref().unwrap_or_default())
            ))
        }
        [] => {
            return Err(anyhow!(
                "no valid certificate the fleet issued names {target:?}{}; `certforge acme list` shows them all",
                if found.is_empty() { "" } else { " (those that do are revoked or expired)" }
            ))
        }
        [_, _, ..] if !all => {
            let serials: Vec<String> =
                chosen.iter().map(|c| format!("  {}  not after {}", hex(&c.serial), fmt_time(c.not_after))).collect();
            eprintln!("{target:?} is in {} valid certificates:\n{}", chosen.len(), serials.join("\n"));
            return Err(anyhow!("revoke one by its serial, or all of them with --all"));
        }
        _ => {}
    }
    let mut waiting = Vec::new();
    for c in chosen {
        match record_revocation(db, &CaKey(c.ca), &c.serial, reason, now)? {
            Marked::Added { wanted, .. } => waiting.push((c, wanted)),
            Marked::Already(_) => eprintln!("{} was revoked already", hex(&c.serial)),
        }
    }
    let mut unpublished = Vec::new();
    for (c, wanted) in waiting {
        match wait_crl(db, &CaKey(c.ca), wanted, CRL_WAIT)? {
            Some(number) => println!("revoked {}; in CRL number {number}", hex(&c.serial)),
            None => unpublished.push(hex(&c.serial)),
        }
    }
    if !unpublished.is_empty() {
        // Recorded all the same: the next instance to run publishes it.
        return Err(anyhow!(
            "{} recorded; no serve instance published a CRL carrying it within {} s: is one running?",
            unpublished.join(", "),
            CRL_WAIT.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_is_long_hex_with_or_without_colons_and_anything_else_a_name() {
        let want = vec![0x4f, 0x2a, 0x91, 0x0c, 0x7d, 0x33, 0x18, 0xe6];
        assert_eq!(parse_serial("4F:2A:91:0C:7D:33:18:E6"), Some(want.clone()));
        assert_eq!(parse_serial("4f2a910c7d3318e6"), Some(want));
        assert_eq!(
            parse_serial("00:4F:2A:91:0C:7D:33:18:E6"),
            Some(vec![0x4f, 0x2a, 0x91, 0x0c, 0x7d, 0x33, 0x18, 0xe6])
        );
        for name in ["web.staging.internal", "deadbeef", "cafe.example", "4f2a910c7d3318e6.example"] {
            assert_eq!(parse_serial(name), None, "{name}");
        }
    }
}
