//! The operator's side of a fleet: `certforge acme list|revoke|eab` with
//! `--database URL` (or CERTFORGE_DATABASE_URL) read and change what the
//! `serve --database` instances share, with no CA key on the operator's
//! machine; a revocation is confirmed once a running instance publishes a
//! CRL carrying it.

#[path = "common/acme.rs"]
mod acme_server;
mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/haproxy.rs"]
mod haproxy;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/raw_acme.rs"]
mod raw_acme;

use std::process::Output;

use common::Env;
use fleet::{crl_entries, serial_of_bytes, Fleet};
use pg::Pg;
use raw_acme::Key;
use serde_json::Value;

fn ready() -> bool {
    pg::available() && haproxy::available()
}

/// One instance with every challenge passing, and certificates for
/// `names` issued through it: (fleet, serials in issue order).
fn issued(names: &[&str]) -> (Fleet, Vec<String>) {
    let fleet = Fleet::start(1, &["--skip-validation"]);
    let acme = fleet.acme(0);
    let account = acme.register(Key::p256());
    let serials = names
        .iter()
        .map(|n| {
            let der = acme.issue(&account, n);
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            serial_of_bytes(cert.raw_serial())
        })
        .collect();
    (fleet, serials)
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// `code`, or a panic showing both outputs.
fn expect(out: &Output, code: i32, what: &str) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{what}:\n{stdout}{stderr}");
    (stdout, stderr)
}

/// The `acme list --json` entry for `serial`.
fn entry(fleet: &Fleet, serial: &str) -> Value {
    let all = fleet.list_json();
    all.into_iter()
        .find(|c| c["serial"].as_str().map(fleet::serial_hex).as_deref() == Some(serial))
        .unwrap_or_else(|| panic!("{serial} is not in acme list --json"))
}

#[test]
fn acme_list_shows_the_fleets_certificates_as_text_and_json() {
    if !ready() {
        return;
    }
    let (fleet, serials) = issued(&["one.example.com", "two.example.com"]);
    let url = fleet.pg.url();
    let (out, _) = expect(&fleet.cli(&["acme", "list", "--database", &url]), 0, "acme list");
    let header = out.lines().next().unwrap_or("");
    for column in ["SERIAL", "NOT-AFTER", "REVOKED", "NAMES"] {
        assert!(header.contains(column), "{out}");
    }
    for (serial, name) in serials.iter().zip(["one.example.com", "two.example.com"]) {
        let line = out.lines().find(|l| fleet::serial_hex(l.split_whitespace().next().unwrap_or("")) == *serial);
        assert!(line.is_some_and(|l| l.contains(name)), "{serial} {name} in:\n{out}");
    }

    let all = fleet.list_json();
    assert_eq!(all.len(), 2, "{all:?}");
    for (serial, name) in serials.iter().zip(["one.example.com", "two.example.com"]) {
        let e = entry(&fleet, serial);
        assert_eq!(e["names"], serde_json::json!([name]), "{e}");
        let not_after = e["not_after"].as_str().expect("not_after");
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|err| panic!("not_after {not_after}: {err}"));
        assert_eq!(e["revoked"], Value::Null, "{e}");
        assert!(e["order"].as_str().is_some_and(|o| !o.is_empty()), "{e}");
    }

    // The same from CERTFORGE_DATABASE_URL.
    let mut c = fleet.envs[0].cmd(&["acme", "list", "--json"]);
    let out = c.env("CERTFORGE_DATABASE_URL", &url).output().unwrap();
    let (json, _) = expect(&out, 0, "acme list --json with CERTFORGE_DATABASE_URL");
    let from_env: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(from_env.as_array().map(Vec::len), Some(2), "{json}");
}

#[test]
fn acme_revoke_by_serial_and_by_name_reaches_the_served_crl() {
    if !ready() {
        return;
    }
    let (fleet, serials) = issued(&["one.example.com", "twice.example.com", "twice.example.com"]);
    let url = fleet.pg.url();

    let out = fleet.cli(&["acme", "revoke", &serials[0], "--reason", "keyCompromise", "--database", &url]);
    let (said, _) = expect(&out, 0, "acme revoke SERIAL");
    // "revoked SERIAL; in CRL number N"
    let (revoked, number) = said
        .trim()
        .strip_prefix("revoked ")
        .and_then(|r| r.split_once("; in CRL number "))
        .unwrap_or_else(|| panic!("not \"revoked SERIAL; in CRL number N\": {said}"));
    assert_eq!(fleet::serial_hex(revoked), serials[0], "{said}");
    let number = number.trim().to_string();
    let (served, listed) = crl_entries(&fleet.crl(0));
    assert!(listed.contains(&serials[0]), "the served CRL lists it: {listed:?}");
    assert_eq!(served, number, "the number printed is the served CRL's");
    assert_eq!(entry(&fleet, &serials[0])["revoked"]["reason"], "keyCompromise");

    // A name held by two live certificates: refused, naming both.
    let out = fleet.cli(&["acme", "revoke", "twice.example.com", "--database", &url]);
    let (_, err) = expect(&out, 1, "acme revoke of an ambiguous name");
    let shown: Vec<String> = err
        .split(|c: char| !(c.is_ascii_hexdigit() || c == ':'))
        .filter(|w| w.len() >= 16)
        .map(fleet::serial_hex)
        .collect();
    for serial in &serials[1..] {
        assert!(shown.contains(serial), "{serial} in:\n{err}");
    }
    assert!(err.contains("--all"), "{err}");
    assert_eq!(entry(&fleet, &serials[1])["revoked"], Value::Null, "nothing revoked");

    let out = fleet.cli(&["acme", "revoke", "twice.example.com", "--all", "--database", &url]);
    expect(&out, 0, "acme revoke NAME --all");
    let (_, listed) = crl_entries(&fleet.crl(0));
    for serial in &serials {
        assert!(listed.contains(serial), "{serial} in the served CRL: {listed:?}");
    }
}

#[test]
fn acme_revoke_with_no_instance_running_is_recorded_and_says_so() {
    if !ready() {
        return;
    }
    let (mut fleet, serials) = issued(&["alone.example.com"]);
    fleet.kill9(0);
    let url = fleet.pg.url();
    let started = std::time::Instant::now();
    let (_, err) =
        expect(&fleet.cli(&["acme", "revoke", &serials[0], "--database", &url]), 1, "acme revoke, no server");
    assert!(err.contains("recorded") && err.contains("is one running?"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    assert_ne!(entry(&fleet, &serials[0])["revoked"], Value::Null, "the revocation is recorded");
}

#[test]
fn acme_list_and_revoke_without_a_database_point_to_certforge_list() {
    let env = Env::new();
    for args in [&["acme", "list"][..], &["acme", "revoke", "www.example.com"][..]] {
        let mut c = env.cmd(args);
        let out = c.env_remove("CERTFORGE_DATABASE_URL").output().unwrap();
        let (_, err) = expect(&out, 2, &format!("{args:?} without --database"));
        assert!(err.contains("--database") && err.contains("certforge list"), "{err}");
    }
}

#[test]
fn acme_eab_keys_live_in_the_database_with_database() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let url = db.url();
    let (one, other) = (Env::new(), Env::new());
    let out = one.ok(&["acme", "eab", "add", "fleet-ingress", "--database", &url]);
    let stdout = text(&out.stdout);
    let (kid, hmac) = stdout.trim().split_once(' ').expect("KID HMAC on stdout");
    // Another machine (another depot) sees it through the variable.
    let mut c = other.cmd(&["acme", "eab", "list"]);
    let out = c.env("CERTFORGE_DATABASE_URL", &url).output().unwrap();
    let (list, _) = expect(&out, 0, "acme eab list with CERTFORGE_DATABASE_URL");
    assert!(list.contains(kid) && list.contains("fleet-ingress") && !list.contains(hmac), "{list}");
    assert!(!one.depot().join("acme.sqlite").exists(), "nothing written to the depot's acme.sqlite");
    assert_eq!(db.psql(&format!("SELECT name FROM eab_keys WHERE kid = '{kid}'")), "fleet-ingress");
    let err = one.fails(&["acme", "eab", "add", "fleet-ingress", "--database", &url], 1);
    assert!(err.contains("exists already"), "{err}");
}
