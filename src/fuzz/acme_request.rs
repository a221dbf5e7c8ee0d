//! The ACME front end under fuzzing: a sequence of requests against
//! [`Engine::handle`] on a [`MemStore`], with every challenge passing and a
//! CA in memory. Structure-aware, so that inputs get past the signature
//! check: the bytes choose each request's route, the object it names, the
//! header edits (wrong key, stale nonce, wrong URL, wrong Content-Type, a
//! body that is no JWS) and the payload; the harness then signs it with a
//! fixed account key, as a client would.
//!
//! Each step is `[route][edits][pick][len][payload; len]`. What must hold
//! for every reply: a fresh Replay-Nonce; an error is a problem document
//! whose "status" is the reply's; and a request whose signature, nonce or
//! URL is wrong never succeeds.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::acme::jws::b64;
use crate::acme::limits::{Limits, MemLimiter};
use crate::acme::model::{path, IdentKind};
use crate::acme::nonce::Nonces;
use crate::acme::policy::Policy;
use crate::acme::{Engine, HttpRequest, MemIssuer, MemStore, Reply, SkipValidation, Store};
use crate::pki;

const BASE: &str = "https://acme.test";
/// Requests per input: enough to go from account to revocation.
const MAX_STEPS: usize = 24;

/// The CA, made once per process: signing a root per input would be most
/// of the time spent.
fn ca() -> Arc<pki::ca::CaSigner> {
    static CA: OnceLock<Arc<pki::ca::CaSigner>> = OnceLock::new();
    CA.get_or_init(|| {
        let key = pki::keys::PrivateKey::ed25519_from_seed(&[1; 32]).expect("a seed makes a key");
        let validity = pki::validity::ValidityRequest::default()
            .resolve(OffsetDateTime::now_utc(), pki::validity::Expiry { months: 12, seconds: 0 })
            .expect("validity");
        let dn = pki::subject::Subject { common_name: Some("Fuzz ACME CA".into()), ..Default::default() }
            .to_dn()
            .expect("dn");
        let kind = pki::profile::Kind::Root { path_len: None, permit_domains: vec!["test".into()] };
        let der = pki::issue::self_signed(&pki::issue::CertSpec::new(dn, vec![], kind, validity), &key).expect("root");
        Arc::new(pki::ca::CaSigner::new(der, key, "fuzz", "fuzz").expect("signer"))
    })
    .clone()
}

/// A fixed Ed25519 key: the same input signs the same way every run.
fn key(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("a seed makes a key")
}

fn jwk(key: &Ed25519KeyPair) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref()) })
}

fn jws(key: &Ed25519KeyPair, header: &Value, payload: &[u8]) -> Value {
    let (h, p) = (b64(header.to_string().as_bytes()), b64(payload));
    let sig = key.sign(format!("{h}.{p}").as_bytes());
    json!({ "protected": h, "payload": p, "signature": b64(sig.as_ref()) })
}

/// What the client learned from the replies so far.
#[derive(Default)]
struct Known {
    orders: Vec<String>,
    authzs: Vec<String>,
    challenges: Vec<String>,
    /// Order ids with a certificate.
    certs: Vec<String>,
}

fn pick(ids: &[String], at: u8) -> &str {
    // One pick in four names nothing this server made.
    if ids.is_empty() || at % 4 == 3 {
        "nope"
    } else {
        &ids[usize::from(at) % ids.len()]
    }
}

struct Client {
    engine: Engine<MemStore>,
    keys: [Ed25519KeyPair; 2],
    /// Which of `keys` the account has now (keyChange swaps them).
    current: usize,
    kid: String,
    /// A nonce the server has certainly consumed: that of a request it
    /// answered with success.
    spent: String,
    /// The nonce of the request being made.
    last_nonce: String,
    now: OffsetDateTime,
    known: Known,
}

impl Client {
    fn new() -> Client {
        let (permitted, _) = pki::constraints::effective(&["test".to_string()]);
        let policy =
            Policy { constraints: pki::constraints::NameConstraints { permitted, excluded: vec![] }, allow: vec![] };
        let engine = Engine {
            base: BASE.into(),
            store: MemStore::default(),
            nonces: Box::new(Nonces::default()),
            limits: Limits::default(),
            limiter: Box::new(MemLimiter::default()),
            policy,
            issuer: Box::new(MemIssuer::new(ca())),
            validator: Box::new(SkipValidation),
            eab_required: false,
        };
        let mut c = Client {
            engine,
            keys: [key(2), key(3)],
            current: 0,
            kid: String::new(),
            spent: String::new(),
            last_nonce: String::new(),
            now: OffsetDateTime::now_utc(),
            known: Known::default(),
        };
        let body = c.signed(path::NEW_ACCOUNT, 0, br#"{"termsOfServiceAgreed":true}"#);
        let r = c.send("POST", path::NEW_ACCOUNT, Some("application/jose+json"), &body);
        assert_eq!(r.status, 201, "a new account is made");
        c.kid = r.header("Location").expect("an account URL").to_string();
        c.spent = c.last_nonce.clone();
        c
    }

    fn nonce(&mut self) -> String {
        let r = self.send("HEAD", path::NEW_NONCE, None, b"");
        r.header("Replay-Nonce").expect("a nonce").to_string()
    }

    /// A JWS of `payload` to `path` under the edits' signer choices.
    fn signed(&mut self, p: &str, edits: u8, payload: &[u8]) -> Vec<u8> {
        let nonce = if edits & STALE_NONCE != 0 && !self.spent.is_empty() { self.spent.clone() } else { self.nonce() };
        self.last_nonce = nonce.clone();
        let url = if edits & WRONG_URL != 0 { format!("{BASE}/elsewhere") } else { format!("{BASE}{p}") };
        let key = &self.keys[if edits & WRONG_KEY != 0 { 1 - self.current } else { self.current }];
        let mut header = json!({ "alg": "EdDSA", "nonce": nonce, "url": url });
        if edits & BY_JWK != 0 || self.kid.is_empty() {
            header["jwk"] = jwk(key);
        } else {
            header["kid"] = json!(self.kid);
        }
        jws(key, &header, payload).to_string().into_bytes()
    }

    fn send(&mut self, method: &str, p: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        let r = self.engine.handle(&HttpRequest { method, path: p, content_type, body, peer: None }, self.now);
        check(&r);
        r
    }

    /// Reads what a reply tells about the objects' ids.
    fn learn(&mut self, route: u8, r: &Reply) {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let local = |url: &str, prefix: &str| {
            url.strip_prefix(BASE)
                .and_then(|p| p.strip_prefix(prefix))
                .map(|id| id.trim_end_matches("/finalize").to_string())
        };
        if let Some(id) = r.header("Location").and_then(|l| local(l, path::ORDER)) {
            if !self.known.orders.contains(&id) {
                self.known.orders.push(id);
            }
        }
        for a in v["authorizations"].as_array().into_iter().flatten() {
            if let Some(id) = a.as_str().and_then(|a| local(a, path::AUTHZ)) {
                if !self.known.authzs.contains(&id) {
                    self.known.authzs.push(id);
                }
            }
        }
        for c in v["challenges"].as_array().into_iter().flatten() {
            if let Some(id) = c["url"].as_str().and_then(|u| local(u, path::CHALLENGE)) {
                if !self.known.challenges.contains(&id) {
                    self.known.challenges.push(id);
                }
            }
        }
        if let Some(id) = v["certificate"].as_str().and_then(|u| local(u, path::CERT)) {
            if !self.known.certs.contains(&id) {
                self.known.certs.push(id);
            }
        }
        if route == KEY_CHANGE && r.status == 200 {
            self.current = 1 - self.current;
        }
    }

    /// The leaf (DER) of a certificate this server issued.
    fn leaf(&self, at: u8) -> Option<Vec<u8>> {
        let id = pick(&self.known.certs, at);
        let chain = self.engine.store.cert(id).ok().flatten()?;
        crate::acme::ca::leaf_of(&chain)
    }

    /// The payload a client would send on `route`, shaped by `data`.
    fn template(&mut self, route: u8, pick_at: u8, data: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(data);
        let v = match route {
            NEW_ACCOUNT => match data.first() {
                Some(b) if b & 1 == 1 => json!({ "onlyReturnExisting": true }),
                _ => json!({ "termsOfServiceAgreed": true, "contact": [format!("mailto:{text}")] }),
            },
            NEW_ORDER => {
                let names: Vec<&str> = text.split(',').filter(|n| !n.is_empty()).collect();
                let names = if names.is_empty() { vec!["a.test"] } else { names };
                let ids: Vec<Value> = names
                    .iter()
                    .map(|n| {
                        let kind = if n.parse::<std::net::IpAddr>().is_ok() { "ip" } else { "dns" };
                        json!({ "type": kind, "value": n })
                    })
                    .collect();
                json!({ "identifiers": ids })
            }
            ACCOUNT => match data.first() {
                Some(b) if b & 1 == 1 => json!({ "status": "deactivated" }),
                _ => json!({ "contact": [format!("mailto:{text}")] }),
            },
            AUTHZ => json!({ "status": "deactivated" }),
            CHALLENGE => json!({}),
            FINALIZE => {
                let id = pick(&self.known.orders, pick_at).to_string();
                let order = self.engine.store.order(&id).ok().flatten();
                let mut sans: Vec<pki::san::San> = order
                    .iter()
                    .flat_map(|o| &o.identifiers)
                    .filter_map(|i| match i.kind {
                        IdentKind::Dns => Some(pki::san::San::Dns(i.value.clone())),
                        IdentKind::Ip => pki::san::San::ip(&i.value).ok(),
                    })
                    .collect();
                sans.extend(text.split(',').filter(|n| !n.is_empty()).map(|n| pki::san::San::Dns(n.to_string())));
                let dn = pki::subject::Subject::default().to_dn().expect("an empty subject");
                let csr_key = csr_key();
                match pki::csr::make_csr(&dn, &sans, csr_key) {
                    Ok(der) => json!({ "csr": b64(&der) }),
                    Err(_) => json!({ "csr": b64(data) }),
                }
            }
            REVOKE => {
                let reason = data.first().copied().unwrap_or(0);
                match self.leaf(pick_at) {
                    Some(der) => json!({ "certificate": b64(&der), "reason": reason % 12 }),
                    None => json!({ "certificate": b64(data), "reason": reason }),
                }
            }
            KEY_CHANGE => {
                let new = &self.keys[1 - self.current];
                let inner = json!({ "account": self.kid, "oldKey": jwk(&self.keys[self.current]) });
                let header = json!({ "alg": "EdDSA", "url": format!("{BASE}{}", path::KEY_CHANGE), "jwk": jwk(new) });
                jws(new, &header, inner.to_string().as_bytes())
            }
            _ => return Vec::new(),
        };
        v.to_string().into_bytes()
    }

    /// One request; the invariants are checked in `send`.
    fn step(&mut self, route: u8, edits: u8, pick_at: u8, data: &[u8]) {
        if edits & LATER != 0 {
            // Past every order's and authorization's lifetime.
            self.now += Duration::days(8);
        }
        let text = String::from_utf8_lossy(data).into_owned();
        let p = match route {
            DIRECTORY | NEW_NONCE => {
                let (method, p) = if route == DIRECTORY { ("GET", path::DIRECTORY) } else { ("HEAD", path::NEW_NONCE) };
                self.send(method, p, None, b"");
                return;
            }
            RENEWAL_INFO => {
                let id = match (edits & TEMPLATE != 0, self.leaf(pick_at)) {
                    (true, Some(der)) => x509_parser::parse_x509_certificate(&der)
                        .ok()
                        .and_then(|(_, c)| crate::acme::ari::cert_id(&c))
                        .unwrap_or_default(),
                    _ => text.clone(),
                };
                let p = format!("{}{id}", path::RENEWAL_INFO);
                self.send("GET", &p, None, b"");
                return;
            }
            NEW_ACCOUNT => path::NEW_ACCOUNT.to_string(),
            NEW_ORDER => path::NEW_ORDER.to_string(),
            ACCOUNT => self.kid.strip_prefix(BASE).unwrap_or("/acct/x").to_string(),
            ORDERS => format!("{}/orders", self.kid.strip_prefix(BASE).unwrap_or("/acct/x")),
            ORDER => format!("{}{}", path::ORDER, pick(&self.known.orders, pick_at)),
            FINALIZE => format!("{}{}/finalize", path::ORDER, pick(&self.known.orders, pick_at)),
            AUTHZ => format!("{}{}", path::AUTHZ, pick(&self.known.authzs, pick_at)),
            CHALLENGE => format!("{}{}", path::CHALLENGE, pick(&self.known.challenges, pick_at)),
            CERT => format!("{}{}", path::CERT, pick(&self.known.certs, pick_at)),
            CERT_ALT => format!("{}{}/alt", path::CERT, pick(&self.known.certs, pick_at)),
            REVOKE => path::REVOKE.to_string(),
            KEY_CHANGE => path::KEY_CHANGE.to_string(),
            _ => format!("/{text}"),
        };
        let payload = match (edits & TEMPLATE != 0, route) {
            (true, _) => self.template(route, pick_at, data),
            // POST-as-GET where reading is the point.
            (false, ORDER | AUTHZ | CERT | CERT_ALT | ORDERS) if data.is_empty() => Vec::new(),
            (false, _) => data.to_vec(),
        };
        let body = if edits & NOT_JWS != 0 { data.to_vec() } else { self.signed(&p, edits, &payload) };
        let content_type = if edits & JSON_TYPE != 0 { "application/json" } else { "application/jose+json" };
        let r = self.send("POST", &p, Some(content_type), &body);
        // A request the account's key did not sign for this URL with a
        // fresh nonce never succeeds. (newAccount and revokeCert by jwk
        // may be signed by any key: that key is then the one that counts.)
        let by_kid = edits & BY_JWK == 0;
        let forged = (edits & WRONG_KEY != 0 && by_kid && route != NEW_ACCOUNT) || edits & (WRONG_URL | NOT_JWS) != 0;
        let replayed = edits & STALE_NONCE != 0 && edits & NOT_JWS == 0;
        if forged || replayed || edits & JSON_TYPE != 0 {
            assert!(r.status >= 400, "route {route} edits {edits:#04x} was answered {}", r.status);
        }
        if route == FINALIZE && r.status == 200 {
            let v: Value = serde_json::from_slice(&r.body).expect("an order");
            assert_eq!(v["status"], "valid", "a finalize that succeeds leaves a valid order: {v}");
        }
        if r.status < 300 && edits & NOT_JWS == 0 {
            self.spent = self.last_nonce.clone();
        }
        self.learn(route, &r);
    }
}

/// The key every finalize CSR is made with (one key, made once).
fn csr_key() -> &'static pki::keys::PrivateKey {
    static KEY: OnceLock<pki::keys::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| pki::keys::PrivateKey::ed25519_from_seed(&[4; 32]).expect("a seed makes a key"))
}

// The routes a step's first byte chooses (modulo 16).
const DIRECTORY: u8 = 0;
const NEW_NONCE: u8 = 1;
const NEW_ACCOUNT: u8 = 2;
const NEW_ORDER: u8 = 3;
const ACCOUNT: u8 = 4;
const ORDERS: u8 = 5;
const ORDER: u8 = 6;
const FINALIZE: u8 = 7;
const AUTHZ: u8 = 8;
const CHALLENGE: u8 = 9;
const CERT: u8 = 10;
const CERT_ALT: u8 = 11;
const REVOKE: u8 = 12;
const KEY_CHANGE: u8 = 13;
const RENEWAL_INFO: u8 = 14;

// The edits a step's second byte sets.
/// The payload is what a client would send there, shaped by the data.
const TEMPLATE: u8 = 0x01;
/// Signed by the key the account does not have.
const WRONG_KEY: u8 = 0x02;
/// Signed with a "jwk" rather than the account's "kid".
const BY_JWK: u8 = 0x04;
/// The nonce of the previous request again.
const STALE_NONCE: u8 = 0x08;
/// The JWS names another URL.
const WRONG_URL: u8 = 0x10;
/// Content-Type application/json.
const JSON_TYPE: u8 = 0x20;
/// The body is the data itself, no JWS.
const NOT_JWS: u8 = 0x40;
/// Eight days pass first.
const LATER: u8 = 0x80;

/// What every reply must be: it carries a fresh nonce and the index link,
/// and an error is a problem document that repeats the reply's status.
fn check(r: &Reply) {
    assert!(r.header("Replay-Nonce").is_some_and(|n| !n.is_empty()), "no Replay-Nonce: {r:?}");
    let index = r.headers.iter().any(|(n, v)| *n == "Link" && v.contains("rel=\"index\""));
    assert!(index, "no index link: {r:?}");
    if r.status >= 400 {
        assert_eq!(r.header("Content-Type"), Some("application/problem+json"), "{r:?}");
        let v: Value = serde_json::from_slice(&r.body).expect("a problem document is JSON");
        assert_eq!(v["status"], json!(r.status), "{v}");
        let urn = v["type"].as_str().expect("a problem has a type");
        assert!(urn.starts_with("urn:ietf:params:acme:error:"), "{v}");
        assert!(r.status < 500 || urn.ends_with(":serverInternal"), "{v}");
    }
}

/// The fuzz target: a fresh server and account, then the steps the bytes
/// spell.
pub fn acme_request(data: &[u8]) {
    run(data);
}

fn run(data: &[u8]) -> Client {
    let mut client = Client::new();
    let mut rest = data;
    for _ in 0..MAX_STEPS {
        let [route, edits, pick_at, len, tail @ ..] = rest else { break };
        let len = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        client.step(route % 16, *edits, *pick_at, payload);
        rest = tail;
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/acme_request").join(name))
            .unwrap()
    }

    #[test]
    fn the_happy_path_seed_gets_as_far_as_a_certificate_and_a_key_change() {
        let c = run(&seed("happy_path"));
        assert_eq!((c.known.orders.len(), c.known.certs.len()), (1, 1), "the order was finalized");
        assert_eq!(c.current, 1, "keyChange went through");
        let account = c.engine.store.account(c.kid.rsplit('/').next().unwrap()).unwrap().unwrap();
        assert_eq!(account.status, crate::acme::model::AccountStatus::Deactivated);
    }
}
