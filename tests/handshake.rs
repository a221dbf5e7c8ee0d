//! A real mutual-TLS handshake in process, with rustls (the TLS stack under
//! tonic) on 127.0.0.1, using the files the CLI wrote: the right client is
//! accepted, another CA's client and a server cert for another host are not.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use std::sync::Arc;
use tls::{cert, key, provider, roots};

use common::Env;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConnection, StreamOwned};

/// Runs one handshake plus an echo. Returns the client's and the server's
/// outcome: Ok, or the error text.
fn handshake(
    server_ca: &Path,
    server: (&Path, &Path),
    client_ca: &Path,
    client: (&Path, &Path),
    host: &str,
) -> (Result<(), String>, Result<(), String>) {
    let server_cfg = tls::server_config(server.0, server.1, Some(server_ca), rustls::DEFAULT_VERSIONS);
    let client_cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(client_ca))
        .with_client_auth_cert(vec![cert(client.0)], key(client.1))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_thread = std::thread::spawn(move || -> Result<(), String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let conn = ServerConnection::new(Arc::new(server_cfg)).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(&buf).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())
    });
    let client_result = (|| -> Result<(), String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(Arc::new(client_cfg), name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        if &buf != b"hello" {
            return Err("echo mismatch".into());
        }
        Ok(())
    })();
    (client_result, server_thread.join().unwrap())
}

fn pair(env: &Env, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    (env.file(&format!("{name}.crt")), env.file(&format!("{name}.key")))
}

fn setup() -> Env {
    let env = Env::new();
    env.blog_workflow();
    env.intruder();
    env.ok(&["request-cert", "--domain", "grpc.example.com", "--ip", "127.0.0.1"]);
    env.ok(&["sign", "grpc.example.com", "--CA", "gRPC Root CA", "--profile", "server"]);
    env
}

#[test]
fn the_blog_client_is_accepted_by_the_blog_server() {
    let env = setup();
    let ca = env.file("gRPC_Root_CA.crt");
    let (s, c) = (pair(&env, "localhost"), pair(&env, "grpc_client"));
    let (client, server) = handshake(&ca, (&s.0, &s.1), &ca, (&c.0, &c.1), "localhost");
    assert_eq!((client, server), (Ok(()), Ok(())));
    let s2 = pair(&env, "grpc.example.com");
    let (client, server) = handshake(&ca, (&s2.0, &s2.1), &ca, (&c.0, &c.1), "127.0.0.1");
    assert_eq!((client, server), (Ok(()), Ok(())), "IP SANs match an IP server name");
}

#[test]
fn a_client_from_another_ca_is_refused() {
    let env = setup();
    let ca = env.file("gRPC_Root_CA.crt");
    let (s, c) = (pair(&env, "localhost"), pair(&env, "intruder"));
    let (client, server) = handshake(&ca, (&s.0, &s.1), &ca, (&c.0, &c.1), "localhost");
    let server_err = server.expect_err("the server must refuse a client from another CA");
    assert!(server_err.contains("UnknownIssuer"), "{server_err}");
    assert!(client.is_err(), "the client sees the refusal");
}

#[test]
fn a_server_cert_for_another_host_is_refused() {
    let env = setup();
    let ca = env.file("gRPC_Root_CA.crt");
    let (s, c) = (pair(&env, "localhost"), pair(&env, "grpc_client"));
    let (client, _server) = handshake(&ca, (&s.0, &s.1), &ca, (&c.0, &c.1), "grpc.example.com");
    let err = client.expect_err("localhost.crt must not pass for grpc.example.com");
    assert!(err.contains("not valid for name"), "{err}");
}

#[test]
fn a_client_trusting_the_wrong_ca_refuses_the_server() {
    let env = setup();
    let (ca, other) = (env.file("gRPC_Root_CA.crt"), env.file("Other_CA.crt"));
    let (s, c) = (pair(&env, "localhost"), pair(&env, "grpc_client"));
    let (client, _server) = handshake(&ca, (&s.0, &s.1), &other, (&c.0, &c.1), "localhost");
    assert!(client.expect_err("wrong trust anchor").contains("UnknownIssuer"));
}
