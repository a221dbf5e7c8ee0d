//! `certforge probe HOST:PORT`: connect with rustls (TLS 1.2 and 1.3),
//! offering h2 and http/1.1 by ALPN as curl does, show the negotiated
//! version, cipher, protocol and the chain the server sent, then verify that
//! chain as `verify` does. The Rust answer to the diagnose script of the
//! gRPC TLS guide. It also says when the server demands a client
//! certificate and none was given, when it refuses the one given, and when
//! it requires a protocol by ALPN.

mod alpn;
mod diagnose;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use time::OffsetDateTime;

use self::diagnose::{diagnose, render_report, AlpnRetry, ChainEntry, Ending, ProbeReport};
use super::common::{print_stdout, read_key, usage, Exit};
use super::inputs::{label, read_certs, resolve};
use super::verify::trust;
use crate::cli::ProbeArgs;
use crate::depot::Depot;
use crate::pki::inspect::cert_info;
use crate::pki::verify::{verify, Input, Purpose};

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
        let chain = std::iter::once(ee).chain(inter).map(|c| c.clone().into_owned());
        *self.chain.lock().expect("lock") = chain.collect();
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
    let offer = match &args.alpn {
        Some(value) => alpn::parse(value).map_err(usage)?,
        None => alpn::default_offer(),
    };
    let (anchors, chain_hint) = trust(depot, &args.ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder { chain: Mutex::new(Vec::new()), provider: provider.clone() });
    let (client_key, client_label) = client_identity(depot, args, &provider)?;
    let client_issuer = client_key
        .as_ref()
        .and_then(|k| k.end_entity_cert().ok())
        .and_then(|c| cert_info(c, OffsetDateTime::now_utc()).ok().map(|i| i.issuer));
    let client = Arc::new(ClientCert { key: client_key, asked: Mutex::new(None) });
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(client.clone());
    // Every connection a full handshake: a resumed one shows no chain and
    // is never asked for a client certificate (RFC 8446 §2.2).
    config.resumption = Resumption::disabled();
    let config = Arc::new(config);

    let timeout = Duration::from_secs(args.timeout.max(1));
    let addrs: Vec<SocketAddr> =
        args.address.to_socket_addrs().with_context(|| format!("cannot resolve {}", args.address))?.collect();
    if addrs.is_empty() {
        bail!("{} resolves to no address", args.address);
    }
    let target = Target { addrs, address: &args.address, config, sni, timeout };
    let first = target.attempt(&offer)?;
    let chain: Vec<CertificateDer<'static>> = recorder.chain.lock().expect("lock").clone();
    let asked = client.asked.lock().expect("lock").clone();
    // A server that requires ALPN (gRPC requires h2) closes the connection
    // of a client that offers none without an alert, as one refusing a
    // client certificate may: offering the default protocols again tells
    // the two apart.
    let alpn_retry = match &first.ending {
        Some(Ending::Closed) if first.handshake && first.alpn().is_none() && offer != alpn::DEFAULT => {
            let again: Vec<String> = alpn::default_offer();
            target.attempt(&again).ok().map(|a| AlpnRetry {
                alpn_protocol: a.alpn(),
                accepted: a.handshake && a.ending.is_none(),
                offered: again,
            })
        }
        _ => None,
    };

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
            Some(verify(&input, super::flags::san).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let sent = client.key.is_some();
    let mut report = ProbeReport {
        address: args.address.clone(),
        server_name,
        handshake: first.handshake,
        protocol: first.conn.protocol_version().map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1.")),
        cipher_suite: first.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
        alpn_offered: offer,
        alpn_protocol: first.alpn(),
        chain: entries,
        client_cert_requested: asked.is_some(),
        acceptable_client_cas: asked.unwrap_or_default(),
        client_cert_sent: client_label.filter(|_| sent),
        client_cert_issuer: client_issuer.filter(|_| sent),
        server_error: first.ending.as_ref().map(Ending::text),
        server_alert: first.ending.as_ref().and_then(Ending::alert),
        alpn_retry,
        verification,
        diagnosis: Vec::new(),
    };
    report.diagnosis = diagnose(&report, first.ending.as_ref());
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

/// Where and how to connect; one [`Target::attempt`] per connection.
struct Target<'a> {
    /// Every address the host resolves to, in the resolver's order.
    addrs: Vec<SocketAddr>,
    address: &'a str,
    config: Arc<ClientConfig>,
    sni: ServerName<'static>,
    timeout: Duration,
}

/// One connection, and how the server ended it (None: it did not).
struct Attempt {
    conn: ClientConnection,
    handshake: bool,
    ending: Option<Ending>,
}

impl Attempt {
    /// The protocol the server chose by ALPN.
    fn alpn(&self) -> Option<String> {
        self.conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned())
    }
}

impl Target<'_> {
    /// Connects offering `offer` by ALPN, completes the handshake, and
    /// waits briefly for what the server does next.
    fn attempt(&self, offer: &[String]) -> Result<Attempt> {
        let mut sock = connect_first(&self.addrs, self.timeout, self.address)?;
        sock.set_read_timeout(Some(self.timeout))?;
        sock.set_write_timeout(Some(self.timeout))?;
        let protocols = offer.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut conn = ClientConnection::new_with_alpn(self.config.clone(), self.sni.clone(), protocols)
            .context("cannot start TLS")?;
        let mut ending = None;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                ending = Some(self.ending(&e));
                break;
            }
        }
        let handshake = ending.is_none();
        if handshake {
            // Under TLS 1.3 a server refuses a client certificate only after
            // the handshake, with an alert the next read sees; a server that
            // requires ALPN closes the connection there. A close_notify is
            // an orderly end (openssl s_server sends one when its input
            // ends), not a refusal.
            sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
            let mut buf = [0u8; 1];
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            ending = match tls.read(&mut buf) {
                Ok(_) => None,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
                Err(e) => Some(self.ending(&e)),
            };
        }
        Ok(Attempt { conn, handshake, ending })
    }

    fn ending(&self, e: &std::io::Error) -> Ending {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::AlertReceived(alert)) => Ending::Alert(*alert),
            Some(other) => Ending::Failed(other.to_string()),
            None => match e.kind() {
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => Ending::Closed,
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Ending::TimedOut(self.timeout.as_secs()),
                _ => Ending::Failed(e.to_string()),
            },
        }
    }
}

/// A connection to the first of `addrs` that answers. `localhost` may
/// resolve to ::1 before 127.0.0.1 (RFC 6724's order), and a server often
/// listens on only one of them: like curl, try each in turn.
fn connect_first(addrs: &[SocketAddr], timeout: Duration, address: &str) -> Result<TcpStream> {
    let mut refused = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(sock) => return Ok(sock),
            Err(e) => refused.push(format!("{addr}: {e}")),
        }
    }
    bail!("cannot connect to {address} ({}): is the server listening there?", refused.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_to_the_first_address_that_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A port just freed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let sock = connect_first(&[closed, open], Duration::from_secs(5), "localhost:1").unwrap();
        assert_eq!(sock.peer_addr().unwrap(), open);
        let err = connect_first(&[closed], Duration::from_secs(5), "localhost:1").unwrap_err().to_string();
        assert!(err.contains(&closed.to_string()) && err.contains("is the server listening"), "{err}");
    }
}
