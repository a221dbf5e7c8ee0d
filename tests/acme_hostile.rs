//! `certforge serve` against malformed and hostile ACME requests, over real
//! HTTPS: each is refused with the RFC 8555 problem type and HTTP status it
//! calls for, leaves the depot and acme.sqlite exactly as they were, and the
//! server keeps serving afterwards.
//!
//! The requests are made by a small raw client in this file: ACME client
//! crates cannot send a request that is wrong on purpose.

#[path = "common/acme.rs"]
mod acme_server;
mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use acme_server::Server;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use base64::Engine as _;
use common::Env;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

// The server's resource paths; `setup` checks them against its directory.
const NEW_NONCE: &str = "/new-nonce";
const NEW_ACCOUNT: &str = "/new-account";
const NEW_ORDER: &str = "/new-order";
const REVOKE: &str = "/revoke-cert";
const KEY_CHANGE: &str = "/key-change";

/// The name of A's order that is ready to finalize.
const READY: &str = "ready.example.com";

/// What every problem type starts with (RFC 8555 §6.7).
const URN: &str = "urn:ietf:params:acme:error:";

/// How long one exchange with the server may take before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON payload as a JWS carries it.
fn payload(v: &Value) -> String {
    b64(v.to_string())
}

/// One HTTPS connection per request, to 127.0.0.1, trusting only the
/// server's CA file: the simplest client that still goes through the
/// server's TLS and HTTP layers as real clients do.
struct Https {
    port: u16,
    config: Arc<rustls::ClientConfig>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The status and the problem type after "urn:ietf:params:acme:error:".
    fn problem(&self) -> (u16, String) {
        let kind = self.json()["type"].as_str().unwrap_or("").trim_start_matches(URN).to_string();
        (self.status, kind)
    }

    /// What a failure message shows: status, headers and body as text.
    fn show(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        format!("HTTP {}\n{}\n{}", self.status, headers.join("\n"), String::from_utf8_lossy(&self.body))
    }
}

impl Https {
    fn new(port: u16, ca_file: &Path) -> Https {
        let pem = std::fs::read(ca_file).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(pem::parse(pem).unwrap().into_contents())).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(common::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Https { port, config: Arc::new(config) }
    }

    fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
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

fn parse_response(raw: &[u8]) -> Option<Response> {
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
enum Key {
    /// The PKCS#8 form is kept to make a CSR with the same key.
    P256 {
        pkcs8: Vec<u8>,
        pair: EcdsaKeyPair,
    },
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Key {
    fn p256() -> Key {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        Key::P256 { pkcs8: doc.as_ref().to_vec(), pair }
    }

    fn ed25519() -> Key {
        Key::Ed25519(Ed25519KeyPair::generate().unwrap())
    }

    fn rsa() -> Key {
        Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::P256 { .. } => "ES256",
            Key::Ed25519(_) => "EdDSA",
            Key::Rsa(_) => "RS256",
        }
    }

    fn jwk(&self) -> Value {
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

    fn sign(&self, input: &[u8]) -> Vec<u8> {
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
fn jws(key: &Key, protected: &Value, payload: &str) -> Value {
    let h = b64(protected.to_string());
    let sig = key.sign(format!("{h}.{payload}").as_bytes());
    json!({ "protected": h, "payload": payload, "signature": b64(sig) })
}

/// A registered account: its key and its URL.
struct Account {
    key: Key,
    kid: String,
}

/// One request as sent.
struct Req {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Req {
    /// A POST as ACME sends them.
    fn jose(path: &str, body: &Value) -> Req {
        Req::raw(path, Some("application/jose+json"), body.to_string().into_bytes())
    }

    fn raw(path: &str, content_type: Option<&'static str>, body: Vec<u8>) -> Req {
        Req { method: "POST", path: path.to_string(), content_type, body }
    }
}

/// The raw ACME client: the server's URLs, nonces and signed requests.
struct Acme {
    https: Https,
    /// "https://127.0.0.1:PORT", as the server builds its URLs.
    base: String,
}

impl Acme {
    fn new(server: &Server) -> Acme {
        Acme { https: Https::new(server.port(), &server.ca_file), base: server.base().to_string() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The path part of one of the server's URLs.
    fn path<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&self.base).unwrap_or_else(|| panic!("{url} is not under {}", self.base))
    }

    fn send(&self, req: &Req) -> Response {
        self.https.send(req.method, &req.path, req.content_type, &req.body)
    }

    fn nonce(&self) -> String {
        let r = self.https.send("HEAD", NEW_NONCE, None, b"");
        r.header("Replay-Nonce").unwrap_or_else(|| panic!("no nonce: {}", r.show())).to_string()
    }

    /// The protected header of a well-formed request to `path` with a
    /// fresh nonce, naming the signer by `kid`, else by its key.
    fn protected(&self, key: &Key, kid: Option<&str>, path: &str) -> Value {
        let mut h = json!({ "alg": key.alg(), "nonce": self.nonce(), "url": self.url(path) });
        match kid {
            Some(kid) => h["kid"] = json!(kid),
            None => h["jwk"] = key.jwk(),
        }
        h
    }

    /// A well-formed request; `payload` None is a POST-as-GET.
    fn signed(&self, key: &Key, kid: Option<&str>, path: &str, payload: Option<&Value>) -> Req {
        let h = self.protected(key, kid, path);
        Req::jose(path, &jws(key, &h, &payload.map(self::payload).unwrap_or_default()))
    }

    /// Sends a well-formed request by `account` and expects `status`.
    fn ok(&self, account: &Account, path: &str, payload: Option<&Value>, status: u16) -> Response {
        let r = self.send(&self.signed(&account.key, Some(&account.kid), path, payload));
        assert_eq!(r.status, status, "POST {path}: {}", r.show());
        r
    }

    fn register(&self, key: Key) -> Account {
        let req = self.signed(&key, None, NEW_ACCOUNT, Some(&json!({ "termsOfServiceAgreed": true })));
        let r = self.send(&req);
        assert_eq!(r.status, 201, "newAccount: {}", r.show());
        Account { key, kid: r.header("Location").expect("an account URL").to_string() }
    }

    /// `account`'s keyChange to `new` (RFC 8555 §7.3.5): the inner JWS,
    /// signed by the new key, has the outer one's url and no nonce.
    fn key_change(&self, account: &Account, new: &Key) -> Req {
        let inner = json!({ "alg": new.alg(), "url": self.url(KEY_CHANGE), "jwk": new.jwk() });
        let inner = jws(new, &inner, &payload(&json!({ "account": account.kid, "oldKey": account.key.jwk() })));
        self.signed(&account.key, Some(&account.kid), KEY_CHANGE, Some(&inner))
    }

    /// A new order for `names`: (order body, its finalize path).
    fn order(&self, account: &Account, names: &[&str]) -> (Value, String) {
        let ids: Vec<Value> = names.iter().map(|n| json!({ "type": "dns", "value": n })).collect();
        let order = self.ok(account, NEW_ORDER, Some(&json!({ "identifiers": ids })), 201).json();
        let finalize = self.path(order["finalize"].as_str().unwrap()).to_string();
        (order, finalize)
    }

    /// An order for `names` whose challenges passed (`--skip-validation`),
    /// ready to finalize; returns its finalize path.
    fn ready_order(&self, account: &Account, names: &[&str]) -> String {
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
    fn issue(&self, account: &Account, name: &str) -> Vec<u8> {
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
fn csr(names: &[&str], key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

/// What a request could have changed: every row of every table in
/// acme.sqlite, and every other file in the depot with its bytes and mode.
#[derive(PartialEq, Eq)]
struct Stored {
    tables: BTreeMap<String, Vec<String>>,
    files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
}

impl Stored {
    fn read(depot: &Path) -> Stored {
        use rusqlite::{Connection, OpenFlags};
        let db = Connection::open_with_flags(depot.join("acme.sqlite"), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let names: Vec<String> = {
            let mut stmt = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
        };
        let mut tables = BTreeMap::new();
        for table in names {
            let mut stmt = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let values: Vec<String> =
                        (0..columns).map(|i| r.get_ref(i).map(|v| format!("{v:?}"))).collect::<Result<_, _>>()?;
                    Ok(values.join(" | "))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            tables.insert(table, rows);
        }
        // The SQLite files are covered row by row above; their bytes move
        // with SQLite's own bookkeeping.
        let mut files = common::snapshot(depot);
        files.retain(|p, _| !p.file_name().unwrap().to_string_lossy().starts_with("acme.sqlite"));
        Stored { tables, files }
    }

    /// What differs from `before`, for a failure message.
    fn changes(&self, before: &Stored) -> String {
        let mut out = Vec::new();
        for (table, rows) in &self.tables {
            let was = before.tables.get(table).map_or(0, Vec::len);
            if before.tables.get(table) != Some(rows) {
                out.push(format!("table {table}: {was} rows, now {} (or rows changed)", rows.len()));
            }
        }
        for (path, content) in &self.files {
            if before.files.get(path) != Some(content) {
                out.push(format!("{} written", path.display()));
            }
        }
        for path in before.files.keys().filter(|p| !self.files.contains_key(*p)) {
            out.push(format!("{} removed", path.display()));
        }
        out.join("; ")
    }
}

/// What the table's requests need: accounts, orders in each state, and
/// certificates of two accounts.
struct Ctx {
    acme: Acme,
    /// The account most requests are made by, and another one.
    a: Account,
    b: Account,
    /// A's order whose challenges are not done yet.
    pending_finalize: String,
    pending_order: String,
    /// A's order for ready.example.com, ready to finalize.
    ready_finalize: String,
    /// A certificate of A's, and one of B's.
    cert_a: Vec<u8>,
    cert_b: Vec<u8>,
}

fn setup(server: &Server) -> Ctx {
    let acme = Acme::new(server);
    let dir = acme.send(&Req { method: "GET", path: "/directory".into(), content_type: None, body: vec![] }).json();
    for (name, path) in
        [("newNonce", NEW_NONCE), ("newAccount", NEW_ACCOUNT), ("newOrder", NEW_ORDER), ("revokeCert", REVOKE)]
    {
        assert_eq!(dir[name].as_str(), Some(acme.url(path).as_str()), "the directory: {dir}");
    }
    let (a, b) = (acme.register(Key::p256()), acme.register(Key::p256()));
    let (order, pending_finalize) = acme.order(&a, &["pending.example.com"]);
    let pending_order = pending_finalize.strip_suffix("/finalize").unwrap().to_string();
    assert_eq!(order["status"], "pending");
    let ready_finalize = acme.ready_order(&a, &[READY]);
    let (cert_a, cert_b) = (acme.issue(&a, "a.example.com"), acme.issue(&b, "b.example.com"));
    Ctx { acme, a, b, pending_finalize, pending_order, ready_finalize, cert_a, cert_b }
}

/// One row: the request `make` builds (it may first prepare state, before
/// the snapshot), and the answer expected: HTTP status, problem type (after
/// "urn:ietf:params:acme:error:"), and how many subproblems it lists.
struct Case {
    name: &'static str,
    status: u16,
    kind: &'static str,
    subproblems: usize,
    make: Box<dyn Fn(&Ctx) -> Req>,
}

fn case(name: &'static str, status: u16, kind: &'static str, make: impl Fn(&Ctx) -> Req + 'static) -> Case {
    Case { name, status, kind, subproblems: 0, make: Box::new(make) }
}

fn with_subproblems(mut c: Case, n: usize) -> Case {
    c.subproblems = n;
    c
}

/// A well-formed newOrder payload, so that only what a row breaks is wrong.
fn one_name() -> Value {
    json!({ "identifiers": [{ "type": "dns", "value": "www.example.com" }] })
}

/// A's newOrder of [`one_name`] with its protected header changed by `edit`.
fn edited_order(c: &Ctx, edit: impl FnOnce(&mut Value)) -> Req {
    let mut h = c.acme.protected(&c.a.key, Some(&c.a.kid), NEW_ORDER);
    edit(&mut h);
    Req::jose(NEW_ORDER, &jws(&c.a.key, &h, &payload(&one_name())))
}

/// A's newOrder of [`one_name`] with the flattened JWS changed by `edit`.
fn edited_body(c: &Ctx, edit: impl FnOnce(&mut Value)) -> Req {
    let Req { body, .. } = c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, Some(&one_name()));
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    edit(&mut v);
    Req::jose(NEW_ORDER, &v)
}

/// A newOrder by A with this payload.
fn order_of(c: &Ctx, payload: Value) -> Req {
    c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, Some(&payload))
}

/// A newAccount by a fresh key of type `key` with this payload.
fn new_account(c: &Ctx, key: Key, payload: Value) -> Req {
    c.acme.signed(&key, None, NEW_ACCOUNT, Some(&payload))
}

/// A's finalize of its ready order with this CSR.
fn finalize_with(c: &Ctx, csr: Vec<u8>) -> Req {
    c.acme.signed(&c.a.key, Some(&c.a.kid), &c.ready_finalize, Some(&json!({ "csr": b64(csr) })))
}

/// A newAccount whose jwk is `jwk`, signed by an unrelated key: the server
/// must refuse the key before it looks at the signature.
fn account_with_jwk(c: &Ctx, jwk: Value) -> Req {
    let key = Key::p256();
    let h = json!({ "alg": "ES256", "nonce": c.acme.nonce(), "url": c.acme.url(NEW_ACCOUNT), "jwk": jwk });
    Req::jose(NEW_ACCOUNT, &jws(&key, &h, &payload(&json!({ "termsOfServiceAgreed": true }))))
}

fn cases() -> Vec<Case> {
    vec![
        // The JWS and its protected header (RFC 8555 §6.2).
        case("wrong signature", 400, "malformed", |c| {
            edited_body(c, |v| {
                let mut sig =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v["signature"].as_str().unwrap()).unwrap();
                sig[10] ^= 1;
                v["signature"] = json!(b64(sig));
            })
        }),
        case("unknown alg ES512", 400, "badSignatureAlgorithm", |c| edited_order(c, |h| h["alg"] = json!("ES512"))),
        case("alg none", 400, "badSignatureAlgorithm", |c| {
            let mut h = c.acme.protected(&c.a.key, Some(&c.a.kid), NEW_ORDER);
            h["alg"] = json!("none");
            let body = json!({ "protected": b64(h.to_string()), "payload": payload(&one_name()), "signature": "" });
            Req::jose(NEW_ORDER, &body)
        }),
        case("alg HS256", 400, "badSignatureAlgorithm", |c| edited_order(c, |h| h["alg"] = json!("HS256"))),
        case("alg ES256 with an Ed25519 key", 400, "badSignatureAlgorithm", |c| {
            let key = Key::ed25519();
            let mut h = c.acme.protected(&key, None, NEW_ACCOUNT);
            h["alg"] = json!("ES256");
            Req::jose(NEW_ACCOUNT, &jws(&key, &h, &payload(&json!({ "termsOfServiceAgreed": true }))))
        }),
        case("both jwk and kid", 400, "malformed", |c| edited_order(c, |h| h["jwk"] = c.a.key.jwk())),
        case("neither jwk nor kid", 400, "malformed", |c| {
            edited_order(c, |h| {
                h.as_object_mut().unwrap().remove("kid");
            })
        }),
        case("replayed nonce", 400, "badNonce", |c| {
            // The nonce is spent on a harmless read first.
            let mut h = c.acme.protected(&c.a.key, Some(&c.a.kid), &c.pending_order);
            let read = c.acme.send(&Req::jose(&c.pending_order, &jws(&c.a.key, &h, "")));
            assert_eq!(read.status, 200, "{}", read.show());
            h["url"] = json!(c.acme.url(NEW_ORDER));
            Req::jose(NEW_ORDER, &jws(&c.a.key, &h, &payload(&one_name())))
        }),
        case("made-up nonce", 400, "badNonce", |c| edited_order(c, |h| h["nonce"] = json!(b64([7u8; 16])))),
        case("missing nonce", 400, "badNonce", |c| {
            edited_order(c, |h| {
                h.as_object_mut().unwrap().remove("nonce");
            })
        }),
        case("url of another resource", 403, "unauthorized", |c| {
            edited_order(c, |h| h["url"] = json!(c.acme.url(NEW_ACCOUNT)))
        }),
        case("url missing", 403, "unauthorized", |c| {
            edited_order(c, |h| {
                h.as_object_mut().unwrap().remove("url");
            })
        }),
        case("unknown kid", 400, "accountDoesNotExist", |c| {
            edited_order(c, |h| h["kid"] = json!(c.acme.url("/acct/nobody")))
        }),
        case("kid of another server", 400, "accountDoesNotExist", |c| {
            edited_order(c, |h| h["kid"] = json!("https://acme.example.org/acct/1"))
        }),
        case("kid signed by another account's key", 400, "malformed", |c| {
            let h = c.acme.protected(&c.b.key, Some(&c.a.kid), NEW_ORDER);
            Req::jose(NEW_ORDER, &jws(&c.b.key, &h, &payload(&one_name())))
        }),
        case("jwk for a kid-only resource", 400, "malformed", |c| {
            c.acme.signed(&c.a.key, None, NEW_ORDER, Some(&one_name()))
        }),
        case("kid for newAccount", 400, "malformed", |c| {
            c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ACCOUNT, Some(&json!({ "termsOfServiceAgreed": true })))
        }),
        case("jwk signed by another key", 400, "malformed", |c| {
            let (key, other) = (Key::p256(), Key::p256());
            let h = c.acme.protected(&key, None, NEW_ACCOUNT);
            Req::jose(NEW_ACCOUNT, &jws(&other, &h, &payload(&json!({ "termsOfServiceAgreed": true }))))
        }),
        case("deactivated account", 403, "unauthorized", |c| {
            let gone = c.acme.register(Key::p256());
            c.acme.ok(&gone, c.acme.path(&gone.kid), Some(&json!({ "status": "deactivated" })), 200);
            c.acme.signed(&gone.key, Some(&gone.kid), NEW_ORDER, Some(&one_name()))
        }),
        // The body and its framing.
        case("body over 64 KiB", 400, "malformed", |c| {
            let big =
                json!({ "identifiers": [{ "type": "dns", "value": "www.example.com" }], "pad": "x".repeat(70_000) });
            c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, Some(&big))
        }),
        case("Content-Type application/json", 415, "malformed", |c| {
            let Req { body, .. } = c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, Some(&one_name()));
            Req::raw(NEW_ORDER, Some("application/json"), body)
        }),
        case("no Content-Type", 415, "malformed", |c| {
            let Req { body, .. } = c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, Some(&one_name()));
            Req::raw(NEW_ORDER, None, body)
        }),
        case("body not JSON", 400, "malformed", |_| {
            Req::raw(NEW_ORDER, Some("application/jose+json"), b"protected=1&payload=2".to_vec())
        }),
        case("unknown JWS member", 400, "malformed", |c| edited_body(c, |v| v["header"] = json!({ "kid": c.a.kid }))),
        case("general JWS serialization", 400, "malformed", |c| {
            edited_body(c, |v| {
                let sig = json!([{ "protected": v["protected"], "signature": v["signature"] }]);
                *v = json!({ "payload": v["payload"], "signatures": sig });
            })
        }),
        case("payload not base64url", 400, "malformed", |c| {
            let h = c.acme.protected(&c.a.key, Some(&c.a.kid), NEW_ORDER);
            Req::jose(NEW_ORDER, &jws(&c.a.key, &h, "eyJpZGVudGlmaWVycyI6W119+/=="))
        }),
        case("protected header not JSON", 400, "malformed", |_| {
            let body = json!({ "protected": b64("{alg: ES256"), "payload": payload(&one_name()), "signature": b64([1u8; 64]) });
            Req::jose(NEW_ORDER, &body)
        }),
        // Account keys and newAccount (§7.3).
        case("jwk with private \"d\"", 400, "badPublicKey", |c| {
            let mut jwk = c.a.key.jwk();
            jwk["d"] = json!(b64([9u8; 32]));
            account_with_jwk(c, jwk)
        }),
        case("RSA 1024 key", 400, "badPublicKey", |c| {
            let mut n = vec![0xC3u8; 128];
            n[127] |= 1;
            account_with_jwk(c, json!({ "kty": "RSA", "n": b64(n), "e": "AQAB" }))
        }),
        case("EC key on P-521", 400, "badPublicKey", |c| {
            account_with_jwk(c, json!({ "kty": "EC", "crv": "P-521", "x": b64([1u8; 66]), "y": b64([2u8; 66]) }))
        }),
        case("onlyReturnExisting for a new RSA key", 400, "accountDoesNotExist", |c| {
            new_account(c, Key::rsa(), json!({ "onlyReturnExisting": true }))
        }),
        case("contact not mailto (Ed25519 key)", 400, "unsupportedContact", |c| {
            new_account(c, Key::ed25519(), json!({ "termsOfServiceAgreed": true, "contact": ["tel:+15551234567"] }))
        }),
        case("contact mailto without an address", 400, "invalidContact", |c| {
            new_account(c, Key::p256(), json!({ "termsOfServiceAgreed": true, "contact": ["mailto:nobody"] }))
        }),
        case("contact mailto with two addresses", 400, "invalidContact", |c| {
            new_account(c, Key::p256(), json!({ "contact": ["mailto:a@example.com,b@example.com"] }))
        }),
        case("keyChange to another account's key", 409, "malformed", |c| c.acme.key_change(&c.a, &c.b.key)),
        // newOrder (§7.4) against the CA's name constraints and the policy.
        with_subproblems(
            case("names outside the CA's constraints", 400, "rejectedIdentifier", |c| {
                let ids = [("dns", "www.example.org"), ("dns", "ok.example.com"), ("ip", "192.0.2.1")];
                let ids: Vec<Value> = ids.iter().map(|(t, v)| json!({ "type": t, "value": v })).collect();
                order_of(c, json!({ "identifiers": ids }))
            }),
            2,
        ),
        with_subproblems(
            case("identifier type email", 400, "unsupportedIdentifier", |c| {
                order_of(c, json!({ "identifiers": [{ "type": "email", "value": "a@example.com" }] }))
            }),
            1,
        ),
        case("1,000 names", 400, "rejectedIdentifier", |c| {
            let ids: Vec<Value> =
                (0..1000).map(|i| json!({ "type": "dns", "value": format!("n{i}.example.com") })).collect();
            order_of(c, json!({ "identifiers": ids }))
        }),
        case("empty identifiers", 400, "malformed", |c| order_of(c, json!({ "identifiers": [] }))),
        case("notBefore given", 400, "malformed", |c| {
            let mut p = one_name();
            p["notBefore"] = json!("2030-01-01T00:00:00Z");
            order_of(c, p)
        }),
        case("newOrder as POST-as-GET", 400, "malformed", |c| c.acme.signed(&c.a.key, Some(&c.a.kid), NEW_ORDER, None)),
        // finalize (§7.4) and the CSR.
        case("finalize before ready", 403, "orderNotReady", |c| {
            let key = rcgen::KeyPair::generate().unwrap();
            let csr = csr(&["pending.example.com"], &key);
            c.acme.signed(&c.a.key, Some(&c.a.kid), &c.pending_finalize, Some(&json!({ "csr": b64(csr) })))
        }),
        case("finalize with extra names in the CSR", 400, "badCSR", |c| {
            let key = rcgen::KeyPair::generate().unwrap();
            finalize_with(c, csr(&[READY, "extra.example.com"], &key))
        }),
        case("finalize with the account key in the CSR", 400, "badCSR", |c| {
            let Key::P256 { pkcs8, .. } = &c.a.key else { unreachable!("A has a P-256 key") };
            let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
            finalize_with(c, csr(&[READY], &key))
        }),
        case("finalize with a broken CSR signature", 400, "badCSR", |c| {
            let mut der = csr(&[READY], &rcgen::KeyPair::generate().unwrap());
            // The last byte is in the signature's s.
            *der.last_mut().unwrap() ^= 1;
            finalize_with(c, der)
        }),
        case("finalize another account's order", 404, "malformed", |c| {
            let key = rcgen::KeyPair::generate().unwrap();
            let body = json!({ "csr": b64(csr(&[READY], &key)) });
            c.acme.signed(&c.b.key, Some(&c.b.kid), &c.ready_finalize, Some(&body))
        }),
        case("read another account's order", 404, "malformed", |c| {
            c.acme.signed(&c.b.key, Some(&c.b.kid), &c.pending_order, None)
        }),
        // revokeCert (§7.6).
        case("revoke with reason 7", 400, "badRevocationReason", |c| {
            let body = json!({ "certificate": b64(&c.cert_a), "reason": 7 });
            c.acme.signed(&c.a.key, Some(&c.a.kid), REVOKE, Some(&body))
        }),
        case("revoke another account's certificate", 403, "unauthorized", |c| {
            let body = json!({ "certificate": b64(&c.cert_b), "reason": 1 });
            c.acme.signed(&c.a.key, Some(&c.a.kid), REVOKE, Some(&body))
        }),
        case("revoke by a jwk that is not the certificate's key", 403, "unauthorized", |c| {
            c.acme.signed(&Key::p256(), None, REVOKE, Some(&json!({ "certificate": b64(&c.cert_a) })))
        }),
        // Routes.
        case("POST to an unknown path", 404, "malformed", |c| {
            c.acme.signed(&c.a.key, Some(&c.a.kid), "/nowhere", None)
        }),
        case("POST to the directory", 404, "malformed", |c| {
            c.acme.signed(&c.a.key, Some(&c.a.kid), "/directory", None)
        }),
        case("GET newOrder", 404, "malformed", |_| Req {
            method: "GET",
            path: NEW_ORDER.into(),
            content_type: None,
            body: vec![],
        }),
        case("PUT newAccount", 404, "malformed", |c| {
            let Req { body, .. } = c.acme.signed(&Key::p256(), None, NEW_ACCOUNT, Some(&json!({})));
            Req { method: "PUT", path: NEW_ACCOUNT.into(), content_type: Some("application/jose+json"), body }
        }),
    ]
}

/// Why `r` is not the answer `c` expects, if it is not.
fn mismatch(c: &Case, r: &Response) -> Option<String> {
    let v = r.json();
    let urn = format!("{URN}{}", c.kind);
    let subproblems = v["subproblems"].as_array().map_or(0, Vec::len);
    let problems = [
        (r.status != c.status).then(|| format!("status {}, expected {}", r.status, c.status)),
        (v["type"] != json!(urn)).then(|| format!("type {}, expected {urn}", v["type"])),
        // RFC 7807 §3.1: the document's status is the response's.
        (v["status"] != json!(r.status)).then(|| format!("the document says status {}", v["status"])),
        (r.header("Content-Type") != Some("application/problem+json"))
            .then(|| format!("Content-Type {:?}, expected application/problem+json", r.header("Content-Type"))),
        // RFC 8555 §6.5: every answer carries a fresh nonce, errors too.
        r.header("Replay-Nonce").is_none().then(|| "no Replay-Nonce".to_string()),
        (subproblems != c.subproblems).then(|| format!("{subproblems} subproblems, expected {}", c.subproblems)),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[test]
fn hostile_requests_are_refused_with_the_rfc_problem_and_change_nothing() {
    let env = Env::new();
    // localhost too: serve on loopback puts it in its own certificate and
    // will not start with a CA that may not certify it.
    env.ok(&["init", "--cn", "Hostile CA", "--passphrase", "", "--permit-domain", "example.com,localhost"]);
    let mut server = Server::start(&env, &["--CA", "Hostile CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let ctx = setup(&server);

    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 30);
    for c in &cases {
        let req = (c.make)(&ctx);
        let before = Stored::read(&env.depot());
        let r = ctx.acme.send(&req);
        let after = Stored::read(&env.depot());
        let mut why: Vec<String> = mismatch(c, &r).into_iter().collect();
        if after != before {
            why.push(format!("it stored something: {}", after.changes(&before)));
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n{}", c.name, why.join("; "), r.show()));
        }
    }

    // Still serving: /health, and a good request by the same account.
    let health = ctx.acme.send(&Req { method: "GET", path: "/health".into(), content_type: None, body: vec![] });
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")), "{}", health.show());
    let (order, _) = ctx.acme.order(&ctx.a, &["after.example.com"]);
    assert_eq!(order["status"], "pending");
    server.stop();
    let errors: Vec<String> = server.lines().into_iter().filter(|l| l.contains("status=5")).collect();
    assert!(errors.is_empty(), "the server answered 5xx:\n{}", errors.join("\n"));
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn a_key_rollover_as_rfc_8555_words_it_is_accepted() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Rollover CA", "--passphrase", ""]);
    let mut server = Server::start(&env, &["--CA", "Rollover CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let acme = Acme::new(&server);
    let account = acme.register(Key::p256());
    // An Ed25519 key: the inner JWS is checked under the new key's own alg.
    let new = Key::ed25519();
    let r = acme.send(&acme.key_change(&account, &new));
    assert_eq!(r.status, 200, "keyChange with the inner JWS the RFC asks for: {}", r.show());
    let rolled = Account { key: new, kid: account.kid.clone() };
    assert_eq!(acme.ok(&rolled, acme.path(&rolled.kid), None, 200).json()["status"], "valid");
    // The old key's ES256 no longer fits the account's (now Ed25519) key.
    let old = acme.send(&acme.signed(&account.key, Some(&account.kid), NEW_ORDER, Some(&one_name())));
    assert_eq!(old.problem(), (400, "badSignatureAlgorithm".into()), "{}", old.show());
    server.stop();
}

#[test]
fn a_store_that_cannot_write_answers_503_with_retry_after_and_the_server_keeps_serving() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Busy CA", "--passphrase", "", "--permit-domain", "example.com,localhost"]);
    let mut server = Server::start(&env, &["--CA", "Busy CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let acme = Acme::new(&server);
    let a = acme.register(Key::p256());

    // Another process holds acme.sqlite's write lock past the server's
    // busy timeout: newOrder cannot store its authorizations.
    let db = rusqlite::Connection::open(env.depot().join("acme.sqlite")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = acme.send(&acme.signed(&a.key, Some(&a.kid), NEW_ORDER, Some(&one_name())));
    let v = r.json();
    assert_eq!(
        (r.status, v["type"].as_str(), v["status"].as_u64()),
        (503, Some("urn:ietf:params:acme:error:serverInternal"), Some(503)),
        "{}",
        r.show()
    );
    assert_eq!(
        (r.header("Content-Type"), r.header("Retry-After")),
        (Some("application/problem+json"), Some("1")),
        "{}",
        r.show()
    );
    assert!(!v["detail"].as_str().unwrap().contains("locked"), "the database's words go to the log only: {v}");
    db.execute_batch("COMMIT").unwrap();
    drop(db);

    // The lock gone, the same request succeeds.
    let (order, _) = acme.order(&a, &["after.example.com"]);
    assert_eq!(order["status"], "pending");
    server.stop();
    let logged: Vec<String> = server.lines().into_iter().filter(|l| l.contains("status=503")).collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("error=") && logged[0].contains("acme.sqlite"), "the cause is in the log: {logged:?}");
}
