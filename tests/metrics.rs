//! `serve`'s `/metrics`: what it counts after real requests, in the
//! Prometheus text format that `promtool check metrics` lints clean, on
//! the HTTPS port and on `--metrics-listen` (plain HTTP, loopback unless an
//! address is given).

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "common/raw_acme.rs"]
mod raw_acme;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use acme_server::Server;
use common::Env;
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
