//! `serve --database postgres://…`'s storage on a real PostgreSQL cluster
//! (tests/common/pg.rs): the schema made once by a fleet starting at once
//! and never written by a second start or on a standby; the ACME store's
//! contract; one finalize claim, one nonce spend and one rate limit across
//! two pools (two instances); a database that stops and comes back; TLS
//! with libpq's sslmodes against a certificate certforge made; passwords
//! from PGPASSWORD and a password file, never printed.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use certforge::acme::jws::Jwk;
use certforge::acme::limits::{Bucket, Counted, Limiter, Rate, Verdict};
use certforge::acme::model::{
    Account, AccountStatus, Authorization, Challenge, ChallengeKind, Ident, IdentKind, Order, Status,
};
use certforge::acme::nonce::{NoncePool, Presented, SharedNonces};
use certforge::acme::Store;
use certforge::serve::pg::{CertFilter, EabError, PgDb, PgOptions};
use certforge::storage::StorageError;
use pg::{Pg, PgOpts};
use time::OffsetDateTime;

/// Opens `url` with no PG* variables and no home directory: what a test
/// gives is all there is.
fn open_with(url: &str, env: &[(&str, &str)], home: Option<&Path>) -> Result<PgDb, String> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let opts = PgOptions { pool_size: 4, ..PgOptions::default() };
    PgDb::open_env(url, opts, &|k| env.get(k).cloned(), home).map_err(|e| e.to_string())
}

fn open(url: &str) -> PgDb {
    open_with(url, &[], None).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

fn objects(s: &PgDb) -> (Account, Authorization, Order) {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let account = Account {
        id: s.next_id(),
        key: Jwk::Ed25519 { x: [s.next_id(), s.next_id()].concat().into_bytes() },
        contact: vec!["mailto:ops@example.com".into()],
        status: AccountStatus::Valid,
        created: now,
        eab: Some("team-a".into()),
    };
    let authz = Authorization {
        id: s.next_id(),
        account: account.id.clone(),
        ident: Ident { kind: IdentKind::Dns, value: "www.example.com".into() },
        status: Status::Pending,
        expires: now,
        challenges: vec![Challenge {
            id: s.next_id(),
            kind: ChallengeKind::TlsAlpn01,
            token: "tok".into(),
            status: Status::Pending,
            validated: Some(now),
            error: None,
        }],
    };
    let order = Order {
        id: s.next_id(),
        account: account.id.clone(),
        status: Status::Pending,
        expires: now,
        identifiers: vec![authz.ident.clone()],
        authorizations: vec![authz.id.clone()],
        certificate: None,
        error: None,
    };
    (account, authz, order)
}

#[test]
fn four_instances_starting_at_once_make_the_schema_once_and_a_later_start_writes_nothing() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let url = db.url();
    let opened: Vec<PgDb> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| open(&url))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(db.psql("SELECT count(*) FROM certforge_schema"), "1");
    assert_eq!(db.psql("SELECT version FROM certforge_schema"), "1");
    assert!(opened.iter().all(|p| p.schema() == 1 && !p.standby()));
    let key = opened[0].nonce_key();
    assert!(opened.iter().all(|p| p.nonce_key() == key), "one nonce key for the fleet");
    assert_ne!(key, [0; 32]);
    let by = db.psql("SELECT by_instance FROM certforge_schema");
    assert!(opened.iter().any(|p| p.instance() == by), "{by} is one of the instances");

    // A database where every write fails: a start at the current schema
    // still succeeds, so it wrote nothing.
    db.psql("ALTER DATABASE postgres SET default_transaction_read_only = on");
    let again = open(&url);
    assert_eq!(again.schema(), 1);
    let refused = again.put_account(&objects(&again).0).unwrap_err();
    assert!(matches!(refused, StorageError::Unavailable(_)), "read-only is worth a retry elsewhere: {refused}");
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    drop(open(&db.url()));
    db.psql("INSERT INTO certforge_schema (version, by_instance) VALUES (7, 'a newer certforge')");
    let e = open_with(&db.url(), &[], None).err().expect("refused");
    assert!(e.contains("version 7") && e.contains("versions up to 1") && e.contains("upgrade certforge"), "{e}");
    assert!(e.contains(&db.url()), "names the database: {e}");
}

#[test]
fn a_standby_opens_read_only_at_the_current_schema_and_refuses_without_one() {
    if !pg::available() {
        return;
    }
    let primary = Pg::start();
    let standby = primary.standby();
    let e = open_with(&standby.url(), &[], None).err().expect("an empty standby is refused");
    assert!(e.contains("read-only standby with no certforge schema") && e.contains("against the primary"), "{e}");
    assert_eq!(standby.psql("SELECT to_regclass('certforge_schema') IS NULL"), "t", "and nothing was written");

    let p = open(&primary.url());
    let deadline = Instant::now() + Duration::from_secs(20);
    while standby.psql("SELECT to_regclass('certforge_schema') IS NOT NULL") != "t" {
        assert!(Instant::now() < deadline, "the standby did not replay the schema within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = open(&standby.url());
    assert!(s.standby() && !p.standby());
    assert_eq!((s.schema(), s.nonce_key()), (1, p.nonce_key()));
    let (account, _, _) = objects(&p);
    p.put_account(&account).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.account(&account.id).unwrap().is_none() {
        assert!(Instant::now() < deadline, "the standby did not replay the account within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(s.put_account(&account), Err(StorageError::Unavailable(_))));
    let health = s.health().unwrap_err().to_string();
    assert!(health.contains("read-only standby"), "{health}");
    p.health().unwrap();
}

#[test]
fn the_store_keeps_accounts_orders_authorizations_certificates_and_eab_keys() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let s = open(&db.url());
    let (account, authz, order) = objects(&s);
    s.put_account(&account).unwrap();
    s.put_account(&account).unwrap(); // written twice: an update, not a conflict
                                      // The same database over its Unix socket, as libpq's host=/dir (no TLS
                                      // there, whatever sslmode says).
    let dir = db.socket_dir().to_str().unwrap().replace('/', "%2F");
    let local = open(&format!("postgres://postgres@{dir}:{}/postgres", db.port));
    assert!(local.account(&account.id).unwrap().is_some());
    let dir = db.socket_dir().display();
    let local = open(&format!("postgres:///postgres?host={dir}&port={}&user=postgres&sslmode=disable", db.port));
    assert!(local.account(&account.id).unwrap().is_some());
    s.put_authz(&authz).unwrap();
    s.put_authz(&authz).unwrap();
    s.put_order(&order).unwrap();
    s.put_cert(&order.id, "0a", "CHAIN").unwrap();

    let got = s.account_by_thumbprint(&account.key.thumbprint()).unwrap().expect("account by key");
    assert_eq!((got.id, got.contact, got.created), (account.id.clone(), account.contact.clone(), account.created));
    assert_eq!(s.account(&account.id).unwrap().unwrap().eab.as_deref(), Some("team-a"));
    let got = s.authz_of_challenge(&authz.challenges[0].id).unwrap().expect("authz by challenge");
    assert_eq!((got.id, got.challenges[0].kind), (authz.id.clone(), ChallengeKind::TlsAlpn01));
    assert_eq!(s.authz(&authz.id).unwrap().unwrap().ident, authz.ident);
    assert_eq!(s.orders_of(&account.id).unwrap(), vec![order.id.clone()]);
    assert_eq!(s.cert(&order.id).unwrap().as_deref(), Some("CHAIN"));
    assert_eq!(s.cert_by_serial("0a").unwrap(), Some((order.id.clone(), "CHAIN".to_string())));
    assert!(s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
    assert!(!s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap(), "claimed once only");
    assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Processing, "the column is authoritative");
    assert_eq!(db.psql(&format!("SELECT claimed_by FROM orders WHERE id = '{}'", order.id)), s.instance());
    assert!(s.transition_order(&order.id, Status::Processing, Status::Valid).unwrap());
    assert!(s.account("nope").unwrap().is_none() && s.order("nope").unwrap().is_none());
    assert!(s.cert("nope").unwrap().is_none() && s.cert_by_serial("ff").unwrap().is_none());
    assert!(s.authz_of_challenge("nope").unwrap().is_none());

    let created = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    s.add_eab("kid1", "team-a", b"secret", created).unwrap();
    let again = s.add_eab("kid2", "team-a", b"other", created).unwrap_err();
    assert!(matches!(again, EabError::NameTaken(_)) && again.to_string().contains("exists already"), "{again}");
    assert_eq!(s.eab_key("kid1").unwrap().as_deref(), Some(&b"secret"[..]));
    assert!(s.eab_key("kid2").unwrap().is_none());
    assert_eq!(s.eab_list().unwrap(), vec![("kid1".into(), "team-a".into(), created)]);

    // The certificates table as the CA state writes it (serve/pg/state.rs).
    let ca = "'\\x".to_string() + &"ab".repeat(32) + "'";
    db.psql(&format!(
        "INSERT INTO certificates (ca, serial, names, not_after, reserved_by, location, der) VALUES \
         ({ca}, '\\x01', ARRAY['a.example','b.example'], now() + interval '1 day', 'x', 'order1', '\\x30'), \
         ({ca}, '\\x02', ARRAY['b.example'], now() + interval '1 day', 'x', NULL, NULL); \
         INSERT INTO revocations VALUES ({ca}, '\\x01', now(), 4)"
    ));
    let all = s.fleet_certs(CertFilter::All).unwrap();
    assert_eq!(all.iter().map(|c| c.serial.clone()).collect::<Vec<_>>(), vec![vec![1], vec![2]]);
    assert_eq!((all[0].ca, all[0].order.as_deref(), all[0].signed), ([0xab; 32], Some("order1"), true));
    assert_eq!(all[0].revoked.map(|r| r.1), Some(Some(4)));
    assert_eq!((all[1].revoked, all[1].signed), (None, false), "reserved, never signed");
    assert_eq!(s.fleet_certs(CertFilter::Name("b.example".into())).unwrap().len(), 2);
    let a = s.fleet_certs(CertFilter::Name("a.example".into())).unwrap();
    assert_eq!(a.iter().map(|c| c.names.clone()).collect::<Vec<_>>(), vec![vec!["a.example", "b.example"]]);
    assert_eq!(s.fleet_certs(CertFilter::Serial(vec![2])).unwrap()[0].names, vec!["b.example"]);
    assert!(s.fleet_certs(CertFilter::Serial(vec![3])).unwrap().is_empty());

    // A row that does not parse is damaged, not missing.
    db.psql(&format!("UPDATE orders SET body = '{{' WHERE id = '{}'", order.id));
    assert!(matches!(s.order(&order.id), Err(StorageError::Damaged { .. })));
}

/// What newOrder, polling and finalize each do in one statement (one
/// round trip) gives what the separate reads and writes gave.
#[test]
fn a_new_order_its_readiness_and_its_certificate_each_take_one_statement() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let s = open(&db.url());
    let (account, first, mut order) = objects(&s);
    let second = Authorization {
        id: s.next_id(),
        ident: Ident { kind: IdentKind::Dns, value: "api.example.com".into() },
        challenges: vec![Challenge { id: s.next_id(), ..first.challenges[0].clone() }],
        ..first.clone()
    };
    order.authorizations.push(second.id.clone());
    order.identifiers.push(second.ident.clone());
    s.put_account(&account).unwrap();
    s.put_new_order(&order, &[first.clone(), second.clone()]).unwrap();
    assert_eq!(db.psql("SELECT count(*) FROM challenges"), "2");
    assert_eq!(s.authz_of_challenge(&second.challenges[0].id).unwrap().unwrap().id, second.id);
    let (got, statuses) = s.order_with_authzs(&order.id).unwrap().unwrap();
    assert_eq!((got.id.as_str(), statuses), (order.id.as_str(), vec![Some(Status::Pending), Some(Status::Pending)]));
    s.put_authz(&Authorization { status: Status::Valid, ..second.clone() }).unwrap();
    let (_, statuses) = s.order_with_authzs(&order.id).unwrap().unwrap();
    assert_eq!(statuses, vec![Some(Status::Pending), Some(Status::Valid)], "in the order's order");
    db.psql(&format!("DELETE FROM challenges WHERE authz = '{0}'; DELETE FROM authzs WHERE id = '{0}'", first.id));
    let (_, statuses) = s.order_with_authzs(&order.id).unwrap().unwrap();
    assert_eq!(statuses, vec![None, Some(Status::Valid)], "a missing authorization is None");
    assert!(s.order_with_authzs("nope").unwrap().is_none());

    // All or nothing: an authorization id taken already stores no order.
    let (_, _, other) = objects(&s);
    let clash = Order { authorizations: vec![second.id.clone()], ..other };
    assert!(s.put_new_order(&clash, std::slice::from_ref(&second)).is_err());
    assert!(s.order(&clash.id).unwrap().is_none());

    // Finalized: the certificate and the order together; no statuses then.
    assert!(s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
    let valid = Order { status: Status::Valid, certificate: Some(order.id.clone()), ..order.clone() };
    s.put_issued(&valid, "0b", "CHAIN").unwrap();
    let (got, statuses) = s.order_with_authzs(&order.id).unwrap().unwrap();
    assert_eq!((got.status, got.certificate, statuses), (Status::Valid, Some(order.id.clone()), vec![]));
    assert_eq!(s.cert_by_serial("0b").unwrap(), Some((order.id.clone(), "CHAIN".to_string())));

    // A request signed by a kid: the nonce spent and the account read at once.
    let nonces = SharedNonces::new(s.nonce_key(), s.clone());
    let now = OffsetDateTime::now_utc();
    let unused: &dyn Fn(&str) -> Result<Option<Account>, StorageError> = &|_| panic!("the database reads it");
    let nonce = nonces.issue(now);
    match nonces.consume_for(&nonce, now, &account.id, unused).unwrap() {
        Presented::Good(Some(got)) => assert_eq!((got.id, got.eab), (account.id.clone(), account.eab.clone())),
        other => panic!("{other:?}"),
    }
    assert!(matches!(nonces.consume_for(&nonce, now, &account.id, unused).unwrap(), Presented::BadNonce));
    let nonce = nonces.issue(now);
    assert!(matches!(nonces.consume_for(&nonce, now, "nope", unused).unwrap(), Presented::Good(None)));
    assert!(!nonces.consume(&nonce, now).unwrap(), "spent by consume_for");
    let spent = db.psql("SELECT count(*) FROM used_nonces");
    assert!(matches!(nonces.consume_for("forged", now, &account.id, unused).unwrap(), Presented::BadNonce));
    assert_eq!(db.psql("SELECT count(*) FROM used_nonces"), spent, "a forged nonce never reaches the database");
    db.psql(&format!("UPDATE accounts SET body = '{{' WHERE id = '{}'", account.id));
    let nonce = nonces.issue(now);
    assert!(matches!(nonces.consume_for(&nonce, now, &account.id, unused), Err(StorageError::Damaged { .. })));
}

/// newOrder's limits in one transaction: the failed-validation checks
/// first, then the order buckets, all or none.
#[test]
fn new_order_limits_are_checked_and_spent_in_one_transaction() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let p = open(&db.url());
    let now = OffsetDateTime::now_utc();
    let failed = Bucket { counted: Counted::FailedValidations, ..bucket("failed/a/www.example.com", 2) };
    let (acct, addr) = (bucket("orders/acct/a", 5), bucket("orders/addr/10.0.0.1", 100));
    assert_eq!(p.admit(std::slice::from_ref(&failed), &[acct.clone(), addr.clone()], now).unwrap(), Verdict::Allowed);
    assert_eq!(
        db.psql("SELECT key FROM rate_limits ORDER BY key"),
        "orders/acct/a\norders/addr/10.0.0.1",
        "a check makes no bucket"
    );
    for _ in 0..2 {
        p.charge(&failed, now).unwrap();
    }
    let before = db.psql("SELECT key, tat FROM rate_limits ORDER BY key");
    match p.admit(std::slice::from_ref(&failed), &[acct.clone(), addr.clone()], now).unwrap() {
        Verdict::Limited { key, retry_after } => {
            assert_eq!(key, failed.key);
            assert!(retry_after.abs_diff(Duration::from_secs(1800)) < Duration::from_secs(2), "{retry_after:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.psql("SELECT key, tat FROM rate_limits ORDER BY key"), before, "nothing spent on a refusal");
    assert_eq!(
        p.admit(&[], std::slice::from_ref(&acct), now).unwrap(),
        Verdict::Allowed,
        "the order buckets were not spent"
    );
    assert_eq!(p.admit(&[], &[], now).unwrap(), Verdict::Allowed);
}

#[test]
fn of_eight_finalizes_on_two_instances_exactly_one_claims_the_order() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let pools = [open(&db.url()), open(&db.url())];
    for round in 0..5 {
        let (_, _, order) = objects(&pools[0]);
        pools[0].put_order(&order).unwrap();
        let barrier = std::sync::Barrier::new(8);
        let wins: Vec<(usize, bool)> = std::thread::scope(|t| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (p, id, barrier) = (&pools[i % 2], &order.id, &barrier);
                    t.spawn(move || {
                        barrier.wait();
                        (i % 2, p.transition_order(id, Status::Pending, Status::Processing).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = wins.iter().filter(|w| w.1).map(|w| w.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {wins:?}");
        let by = db.psql(&format!("SELECT claimed_by FROM orders WHERE id = '{}'", order.id));
        assert_eq!(by, pools[winners[0]].instance(), "the claim names the winner");
    }
}

#[test]
fn a_nonce_issued_by_one_instance_is_spent_once_across_two() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let (a, b) = (open(&db.url()), open(&db.url()));
    let (na, nb) = (SharedNonces::new(a.nonce_key(), a.clone()), SharedNonces::new(b.nonce_key(), b.clone()));
    let now = OffsetDateTime::now_utc();
    let nonce = na.issue(now);
    assert!(nb.consume(&nonce, now).unwrap(), "made on a, good on b");
    assert!(!na.consume(&nonce, now).unwrap(), "replayed on a");
    assert!(!nb.consume(&nonce, now).unwrap(), "replayed on b");
    // Eight at once, four on each instance: one wins.
    let nonce = nb.issue(now);
    let spent = std::thread::scope(|t| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (n, nonce) = (if i % 2 == 0 { &na } else { &nb }, &nonce);
                t.spawn(move || n.consume(nonce, now).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count()
    });
    assert_eq!(spent, 1);
    assert_eq!(db.psql("SELECT count(*) FROM used_nonces"), "2");
}

fn bucket(key: &str, per_hour: u32) -> Bucket {
    Bucket { key: key.into(), rate: Rate { per_hour }, counted: Counted::OrdersOfAccount }
}

#[test]
fn one_rate_limit_is_shared_by_two_instances_and_a_refusal_changes_nothing() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let pools = [open(&db.url()), open(&db.url())];
    let now = OffsetDateTime::now_utc();
    let (acct, addr) = (bucket("orders/acct/a", 5), bucket("orders/addr/10.0.0.1", 100));
    for i in 0..5 {
        assert_eq!(pools[i % 2].spend(&[acct.clone(), addr.clone()], now).unwrap(), Verdict::Allowed, "order {i}");
    }
    let before = db.psql("SELECT key, tat FROM rate_limits ORDER BY key");
    for p in &pools {
        match p.spend(&[addr.clone(), acct.clone()], now).unwrap() {
            // One emission: an hour over 5.
            Verdict::Limited { key, retry_after } => {
                assert_eq!(key, acct.key);
                assert!(retry_after.abs_diff(Duration::from_secs(720)) < Duration::from_secs(2), "{retry_after:?}");
            }
            other => panic!("the sixth order was {other:?}"),
        }
        assert!(matches!(p.check(&acct, now).unwrap(), Verdict::Limited { .. }));
    }
    assert_eq!(db.psql("SELECT key, tat FROM rate_limits ORDER BY key"), before, "nothing changed on a refusal");
    let fresh = bucket("orders/acct/b", 5);
    assert_eq!(pools[0].check(&fresh, now).unwrap(), Verdict::Allowed);
    assert_eq!(pools[0].spend(&[fresh.clone(), acct.clone()], now).unwrap(), pools[1].check(&acct, now).unwrap());
    assert_eq!(db.psql("SELECT count(*) FROM rate_limits WHERE key = 'orders/acct/b'"), "0", "all or none");
    assert_eq!(
        pools[1].spend(std::slice::from_ref(&acct), now + time::Duration::minutes(12)).unwrap(),
        Verdict::Allowed
    );

    // Eight at once on a fresh bucket of 4: exactly 4 allowed.
    let four = bucket("failed/x", 4);
    let allowed = std::thread::scope(|t| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (p, b) = (&pools[i % 2], &four);
                t.spawn(move || p.spend(std::slice::from_ref(b), now).unwrap() == Verdict::Allowed)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|a| *a).count()
    });
    assert_eq!(allowed, 4);
    // A charge counts whatever the verdict, and empties no further.
    let charged = bucket("failed/y", 2);
    for _ in 0..10 {
        pools[1].charge(&charged, now).unwrap();
    }
    match pools[0].check(&charged, now).unwrap() {
        Verdict::Limited { retry_after, .. } => assert!(retry_after <= Duration::from_secs(1800), "{retry_after:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_database_is_unavailable_within_3_s_and_the_same_pool_works_once_it_is_back() {
    if !pg::available() {
        return;
    }
    let mut db = Pg::start();
    let s = open(&db.url());
    let (account, _, _) = objects(&s);
    s.put_account(&account).unwrap();
    db.stop();
    for _ in 0..2 {
        let t = Instant::now();
        let e = s.account(&account.id).unwrap_err();
        assert!(matches!(e, StorageError::Unavailable(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(!e.to_string().contains("postgres://"), "no URL in a request's error: {e}");
    }
    let t = Instant::now();
    assert!(matches!(s.health(), Err(StorageError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_secs(3));
    db.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.account(&account.id) {
            Ok(found) => break assert_eq!(found.unwrap().id, account.id),
            Err(e) => assert!(Instant::now() < deadline, "still failing 10 s after the restart: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    s.health().unwrap();
}

/// `certforge` in `env`'s depot, which must succeed.
fn certforge(env: &common::Env, args: &[&str]) {
    env.ok(args);
}

#[test]
fn tls_to_the_database_checks_what_each_sslmode_says() {
    if !pg::available() {
        return;
    }
    // The server's certificate from certforge itself.
    let env = common::Env::new();
    certforge(&env, &["init", "--cn", "Database CA", "--passphrase", ""]);
    certforge(&env, &["request-cert", "--ip", "127.0.0.1", "--domain", "localhost", "--passphrase", ""]);
    certforge(&env, &["sign", "--CA", "Database CA", "localhost"]);
    certforge(&env, &["init", "--cn", "Other CA", "--passphrase", ""]);
    let (ca, other) = (env.file("Database_CA.crt"), env.file("Other_CA.crt"));
    let db = Pg::start_with(PgOpts {
        tls: Some((env.file("localhost.crt"), env.file("localhost.key"))),
        ..PgOpts::default()
    });
    let url = |host: &str, query: &str| format!("postgres://postgres@{host}:{}/postgres?{query}", db.port);
    let encrypted = |p: &PgDb| {
        p.run("asking whether TLS is on", |c| {
            Box::pin(async move {
                Ok(c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                    .await?
                    .get::<_, bool>(0))
            })
        })
        .unwrap()
    };

    let full = open(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca.display())));
    assert!(encrypted(&full));
    // PGSSLMODE and PGSSLROOTCERT as libpq reads them.
    let env_tls = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.to_str().unwrap())];
    let p = open_with(&format!("postgres://postgres@localhost:{}/postgres", db.port), &env_tls, None).unwrap();
    assert!(encrypted(&p));

    let e = open_with(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", other.display())), &[], None)
        .err()
        .expect("another CA's root is refused");
    assert!(e.contains("sslrootcert") && e.contains(&other.display().to_string()), "{e}");
    let e = open_with(&url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", other.display())), &[], None)
        .err()
        .expect("verify-ca checks the issuer");
    assert!(e.contains("not issued by a CA in sslrootcert"), "{e}");

    // A name the certificate does not hold (the address given apart).
    let elsewhere = |mode: &str| {
        let query = format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}", ca.display());
        open_with(&url("db.elsewhere.example", &query), &[], None)
    };
    let e = elsewhere("verify-full").err().expect("verify-full checks the name");
    assert!(e.contains("not for db.elsewhere.example") && e.contains("verify-ca"), "{e}");
    assert!(encrypted(&elsewhere("verify-ca").unwrap()), "verify-ca skips the name check");

    // require: encrypted, nothing checked (libpq without a root file).
    assert!(encrypted(&open(&url("127.0.0.1", "sslmode=require"))));
    assert!(encrypted(&open(&url("127.0.0.1", ""))), "prefer, libpq's default, takes TLS when offered");
    assert!(!encrypted(&open(&url("127.0.0.1", "sslmode=disable"))));
}

#[test]
fn a_password_comes_from_pgpassword_or_a_private_password_file_and_is_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    if !pg::available() {
        return;
    }
    let secret = "Pw-9f3c2e71-never-shown";
    let db = Pg::start_with(PgOpts { password: Some(secret.into()), ..PgOpts::default() });
    let home = tempfile::tempdir().unwrap();
    let url = db.url();

    let e = open_with(&url, &[], Some(home.path())).err().expect("no password anywhere");
    assert!(e.contains("asks for a password") && e.contains("PGPASSWORD") && e.contains(".pgpass"), "{e}");

    let p = open_with(&url, &[("PGPASSWORD", secret)], Some(home.path())).unwrap();
    p.put_account(&objects(&p).0).unwrap();

    let e = open_with(&url, &[("PGPASSWORD", "wrong-Pw-4417")], None).err().expect("a wrong password");
    assert!(e.contains("password authentication failed") && e.contains("came from PGPASSWORD"), "{e}");
    assert!(!e.contains("wrong-Pw-4417"), "{e}");

    // In the URL: shown with *** in every message.
    let bad = url.replace("postgres@", "postgres:url-Pw-2291@");
    let e = open_with(&bad, &[], None).err().expect("a wrong password in the URL");
    assert!(e.contains("postgres:***@") && !e.contains("url-Pw-2291"), "{e}");
    let ok = open(&db.url_with_password());
    assert!(!ok.shown().contains(secret) && ok.shown().contains("***"), "{}", ok.shown());

    // A password file: read only when its owner alone can read it.
    let file = home.path().join("pgpass");
    std::fs::write(&file, format!("127.0.0.1:{}:postgres:postgres:{secret}\n", db.port)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let passfile = [("PGPASSFILE", file.to_str().unwrap())];
    let e = open_with(&url, &passfile, None).err().expect("a password file others can read is ignored");
    assert!(e.contains("mode is 0644") && e.contains("chmod 600") && !e.contains(secret), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    open_with(&url, &passfile, None).unwrap();
    // ~/.pgpass when PGPASSFILE is not set.
    std::fs::rename(&file, home.path().join(".pgpass")).unwrap();
    open_with(&url, &[], Some(home.path())).unwrap();
}

#[test]
fn an_operation_past_its_timeout_is_unavailable_cancelled_and_its_connection_replaced() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let opts = PgOptions { pool_size: 1, op_timeout: Duration::from_secs(1), runtime: None };
    let s = PgDb::open_env(&db.url(), opts, &|_| None, None).unwrap();
    let holder = open(&db.url());
    let (_, _, order) = objects(&s);
    s.put_order(&order).unwrap();
    // Another instance holds the order's row for 2.5 s.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let id = order.id.clone();
    let holding = std::thread::spawn(move || {
        holder
            .tx("holding an order", move |c| {
                Box::pin(async move {
                    c.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", &[&id]).await?;
                    locked.send(()).unwrap();
                    c.execute("SELECT pg_sleep(2.5)", &[]).await.map(drop)
                })
            })
            .unwrap()
    });
    is_locked.recv_timeout(Duration::from_secs(10)).expect("the row is locked");
    let t = Instant::now();
    let e = s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap_err();
    assert!(matches!(e, StorageError::Unavailable(_)) && e.to_string().contains("in time"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    holding.join().unwrap();
    // The one connection was replaced, not handed back mid-statement, and
    // the timed-out UPDATE was cancelled rather than left to commit once
    // the lock was free: the client was told it failed.
    assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Pending);
    assert!(s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
}

#[test]
fn the_blocking_bridge_works_on_a_runtime_worker_on_a_current_thread_runtime_and_without_one() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let opts = PgOptions { runtime: Some(rt.handle().clone()), ..PgOptions::default() };
    let s = PgDb::open_env(&db.url(), opts, &|_| None, None).unwrap();
    let (account, _, _) = objects(&s);
    s.put_account(&account).unwrap();
    // On a worker of serve's own runtime (a route not sent to spawn_blocking).
    let on_worker = s.clone();
    let id = account.id.clone();
    let found = rt.block_on(async move { tokio::spawn(async move { on_worker.account(&id) }).await.unwrap() });
    assert_eq!(found.unwrap().unwrap().id, account.id);
    rt.block_on(s.ping()).unwrap();
    // In spawn_blocking, where serve sends the routes that use the store.
    let blocking = s.clone();
    let id = account.id.clone();
    let found = rt.block_on(async move { tokio::task::spawn_blocking(move || blocking.account(&id)).await.unwrap() });
    assert!(found.unwrap().is_some());
    // On the thread that runs the runtime's block_on (serve's start-up).
    assert!(rt.block_on(async { s.account(&account.id) }).unwrap().is_some());
    let url = db.url();
    let opened_inside = rt.block_on(async {
        let opts = PgOptions { runtime: Some(tokio::runtime::Handle::current()), ..PgOptions::default() };
        PgDb::open_env(&url, opts, &|_| None, None).unwrap()
    });
    assert!(opened_inside.account(&account.id).unwrap().is_some());
    // On a current-thread runtime's only thread.
    let ct = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(ct.block_on(async { s.account(&account.id) }).unwrap().is_some());
    // A PgDb with a runtime of its own (the CLI's), opened and dropped
    // inside another runtime's task.
    let url = db.url();
    rt.block_on(async move {
        tokio::spawn(async move {
            let own = open(&url);
            own.health().unwrap();
            assert!(own.account("nope").unwrap().is_none());
            drop(own);
        })
        .await
        .unwrap()
    });
}

#[test]
fn the_janitor_deletes_what_has_expired_and_one_instance_sweeps_at_a_time() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let (a, b) = (open(&db.url()), open(&db.url()));
    db.psql(
        "INSERT INTO used_nonces VALUES ('old', now() - interval '1 s'), ('new', now() + interval '1 hour'); \
         INSERT INTO rate_limits VALUES ('full', now() - interval '1 s'), ('busy', now() + interval '1 hour')",
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // While b holds the janitor's lock, a's pass does nothing.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let holding = std::thread::spawn(move || {
        b.tx("holding the janitor's lock", move |c| {
            Box::pin(async move {
                // The janitor's lock: "certforg" + 1 (serve/pg/schema.rs).
                c.execute("SELECT pg_advisory_xact_lock($1)", &[&0x6365_7274_666f_7268_i64]).await?;
                locked.send(()).unwrap();
                c.execute("SELECT pg_sleep(1)", &[]).await.map(drop)
            })
        })
        .unwrap()
    });
    is_locked.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(rt.block_on(a.sweep()).unwrap(), None);
    holding.join().unwrap();
    assert_eq!(rt.block_on(a.sweep()).unwrap(), Some((1, 1)));
    assert_eq!(db.psql("SELECT nonce FROM used_nonces"), "new");
    assert_eq!(db.psql("SELECT key FROM rate_limits"), "busy");
}

#[test]
fn a_database_out_of_reach_is_named_without_its_password_within_3_s() {
    let port = common::free_port();
    let t = Instant::now();
    let url = format!("postgres://certforge:Pw-5531@127.0.0.1:{port}/fleet");
    let e = open_with(&url, &[], None).err().expect("nothing listens there");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let shown = format!("postgres://certforge:***@127.0.0.1:{port}/fleet");
    assert!(e.starts_with(&format!("cannot reach the database at {shown}: ")) && !e.contains("Pw-5531"), "{e}");
    assert!(e.contains("onnection refused"), "the cause: {e}");
}

/// The backend serving `s`'s next call on this thread.
fn backend(s: &PgDb) -> Result<i32, StorageError> {
    s.run("asking for the backend's pid", |c| {
        Box::pin(async move { Ok(c.query_one("SELECT pg_backend_pid()", &[]).await?.get(0)) })
    })
}

#[test]
fn a_database_thread_keeps_its_own_connection_replaces_a_killed_one_at_once_and_keeps_the_timeout() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let opts = PgOptions { pool_size: 2, op_timeout: Duration::from_secs(1), runtime: None };
    let s = PgDb::open_env(&db.url(), opts, &|_| None, None).unwrap();
    let pooled = backend(&s).unwrap();
    let (on_thread, url) = (s.clone(), db.url());
    let thread = std::thread::spawn(move || {
        let s = on_thread;
        assert!(s.bind_thread());
        // Every call on the thread uses the same connection, not the pool's.
        let own = backend(&s).unwrap();
        assert_eq!(backend(&s).unwrap(), own);
        assert_ne!(own, pooled);
        // Another database's calls on this thread go through its own pool.
        assert_ne!(backend(&open(&url)).unwrap(), own);
    });
    thread.join().unwrap();

    // A connection the server closed between two calls (a restart, an
    // operator's pg_terminate_backend) is replaced by the next call, which
    // succeeds.
    let on_thread = s.clone();
    let (asked, ask) = std::sync::mpsc::channel::<()>();
    let (told, tell) = std::sync::mpsc::channel::<i32>();
    let thread = std::thread::spawn(move || {
        let s = on_thread;
        assert!(s.bind_thread());
        told.send(backend(&s).unwrap()).unwrap();
        ask.recv_timeout(Duration::from_secs(10)).unwrap();
        let after = backend(&s).expect("the call after the kill succeeds");
        // An operation past its timeout fails in time, its statement is
        // cancelled and the thread's next call has a new connection.
        let t = Instant::now();
        let e = s
            .run("sleeping", |c| Box::pin(async move { c.execute("SELECT pg_sleep(3)", &[]).await.map(drop) }))
            .unwrap_err();
        assert!(matches!(e, StorageError::Unavailable(_)) && e.to_string().contains("in time"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        (after, backend(&s).unwrap())
    });
    let killed = tell.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(db.psql(&format!("SELECT pg_terminate_backend({killed})")), "t");
    // The backend is gone before the thread's next call.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {killed}")) != "0" {
        assert!(Instant::now() < deadline, "backend {killed} still there");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A backend leaves pg_stat_activity just before its process exits and
    // its socket closes.
    std::thread::sleep(Duration::from_millis(500));
    asked.send(()).unwrap();
    let (after, last) = thread.join().unwrap();
    assert_ne!(after, killed);
    assert_ne!(last, after, "the timed-out connection was replaced");
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)' AND state = 'active'")
        != "0"
    {
        assert!(Instant::now() < deadline, "the timed-out statement was not cancelled");
        std::thread::sleep(Duration::from_millis(50));
    }
}
