//! A fleet (`serve --database` instances behind haproxy) when things break:
//! an instance killed with -9 under load, the database stopped for 10 s,
//! a read-only standby, a database whose schema is newer than this
//! certforge. Every wait is bounded; each test makes its own cluster.

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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Env;
use fleet::{check_chains, eventually, one_at_a_time, Fleet};
use pg::Pg;
use raw_acme::{Key, NEW_ORDER};
use serde_json::json;

fn ready() -> bool {
    pg::available() && haproxy::available()
}

/// 16 clients × 10 orders through the balancer, and B killed with -9 at
/// about the 40th order. Each order either succeeds, or its client sees an
/// error and one fresh order for the same name succeeds; serials are
/// distinct, no order has two certificates, and it all ends within 90 s.
#[test]
fn an_instance_killed_under_load_loses_no_order_and_duplicates_none() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let mut fleet = Fleet::start(3, &["--skip-validation"]);
    let progress = Arc::new(fleet::Progress::default());
    let (directory, ca_file) = (fleet.directory.clone(), fleet.ca_file.clone());
    let started = Instant::now();
    let issued = std::thread::scope(|s| {
        let watch = progress.clone();
        let fleet = &mut fleet;
        let killer = s.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while watch.orders.load(Ordering::Relaxed) < 40 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let at = watch.orders.load(Ordering::Relaxed);
            fleet.kill9(1);
            at
        });
        let issued = fleet::runtime().block_on(fleet::load(
            &directory,
            &ca_file,
            "kill",
            (16, 10),
            Duration::from_secs(90),
            true,
            progress.clone(),
        ));
        let at = killer.join().unwrap();
        assert!((40..160).contains(&at), "B was killed at order {at}, not during the load");
        issued
    });
    assert!(started.elapsed() < Duration::from_secs(90), "{:?}", started.elapsed());
    assert_eq!(issued.len(), 160, "every name got its certificate");
    let retried: Vec<String> =
        issued.iter().filter_map(|i| i.first_error.as_ref().map(|e| format!("{}: {e}", i.name))).collect();
    eprintln!("{} orders were made again after an error:\n{}", retried.len(), retried.join("\n"));
    let chains: Vec<String> = issued.into_iter().map(|i| i.chain).collect();
    check_chains(&fleet.envs[0].tmp.path().join("leaves"), &fleet.ca_file, &chains);
    let doubled = fleet
        .pg
        .psql("SELECT location FROM certificates WHERE location IS NOT NULL GROUP BY location HAVING count(*) > 1");
    assert_eq!(doubled, "", "orders with two certificates");
}

/// The database stopped for 10 s: within 5 s every instance's /health is
/// 503 with a reason and haproxy takes all out; a signed request sent
/// straight to an instance is answered 503 problem+json with Retry-After
/// within 5 s (its nonce, issued without the database, still parses), the
/// directory is still served. Started again, the same processes serve.
#[test]
fn a_database_outage_is_503_with_retry_after_and_the_fleet_comes_back_by_itself() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let mut fleet = Fleet::start(3, &["--skip-validation"]);
    let pids: Vec<u32> = (0..3).map(|i| fleet.server(i).pid()).collect();
    let a = fleet.acme(0);
    let account = a.register(Key::p256());

    fleet.pg.stop();
    let stopped = Instant::now();
    for i in 0..3 {
        let reason = eventually(5, &format!("instance {}'s /health saying 503", fleet::name(i)), || {
            let r = fleet.health(i);
            (r.status == 503).then(|| r.json()["reason"].as_str().unwrap_or("").to_string())
        });
        assert!(!reason.is_empty(), "/health 503 gives a reason");
        assert_eq!(fleet.health(i).json()["status"], "unavailable");
    }
    assert!(stopped.elapsed() <= Duration::from_secs(6), "{:?}", stopped.elapsed());
    for i in 0..3 {
        fleet.lb.wait(fleet::name(i), "DOWN", 5);
    }
    for i in 0..3 {
        let acme = fleet.acme(i);
        let ids = json!({ "identifiers": [{ "type": "dns", "value": "outage.example.com" }] });
        let req = acme.signed(&account.key, Some(&account.kid), NEW_ORDER, Some(&ids));
        let sent = Instant::now();
        let r = acme.send(&req);
        assert!(sent.elapsed() < Duration::from_secs(5), "answered after {:?}", sent.elapsed());
        assert_eq!(r.status, 503, "instance {}: {}", fleet::name(i), r.show());
        assert_eq!(r.header("Content-Type"), Some("application/problem+json"), "{}", r.show());
        assert!(r.header("Retry-After").is_some_and(|v| v.parse::<u64>().is_ok()), "{}", r.show());
        assert_eq!(acme.get("/directory").status, 200, "the directory needs no database");
    }

    let left = Duration::from_secs(10).saturating_sub(stopped.elapsed());
    std::thread::sleep(left);
    fleet.pg.start_again();
    for i in 0..3 {
        eventually(10, &format!("instance {}'s /health back to 200", fleet::name(i)), || {
            (fleet.health(i).status == 200).then_some(())
        });
        fleet.lb.wait(fleet::name(i), "UP", 10);
    }
    let lb = fleet.acme_lb();
    let der = lb.issue(&account, "after.example.com");
    assert!(!der.is_empty());
    let now: Vec<u32> = (0..3).map(|i| fleet.server(i).pid()).collect();
    assert_eq!(now, pids, "the same processes, not restarted");
}

/// `certforge serve ARGS` expected to stop at start: exit `code` within
/// 30 s. Returns stderr.
fn start_fails(env: &Env, args: &[&str], code: i32) -> String {
    let mut cmd = env.cmd(&[&["serve"], args].concat());
    let run = common::run_group(&mut cmd, None, 30).expect("certforge runs");
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.timed_out, "serve {args:?} was still running after 30 s:\n{err}");
    assert_eq!(run.status.and_then(|s| s.code()), Some(code), "serve {args:?}:\n{err}");
    err
}

/// A CA in a fresh depot, and the serve arguments for it on `url`.
fn one_instance(url: &str) -> (Env, Vec<String>) {
    let env = Env::new();
    env.ok(&["init", "--cn", "Standby CA", "--passphrase", ""]);
    let args = ["--CA", "Standby CA", "--listen", "127.0.0.1:0", "--database", url, "--skip-validation"];
    (env, args.iter().map(|s| s.to_string()).collect())
}

/// On a standby whose schema is current, `serve` starts (nothing to
/// write) and its /health says 503 "read-only standby"; on a standby of a
/// database that has no schema yet it stops at once, saying so.
#[test]
fn on_a_standby_serve_starts_read_only_or_says_why_not() {
    if !pg::available() {
        return;
    }
    let primary = Pg::start();
    let empty_standby = primary.standby();
    let (env, args) = one_instance(&empty_standby.url());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = start_fails(&env, &args, 1);
    assert!(err.contains("standby"), "{err}");
    drop(empty_standby);

    // The first start on the primary makes the schema.
    let (env, args) = one_instance(&primary.url());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = acme_server::Server::start(&env, &args);
    first.stop();
    assert_eq!(primary.psql("SELECT count(*) FROM certforge_schema"), "1");
    let standby = primary.standby();
    let (env, args) = one_instance(&standby.url());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = acme_server::Server::start(&env, &args);
    let acme = raw_acme::Acme::new(&server);
    let health = eventually(5, "the standby instance's /health", || {
        let r = acme.get("/health");
        (r.status == 503).then_some(r)
    });
    let reason = health.json()["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains("read-only standby"), "{}", health.show());
    assert_eq!(primary.psql("SELECT count(*) FROM certforge_schema"), "1");
}

/// A database migrated by a newer certforge (schema 99): this one stops at
/// start, naming both versions.
#[test]
fn a_newer_schema_stops_serve_naming_both_versions() {
    if !pg::available() {
        return;
    }
    let db = Pg::start();
    let (env, args) = one_instance(&db.url());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    acme_server::Server::start(&env, &args).stop();
    let columns = db.psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'certforge_schema'",
    );
    assert!(columns.contains("version"), "{columns}");
    db.psql("INSERT INTO certforge_schema (version, by_instance) VALUES (99, 'a newer certforge')");
    let err = start_fails(&env, &args, 1);
    assert!(err.contains("version 99") && err.contains("up to 1"), "{err}");
    assert!(err.contains("upgrade certforge"), "{err}");
}
