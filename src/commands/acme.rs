//! `certforge acme eab add|list`: External Account Binding keys for
//! `serve --require-eab`, kept in the depot's ACME store.

use anyhow::Result;
use time::OffsetDateTime;

use super::common::usage;
use crate::acme::jws::{b64, random_b64};
use crate::cli::{AcmeAction, EabAction};
use crate::depot::Depot;
use crate::pki::names::shell_word;
use crate::pki::validity::fmt_time;
use crate::serve::sqlite::{SqlStore, FILE};

pub fn run(depot: &Depot, action: &AcmeAction) -> Result<()> {
    let AcmeAction::Eab { action } = action;
    let path = depot.root().join(FILE);
    match action {
        EabAction::Add { name } => {
            if name.trim().is_empty() {
                return Err(usage("give the key a name: who it is for, e.g. `certforge acme eab add staging-ingress`"));
            }
            depot.ensure_dir()?;
            let store = SqlStore::open(&path)?;
            let kid = format!("kid-{}", random_b64(9));
            // 256 bits: HS256's key size (RFC 7518 §3.2 wants at least the
            // hash's output).
            let key = aws_lc_rs::rand::generate::<[u8; 32]>(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("the system's random generator failed"))?
                .expose();
            store.add_eab(&kid, name, &key, &fmt_time(OffsetDateTime::now_utc()))?;
            let hmac = b64(&key);
            eprintln!("Made an External Account Binding key for {name:?} in {}", path.display());
            eprintln!("  kid    {kid}");
            eprintln!("  hmac   {hmac}   (shown once; give it only to {name:?})");
            eprintln!();
            eprintln!("  certbot  certbot register --eab-kid {kid} --eab-hmac-key {hmac} --server URL ...");
            eprintln!("  lego     lego --eab --kid {kid} --hmac {hmac} --server URL ... run");
            eprintln!("  Caddy    acme_eab {{ key_id {kid}\n                      mac_key {hmac} }}");
            eprintln!("  serve needs --require-eab to insist on it");
            println!("{kid} {hmac}");
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
            let rows = SqlStore::open(&path)?.eab_list()?;
            println!("{:<16} {:<24} CREATED", "KID", "NAME");
            for (kid, name, created) in rows {
                println!("{kid:<16} {name:<24} {created}");
            }
            Ok(())
        }
    }
}
