//! `certforge probe HOST:PORT`: connect with rustls (TLS 1.2 and 1.3), show
//! the negotiated version, cipher and the chain the server sent, then verify
//! that chain as `verify` does. The Rust answer to the diagnose script of
//! the gRPC TLS guide. It also says when the server demands a client certificate and
//! none was given, and when it refuses the one given.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use time::OffsetDateTime;

use super::common::{print_stdout, read_key, usage, Exit};
use super::inputs::{label, read_certs, resolve};
use super::verify::{render, trust};
use crate::cli::ProbeArgs;
use crate::depot::Depot;
use crate::pki::inspect::cert_info;
use crate::pki::verify::{verify, Input, Outcome, Purpose};

/// What the probe saw.
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub address: String,
    pub server_name: String,
    pub handshake: bool,
    pub protocol: Option<String>,
    pub cipher_suite: Option<String>,
    /// The chain as sent: subject, issuer, notAfter of each certificate.
    pub chain: Vec<ChainEntry>,
    /// Whether the server asked for a client certificate (mutual TLS).
    pub client_cert_requested: bool,
    /// The CA names the server said it accepts for client certificates.
    pub acceptable_client_cas: Vec<String>,
    pub client_cert_sent: Option<String>,
    /// The server's refusal, if it refused the handshake or the client cert.
    pub server_error: Option<String>,
    /// Our verification of the server's chain.
    pub verification: Option<Outcome>,
    /// One line a person can act on, when something is wrong.
    pub diagnosis: Vec<String>,
}

/// One certificate the server sent.
#[derive(Debug, Serialize)]
pub struct ChainEntry {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    /// Typed, as `list --json` gives them.
    pub sans: Vec<crate::pki::inspect::SanEntry>,
}

/// Accepts any chain but keeps it, so that it can be shown and verified
/// with every reason listed, rather than aborting at the first. Handshake
/// signatures are still checked for real.
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        inter: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().expect("lock");
        chain.push(ee.clone().into_owned());
        chain.extend(inter.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Notes whether the server asked for a client certificate, and which CAs
/// it named, then offers the one given (if any).
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    asked: Mutex<Option<Vec<String>>>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, hints: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let names = hints.iter().map(|h| dn_text(h)).collect();
        *self.asked.lock().expect("lock") = Some(names);
        self.key.clone()
    }
    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The text of a DER distinguished name, as the server's CertificateRequest
/// lists them.
fn dn_text(der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    x509_parser::x509::X509Name::from_der(der)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|_| "(unreadable name)".into())
}

/// Runs `probe`.
pub fn run(depot: &Depot, args: &ProbeArgs) -> Result<()> {
    let (host, _port) = split_address(&args.address)?;
    let server_name = args.servername.clone().unwrap_or_else(|| host.clone());
    let sni = ServerName::try_from(server_name.clone())
        .map_err(|_| usage(format!("--servername {server_name:?} is not a DNS name or IP address")))?;
    let (anchors, chain_hint) = trust(depot, &args.ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder { chain: Mutex::new(Vec::new()), provider: provider.clone() });
    let (client_key, client_label) = client_identity(depot, args, &provider)?;
    let client = Arc::new(ClientCert { key: client_key, asked: Mutex::new(None) });
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(client.clone());

    let timeout = Duration::from_secs(args.timeout.max(1));
    let addr = args
        .address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.address))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} resolves to no address", args.address))?;
    let mut sock = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {}: is the server listening there?", args.address))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let mut conn = ClientConnection::new(Arc::new(config), sni).context("cannot start TLS")?;
    let mut server_error = None;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            server_error = Some(describe_io_error(&e));
            break;
        }
    }
    let handshake = server_error.is_none();
    if handshake {
        // Under TLS 1.3 a server refuses a client certificate only after the
        // handshake, with an alert the next read sees.
        sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
        let mut buf = [0u8; 1];
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        match tls.read(&mut buf) {
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                server_error = Some(describe_io_error(&e))
            }
            _ => {}
        }
    }

    let chain: Vec<CertificateDer<'static>> = recorder.chain.lock().expect("lock").clone();
    let now = OffsetDateTime::now_utc();
    let entries = chain
        .iter()
        .map(|c| match cert_info(c, now) {
            Ok(i) => {
                ChainEntry { subject: i.subject, issuer: i.issuer, not_after: i.not_after, sans: i.sans.entries() }
            }
            Err(e) => ChainEntry { subject: e, issuer: String::new(), not_after: String::new(), sans: Vec::new() },
        })
        .collect();
    let verification = match chain.split_first() {
        Some((leaf, rest)) => {
            let mut intermediates: Vec<Vec<u8>> = rest.iter().map(|c| c.to_vec()).collect();
            intermediates.extend(chain_hint);
            let input = Input {
                leaf: leaf.to_vec(),
                leaf_label: "the server's certificate".into(),
                anchors,
                chain: intermediates,
                hosts: vec![server_name.clone()],
                purpose: Some(Purpose::Server),
                crls: Vec::new(),
                key: None,
                at: now,
            };
            Some(verify(&input).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let asked = client.asked.lock().expect("lock").clone();
    let mut report = ProbeReport {
        address: args.address.clone(),
        server_name,
        handshake,
        protocol: conn.protocol_version().map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1.")),
        cipher_suite: conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
        chain: entries,
        client_cert_requested: asked.is_some(),
        acceptable_client_cas: asked.unwrap_or_default(),
        client_cert_sent: client_label.filter(|_| client.key.is_some()),
        server_error,
        verification,
        diagnosis: Vec::new(),
    };
    report.diagnosis = diagnose(&report);
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        print_stdout(&render_report(&report))?;
    }
    let ok = report.handshake && report.server_error.is_none() && report.verification.as_ref().is_some_and(|v| v.valid);
    if ok {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

fn split_address(address: &str) -> Result<(String, u16)> {
    let (host, port) =
        address.rsplit_once(':').ok_or_else(|| usage(format!("{address:?}: give HOST:PORT, e.g. localhost:50051")))?;
    let port: u16 = port.parse().map_err(|_| usage(format!("{address:?}: {port:?} is not a port number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!(usage(format!("{address:?}: the host is empty")));
    }
    Ok((host.to_string(), port))
}

fn client_identity(
    depot: &Depot,
    args: &ProbeArgs,
    provider: &CryptoProvider,
) -> Result<(Option<Arc<CertifiedKey>>, Option<String>)> {
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else { return Ok((None, None)) };
    let cert_path = resolve(depot, cert, &["crt"])?;
    let key_path = resolve(depot, key, &["key"])?;
    let certs: Vec<CertificateDer<'static>> = read_certs(&cert_path)?.into_iter().map(CertificateDer::from).collect();
    let key = read_key(&key_path, &mut args.pass.source()?)?;
    let der = PrivateKeyDer::try_from(key.pkcs8_der().to_vec())
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let certified = CertifiedKey::from_der(certs, der, provider)
        .map_err(|e| anyhow::anyhow!("{} and {} do not form a pair: {e}", label(&cert_path), label(&key_path)))?;
    Ok((Some(Arc::new(certified)), Some(label(&cert_path))))
}

fn describe_io_error(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(alert)) => format!("the server sent the alert {alert:?}"),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

fn diagnose(r: &ProbeReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(err) = &r.server_error {
        if r.client_cert_requested && r.client_cert_sent.is_none() {
            let cas = if r.acceptable_client_cas.is_empty() {
                String::new()
            } else {
                format!(" signed by {}", r.acceptable_client_cas.join(" or "))
            };
            out.push(format!("the server demands a client certificate (mutual TLS) and none was given ({err}): pass --cert and --key with a client certificate{cas}"));
        } else if let (true, Some(sent)) = (r.client_cert_requested, &r.client_cert_sent) {
            let cas = if r.acceptable_client_cas.is_empty() {
                "the CA it trusts".to_string()
            } else {
                r.acceptable_client_cas.join(" or ")
            };
            out.push(format!("the server refused the client certificate {sent} ({err}): it must be signed by {cas} and carry clientAuth (sign it with --profile client or peer)"));
        } else if r.chain.is_empty() {
            out.push(format!("the handshake failed before the server sent a certificate ({err}); is it a TLS port?"));
        } else {
            out.push(format!("the handshake failed: {err}"));
        }
    }
    out
}

fn render_report(r: &ProbeReport) -> String {
    let mut s = format!("{} (server name {})\n", r.address, r.server_name);
    if let (Some(p), Some(c)) = (&r.protocol, &r.cipher_suite) {
        s.push_str(&format!("  TLS          {p}, {c}\n"));
    }
    for (i, c) in r.chain.iter().enumerate() {
        s.push_str(&format!(
            "  chain #{}     {} (issuer {}; expires {}; SANs {})\n",
            i + 1,
            c.subject,
            c.issuer,
            c.not_after,
            crate::pki::inspect::summary(&c.sans)
        ));
    }
    let mtls = match (r.client_cert_requested, &r.client_cert_sent) {
        (false, _) => "not requested".to_string(),
        (true, None) => format!("requested (CAs: {}), none sent", list(&r.acceptable_client_cas)),
        (true, Some(c)) => format!("requested (CAs: {}), sent {c}", list(&r.acceptable_client_cas)),
    };
    s.push_str(&format!("  client cert  {mtls}\n"));
    if let Some(v) = &r.verification {
        s.push_str(
            &render(v, std::slice::from_ref(&r.server_name), Some(Purpose::Server))
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>(),
        );
    }
    for d in &r.diagnosis {
        s.push_str(&format!("  - {d}\n"));
    }
    s
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "any".into()
    } else {
        v.join(", ")
    }
}
