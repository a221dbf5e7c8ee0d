//! A rustls TLS server on 127.0.0.1 for tests, using files the CLI wrote.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

pub use crate::common::provider;

pub fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from(pem::parse(std::fs::read(path).unwrap()).unwrap().into_contents())
}

pub fn key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::try_from(pem::parse(std::fs::read(path).unwrap()).unwrap().into_contents()).unwrap()
}

pub fn roots(ca: &Path) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    store.add(cert(ca)).unwrap();
    Arc::new(store)
}

/// A server config presenting `crt`/`key`; with `client_ca`, it demands a
/// client certificate signed by that CA (mutual TLS).
pub fn server_config(
    crt: &Path,
    key_path: &Path,
    client_ca: Option<&Path>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ServerConfig {
    let builder = ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions).unwrap();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca), provider()).build().unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(vec![cert(crt)], key(key_path)).unwrap()
}

/// Serves `connections` TLS connections in a background thread: each one
/// completes its handshake (or fails it) and is read until the peer leaves.
/// Returns the port.
pub fn serve(config: ServerConfig, connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut sock, _)) = listener.accept() else { return };
            sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            let mut conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            let mut buf = [0u8; 64];
            while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    port
}

/// Whether rustls (webpki, as tonic and reqwest use it) accepts `crt` as
/// the certificate of server `host` under the root `ca`: the hostname check
/// of a real client, which never falls back to the CN.
pub fn server_cert_valid_for(ca: &Path, crt: &Path, host: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider()).build().unwrap();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    verifier.verify_server_cert(&cert(crt), &[], &name, &[], UnixTime::now()).map(|_| ()).map_err(|e| e.to_string())
}
