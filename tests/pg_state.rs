//! The CA's state and its CRL in a real PostgreSQL (a throwaway cluster per
//! test): serials reserved once before signing, one certificate per order,
//! revocations from two instances (two pools on one database) all in the
//! final CRL with strictly increasing numbers, the lease's fencing token
//! and number check refusing a stale writer, a dead holder's lease taken
//! over, and every instance's cache holding the same stored bytes.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certforge::authority::state::{CaState, Location, Revoked};
use certforge::pki::ca::CaSigner;
use certforge::pki::crl::{CrlState, Reason};
use certforge::pki::issue::{self, CertSpec};
use certforge::pki::keys::{KeySpec, PrivateKey};
use certforge::pki::profile::{Kind, LeafProfile};
use certforge::pki::san::San;
use certforge::pki::subject::Subject;
use certforge::pki::validity::{Expiry, ValidityRequest};
use certforge::serve::crl::CrlCache;
use certforge::serve::pg::crl::{crl_loop, LEASE};
use certforge::serve::pg::state::{record_revocation, wait_crl, CaKey, Marked, PgState};
use certforge::serve::pg::{PgDb, PgOptions};
use certforge::storage::StorageError;
use time::OffsetDateTime;

fn ca() -> Arc<CaSigner> {
    let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
    let dn = Subject { common_name: Some("Fleet CA".into()), ..Default::default() }.to_dn().unwrap();
    let validity =
        ValidityRequest::default().resolve(OffsetDateTime::now_utc(), Expiry::parse("1 year").unwrap()).unwrap();
    let spec = CertSpec::new(dn, vec![], Kind::Root { path_len: None, permit_domains: vec![] }, validity);
    Arc::new(CaSigner::new(issue::self_signed(&spec, &key).unwrap(), key, "ca.crt", "ca.key").unwrap())
}

/// Another pool on the database: what another instance of the fleet has.
fn open(pg: &pg::Pg) -> PgDb {
    PgDb::open(&pg.url(), PgOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A leaf for `name` with the serial `serial`, reserved and signed as the
/// issuer does, not yet recorded.
fn reserve_and_sign(state: &PgState, ca: &CaSigner, serial: &[u8], name: &str) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 day").unwrap()).unwrap();
    let dn = Subject { common_name: Some(name.into()), ..Default::default() }.to_dn().unwrap();
    let kind = Kind::Leaf { profile: LeafProfile::Server, code_signing: false };
    let mut spec = CertSpec::new(dn, vec![San::Dns(name.into())], kind, validity);
    state.reserve(serial, &spec.sans, spec.validity.not_after).unwrap();
    spec.serial = Some(serial.to_vec());
    let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
    issue::signed_by(&spec, &key.spki_der(), ca).unwrap()
}

/// Serials 1..=n reserved, signed and recorded for orders "o1".., as the
/// issuer leaves them.
fn issue_n(state: &PgState, ca: &CaSigner, n: u8) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            let der = reserve_and_sign(state, ca, &[0x10, i], &format!("host{i}.test"));
            state.record(&der, &Location::Stored(format!("order:o{i}"))).unwrap();
            vec![0x10, i]
        })
        .collect()
}

/// A cluster, a CA, and two instances of it (two pools); None when
/// PostgreSQL is not installed here (the test then skips).
fn two_instances() -> Option<(pg::Pg, Arc<CaSigner>, PgState, PgState)> {
    if !pg::available() {
        return None;
    }
    let pg = pg::Pg::start();
    let ca = ca();
    let (a, b) = (PgState::new(open(&pg), ca.clone()), PgState::new(open(&pg), ca.clone()));
    Some((pg, ca, a, b))
}

fn listed(crl: &CrlState) -> BTreeSet<Vec<u8>> {
    crl.entries.iter().map(|e| e.serial.clone()).collect()
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StorageError>, what: &str) {
    assert!(matches!(r, Err(StorageError::Conflict(_))), "{what}: {r:?}");
}

#[test]
fn a_serial_is_reserved_once_and_an_order_gets_one_certificate() {
    let Some((pg, ca, a, b)) = two_instances() else { return };
    let der = reserve_and_sign(&a, &ca, &[0x00, 0x42], "web.test");
    let names = [San::Dns("web.test".into())];
    conflict(a.reserve(&[0x42], &names, OffsetDateTime::now_utc()), "the same serial again, leading zero or not");
    conflict(b.reserve(&[0x42], &names, OffsetDateTime::now_utc()), "the same serial from another instance");
    assert!(a.find(&[0x42]).unwrap().is_none(), "reserved, not issued yet");

    a.record(&der, &Location::Stored("order:one".into())).unwrap();
    conflict(b.record(&der, &Location::Stored("order:one".into())), "the same certificate recorded twice");
    let other = reserve_and_sign(&b, &ca, &[0x43], "web.test");
    conflict(b.record(&other, &Location::Stored("order:one".into())), "a second certificate for one order");
    assert_eq!(b.stored("order:one").unwrap(), Some(der.clone()), "the first is the order's");
    assert_eq!(a.stored("order:two").unwrap(), None);

    let found = b.find(&[0x42]).unwrap().expect("recorded, so found by any instance");
    assert_eq!(
        (found.serial, found.names, found.location),
        (vec![0x42], names.to_vec(), Location::Stored("order:one".into()))
    );
    assert!(found.revoked.is_none());
    let issued = a.issued().unwrap();
    assert_eq!(issued.len(), 1, "0x43 was reserved and signed but never recorded: {issued:?}");
    assert_eq!(
        pg.psql("SELECT count(*), count(der) FROM certificates"),
        "2|1",
        "both reservations are on record, as Boulder keeps every serial it meant to sign"
    );
}

#[test]
fn revocations_from_two_instances_are_all_in_the_crl_and_its_numbers_only_rise() {
    let Some((pg, ca, a, b)) = two_instances() else { return };
    let (a, b) = (Arc::new(a), Arc::new(b));
    assert_eq!(a.ca(), b.ca(), "one CA, whichever instance looks");
    let all = issue_n(&a, &ca, 12);
    let mut threads = Vec::new();
    for (i, state) in [a.clone(), b.clone()].into_iter().enumerate() {
        let mine: Vec<Vec<u8>> = all.iter().skip(i).step_by(2).cloned().collect();
        threads.push(std::thread::spawn(move || {
            let mut numbers = Vec::new();
            for serial in mine {
                match state.revoke(&serial, Some(Reason::KeyCompromise), OffsetDateTime::now_utc()).unwrap() {
                    Revoked::Added { number, entries, .. } => {
                        assert!(entries >= 1);
                        numbers.push(number);
                    }
                    other => panic!("revoked {serial:02x?}: {other:?} (the CRL was not out within the lease)"),
                }
            }
            numbers
        }));
    }
    let numbers: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for seen in &numbers {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "one instance saw its CRL number go back: {seen:?}");
    }

    let der = a.crl().unwrap().expect("a CRL is stored");
    assert_eq!(b.crl().unwrap().as_ref(), Some(&der), "the same bytes from both instances");
    let last = CrlState::read(&der, "the stored CRL", &ca).unwrap();
    assert_eq!(listed(&last), all.iter().cloned().collect(), "every revocation is in the final CRL");
    assert!(last.entries.iter().all(|e| e.reason.is_some()), "reasons kept: {:?}", last.entries);
    assert!(a.revocation(&[0x10, 3]).unwrap().is_some());
    assert!(b.find(&[0x10, 4]).unwrap().unwrap().revoked.is_some());

    // Each CRL in the history: its number as stored, its revocations a
    // superset of the one before, the newest the one served.
    let history = pg.psql("SELECT number, encode(der, 'hex') FROM crl_history ORDER BY number");
    let mut before = BTreeSet::new();
    let mut count = 0;
    for line in history.lines() {
        let (number, hex) = line.split_once('|').unwrap();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let crl = CrlState::read(&bytes, "a CRL of the history", &ca).unwrap();
        assert_eq!(crl.number.to_string(), number);
        assert!(listed(&crl).is_superset(&before), "CRL {number} lost a revocation");
        before = listed(&crl);
        count += 1;
    }
    assert_eq!(before, listed(&last));
    assert!(count >= 2, "{history}");
    assert!(numbers.iter().flatten().all(|n| *n <= last.number));
    assert_eq!(wait_crl(a.db(), &a.ca(), 12, Duration::ZERO).unwrap(), Some(last.number), "covers every revocation");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), certforge::pki::to_pem("CERTIFICATE", ca.cert_der())).unwrap();
    std::fs::write(dir.path().join("crl.der"), &der).unwrap();
    let (ok, out) =
        common::openssl(dir.path(), &["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout"]);
    assert!(ok && out.contains("verify OK"), "openssl crl: {out}");
}

#[test]
fn a_stale_lease_cannot_store_and_a_crl_numbered_lower_is_refused() {
    let Some((pg, ca, a, b)) = two_instances() else { return };
    let serial = issue_n(&a, &ca, 1).remove(0);
    assert!(matches!(
        record_revocation(a.db(), &a.ca(), &serial, None, OffsetDateTime::now_utc()).unwrap(),
        Marked::Added { wanted: 1, entries: 1, started: true }
    ));
    assert!(matches!(
        record_revocation(b.db(), &b.ca(), &[0x10, 0x01], None, OffsetDateTime::now_utc()).unwrap(),
        Marked::Already(_)
    ));

    let stale = a.take_lease().unwrap().expect("nobody holds it");
    assert_eq!(b.take_lease().unwrap(), None, "held by a");
    let signed = a.sign_snapshot(OffsetDateTime::now_utc()).unwrap().expect("a revocation to list");
    // a pauses past its lease (a stalled process, a slow token); b takes over.
    pg.psql("UPDATE crl_lease SET leased_until = now() - interval '1 second'");
    let fresh = b.take_lease().unwrap().expect("the lease ran out");
    assert_eq!(fresh, stale + 1, "each holder gets the next token");
    conflict(a.store(stale, signed.clone()), "a stale token stores");
    assert_eq!(pg.psql("SELECT number, der IS NULL, (SELECT count(*) FROM crl_history) FROM crls"), "0|t|0");

    // The signature a made before b published has the lower number: even
    // with a fresh lease, it may not replace b's CRL.
    let published = b.store(fresh, b.sign_snapshot(OffsetDateTime::now_utc()).unwrap().unwrap()).unwrap();
    assert!(published.number > signed.number);
    let token = a.take_lease().unwrap().expect("b gave the lease up when it stored");
    conflict(a.store(token, signed), "a CRL numbered lower than the stored one");
    assert_eq!(pg.psql("SELECT number FROM crls"), published.number.to_string());
    assert_eq!(a.crl().unwrap().as_deref(), Some(&published.der[..]));
    assert_eq!(pg.psql("SELECT count(*) FROM crl_history"), "1");
}

#[test]
fn a_dead_holders_lease_is_taken_over_once_it_runs_out() {
    let Some((pg, ca, state, _)) = two_instances() else { return };
    let serials = issue_n(&state, &ca, 2);
    record_revocation(state.db(), &state.ca(), &serials[0], None, OffsetDateTime::now_utc()).unwrap();
    // An instance that took the lease and was killed before it stored.
    let ca_hex: String = state.ca().0.iter().map(|b| format!("{b:02x}")).collect();
    pg.psql(&format!(
        "INSERT INTO crl_lease VALUES ('\\x{ca_hex}', 'gone-host:4242:dead', 41, now() + interval '3 seconds')"
    ));
    assert!(state.publish(OffsetDateTime::now_utc()).unwrap().is_none(), "the dead holder's lease still runs");
    let started = Instant::now();
    let revoked = state.revoke(&serials[1], None, OffsetDateTime::now_utc()).unwrap();
    let waited = started.elapsed();
    match revoked {
        // The dead holder never stored one: this is the first CRL.
        Revoked::Added { entries, started: true, .. } => assert_eq!(entries, 2),
        other => panic!("not published after the lease ran out: {other:?}"),
    }
    assert!(waited >= Duration::from_secs(2), "published while the dead holder's lease ran: {waited:?}");
    assert!(waited < LEASE + Duration::from_secs(2), "{waited:?}");
    assert_eq!(pg.psql("SELECT token, holder FROM crl_lease"), format!("42|{}", state.db().instance()));
    let crl = CrlState::read(&state.crl().unwrap().unwrap(), "the CRL", &ca).unwrap();
    assert_eq!(listed(&crl), serials.iter().cloned().collect());
    assert_eq!(CaKey::of(&ca), state.ca());
}

#[test]
fn every_instance_serves_the_same_stored_crl_within_seconds_of_an_operator_revocation() {
    let Some((pg, ca, first, _)) = two_instances() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let states: Vec<Arc<PgState>> =
        std::iter::once(first).chain((0..2).map(|_| PgState::new(open(&pg), ca.clone()))).map(Arc::new).collect();
    let caches: Vec<Arc<CrlCache>> = (0..3).map(|_| Arc::new(CrlCache::default())).collect();
    let serials = issue_n(&states[0], &ca, 3);
    let log = certforge::serve::log::Log { format: certforge::serve::log::Format::Json };
    let loops: Vec<_> =
        states.iter().zip(&caches).map(|(s, c)| runtime.spawn(crl_loop(s.clone(), c.clone(), log))).collect();

    // The operator's CLI: recorded without the CA key, published by a loop.
    let operator = open(&pg);
    for (i, serial) in serials.iter().enumerate() {
        let revoked = OffsetDateTime::now_utc();
        let Marked::Added { wanted, .. } =
            record_revocation(&operator, &states[0].ca(), serial, None, revoked).unwrap()
        else {
            panic!("already revoked")
        };
        assert_eq!(wanted, i as i64 + 1);
        let number = wait_crl(&operator, &states[0].ca(), wanted, Duration::from_secs(5)).unwrap();
        let number = number.expect("a loop published the CRL listing it within 5 s");
        let until = Instant::now() + Duration::from_secs(5);
        while caches.iter().any(|c| c.number().is_none_or(|n| n < number)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let held: Vec<_> = caches.iter().map(|c| c.get().expect("a CRL held")).collect();
        assert!(held.iter().all(|h| h == &held[0]), "the instances hold different CRLs");
        let crl = CrlState::read(&held[0].1, "the served CRL", &ca).unwrap();
        assert_eq!(crl.number, held[0].0);
        assert!(crl.number >= number && crl.find(serial).is_some(), "revocation {i} is served everywhere within 5 s");
        assert_eq!(Some(held[0].1.to_vec()), states[2].crl().unwrap(), "the stored bytes, not a CRL of its own");
    }
    for l in loops {
        l.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
}
