//! The protocol end to end in memory, and what a failing store does.

use std::sync::Arc;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::acme::ca::MemIssuer;
use crate::acme::db::{MemStore, Stored};
use crate::acme::jws::b64;
use crate::acme::limits::{Limits, MemLimiter, Rate};
use crate::acme::model::{path, Account, Authorization, ChallengeKind, Ident, Order, Status};
use crate::acme::nonce::{NoncePool, Nonces};
use crate::acme::va::SkipValidation;
use crate::pki::ca::CaSigner;
use crate::pki::crl::Reason;
use crate::pki::csr::make_csr;
use crate::pki::issue::{self, CertSpec};
use crate::pki::keys::{KeySpec, PrivateKey};
use crate::pki::profile::Kind as ProfileKind;
use crate::pki::san::San;
use crate::pki::subject::Subject;
use crate::pki::validity::{Expiry, ValidityRequest};
use crate::storage::StorageError;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const BASE: &str = "https://127.0.0.1:14000";

struct Refuse;
impl Validator for Refuse {
    fn validate(&self, ident: &Ident, _: ChallengeKind, _: &str) -> Result<(), Problem> {
        Err(Problem::new(Kind::Connection, format!("could not reach {}", ident.value)))
    }
}

fn engine(validator: Box<dyn Validator>) -> (Engine<MemStore>, Arc<MemIssuer>) {
    engine_on(MemStore::default(), validator)
}

fn engine_on<S: Store>(store: S, validator: Box<dyn Validator>) -> (Engine<S>, Arc<MemIssuer>) {
    let now = OffsetDateTime::now_utc();
    let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
    let permit = vec!["localhost".to_string(), "test".to_string()];
    let dn = Subject { common_name: Some("ACME Test CA".into()), ..Default::default() }.to_dn().unwrap();
    let validity = ValidityRequest::default().resolve(now, Expiry::parse("30 days").unwrap()).unwrap();
    let spec =
        CertSpec::new(dn, vec![], ProfileKind::Root { path_len: None, permit_domains: permit.clone() }, validity);
    let der = issue::self_signed(&spec, &key).unwrap();
    let ca = Arc::new(MemIssuer::new(Arc::new(CaSigner::new(der, key, "ca", "key").unwrap())));
    let (permitted, _) = crate::pki::constraints::effective(&permit);
    let policy =
        Policy { constraints: crate::pki::constraints::NameConstraints { permitted, excluded: vec![] }, allow: vec![] };
    let e = Engine {
        base: BASE.into(),
        store,
        nonces: Box::new(Nonces::default()),
        limits: Limits::default(),
        limiter: Box::new(MemLimiter::default()),
        policy,
        issuer: Box::new(ca.clone()),
        validator,
        eab_required: false,
    };
    (e, ca)
}

/// An ACME client's key and, once registered, its account URL.
struct Client {
    pkcs8: Vec<u8>,
    key: EcdsaKeyPair,
    kid: Option<String>,
}

impl Client {
    fn new() -> Client {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        Client::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Client {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
        Client { pkcs8: pkcs8.to_vec(), key, kid: None }
    }

    fn jwk(&self) -> Value {
        let p = self.key.public_key().as_ref();
        json!({ "kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..]) })
    }

    fn body(&self, url: &str, nonce: &str, payload: Option<&Value>, by_jwk: bool) -> Vec<u8> {
        let mut header = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match (&self.kid, by_jwk) {
            (Some(kid), false) => header["kid"] = json!(kid),
            _ => header["jwk"] = self.jwk(),
        }
        let (h, p) =
            (b64(header.to_string().as_bytes()), payload.map(|p| b64(p.to_string().as_bytes())).unwrap_or_default());
        let sig = self.key.sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes()).unwrap();
        json!({ "protected": h, "payload": p, "signature": b64(sig.as_ref()) }).to_string().into_bytes()
    }

    /// POSTs `payload` (None: POST-as-GET) to `path`, with a fresh nonce.
    fn post<S: Store>(&self, e: &Engine<S>, path: &str, payload: Option<&Value>) -> (Reply, Value) {
        let nonce = nonce(e);
        let body = self.body(&format!("{BASE}{path}"), &nonce, payload, path == path::NEW_ACCOUNT);
        send(e, path, &body)
    }
}

fn nonce<S: Store>(e: &Engine<S>) -> String {
    let r = e.handle(
        &HttpRequest { method: "HEAD", path: path::NEW_NONCE, content_type: None, body: b"", peer: None },
        OffsetDateTime::now_utc(),
    );
    r.header("Replay-Nonce").unwrap().to_string()
}

fn send<S: Store>(e: &Engine<S>, path: &str, body: &[u8]) -> (Reply, Value) {
    let req = HttpRequest { method: "POST", path, content_type: Some("application/jose+json"), body, peer: None };
    let r = e.handle(&req, OffsetDateTime::now_utc());
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, v)
}

fn local(url: &str) -> String {
    url.strip_prefix(BASE).unwrap().to_string()
}

fn problem(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("").trim_start_matches("urn:ietf:params:acme:error:")
}

fn register<S: Store>(e: &Engine<S>) -> Client {
    let mut c = Client::new();
    let (r, _) = c.post(
        e,
        path::NEW_ACCOUNT,
        Some(&json!({ "termsOfServiceAgreed": true, "contact": ["mailto:dev@app.test"] })),
    );
    assert_eq!(r.status, 201);
    c.kid = Some(r.header("Location").unwrap().to_string());
    c
}

#[test]
fn an_order_goes_from_account_to_certificate() {
    let (e, ca) = engine(Box::new(SkipValidation));
    let dir = e.handle(
        &HttpRequest { method: "GET", path: path::DIRECTORY, content_type: None, body: b"", peer: None },
        OffsetDateTime::now_utc(),
    );
    assert_eq!(serde_json::from_slice::<Value>(&dir.body).unwrap()["newOrder"], format!("{BASE}/new-order"));
    assert!(dir.header("Replay-Nonce").is_some() && dir.header("Link").unwrap().contains("rel=\"index\""));

    let client = register(&e);
    // The same key again: the same account, 200.
    let again = Client::from_pkcs8(&client.pkcs8);
    let (r, _) = again.post(&e, path::NEW_ACCOUNT, Some(&json!({})));
    assert_eq!((r.status, r.header("Location")), (200, client.kid.as_deref()));
    let (r, v) = Client::new().post(&e, path::NEW_ACCOUNT, Some(&json!({ "onlyReturnExisting": true })));
    assert_eq!((r.status, problem(&v)), (400, "accountDoesNotExist"));

    let ids =
        json!({ "identifiers": [{ "type": "dns", "value": "app.test" }, { "type": "ip", "value": "127.0.0.1" }] });
    let (r, order) = client.post(&e, path::NEW_ORDER, Some(&ids));
    assert_eq!((r.status, order["status"].as_str()), (201, Some("pending")));
    let order_path = local(r.header("Location").unwrap());
    let finalize = local(order["finalize"].as_str().unwrap());

    let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
    let csr = |names: &[San]| {
        let dn = Subject { common_name: Some("app.test".into()), ..Default::default() }.to_dn().unwrap();
        json!({ "csr": b64(&make_csr(&dn, names, &key).unwrap()) })
    };
    let names = [San::Dns("app.test".into()), San::ip("127.0.0.1").unwrap()];
    let (r, v) = client.post(&e, &finalize, Some(&csr(&names)));
    assert_eq!((r.status, problem(&v)), (403, "orderNotReady"));

    for authz in order["authorizations"].as_array().unwrap() {
        let (_, a) = client.post(&e, &local(authz.as_str().unwrap()), None);
        let kinds: Vec<&str> =
            a["challenges"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        let is_ip = a["identifier"]["type"] == "ip";
        assert_eq!(kinds.contains(&"dns-01"), !is_ip, "{a}");
        let http = a["challenges"].as_array().unwrap().iter().find(|c| c["type"] == "http-01").unwrap();
        let (r, c) = client.post(&e, &local(http["url"].as_str().unwrap()), Some(&json!({})));
        assert_eq!(c["status"], "valid", "answered valid at once");
        assert!(r.header("Link").unwrap().contains("rel=\"up\""));
    }
    let (_, o) = client.post(&e, &order_path, None);
    assert_eq!(o["status"], "ready");

    let extra = [names[0].clone(), names[1].clone(), San::Dns("more.test".into())];
    let (_, v) = client.post(&e, &finalize, Some(&csr(&extra)));
    assert_eq!(problem(&v), "badCSR");
    let (r, o) = client.post(&e, &finalize, Some(&csr(&names)));
    assert_eq!((r.status, o["status"].as_str()), (200, Some("valid")));
    let (_, v) = client.post(&e, &finalize, Some(&csr(&names)));
    assert_eq!(problem(&v), "orderNotReady", "finalized once only");

    let (r, _) = client.post(&e, &local(o["certificate"].as_str().unwrap()), None);
    assert_eq!(r.header("Content-Type"), Some("application/pem-certificate-chain"));
    let chain = pem::parse_many(&r.body).unwrap();
    assert_eq!(chain.len(), 2);
    let alt = r.header("Link").unwrap().split(';').next().unwrap().trim_matches(['<', '>']).to_string();
    let (r, _) = client.post(&e, &local(&alt), None);
    assert_eq!((r.status, pem::parse_many(&r.body).unwrap().len()), (200, 3), "the alternate chain adds one");
    assert!(r.header("Link").unwrap().contains("rel=\"alternate\""));
    let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].contents()).unwrap();
    let san = leaf.subject_alternative_name().unwrap().expect("SANs");
    assert_eq!(san.value.general_names.len(), 2, "app.test and 127.0.0.1: {:?}", san.value);

    // Another account can neither read the order nor revoke the certificate.
    let other = register(&e);
    let (_, v) = other.post(&e, &order_path, None);
    assert_eq!(problem(&v), "malformed");
    let revoke = json!({ "certificate": b64(chain[0].contents()), "reason": 4 });
    let (r, v) = other.post(&e, path::REVOKE, Some(&revoke));
    assert_eq!((r.status, problem(&v)), (403, "unauthorized"));
    // ARI (RFC 9773): the window sits in the last third, until revoked.
    let cert_id = crate::acme::ari::cert_id(&leaf).expect("an AKI");
    let ari = |e: &Engine<MemStore>| {
        let get = HttpRequest {
            method: "GET",
            path: &format!("{}{cert_id}", path::RENEWAL_INFO),
            content_type: None,
            body: b"",
            peer: None,
        };
        let r = e.handle(&get, OffsetDateTime::now_utc());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!((r.status, r.header("Retry-After")), (200, Some("21600")), "{v}");
        let at =
            |k: &str| crate::pki::validity::parse_rfc3339("ari", v["suggestedWindow"][k].as_str().unwrap()).unwrap();
        (at("start"), at("end"))
    };
    let (start, _) = ari(&e);
    assert!(start > OffsetDateTime::now_utc() + Duration::hours(12), "a 1-day certificate renews after 16 hours");
    let renew = json!({ "identifiers": [{ "type": "dns", "value": "app.test" }], "replaces": cert_id });
    assert_eq!(client.post(&e, path::NEW_ORDER, Some(&renew)).0.status, 201);
    assert_eq!(problem(&other.post(&e, path::NEW_ORDER, Some(&renew)).1), "malformed", "not other's to replace");
    let (r, _) = client.post(&e, path::REVOKE, Some(&revoke));
    assert_eq!(r.status, 200);
    assert_eq!(ca.revoked.lock().unwrap()[0].1, Reason::Superseded);
    let (_, end) = ari(&e);
    assert!(end <= OffsetDateTime::now_utc(), "revoked: renew now");
    let (_, v) = client.post(&e, path::REVOKE, Some(&json!({ "certificate": b64(chain[0].contents()), "reason": 7 })));
    assert_eq!(problem(&v), "badRevocationReason");
    let (_, list) = client.post(&e, &format!("{}/orders", local(client.kid.as_ref().unwrap())), None);
    assert_eq!(list["orders"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_requests_get_the_rfc_problem_and_change_nothing() {
    let (e, _) = engine(Box::new(Refuse));
    let client = register(&e);
    let kid = client.kid.clone().unwrap();

    // A replayed nonce, a URL of another resource, a wrong type, too big.
    let n = nonce(&e);
    let body = client.body(&format!("{BASE}{}", path::NEW_ORDER), &n, Some(&json!({})), false);
    let (_, v) = send(&e, path::NEW_ORDER, &body);
    assert_eq!(problem(&v), "malformed", "no identifiers: {v}");
    let (_, v) = send(&e, path::NEW_ORDER, &body);
    assert_eq!(problem(&v), "badNonce");
    let body = client.body(&format!("{BASE}/elsewhere"), &nonce(&e), Some(&json!({})), false);
    assert_eq!(problem(&send(&e, path::NEW_ORDER, &body).1), "unauthorized");
    let req = HttpRequest {
        method: "POST",
        path: path::NEW_ORDER,
        content_type: Some("application/json"),
        body: &body,
        peer: None,
    };
    assert_eq!(e.handle(&req, OffsetDateTime::now_utc()).status, 415);
    let big = vec![b'x'; MAX_BODY + 1];
    assert_eq!(problem(&send(&e, path::NEW_ORDER, &big).1), "malformed");
    let unknown = Client { kid: Some(format!("{BASE}/acct/nobody")), ..Client::new() };
    assert_eq!(problem(&unknown.post(&e, path::NEW_ORDER, Some(&json!({}))).1), "accountDoesNotExist");
    let get = HttpRequest { method: "GET", path: "/nothing", content_type: None, body: b"", peer: None };
    assert_eq!(e.handle(&get, OffsetDateTime::now_utc()).status, 404);

    // Names outside the CA's constraints: one subproblem each, no order.
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "www.example.com" }, { "type": "ip", "value": "1.1.1.1" }, { "type": "dns", "value": "ok.test" }] });
    let (r, v) = client.post(&e, path::NEW_ORDER, Some(&ids));
    assert_eq!((r.status, problem(&v)), (400, "rejectedIdentifier"));
    assert_eq!(v["subproblems"].as_array().unwrap().len(), 2, "{v}");
    assert!(e.store.orders_of(kid.rsplit('/').next().unwrap()).unwrap().is_empty());

    // A failed challenge makes its authorization and the order invalid.
    let (_, order) =
        client.post(&e, path::NEW_ORDER, Some(&json!({ "identifiers": [{ "type": "dns", "value": "localhost" }] })));
    let (_, a) = client.post(&e, &local(order["authorizations"][0].as_str().unwrap()), None);
    let (_, c) = client.post(&e, &local(a["challenges"][0]["url"].as_str().unwrap()), Some(&json!({})));
    assert_eq!((c["status"].as_str(), problem(&c["error"])), (Some("invalid"), "connection"));
    let (_, o) = client.post(
        &e,
        &local(&format!("{BASE}/order/{}", e.store.orders_of(kid.rsplit('/').next().unwrap()).unwrap()[0])),
        None,
    );
    assert_eq!(o["status"], "invalid");

    // keyChange: the new key signs from then on, the old one no longer.
    let new = Client::new();
    let url = format!("{BASE}{}", path::KEY_CHANGE);
    let inner = new.body(&url, "unused", Some(&json!({ "account": kid, "oldKey": client.jwk() })), true);
    let inner: Value = serde_json::from_slice(&inner).unwrap();
    let (r, _) = client.post(&e, path::KEY_CHANGE, Some(&inner));
    assert_eq!(r.status, 200);
    assert_eq!(problem(&client.post(&e, path::NEW_ORDER, Some(&ids)).1), "malformed", "the old key's signature fails");
    let rolled = Client { kid: Some(kid.clone()), ..new };
    let (r, _) = rolled.post(&e, &local(&kid), Some(&json!({ "status": "deactivated" })));
    assert_eq!(r.status, 200);
    let (r, v) = rolled.post(&e, &local(&kid), None);
    assert_eq!((r.status, problem(&v)), (403, "unauthorized"), "a deactivated account can do nothing");
}

/// A MemStore whose next `put_cert` fails, as a database that refuses a
/// write would.
#[derive(Default)]
struct FailingStore {
    inner: MemStore,
    fail_put_cert: std::sync::atomic::AtomicBool,
}

impl Store for FailingStore {
    fn next_id(&self) -> String {
        self.inner.next_id()
    }
    fn account(&self, id: &str) -> Stored<Option<Account>> {
        self.inner.account(id)
    }
    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>> {
        self.inner.account_by_thumbprint(thumbprint)
    }
    fn put_account(&self, account: &Account) -> Stored<()> {
        self.inner.put_account(account)
    }
    fn order(&self, id: &str) -> Stored<Option<Order>> {
        self.inner.order(id)
    }
    fn put_order(&self, order: &Order) -> Stored<()> {
        self.inner.put_order(order)
    }
    fn orders_of(&self, account: &str) -> Stored<Vec<String>> {
        self.inner.orders_of(account)
    }
    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool> {
        self.inner.transition_order(id, from, to)
    }
    fn authz(&self, id: &str) -> Stored<Option<Authorization>> {
        self.inner.authz(id)
    }
    fn put_authz(&self, authz: &Authorization) -> Stored<()> {
        self.inner.put_authz(authz)
    }
    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>> {
        self.inner.authz_of_challenge(id)
    }
    fn cert(&self, id: &str) -> Stored<Option<String>> {
        self.inner.cert(id)
    }
    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()> {
        if self.fail_put_cert.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::failed("writing the certificate", "disk I/O error"));
        }
        self.inner.put_cert(id, serial, pem_chain)
    }
    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>> {
        self.inner.cert_by_serial(serial)
    }
    fn eab_key(&self, kid: &str) -> Stored<Option<Vec<u8>>> {
        self.inner.eab_key(kid)
    }
}

#[test]
fn a_failed_store_write_in_finalize_is_a_500_problem_and_a_retry_issues_once() {
    let (e, ca) = engine_on(FailingStore::default(), Box::new(SkipValidation));
    let client = register(&e);
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "app.test" }] });
    let (_, order) = client.post(&e, path::NEW_ORDER, Some(&ids));
    let (_, a) = client.post(&e, &local(order["authorizations"][0].as_str().unwrap()), None);
    client.post(&e, &local(a["challenges"][0]["url"].as_str().unwrap()), Some(&json!({})));
    let finalize = local(order["finalize"].as_str().unwrap());
    let order_path = finalize.trim_end_matches("/finalize").to_string();
    let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
    let dn = Subject { common_name: Some("app.test".into()), ..Default::default() }.to_dn().unwrap();
    let csr = json!({ "csr": b64(&make_csr(&dn, &[San::Dns("app.test".into())], &key).unwrap()) });

    e.store.fail_put_cert.store(true, std::sync::atomic::Ordering::SeqCst);
    let (r, v) = client.post(&e, &finalize, Some(&csr));
    assert_eq!((r.status, problem(&v), v["status"].as_u64()), (500, "serverInternal", Some(500)), "{v}");
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    assert!(r.header("Replay-Nonce").is_some());
    assert!(r.log_detail.as_deref().is_some_and(|d| d.contains("disk I/O error")), "{:?}", r.log_detail);
    assert!(!v["detail"].as_str().unwrap().contains("disk I/O"), "the store's words stay in the log: {v}");

    // Still serving, and the claim was released: the order is ready again.
    let (r, o) = client.post(&e, &order_path, None);
    assert_eq!((r.status, o["status"].as_str()), (200, Some("ready")), "{o}");
    let (r, o) = client.post(&e, &finalize, Some(&csr));
    assert_eq!((r.status, o["status"].as_str()), (200, Some("valid")), "{o}");
    assert_eq!(ca.signed(), 1, "the retry got the certificate signed the first time");
    let (r, _) = client.post(&e, &local(o["certificate"].as_str().unwrap()), None);
    assert_eq!((r.status, pem::parse_many(&r.body).unwrap().len()), (200, 2));
}

#[test]
fn orders_past_a_limit_get_429_rate_limited_with_retry_after_and_nothing_is_stored() {
    let (mut e, _) = engine(Box::new(SkipValidation));
    e.limits.orders_per_account = Rate { per_hour: 2 };
    let client = register(&e);
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "app.test" }] });
    for _ in 0..2 {
        assert_eq!(client.post(&e, path::NEW_ORDER, Some(&ids)).0.status, 201);
    }
    let account = local(client.kid.as_deref().unwrap()).trim_start_matches(path::ACCOUNT).to_string();
    let orders_before = e.store.orders_of(&account).unwrap();
    let (r, v) = client.post(&e, path::NEW_ORDER, Some(&ids));
    assert_eq!((r.status, problem(&v), v["status"].as_u64()), (429, "rateLimited", Some(429)), "{v}");
    assert_eq!(r.header("Retry-After"), Some("1800"), "one emission: an hour / 2");
    assert!(v["detail"].as_str().unwrap().contains("2 per hour"), "{v}");
    assert!(r.header("Replay-Nonce").is_some(), "a refusal still carries a nonce");
    assert_eq!(e.store.orders_of(&account).unwrap(), orders_before, "no order stored for the refused request");
    // Another account has its own bucket.
    assert_eq!(register(&e).post(&e, path::NEW_ORDER, Some(&ids)).0.status, 201);
}

#[test]
fn a_client_address_is_limited_across_its_accounts() {
    let (mut e, _) = engine(Box::new(SkipValidation));
    e.limits.orders_per_address = Rate { per_hour: 1 };
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "app.test" }] });
    let order_from = |c: &Client, peer: &str| {
        let body = c.body(&format!("{BASE}{}", path::NEW_ORDER), &nonce(&e), Some(&ids), false);
        let req = HttpRequest {
            method: "POST",
            path: path::NEW_ORDER,
            content_type: Some("application/jose+json"),
            body: &body,
            peer: Some(peer.parse().unwrap()),
        };
        e.handle(&req, OffsetDateTime::now_utc()).status
    };
    let (a, b) = (register(&e), register(&e));
    assert_eq!(order_from(&a, "192.0.2.7"), 201);
    assert_eq!(order_from(&b, "192.0.2.7"), 429, "the second account behind the same address");
    assert_eq!(order_from(&b, "192.0.2.8"), 201, "another address");
}

#[test]
fn failed_validations_of_a_name_stop_new_orders_for_it() {
    let (mut e, _) = engine(Box::new(Refuse));
    e.limits.failed_validations = Rate { per_hour: 1 };
    let client = register(&e);
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "app.test" }] });
    let (_, order) = client.post(&e, path::NEW_ORDER, Some(&ids));
    let (_, a) = client.post(&e, &local(order["authorizations"][0].as_str().unwrap()), None);
    let (_, c) = client.post(&e, &local(a["challenges"][0]["url"].as_str().unwrap()), Some(&json!({})));
    assert_eq!(c["status"], "invalid");
    let (r, v) = client.post(&e, path::NEW_ORDER, Some(&ids));
    assert_eq!((r.status, problem(&v)), (429, "rateLimited"));
    assert!(
        v["detail"].as_str().unwrap().contains("failed validations")
            && v["detail"].as_str().unwrap().contains("app.test"),
        "{v}"
    );
    let other = json!({ "identifiers": [{ "type": "dns", "value": "other.test" }] });
    assert_eq!(client.post(&e, path::NEW_ORDER, Some(&other)).0.status, 201, "another name is not limited");
}

#[test]
fn an_engine_on_shared_nonces_takes_a_nonce_another_instance_issued_once() {
    use crate::acme::nonce::{SharedNonces, SpentNonces};
    #[derive(Clone, Default)]
    struct Table(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);
    impl SpentNonces for Table {
        fn spend(&self, nonce: &str, _: OffsetDateTime) -> Result<bool, StorageError> {
            Ok(self.0.lock().unwrap().insert(nonce.to_string()))
        }
    }
    let table = Table::default();
    let (mut a, _) = engine(Box::new(SkipValidation));
    a.nonces = Box::new(SharedNonces::new([3; 32], table.clone()));
    let other = SharedNonces::new([3; 32], table);
    let issued_elsewhere = other.issue(OffsetDateTime::now_utc());
    let c = Client::new();
    let url = format!("{BASE}{}", path::NEW_ACCOUNT);
    let body = c.body(&url, &issued_elsewhere, Some(&json!({ "termsOfServiceAgreed": true })), true);
    assert_eq!(send(&a, path::NEW_ACCOUNT, &body).0.status, 201);
    let (r, v) = send(&a, path::NEW_ACCOUNT, &body);
    assert_eq!((r.status, problem(&v)), (400, "badNonce"), "replayed");
}
