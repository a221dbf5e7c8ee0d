//! A raw ACME client over real HTTPS: JWS requests built and signed by
//! hand (RFC 8555 §6.2, RFC 7515), so a test can send what a client crate
//! never would (a wrong header, a replayed nonce, a request to one chosen
//! instance of a fleet while the URLs it signs are the balancer's).
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

use crate::acme_server::Server;

// The server's resource paths; `setup` checks them against its directory.
pub const NEW_NONCE: &str = "/new-nonce";
pub const NEW_ACCOUNT: &str = "/new-account";
pub const NEW_ORDER: &str = "/new-order";
pub const REVOKE: &str = "/revoke-cert";
pub const KEY_CHANGE: &str = "/key-change";

/// What every problem type starts with (RFC 8555 §6.7).
pub const URN: &str = "urn:ietf:params:acme:error:";

/// How long one exchange with the server may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON payload as a JWS carries it.
pub fn payload(v: &Value) -> String {
    b64(v.to_string())
}

/// One HTTPS connection per request, to 127.0.0.1, trusting only the
/// server's CA file: the simplest client that still goes through the
/// server's TLS and HTTP layers as real clients do.
pub struct Https {
    pub port: u16,
    pub config: Arc<rustls::ClientConfig>,
    /// The loopback address connections come from (None: the system's
    /// choice, 127.0.0.1).
    pub source: Option<Ipv4Addr>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The status and the problem type after "urn:ietf:params:acme:error:".
    pub fn problem(&self) -> (u16, String) {
        let kind = self.json()["type"].as_str().unwrap_or("").trim_start_matches(URN).to_string();
        (self.status, kind)
    }

    /// What a failure message shows: status, headers and body as text.
    pub fn show(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        format!("HTTP {}\n{}\n{}", self.status, headers.join("\n"), String::from_utf8_lossy(&self.body))
    }
}

impl Https {
    fn connect(&self) -> TcpStream {
        let to = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Some(source) = self.source else { return TcpStream::connect(to).unwrap() };
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&std::net::SocketAddr::from((source, 0)).into()).unwrap();
        socket.connect_timeout(&to.into(), IO_TIMEOUT).unwrap();
        socket.into()
    }

    pub fn new(port: u16, ca_file: &Path) -> Https {
        let pem = std::fs::read(ca_file).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(pem::parse(pem).unwrap().into_contents())).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(crate::common::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Https { port, config: Arc::new(config), source: None }
    }

    pub fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
        let tcp = self.connect();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let name = ServerName::IpAddress(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let conn = rustls::ClientConnection::new(self.config.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.port,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        // A server that refuses a body before reading all of it may close
        // the connection while it is still being written; its answer is
        // what counts, so a failed write is not the end.
        let written = tls.write_all(head.as_bytes()).and_then(|()| tls.write_all(body)).and_then(|()| tls.flush());
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A peer that closes without close_notify, after answering.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => break,
                Err(e) => panic!("{method} {path}: reading the answer failed: {e} (writing it: {written:?})"),
            }
        }
        parse_response(&raw).unwrap_or_else(|| panic!("{method} {path}: not an HTTP response: {raw:?}"))
    }
}

pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if let Some(len) = length.and_then(|(_, v)| v.parse::<usize>().ok()) {
        body.truncate(len);
    }
    Some(Response { status, headers, body })
}

/// An account key of each type the server accepts.
pub enum Key {
    /// The PKCS#8 form is kept to make a CSR with the same key.
    P256 {
        pkcs8: Vec<u8>,
        pair: EcdsaKeyPair,
    },
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Key {
    pub fn p256() -> Key {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        Key::P256 { pkcs8: doc.as_ref().to_vec(), pair }
    }

    pub fn ed25519() -> Key {
        Key::Ed25519(Ed25519KeyPair::generate().unwrap())
    }

    pub fn rsa() -> Key {
        Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Key::P256 { .. } => "ES256",
            Key::Ed25519(_) => "EdDSA",
            Key::Rsa(_) => "RS256",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Key::P256 { pair, .. } => {
                let p = pair.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..]) })
            }
            Key::Ed25519(pair) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key()) }),
            Key::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
        }
    }

    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Key::P256 { pair, .. } => pair.sign(&SystemRandom::new(), input).unwrap().as_ref().to_vec(),
            Key::Ed25519(pair) => pair.sign(input).as_ref().to_vec(),
            Key::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig).unwrap();
                sig
            }
        }
    }
}

/// A flattened JWS (RFC 7515 §7.2.2) of `protected` and an already encoded
/// payload, signed by `key` whatever the header says.
pub fn jws(key: &Key, protected: &Value, payload: &str) -> Value {
    let h = b64(protected.to_string());
    let sig = key.sign(format!("{h}.{payload}").as_bytes());
    json!({ "protected": h, "payload": payload, "signature": b64(sig) })
}

/// A registered account: its key and its URL.
pub struct Account {
    pub key: Key,
    pub kid: String,
}

/// One request as sent.
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Req {
    /// A POST as ACME sends them.
    pub fn jose(path: &str, body: &Value) -> Req {
        Req::raw(path, Some("application/jose+json"), body.to_string().into_bytes())
    }

    pub fn raw(path: &str, content_type: Option<&'static str>, body: Vec<u8>) -> Req {
        Req { method: "POST", path: path.to_string(), content_type, body }
    }
}

/// The raw ACME client: the server's URLs, nonces and signed requests.
pub struct Acme {
    pub https: Https,
    /// "https://127.0.0.1:PORT", as the server builds its URLs (in a
    /// fleet: the balancer's, whichever instance is sent to).
    pub base: String,
}

impl Acme {
    pub fn new(server: &Server) -> Acme {
        Acme { https: Https::new(server.port(), &server.ca_file), base: server.base().to_string() }
    }

    /// A client that sends every request to 127.0.0.1:`port` (one instance
    /// of a fleet) while the URLs it signs are under `base` (the
    /// balancer's external URL, which every instance's URLs start with).
    pub fn at(port: u16, base: &str, ca_file: &Path) -> Acme {
        Acme { https: Https::new(port, ca_file), base: base.trim_end_matches('/').to_string() }
    }

    /// The same account URLs and keys, sent to another port.
    pub fn to(&self, port: u16) -> Acme {
        Acme {
            https: Https { port, config: self.https.config.clone(), source: self.https.source },
            base: self.base.clone(),
        }
    }

    /// The same client, connecting from another loopback address
    /// (127.0.0.0/8 is all this machine's).
    pub fn from(&self, source: Ipv4Addr) -> Acme {
        Acme {
            https: Https { port: self.https.port, config: self.https.config.clone(), source: Some(source) },
            base: self.base.clone(),
        }
    }

    /// A GET of `path` (directory, /health, a CRL…).
    pub fn get(&self, path: &str) -> Response {
        self.https.send("GET", path, None, b"")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The path part of one of the server's URLs.
    pub fn path<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&self.base).unwrap_or_else(|| panic!("{url} is not under {}", self.base))
    }

    pub fn send(&self, req: &Req) -> Response {
        self.https.send(req.method, &req.path, req.content_type, &req.body)
    }

    pub fn nonce(&self) -> String {
        let r = self.https.send("HEAD", NEW_NONCE, None, b"");
        r.header("Replay-Nonce").unwrap_or_else(|| panic!("no nonce: {}", r.show())).to_string()
    }

    /// The protected header of a well-formed request to `path` with a
    /// fresh nonce, naming the signer by `kid`, else by its key.
    pub fn protected(&self, key: &Key, kid: Option<&str>, path: &str) -> Value {
        let mut h = json!({ "alg": key.alg(), "nonce": self.nonce(), "url": self.url(path) });
        match kid {
            Some(kid) => h["kid"] = json!(kid),
            None => h["jwk"] = key.jwk(),
        }
        h
    }

    /// A well-formed request; `payload` None is a POST-as-GET.
    pub fn signed(&self, key: &Key, kid: Option<&str>, path: &str, payload: Option<&Value>) -> Req {
        let h = self.protected(key, kid, path);
        Req::jose(path, &jws(key, &h, &payload.map(self::payload).unwrap_or_default()))
    }

    /// Sends a well-formed request by `account` and expects `status`.
    pub fn ok(&self, account: &Account, path: &str, payload: Option<&Value>, status: u16) -> Response {
        let r = self.send(&self.signed(&account.key, Some(&account.kid), path, payload));
        assert_eq!(r.status, status, "POST {path}: {}", r.show());
        r
    }

    pub fn register(&self, key: Key) -> Account {
        let req = self.signed(&key, None, NEW_ACCOUNT, Some(&json!({ "termsOfServiceAgreed": true })));
        let r = self.send(&req);
        assert_eq!(r.status, 201, "newAccount: {}", r.show());
        Account { key, kid: r.header("Location").expect("an account URL").to_string() }
    }

    /// `account`'s keyChange to `new` (RFC 8555 §7.3.5): the inner JWS,
    /// signed by the new key, has the outer one's url and no nonce.
    pub fn key_change(&self, account: &Account, new: &Key) -> Req {
        let inner = json!({ "alg": new.alg(), "url": self.url(KEY_CHANGE), "jwk": new.jwk() });
        let inner = jws(new, &inner, &payload(&json!({ "account": account.kid, "oldKey": account.key.jwk() })));
        self.signed(&account.key, Some(&account.kid), KEY_CHANGE, Some(&inner))
    }

    /// A new order for `names`: (order body, its finalize path).
    pub fn order(&self, account: &Account, names: &[&str]) -> (Value, String) {
        let ids: Vec<Value> = names.iter().map(|n| json!({ "type": "dns", "value": n })).collect();
        let order = self.ok(account, NEW_ORDER, Some(&json!({ "identifiers": ids })), 201).json();
        let finalize = self.path(order["finalize"].as_str().unwrap()).to_string();
        (order, finalize)
    }

    /// An order for `names` whose challenges passed (`--skip-validation`),
    /// ready to finalize; returns its finalize path.
    pub fn ready_order(&self, account: &Account, names: &[&str]) -> String {
        let (order, finalize) = self.order(account, names);
        for authz in order["authorizations"].as_array().unwrap() {
            let authz = self.ok(account, self.path(authz.as_str().unwrap()), None, 200).json();
            let challenge = self.path(authz["challenges"][0]["url"].as_str().unwrap()).to_string();
            let done = self.ok(account, &challenge, Some(&json!({})), 200).json();
            assert_eq!(done["status"], "valid", "--skip-validation passes every challenge: {done}");
        }
        finalize
    }

    /// A certificate issued to `account` for `name`: the leaf's DER.
    pub fn issue(&self, account: &Account, name: &str) -> Vec<u8> {
        let finalize = self.ready_order(account, &[name]);
        let key = rcgen::KeyPair::generate().unwrap();
        let order = self.ok(account, &finalize, Some(&json!({ "csr": b64(csr(&[name], &key)) })), 200).json();
        let cert = self.path(order["certificate"].as_str().expect("a valid order has a certificate"));
        let chain = self.ok(account, cert, None, 200).body;
        pem::parse(chain).unwrap().into_contents()
    }
}

/// A CSR for exactly `names`, without a subject (RFC 8555 §7.4 lets the
/// names alone say what is asked for).
pub fn csr(names: &[&str], key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}
