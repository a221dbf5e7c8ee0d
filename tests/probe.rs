//! `probe` against real servers on 127.0.0.1: a rustls server in this test
//! (plain TLS and mutual TLS, TLS 1.3 and 1.2) and `openssl s_server`.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::process::{Command, Stdio};

use common::Env;

fn probe(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut full = vec!["probe"];
    full.extend_from_slice(args);
    let out = env.run(&full);
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn depot() -> Env {
    let env = Env::new();
    env.blog_workflow();
    env.intruder();
    env
}

const V13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const V12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

#[test]
fn probe_reports_a_plain_tls_server_and_verifies_its_chain() {
    let env = depot();
    let cfg = tls::server_config(&env.file("localhost.crt"), &env.file("localhost.key"), None, V13);
    let port = tls::serve(cfg, 3);
    let addr = format!("127.0.0.1:{port}");
    let (code, out) = probe(&env, &[&addr, "--servername", "localhost"]);
    assert_eq!(code, Some(0), "{out}");
    for w in ["TLS 1.3", "chain #1     CN=localhost", "client cert  not requested", "OK for localhost"] {
        assert!(out.contains(w), "{w} missing:\n{out}");
    }
    let (code, out) = probe(&env, &[&addr, "--servername", "grpc.example.com"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not valid for grpc.example.com") && out.contains("re-issue with --domain grpc.example.com"),
        "{out}"
    );
    let out = env.run(&["probe", &addr, "--servername", "localhost", "--ca", "Other CA", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["handshake"], true);
    assert_eq!(v["client_cert_requested"], false);
    assert_eq!(v["verification"]["problems"][0]["code"], "unknown_issuer");
}

#[test]
fn probe_explains_mutual_tls_refusals() {
    for versions in [V13, V12] {
        let env = depot();
        let ca = env.file("gRPC_Root_CA.crt");
        let cfg = tls::server_config(&env.file("localhost.crt"), &env.file("localhost.key"), Some(&ca), versions);
        let port = tls::serve(cfg, 3);
        let addr = format!("127.0.0.1:{port}");
        let (code, out) = probe(&env, &[&addr, "--servername", "localhost"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("demands a client certificate")
                && out.contains("--cert and --key")
                && out.contains("CN=gRPC Root CA"),
            "{versions:?}:\n{out}"
        );
        let (code, out) =
            probe(&env, &[&addr, "--servername", "localhost", "--cert", "grpc_client", "--key", "grpc_client.key"]);
        assert_eq!(code, Some(0), "{versions:?}:\n{out}");
        assert!(out.contains("sent grpc_client.crt"), "{out}");
        let (code, out) =
            probe(&env, &[&addr, "--servername", "localhost", "--cert", "intruder", "--key", "intruder.key"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("refused the client certificate intruder.crt"), "{versions:?}:\n{out}");
        if versions == V12 {
            assert!(out.contains("TLS 1.2") || out.contains("alert"), "{out}");
        }
    }
}

#[test]
fn probe_talks_to_openssl_s_server() {
    let env = depot();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut server = Command::new("openssl")
        .current_dir(env.depot())
        .args([
            "s_server",
            "-accept",
            &port,
            "-cert",
            "localhost.crt",
            "-key",
            "localhost.key",
            "-naccept",
            "1",
            "-quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    let addr = format!("localhost:{port}");
    let mut last = String::new();
    for _ in 0..50 {
        let (code, out) = probe(&env, &[&addr]);
        if out.contains("cannot connect") {
            std::thread::sleep(std::time::Duration::from_millis(100));
            last = out;
            continue;
        }
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("OK for localhost"), "{out}");
        let _ = server.kill();
        let _ = server.wait();
        return;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("s_server never listened: {last}");
}

#[test]
fn probe_says_when_nothing_listens() {
    let env = depot();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out) = probe(&env, &[&format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot connect"), "{out}");
    let (code, out) = probe(&env, &["no-port-here"]);
    assert_eq!(code, Some(2), "{out}");
}
