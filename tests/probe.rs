//! `probe` against real servers on 127.0.0.1: a rustls server in this test
//! (plain TLS and mutual TLS, TLS 1.3 and 1.2), `openssl s_server`, and a
//! Python grpcio server with mutual TLS.

#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{interop_python, interop_script, Env};

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
    let server = Peer::s_server(&env, &[]);
    let (code, out) = server.probe(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK for localhost"), "{out}");
    assert!(out.contains("ALPN         none agreed (offered h2, http/1.1)"), "{out}");
}

#[test]
fn probe_shows_the_protocol_openssl_chose_and_when_none_overlaps() {
    let env = depot();
    let server = Peer::s_server(&env, &["-alpn", "h2"]);
    let (code, v) = server.probe_json(&env, &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["alpn_protocol"], "h2");
    let (code, out) = server.probe(&env, &["--alpn", "http/1.1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("none of the protocols offered by ALPN (http/1.1)")
            && out.contains("TLS alert no_application_protocol")
            && out.contains("pass --alpn"),
        "{out}"
    );
    let (_, v) = server.probe_json(&env, &["--alpn", "http/1.1"]);
    assert_eq!(v["server_alert"], "no_application_protocol");
}

#[test]
fn probe_says_when_nothing_listens() {
    let env = depot();
    let port = common::free_port();
    let (code, out) = probe(&env, &[&format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot connect"), "{out}");
    let (code, out) = probe(&env, &["no-port-here"]);
    assert_eq!(code, Some(2), "{out}");
}

/// A server in a process group of its own on 127.0.0.1, killed (with
/// everything it started) when dropped.
struct Peer {
    child: Child,
    /// 127.0.0.1:PORT.
    address: String,
}

impl Peer {
    /// `openssl s_server` with the blog workflow's localhost certificate
    /// and `extra` options. Its stdin stays open: at EOF it ends each
    /// connection right after the handshake.
    fn s_server(env: &Env, extra: &[&str]) -> Peer {
        let port = common::free_port();
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "localhost.crt",
            "-key",
            "localhost.key",
        ])
        .args(extra)
        .arg("-quiet")
        .stdout(Stdio::null());
        let server = Peer::spawn(env, &mut cmd, port);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "openssl s_server did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// tests/interop/grpc_server.py: grpcio (BoringSSL) demanding a client
    /// certificate signed by the blog CA. None (and SKIPPED) when grpcio is
    /// missing and peers are not required.
    fn grpc(env: &Env) -> Option<Peer> {
        let py = interop_python();
        let install = "python3 -m venv target/interop-venv && target/interop-venv/bin/pip install grpcio";
        if !clients::require(py.to_str().unwrap(), &["-c", "import grpc"], install) {
            return None;
        }
        let mut cmd = Command::new(&py);
        cmd.arg(interop_script("grpc_server.py")).args(["gRPC_Root_CA.crt", "localhost.crt", "localhost.key"]);
        let mut server = Peer::spawn(env, cmd.stdout(Stdio::piped()), 0);
        let stdout = server.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("grpc_server.py listens within 30 s");
        let port: u16 = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("grpc_server.py did not start: {line:?}");
        });
        server.address = format!("127.0.0.1:{port}");
        Some(server)
    }

    /// Starts `cmd` in the depot, stdin open, stderr discarded, without the
    /// machine's CA-bundle variables (they would change what it trusts).
    fn spawn(env: &Env, cmd: &mut Command, port: u16) -> Peer {
        let child = clients::clean(cmd)
            .current_dir(env.depot())
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
        Peer { child, address: format!("127.0.0.1:{port}") }
    }

    /// `probe 127.0.0.1:PORT --servername localhost ARGS`.
    fn probe(&self, env: &Env, args: &[&str]) -> (Option<i32>, String) {
        probe(env, &self.args(args))
    }

    /// [`Peer::probe`] with --json, parsed.
    fn probe_json(&self, env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let out = env.run(&[&["probe", "--json"], &self.args(args)[..]].concat());
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code(), v)
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        [&[self.address.as_str(), "--servername", "localhost"], args].concat()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this unreaped child leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[test]
fn probe_tells_what_a_grpcio_mutual_tls_server_accepts_and_refuses() {
    let env = depot();
    let Some(server) = Peer::grpc(&env) else { return };

    let (code, out) = server.probe(&env, &["--cert", "grpc_client", "--key", "grpc_client.key"]);
    assert_eq!(code, Some(0), "the blog workflow's client certificate:\n{out}");
    assert!(out.contains("ALPN         h2 (offered h2, http/1.1)") && out.contains("sent grpc_client.crt"), "{out}");
    let (code, v) = server.probe_json(&env, &["--cert", "grpc_client", "--key", "grpc_client.key"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["alpn_protocol"], "h2");
    assert_eq!(v["alpn_offered"], serde_json::json!(["h2", "http/1.1"]));
    assert_eq!(v["server_error"], serde_json::Value::Null);

    let (code, out) = server.probe(&env, &[]);
    assert_eq!(code, Some(1), "no client certificate:\n{out}");
    assert!(out.contains("demands a client certificate") && out.contains("pass --cert and --key"), "{out}");

    let (code, out) = server.probe(&env, &["--cert", "intruder", "--key", "intruder.key"]);
    assert_eq!(code, Some(1), "a client certificate from another CA:\n{out}");
    assert!(
        out.contains("refused the client certificate intruder.crt (issued by CN=Other CA)")
            && out.contains("the server's own certificate is from CN=gRPC Root CA"),
        "{out}"
    );
}

#[test]
fn probe_says_a_grpcio_server_requires_alpn_rather_than_blaming_the_certificate() {
    let env = depot();
    let Some(server) = Peer::grpc(&env) else { return };
    let (code, out) = server.probe(&env, &["--alpn", "none", "--cert", "grpc_client", "--key", "grpc_client.key"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("requires a protocol by ALPN (gRPC servers require h2)")
            && out.contains("drop --alpn none, or pass --alpn h2"),
        "{out}"
    );
    assert!(!out.contains("refused the client certificate"), "{out}");
    let (code, v) =
        server.probe_json(&env, &["--alpn", "http/1.1", "--cert", "grpc_client", "--key", "grpc_client.key"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["alpn_offered"], serde_json::json!(["http/1.1"]));
    assert_eq!(v["alpn_protocol"], serde_json::Value::Null);
    assert_eq!(v["server_alert"], serde_json::Value::Null, "grpcio closes without an alert");
    assert_eq!(v["alpn_retry"]["alpn_protocol"], "h2");
    assert_eq!(v["alpn_retry"]["accepted"], true);
    let text = v["diagnosis"][0].as_str().unwrap();
    assert!(text.contains("--alpn h2") && !text.contains("grpc_client.crt"), "{text}");
}

#[test]
fn probe_refuses_an_alpn_list_no_server_would_match() {
    let env = Env::new();
    for (value, says) in
        [("h2c", "over TLS it is h2"), ("h2,,http/1.1", "an empty protocol"), ("HTTP/1.1", "use http/1.1")]
    {
        let err = env.fails(&["probe", "127.0.0.1:1", "--alpn", value], 2);
        assert!(err.contains(&format!("--alpn {value:?}")) && err.contains(says), "{value}: {err}");
    }
}
