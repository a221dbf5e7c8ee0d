//! `serve`'s `/metrics`: what it counts after real requests, in the
//! Prometheus text format that `promtool check metrics` lints clean, on
//! the HTTPS port and on `--metrics-listen` (plain HTTP, loopback unless an
//! address is given).

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "common/prom.rs"]
mod prom;
#[path = "common/raw_acme.rs"]
mod raw_acme;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use acme_server::Server;
use common::{need, Env};
use prom::{NodeExporter, Prometheus};
use raw_acme::*;
use serde_json::json;

/// A plain-HTTP GET of `path` from `addr` ("127.0.0.1:PORT"): status and body.
fn get_plain(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    let r = parse_response(&raw).unwrap_or_else(|| panic!("not HTTP: {raw:?}"));
    (r.status, String::from_utf8(r.body).unwrap())
}

/// The value of the sample `series` (name and labels, exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on `text`: it exits 0 and says nothing when
/// there is no lint problem.
fn promtool_accepts(text: &str) {
    if !clients::require("promtool", &["--version"], "apt-get install prometheus") {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[test]
fn metrics_count_orders_checks_nonces_and_revocations_and_promtool_lints_them_clean() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Metrics CA", "--passphrase", ""]);
    let args = ["--CA", "Metrics CA", "--listen", "127.0.0.1:0", "--skip-validation", "--allow", "example.com"];
    let mut server = Server::start(&env, &[&args[..], &["--metrics-listen", "0"]].concat());
    // A port alone listens on loopback, and the banner says where.
    let banner = server.lines().join("\n");
    let line = server.lines().into_iter().find(|l| l.trim_start().starts_with("metrics")).expect(&banner);
    let plain = line.split("http://").nth(1).and_then(|r| r.split("/metrics").next()).expect(&line).to_string();
    assert!(plain.starts_with("127.0.0.1:"), "{line}");
    assert!(line.contains(&format!("{}/metrics", server.base())), "{line}");

    let acme = Acme::new(&server);
    let account = acme.register(Key::p256());
    let first = acme.issue(&account, "a.example.com");
    acme.issue(&account, "b.example.com");
    // Refused by the policy: a failed order, by its problem type.
    let refused = acme.send(&acme.signed(
        &account.key,
        Some(&account.kid),
        "/new-order",
        Some(&json!({ "identifiers": [{ "type": "dns", "value": "other.test" }] })),
    ));
    assert_eq!(refused.problem().1, "rejectedIdentifier", "{}", refused.show());
    // The same signed request twice: the second one's nonce is spent.
    let again = acme.signed(&account.key, Some(&account.kid), "/new-order", Some(&json!({ "identifiers": [] })));
    acme.send(&again);
    assert_eq!(acme.send(&again).problem().1, "badNonce");
    let revoked = acme.ok(&account, "/revoke-cert", Some(&json!({ "certificate": b64(&first) })), 200);
    assert_eq!(revoked.status, 200);

    let over_tls = acme.get("/metrics");
    assert_eq!(over_tls.status, 200);
    assert_eq!(over_tls.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let (status, text) = get_plain(&plain, "/metrics");
    assert_eq!(status, 200);
    for (series, want) in [
        ("certforge_orders_created_total", 2.0),
        ("certforge_orders_finalized_total", 2.0),
        ("certforge_orders_failed_total{problem=\"rejectedIdentifier\"}", 1.0),
        ("certforge_challenge_validations_total{type=\"http-01\",result=\"valid\"}", 2.0),
        ("certforge_revocations_total", 1.0),
        ("certforge_nonces_rejected_total", 1.0),
        ("certforge_http_requests_total{route=\"finalize\",status=\"200\"}", 2.0),
        // The refused one, the empty one (malformed) and its replay.
        ("certforge_http_requests_total{route=\"newOrder\",status=\"400\"}", 3.0),
        ("certforge_orders_failed_total{problem=\"malformed\"}", 1.0),
        ("certforge_orders_failed_total{problem=\"badNonce\"}", 1.0),
        ("certforge_issuance_duration_seconds_count", 2.0),
        ("certforge_store_errors_total{store=\"sqlite\"}", 0.0),
        ("certforge_http_requests_in_flight", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    let at_least = |series: &str, min: f64| {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
        assert!(v >= min, "{series} = {v}, want at least {min}");
    };
    at_least("certforge_nonces_issued_total", 10.0);
    at_least("certforge_store_operation_duration_seconds_count{store=\"sqlite\"}", 10.0);
    at_least("certforge_http_request_duration_seconds_bucket{route=\"finalize\",le=\"+Inf\"}", 2.0);
    // The CA from `init` lives 10 years; the CRL the revocation signed is
    // number 2 (init's is 1) and fresh.
    at_least("certforge_ca_expiry_seconds", 9.0 * 365.0 * 86_400.0);
    assert_eq!(sample(&text, "certforge_crl_number{crl=\"Metrics_CA.crl\"}"), Some(2.0), "{text}");
    let age = sample(&text, "certforge_crl_age_seconds{crl=\"Metrics_CA.crl\"}").unwrap();
    assert!((0.0..3600.0).contains(&age), "the CRL is backdated a little, not more: {age}");
    at_least("process_resident_memory_bytes", 1e6);
    at_least("process_open_fds", 3.0);
    at_least("process_start_time_seconds", 1.7e9);
    // The depot's certificates' expiry, as `certforge list --format
    // prometheus` writes it: the CA, and the two ACME certificates, one of
    // them revoked.
    let expiry: Vec<&str> =
        text.lines().filter(|l| l.starts_with("certforge_certificate_not_after_timestamp_seconds{")).collect();
    assert_eq!(expiry.len(), 3, "{text}");
    let revoked: Vec<&str> =
        text.lines().filter(|l| l.starts_with("certforge_certificate_revoked{") && l.ends_with(" 1")).collect();
    assert!(revoked.len() == 1 && revoked[0].contains("name=\"a.example.com.acme-"), "{revoked:?}");
    promtool_accepts(&text);

    // The plain port serves /metrics and /health, and nothing of ACME.
    let (status, body) = get_plain(&plain, "/directory");
    assert_eq!((status, body.as_str()), (404, "this port serves /metrics and /health only\n"));
    assert_eq!(get_plain(&plain, "/health").0, 200);
    server.stop();
}

/// The README's alert expression, as a reader copies it.
fn readme_alert_expr() -> String {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let rule = &readme[readme.find("- alert: CertificateExpiresSoon").expect("the README's alert rule")..];
    rule.lines().find_map(|l| l.trim().strip_prefix("expr: ")).expect("its expr").to_string()
}

/// A real Prometheus scrapes `serve` over HTTPS, trusting the depot's CA,
/// and node_exporter's textfile collector reading `list --format
/// prometheus`; its query API then gives the counters of what was done,
/// and the README's alert expression finds exactly the certificate made to
/// expire within 30 days.
#[test]
fn a_real_prometheus_scrapes_serve_and_the_expiry_file_and_the_alert_finds_the_certificate_due_soon() {
    if !need("prometheus", "prometheus") || !need("prometheus-node-exporter", "prometheus-node-exporter") {
        return;
    }
    let env = Env::new();
    env.ok(&["init", "--cn", "Scraped CA", "--passphrase", ""]);
    for (name, extra) in [("soon.test", &["--expires", "10 days"][..]), ("later.test", &[][..])] {
        env.ok(&["request-cert", "--domain", name]);
        env.ok(&[&["sign", name, "--CA", "Scraped CA"][..], extra].concat());
    }
    let mut server = Server::start(&env, &["--CA", "Scraped CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let acme = Acme::new(&server);
    let account = acme.register(Key::p256());
    let mut issued: Vec<Vec<u8>> = (0..3).map(|i| acme.issue(&account, &format!("n{i}.example.com"))).collect();
    acme.ok(&account, "/revoke-cert", Some(&json!({ "certificate": b64(issued.remove(0)) })), 200);

    let textfiles = tempfile::tempdir().unwrap();
    let prom = textfiles.path().join("certforge.prom");
    env.ok(&["list", "--format", "prometheus", "--out", &prom.display().to_string()]);
    let node = NodeExporter::start(textfiles.path());
    let ca = server.ca_file.display().to_string();
    let jobs = format!(
        "  - job_name: certforge\n    scheme: https\n    tls_config: {{ ca_file: '{ca}' }}\n    \
         static_configs: [{{ targets: ['127.0.0.1:{}'] }}]\n  \
         - job_name: node\n    static_configs: [{{ targets: ['127.0.0.1:{}'] }}]\n",
        server.port(),
        node.port
    );
    let p = Prometheus::start(&jobs);
    p.until("both targets up", 30, || (p.query("up == 1").len() == 2).then_some(()));
    // A scrape after the orders, counted as they were.
    p.until("the finalized orders", 30, || p.query("certforge_orders_finalized_total").first().map(|_| ()));
    assert_eq!(p.value("certforge_orders_finalized_total"), 3.0);
    assert_eq!(p.value("certforge_orders_created_total"), 3.0);
    assert_eq!(p.value("certforge_revocations_total"), 1.0);
    assert_eq!(p.value("sum(certforge_challenge_validations_total{result=\"valid\"})"), 3.0);
    assert_eq!(p.value("certforge_crl_number"), 2.0, "init's CRL, then the revocation's");
    assert!(p.value("certforge_nonces_issued_total") >= 10.0);
    assert!(p.value("certforge_ca_expiry_seconds") > 9.0 * 365.0 * 86400.0);
    assert!(p.value("process_resident_memory_bytes{job=\"certforge\"}") > 1e6);
    // The revoked ACME certificate is flagged in what serve exports.
    let revoked = p.query("certforge_certificate_revoked{job=\"certforge\"} == 1");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert!(revoked[0]["metric"]["name"].as_str().unwrap().starts_with("n0.example.com.acme-"), "{revoked:?}");

    // The README's alert expression: the certificate due in 10 days, from
    // the file node_exporter reads and from serve, and nothing else (the
    // ACME ones live 45 days, the CA 10 years).
    let expr = readme_alert_expr();
    let due = p.query(&expr);
    let mut found: Vec<(String, String)> = due
        .iter()
        .map(|s| (s["metric"]["job"].as_str().unwrap().into(), s["metric"]["name"].as_str().unwrap().into()))
        .collect();
    found.sort();
    let want = [("certforge".to_string(), "soon.test".to_string()), ("node".into(), "soon.test".into())];
    assert_eq!(found, want, "{expr}: {due:?}");
    let left: f64 = due[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((9.0 * 86400.0..10.0 * 86400.0).contains(&left), "time left: {left}");
    eprintln!("Prometheus's alert expression found: {found:?}");
    server.stop();
}
