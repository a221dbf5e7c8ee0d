//! A fleet: three `certforge serve --database` instances on one PostgreSQL
//! cluster, behind haproxy, with the balancer's URL as their external URL.
//! Real clients (lego, certbot, instant-acme) go through the balancer; a
//! raw JWS client sends chosen requests to chosen instances, to show that
//! the instances share nonces, orders, certificates, the CRL and the rate
//! limits, as one server would.
//!
//! Each test makes its own cluster and fleet, one test at a time.

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/haproxy.rs"]
mod haproxy;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/raw_acme.rs"]
mod raw_acme;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet::{check_chains, eventually, leaf, one_at_a_time, serial_hex, serial_of_bytes, Fleet};
use pg::Pg;
use raw_acme::{b64, jws, payload, Account, Key, Req, NEW_ACCOUNT, NEW_ORDER, REVOKE, URN};
use serde_json::{json, Value};

/// Whether the fleet's parts are here (skips, or fails under CI, if not).
fn ready() -> bool {
    pg::available() && haproxy::available()
}

/// A fleet of three where every challenge passes: for the tests about
/// what the instances share, not about validation.
fn skipping(extra: &[&str]) -> Fleet {
    Fleet::start(3, &[&["--skip-validation"], extra].concat())
}

/// lego with its files under `dir`, through the balancer, answering
/// http-01 on 127.0.0.1:`http` (where every instance connects).
fn lego(fleet: &Fleet, dir: &std::path::Path, http: u16, flags: &[&str], command: &[&str]) -> String {
    let mut cmd = Command::new("lego");
    cmd.env("LEGO_CA_CERTIFICATES", &fleet.ca_file)
        .args(["--server", &fleet.directory, "--accept-tos", "--email", "a@example.com", "--path"])
        .arg(dir)
        .args(["--domains", "localhost", "--http", "--http.port", &format!("127.0.0.1:{http}")])
        .args(flags)
        .args(command);
    let (ok, out) = clients::run_bounded(&mut cmd, 120);
    assert!(ok, "lego {flags:?} {command:?} failed:\n{out}\n{}", fleet.logs());
    out
}

/// The entry of `acme list --json` for `serial`.
fn listed(fleet: &Fleet, serial: &str) -> Value {
    let all = fleet.list_json();
    all.iter()
        .find(|c| c["serial"].as_str().map(serial_hex).as_deref() == Some(serial))
        .unwrap_or_else(|| panic!("{serial} is not in acme list --json: {all:?}"))
        .clone()
}

#[test]
fn lego_issues_and_revokes_through_the_balancer() {
    if !ready() || !clients::require("lego", &["--version"], "apt-get install lego") {
        return;
    }
    let _one = one_at_a_time();
    let [http] = common::free_ports();
    let fleet = Fleet::start(3, &["--http01-port", &http.to_string()]);
    let dir = fleet.envs[0].tmp.path().join("lego");
    lego(&fleet, &dir, http, &[], &["run"]);
    let chain = std::fs::read_to_string(dir.join("certificates/localhost.crt")).unwrap();
    let serials = check_chains(&fleet.envs[0].tmp.path().join("leaves"), &fleet.ca_file, &[chain]);
    let serial = serials.first().unwrap().clone();
    assert_eq!(listed(&fleet, &serial)["revoked"], Value::Null);

    lego(&fleet, &dir, http, &[], &["revoke", "--keep", "--reason", "4"]);
    fleet.wait_revoked_everywhere(&serial, 5);
    let entry = listed(&fleet, &serial);
    assert_eq!(entry["revoked"]["reason"], json!("superseded"), "{entry}");
}

#[test]
fn certbot_issues_and_revokes_through_the_balancer() {
    if !ready() || !clients::require("certbot", &["--version"], "apt-get install certbot") {
        return;
    }
    let _one = one_at_a_time();
    let [http] = common::free_ports();
    let fleet = Fleet::start(3, &["--http01-port", &http.to_string()]);
    let dir = fleet.envs[0].tmp.path().join("certbot");
    let certbot = |args: &[&str]| {
        // REQUESTS_CA_BUNDLE is set inside `env`: run_bounded removes the
        // machine's CA variables from what it runs.
        let mut cmd = Command::new("env");
        cmd.arg(format!("REQUESTS_CA_BUNDLE={}", fleet.ca_file.display())).arg("certbot");
        for (flag, sub) in [("--config-dir", "config"), ("--work-dir", "work"), ("--logs-dir", "logs")] {
            cmd.arg(flag).arg(dir.join(sub));
        }
        let (ok, out) = clients::run_bounded(cmd.arg("--non-interactive").args(args), 180);
        assert!(ok, "certbot {args:?} failed:\n{out}\n{}", fleet.logs());
    };
    let port = http.to_string();
    certbot(&[
        "certonly",
        "--standalone",
        "--http-01-port",
        &port,
        "--http-01-address",
        "127.0.0.1",
        "--server",
        &fleet.directory,
        "--agree-tos",
        "--register-unsafely-without-email",
        "-d",
        "localhost",
    ]);
    let cert = dir.join("config/live/localhost/cert.pem");
    let chain = std::fs::read_to_string(&cert).unwrap();
    let serial = check_chains(&fleet.envs[0].tmp.path().join("leaves"), &fleet.ca_file, &[chain]).pop_first().unwrap();
    let cert = cert.display().to_string();
    certbot(&["revoke", "--cert-path", &cert, "--server", &fleet.directory, "--no-delete-after-revoke"]);
    fleet.wait_revoked_everywhere(&serial, 5);
    assert_ne!(listed(&fleet, &serial)["revoked"], Value::Null);
}

/// 16 instant-acme clients × 10 orders through the balancer: every
/// instance takes part, every serial is distinct, every certificate
/// verifies under the CA, `acme list --json` lists exactly those, and no
/// instance answered 5xx.
#[test]
fn sixteen_clients_with_ten_orders_each_through_the_balancer() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let fleet = skipping(&[]);
    let progress = Arc::new(fleet::Progress::default());
    let issued = fleet::runtime().block_on(fleet::load(
        &fleet.directory,
        &fleet.ca_file,
        "fleet",
        (16, 10),
        Duration::from_secs(240),
        false,
        progress,
    ));
    assert_eq!(issued.len(), 160);
    let chains: Vec<String> = issued.into_iter().map(|i| i.chain).collect();
    let serials = check_chains(&fleet.envs[0].tmp.path().join("leaves"), &fleet.ca_file, &chains);
    let listed: BTreeSet<String> =
        fleet.list_json().iter().map(|c| serial_hex(c["serial"].as_str().expect("a serial"))).collect();
    assert_eq!(listed, serials, "acme list --json lists exactly the certificates issued");
    for i in 0..3 {
        assert!(fleet.lb.sessions(fleet::name(i)) > 0, "instance {} got no connection", fleet::name(i));
        let errors: Vec<String> = fleet.server(i).lines().into_iter().filter(|l| l.contains("status=5")).collect();
        assert!(errors.is_empty(), "instance {} answered 5xx:\n{}", fleet::name(i), errors.join("\n"));
    }
}

/// A nonce handed out by A is good on B, once: the same request replayed
/// on C is badNonce. Every URL the instances give starts with the
/// balancer's URL.
#[test]
fn a_nonce_from_one_instance_is_spent_on_another_once() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let fleet = skipping(&[]);
    let (a, b, c) = (fleet.acme(0), fleet.acme(1), fleet.acme(2));
    let base = fleet.base().to_string();
    for (i, acme) in [&a, &b, &c].into_iter().enumerate() {
        let dir = acme.get("/directory");
        assert_eq!(dir.status, 200, "{}", dir.show());
        for (k, v) in dir.json().as_object().unwrap() {
            if let Some(url) = v.as_str() {
                assert!(url.starts_with(&base), "instance {}: {k} = {url}, not under {base}", fleet::name(i));
            }
        }
    }

    let key = Key::p256();
    let h = json!({ "alg": key.alg(), "nonce": a.nonce(), "url": a.url(NEW_ACCOUNT), "jwk": key.jwk() });
    let req = Req::jose(NEW_ACCOUNT, &jws(&key, &h, &payload(&json!({ "termsOfServiceAgreed": true }))));
    let made = b.send(&req);
    assert_eq!(made.status, 201, "A's nonce on B: {}", made.show());
    let kid = made.header("Location").expect("an account URL").to_string();
    assert!(kid.starts_with(&base), "{kid}");
    let replayed = c.send(&req);
    assert_eq!(replayed.problem(), (400, "badNonce".to_string()), "the same nonce again, on C: {}", replayed.show());

    let account = Account { key, kid };
    let h = json!({ "alg": account.key.alg(), "nonce": a.nonce(), "url": a.url(NEW_ORDER), "kid": account.kid });
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "nonce.example.com" }] });
    let order = b.send(&Req::jose(NEW_ORDER, &jws(&account.key, &h, &payload(&ids))));
    assert_eq!(order.status, 201, "newOrder on B with A's nonce: {}", order.show());
    let body = order.json();
    let mut urls = vec![order.header("Location").unwrap().to_string(), body["finalize"].as_str().unwrap().to_string()];
    urls.extend(body["authorizations"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()));
    for url in &urls {
        assert!(url.starts_with(&base), "{url} is not under {base}");
    }
    let link = order.header("Link").expect("a Link to the directory");
    assert!(link.contains(&format!("<{base}/directory>")), "{link}");
}

/// Kills the psql holding a lock when the test ends, whatever happens.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two finalize requests for one order, to A and to B, forced to race: the
/// test holds the order's row (SELECT … FOR UPDATE) until both wait on it,
/// then lets go. One wins (200), the other is told orderNotReady (403);
/// both then see the same certificate, and the database holds one.
#[test]
fn a_finalize_race_between_two_instances_gives_one_certificate() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let fleet = skipping(&[]);
    let (a, b) = (fleet.acme(0), fleet.acme(1));
    let account = a.register(Key::p256());
    let finalize = a.ready_order(&account, &["race.example.com"]);
    let order_path = finalize.strip_suffix("/finalize").unwrap().to_string();
    let id = order_path.rsplit('/').next().unwrap().to_string();
    // The row the test is about to lock is the order's (its URL ends with the id).
    assert_eq!(fleet.pg.psql(&format!("SELECT count(*) FROM orders WHERE id = '{id}'")), "1");

    let mut psql = fleet.pg.psql_cmd();
    psql.env("PGAPPNAME", "certforge-test-lock").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut holder = Holder(psql.spawn().unwrap());
    let mut stdin = holder.0.stdin.take().unwrap();
    writeln!(stdin, "BEGIN;\nSELECT 1 FROM orders WHERE id = '{id}' FOR UPDATE;").unwrap();
    stdin.flush().unwrap();
    let held = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'certforge-test-lock' AND state = 'idle in transaction'";
    eventually(5, "the test's transaction holding the order row", || (fleet.pg.psql(held) == "1").then_some(()));

    let key = rcgen::KeyPair::generate().unwrap();
    let csr = json!({ "csr": b64(raw_acme::csr(&["race.example.com"], &key)) });
    let (req_a, req_b) = (
        a.signed(&account.key, Some(&account.kid), &finalize, Some(&csr)),
        b.signed(&account.key, Some(&account.kid), &finalize, Some(&csr)),
    );
    let (answer_a, answer_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.send(&req_a));
        let tb = s.spawn(|| b.send(&req_b));
        // Both must be waiting on the row before it is let go, and well
        // inside the instances' lock_timeout (3 s).
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
        let started = Instant::now();
        let seen = eventually(5, "both finalize requests waiting on the order row", || {
            (fleet.pg.psql(waiting).parse::<u32>().unwrap() >= 2).then(|| started.elapsed())
        });
        assert!(seen < Duration::from_millis(2500), "the two requests took {seen:?} to reach the row lock");
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let _ = holder.0.wait();
    let mut outcomes = [(answer_a.status, "A", &answer_a), (answer_b.status, "B", &answer_b)];
    outcomes.sort_by_key(|o| o.0);
    assert_eq!(outcomes[0].0, 200, "one finalize wins: A {} / B {}", answer_a.show(), answer_b.show());
    assert_eq!(outcomes[1].2.problem(), (403, "orderNotReady".to_string()), "the other: {}", outcomes[1].2.show());

    let seen_a = a.ok(&account, &order_path, None, 200).json();
    let seen_b = b.ok(&account, &order_path, None, 200).json();
    assert_eq!(seen_a["status"], "valid");
    assert_eq!(seen_a["certificate"], seen_b["certificate"], "one certificate URL on both");
    let cert = a.path(seen_a["certificate"].as_str().unwrap()).to_string();
    assert_eq!(a.ok(&account, &cert, None, 200).body, b.ok(&account, &cert, None, 200).body);
    assert_eq!(fleet.pg.psql(&format!("SELECT count(*) FROM certificates WHERE location = 'order:{id}'")), "1");
}

/// The CertID of RFC 9773 §4.1 for a leaf: base64url(AKI) "." base64url(serial).
fn cert_id(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("an authority key identifier");
    format!("{}.{}", b64(aki), b64(cert.raw_serial()))
}

/// Revoked through A, a certificate is in C's CRL within 5 s, all three
/// serve the same CRL (bytes and number), and C's renewalInfo says to
/// renew now.
#[test]
fn a_revocation_through_one_instance_is_in_every_crl_within_five_seconds() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let fleet = skipping(&[]);
    let (a, b, c) = (fleet.acme(0), fleet.acme(1), fleet.acme(2));
    let account = b.register(Key::p256());
    let der = b.issue(&account, "revoked.example.com");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let serial = serial_of_bytes(cert.raw_serial());
    // Before the first revocation there may be no CRL in the database yet.
    let before = fleet::http_get(fleet.crl_ports[2], &fleet.crl_path).filter(|r| r.status == 200).map(|r| r.body);
    let before = before.map(|der| fleet::crl_entries(&der));
    assert!(before.as_ref().is_none_or(|(_, listed)| !listed.contains(&serial)));

    a.ok(&account, REVOKE, Some(&json!({ "certificate": b64(&der), "reason": 4 })), 200);
    let revoked = Instant::now();
    eventually(5, "C's CRL listing the certificate revoked through A", || {
        fleet::crl_entries(&fleet.crl(2)).1.contains(&serial).then_some(())
    });
    assert!(revoked.elapsed() <= Duration::from_secs(5));
    let number = fleet.wait_revoked_everywhere(&serial, 5);
    let numbers: Vec<String> = (0..3).map(|i| fleet::crl_entries(&fleet.crl(i)).0).collect();
    assert!(numbers.iter().all(|n| *n == number), "CRL numbers {numbers:?}");
    if let Some((was, _)) = before {
        assert_ne!(was, number, "a new CRL number");
    }
    // Each instance's /metrics says the same CRL number, counts the
    // revocation where it was made, and times a PostgreSQL store.
    for (i, acme) in [&a, &b, &c].into_iter().enumerate() {
        let text = String::from_utf8(acme.get("/metrics").body).unwrap();
        let value = |series: &str| -> Option<f64> {
            text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        };
        let crl = text.lines().find(|l| l.starts_with("certforge_crl_number{")).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(crl.rsplit(' ').next(), Some(number.as_str()), "instance {i}: {crl}");
        assert_eq!(value("certforge_revocations_total"), Some(if i == 0 { 1.0 } else { 0.0 }), "instance {i}");
        assert_eq!(value("certforge_store_errors_total{store=\"postgresql\"}"), Some(0.0), "instance {i}");
        assert!(value("certforge_store_operation_duration_seconds_count{store=\"postgresql\"}") > Some(0.0));
    }

    let ari = c.get(&format!("/renewal-info/{}", cert_id(&der)));
    assert_eq!(ari.status, 200, "{}", ari.show());
    let end = ari.json()["suggestedWindow"]["end"].as_str().expect("a window end").to_string();
    let end = time::OffsetDateTime::parse(&end, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(end <= time::OffsetDateTime::now_utc(), "C suggests renewing by {end}, not now");
}

/// The instance holding the CRL lease dies: the lease runs out, and
/// another instance publishes the next CRL. The dead holder is forged
/// (the lease row is rewritten to name a holder "b (forged)" with 4 s
/// left, then B is killed), since which instance holds it at a given
/// moment is not up to the test.
#[test]
fn when_the_crl_lease_holder_dies_another_instance_publishes() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let mut fleet = skipping(&[]);
    let a = fleet.acme(0);
    let account = a.register(Key::p256());
    let first = a.issue(&account, "first.example.com");
    let second = a.issue(&account, "second.example.com");
    a.ok(&account, REVOKE, Some(&json!({ "certificate": b64(&first) })), 200);
    let (_, cert) = x509_parser::parse_x509_certificate(&first).unwrap();
    fleet.wait_revoked_everywhere(&serial_of_bytes(cert.raw_serial()), 5);

    let forged = fleet.pg.psql(
        "UPDATE crl_lease SET holder = 'b (forged)', token = token + 1, leased_until = now() + interval '4 seconds' RETURNING holder",
    );
    assert_eq!(forged, "b (forged)", "one lease row, made by the first revocation");
    fleet.kill9(1);

    let started = Instant::now();
    a.ok(&account, REVOKE, Some(&json!({ "certificate": b64(&second) })), 200);
    let (_, cert) = x509_parser::parse_x509_certificate(&second).unwrap();
    let serial = serial_of_bytes(cert.raw_serial());
    // LEASE (5 s) + 3 s from the revocation.
    let left = Duration::from_secs(8).saturating_sub(started.elapsed()).as_secs().max(1);
    eventually(left, "C's CRL listing the certificate after the lease ran out", || {
        fleet::crl_entries(&fleet.crl(2)).1.contains(&serial).then_some(())
    });
    assert!(started.elapsed() <= Duration::from_secs(8), "{:?}", started.elapsed());
    assert_ne!(fleet.pg.psql("SELECT holder FROM crl_lease"), "b (forged)");

    // B started again serves the CRL the others published, both revocations in it.
    fleet.restart(1);
    fleet.wait_revoked_everywhere(&serial, 5);
}

/// `--rate-orders-per-account 2` on every instance: two orders through A,
/// the third through B is 429 rateLimited with a Retry-After, and stores
/// nothing.
#[test]
fn an_account_rate_limit_is_shared_by_the_instances() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let fleet = skipping(&["--rate-orders-per-account", "2"]);
    let (a, b) = (fleet.acme(0), fleet.acme(1));
    let account = a.register(Key::p256());
    a.order(&account, &["one.example.com"]);
    a.order(&account, &["two.example.com"]);
    let counts = "SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM authzs)";
    let before = fleet.pg.psql(counts);
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "three.example.com" }] });
    let r = b.send(&b.signed(&account.key, Some(&account.kid), NEW_ORDER, Some(&ids)));
    assert_eq!(r.problem(), (429, "rateLimited".to_string()), "{}", r.show());
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    let retry: u64 = r.header("Retry-After").expect("Retry-After").parse().expect("seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(r.json()["type"].as_str().unwrap().starts_with(URN));
    assert_eq!(fleet.pg.psql(counts), before, "a refused order stores nothing");
}

/// Behind haproxy with `send-proxy-v2`, `--proxy-protocol` makes the
/// per-address limit count each client, not the balancer: two clients
/// from two addresses each get their order, and the second order from one
/// of them is refused. Without the header both would be haproxy's
/// 127.0.0.1 and the second client refused (checked: it is).
#[test]
fn behind_proxy_protocol_the_address_limit_counts_clients_not_the_balancer() {
    if !ready() {
        return;
    }
    let _one = one_at_a_time();
    let limits = ["--skip-validation", "--proxy-protocol", "--rate-orders-per-address", "1"];
    let fleet = Fleet::behind(Pg::start(), 2, &[&limits[..], &["--rate-orders-per-account", "0"]].concat(), true);
    let lb = fleet.acme_lb();
    let (two, three) = (lb.from(Ipv4Addr::new(127, 0, 0, 2)), lb.from(Ipv4Addr::new(127, 0, 0, 3)));
    let (a, b) = (two.register(Key::p256()), three.register(Key::p256()));
    two.order(&a, &["one.example.com"]);
    three.order(&b, &["two.example.com"]);
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "again.example.com" }] });
    let r = two.send(&two.signed(&a.key, Some(&a.kid), NEW_ORDER, Some(&ids)));
    assert_eq!(r.problem(), (429, "rateLimited".to_string()), "{}", r.show());
    assert!(r.json()["detail"].as_str().unwrap().contains("from this address"), "{}", r.show());
    let logs = fleet.logs();
    assert!(logs.contains("127.0.0.2") && logs.contains("127.0.0.3"), "the request log names the clients:\n{logs}");
}

/// An EAB key made with `acme eab add --database` opens an account on a
/// fleet that requires one: lego with that kid gets a certificate
/// through the balancer.
#[test]
fn an_eab_key_made_in_the_database_works_on_every_instance() {
    if !ready() || !clients::require("lego", &["--version"], "apt-get install lego") {
        return;
    }
    let _one = one_at_a_time();
    let pg = Pg::start();
    let url = pg.url();
    let out = common::Env::new().ok(&["acme", "eab", "add", "fleet-ingress", "--database", &url]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (kid, hmac) = stdout.trim().split_once(' ').expect("KID HMAC on stdout");
    let [http] = common::free_ports();
    let fleet = Fleet::on(pg, 3, &["--http01-port", &http.to_string(), "--require-eab"]);
    let dir = fleet.envs[0].tmp.path().join("lego");
    lego(&fleet, &dir, http, &["--eab", "--kid", kid, "--hmac", hmac], &["run"]);
    let chain = std::fs::read_to_string(dir.join("certificates/localhost.crt")).unwrap();
    let (serial, _) = leaf(&chain);
    listed(&fleet, &serial);
}
