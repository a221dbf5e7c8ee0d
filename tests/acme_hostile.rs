//! `certforge serve` against malformed and hostile ACME requests, over real
//! HTTPS: each is refused with the RFC 8555 problem type and HTTP status it
//! calls for, leaves the depot and acme.sqlite exactly as they were, and the
//! server keeps serving afterwards.
//!
//! The requests are made by the raw client of tests/common/raw_acme.rs:
//! ACME client crates cannot send a request that is wrong on purpose.

#[path = "common/acme.rs"]
mod acme_server;
mod common;
#[path = "common/raw_acme.rs"]
mod raw_acme;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use acme_server::Server;
use base64::Engine as _;
use common::Env;
use raw_acme::*;
use serde_json::{json, Value};

/// The name of A's order that is ready to finalize.
const READY: &str = "ready.example.com";

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
