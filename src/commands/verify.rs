//! `certforge verify`: check a certificate as a TLS peer will, and say every
//! reason it would be refused, each with its fix.

use anyhow::Result;
use time::OffsetDateTime;

use super::common::{print_stdout, read_key, usage, Exit};
use super::inputs::{label, read_certs, resolve};
use crate::authority::listing::depot_certs;
use crate::cli::VerifyArgs;
use crate::depot::{read_file, Depot};
use crate::pki::objects::{read_objects, Object};
use crate::pki::validity::parse_rfc3339;
use crate::pki::verify::{verify, Input, Outcome, Purpose};

/// Runs `verify`.
pub fn run(depot: &Depot, args: &VerifyArgs) -> Result<()> {
    let at = match &args.at {
        Some(t) => parse_rfc3339("--at", t).map_err(|e| usage(e.to_string()))?,
        None => OffsetDateTime::now_utc(),
    };
    let leaf_path = resolve(depot, &args.cert, &["crt"])?;
    let leaf = read_certs(&leaf_path)?.remove(0);
    let (anchors, mut chain) = trust(depot, &args.ca)?;
    for c in &args.chain {
        chain.extend(read_certs(&resolve(depot, c, &["crt"])?)?);
    }
    let mut crls = Vec::new();
    for c in &args.crl {
        let paths = if c == "auto" { depot.files("crl") } else { vec![resolve(depot, c, &["crl"])?] };
        for p in paths {
            for obj in read_objects(&read_file(&p)?, &p.display().to_string()).map_err(anyhow::Error::msg)? {
                if let Object::Crl(d) = obj {
                    crls.push(d);
                }
            }
        }
    }
    let key = match &args.key {
        Some(k) => Some(key_spki(depot, k, args)?),
        None => None,
    };
    for h in &args.host {
        if h.trim().is_empty() {
            return Err(usage("--host is empty; give the DNS name or IP address the client dials"));
        }
    }
    let input = Input {
        leaf,
        leaf_label: label(&leaf_path),
        anchors,
        chain,
        hosts: args.host.clone(),
        purpose: args.purpose,
        crls,
        key,
        at,
    };
    let outcome = verify(&input, super::flags::san).map_err(anyhow::Error::msg)?;
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&outcome)? + "\n"))?;
    } else {
        print_stdout(&render(&outcome, &args.host, args.purpose))?;
    }
    if outcome.valid {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

/// Trusted CA certificates and intermediates offered for the chain (DER).
pub type Trust = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The anchors and intermediates to verify with: the `--ca` files or depot
/// names, or else every CA in the depot (self-signed ones trusted, the
/// others offered as intermediates).
pub fn trust(depot: &Depot, ca_args: &[String]) -> Result<Trust> {
    if !ca_args.is_empty() {
        let mut anchors = Vec::new();
        for ca in ca_args {
            anchors.extend(read_certs(&resolve(depot, ca, &["crt"])?)?);
        }
        return Ok((anchors, Vec::new()));
    }
    let (mut anchors, mut chain) = (Vec::new(), Vec::new());
    for (_, der) in depot_certs(depot) {
        let Ok((_, c)) = x509_parser::parse_x509_certificate(&der) else { continue };
        if !c.is_ca() {
            continue;
        }
        if c.subject().as_raw() == c.issuer().as_raw() {
            anchors.push(der);
        } else {
            chain.push(der);
        }
    }
    if let (true, Some(missing)) = (anchors.is_empty(), super::inputs::missing_depot(depot)) {
        return Err(usage(format!("no CA to verify against: {missing}; or give one with --ca FILE")));
    }
    if anchors.is_empty() {
        return Err(usage(format!(
            "no CA to verify against: the depot {} holds none; give one with --ca FILE",
            depot.root().display()
        )));
    }
    Ok((anchors, chain))
}

pub fn render(o: &Outcome, hosts: &[String], purpose: Option<Purpose>) -> String {
    let mut what = Vec::new();
    if !hosts.is_empty() {
        what.push(format!("for {}", hosts.join(", ")));
    }
    if let Some(p) = purpose {
        what.push(match p {
            Purpose::Server => "as a TLS server".into(),
            Purpose::Client => "as a TLS client".into(),
        });
    }
    let what = if what.is_empty() { String::new() } else { format!(" {}", what.join(" ")) };
    if o.valid {
        format!("{}: OK{what}\n  chain: {}\n", o.certificate, o.path.join(" -> "))
    } else {
        let mut s = format!(
            "{}: NOT VALID{what} ({} problem{})\n",
            o.certificate,
            o.problems.len(),
            if o.problems.len() == 1 { "" } else { "s" }
        );
        for p in &o.problems {
            s.push_str(&format!("  - {}\n", p.message));
        }
        s
    }
}

/// The label and public key of `--key`: a key file, a depot entry's key
/// (file or `NAME.key.uri`), or a PKCS#11 URI, whose public key is read
/// from the token (without a PIN when the token shows it).
fn key_spki(depot: &Depot, k: &str, args: &VerifyArgs) -> Result<(String, Vec<u8>)> {
    if crate::pkcs11::is_pkcs11_uri(k) {
        let uri = crate::pkcs11::Pkcs11Uri::parse(k).map_err(|e| usage(format!("--key: {e}")))?;
        return Ok((k.to_string(), super::pkcs11::public_key(&uri, &args.pass)?));
    }
    let p = resolve(depot, k, &["key", super::pkcs11::URI_EXT])?;
    if p.to_string_lossy().ends_with(&format!(".{}", super::pkcs11::URI_EXT)) {
        return Ok((label(&p), super::pkcs11::public_key(&super::pkcs11::read_uri(&p)?, &args.pass)?));
    }
    Ok((label(&p), read_key(&p, &mut args.pass.source()?)?.spki_der()))
}
