//! The ACME server's request handling (RFC 8555 §7), without sockets: an
//! HTTP request in, an HTTP reply out. The HTTP layer (hyper, TLS) only
//! moves bytes; the depot is reached through [`Issuer`], and challenge
//! checks through [`Validator`], so the whole protocol is tested in memory.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::jws::{unb64, Jwk, Request, Signer};
use super::model::{
    directory, path, Account, AccountStatus, Authorization, Challenge, ChallengeKind, Ident, Order, Status,
};
use super::nonce::Nonces;
use super::policy::Policy;
use super::problem::{malformed, Kind, Problem};
use super::store::Store;
use crate::pki::crl::Reason;
use crate::pki::csr::{parse_csr, ParsedCsr};
use crate::pki::serial::hex;

/// Turns a finalized order's CSR into a certificate chain (PEM), writing it
/// to the depot; and revokes one.
pub trait Issuer: Send + Sync {
    /// Issues for order `order`. Called again for the same order (after a
    /// crash mid-finalize) it must return the same certificate, not a second.
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem>;
    /// Revokes the certificate `der` (already checked to be one this server
    /// issued to the requester).
    fn revoke(&self, der: &[u8], reason: Reason, now: OffsetDateTime) -> Result<(), Problem>;
    /// Whether the certificate with this serial is revoked (by revokeCert
    /// or by `certforge revoke`), for ARI.
    fn is_revoked(&self, serial: &[u8]) -> bool;
    /// The other chain a client may choose for `chain` (§7.4.2), if any:
    /// with the root appended, for servers whose clients lack it.
    fn alternate(&self, chain: &str) -> Option<String>;
}

/// Checks one challenge: Ok when the client proved control.
pub trait Validator: Send + Sync {
    fn validate(&self, ident: &Ident, kind: ChallengeKind, key_authorization: &str) -> Result<(), Problem>;
}

/// `--skip-validation`: every challenge passes.
pub struct SkipValidation;

impl Validator for SkipValidation {
    fn validate(&self, _: &Ident, _: ChallengeKind, _: &str) -> Result<(), Problem> {
        Ok(())
    }
}

/// An HTTP request as the engine needs it.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A reply whose body is of `content_type`.
    pub fn typed(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into() }
    }

    fn json(status: u16, v: &Value) -> Reply {
        Reply::typed(status, "application/json", v.to_string())
    }

    /// A problem document answered with `status`, which its "status"
    /// member repeats (RFC 7807 §3.1: it is the response's status).
    fn problem(status: u16, p: &Problem) -> Reply {
        let mut body = p.to_json();
        body["status"] = json!(status);
        Reply::typed(status, "application/problem+json", body.to_string())
    }

    fn with(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// §7.5.1 and §7.4: when to poll again. Integer seconds, the only form
    /// Caddy accepts (an HTTP date is an error there); one second, because
    /// this server validates and issues while the request waits.
    fn retry_after(self) -> Reply {
        self.with("Retry-After", "1".into())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The largest request body accepted; a CSR for 100 names is far smaller.
pub const MAX_BODY: usize = 64 * 1024;

/// How long an order and its authorizations stay usable.
const ORDER_LIFETIME: Duration = Duration::days(7);

pub struct Engine<S: Store> {
    /// "https://127.0.0.1:14000", no trailing slash.
    pub base: String,
    pub store: S,
    pub nonces: Nonces,
    pub policy: Policy,
    pub issuer: Box<dyn Issuer>,
    pub validator: Box<dyn Validator>,
    /// `--require-eab`: new accounts need an External Account Binding.
    pub eab_required: bool,
}

/// The request after its signature checked out.
struct Signed {
    req: Request,
    /// The signing account, unless the request was signed by a jwk.
    account: Option<Account>,
}

impl<S: Store> Engine<S> {
    /// Answers one request. Every reply carries a fresh Replay-Nonce
    /// (§6.5: certbot fails with MissingNonce without it) and the index link.
    pub fn handle(&self, req: &HttpRequest<'_>, now: OffsetDateTime) -> Reply {
        let reply = match (req.method, req.path) {
            ("GET", path::DIRECTORY) => Ok(Reply::json(200, &directory(&self.base, self.eab_required))),
            ("HEAD", path::NEW_NONCE) => Ok(Reply { status: 200, headers: Vec::new(), body: Vec::new() }),
            ("GET", path::NEW_NONCE) => Ok(Reply { status: 204, headers: Vec::new(), body: Vec::new() }),
            ("GET", p) if p.starts_with(path::RENEWAL_INFO) => self.renewal_info(&p[path::RENEWAL_INFO.len()..], now),
            ("POST", _) => self.post(req, now),
            _ => Err(Problem::new(Kind::Malformed, format!("no {} {} here", req.method, req.path))),
        };
        self.finish(reply)
    }

    /// The reply for a request refused before the engine saw it (the HTTP
    /// layer's body limit), with the headers every reply carries.
    pub fn refuse(&self, p: Problem) -> Reply {
        self.finish(Err(p))
    }

    fn finish(&self, reply: Result<Reply, Problem>) -> Reply {
        let reply = reply.unwrap_or_else(|p| {
            let status = if p.kind == Kind::Malformed && p.detail.starts_with("no ") { 404 } else { p.status() };
            Reply::problem(status, &p)
        });
        reply
            .with("Replay-Nonce", self.nonces.issue())
            .with("Link", format!("<{}{}>;rel=\"index\"", self.base, path::DIRECTORY))
            .with("Cache-Control", "no-store".into())
    }

    fn post(&self, http: &HttpRequest<'_>, now: OffsetDateTime) -> Result<Reply, Problem> {
        if http.content_type.map(|c| c.split(';').next().unwrap_or("").trim()) != Some("application/jose+json") {
            return Err(malformed("POST bodies must be Content-Type: application/jose+json (RFC 8555 §6.2)"));
        }
        if http.body.len() > MAX_BODY {
            return Err(malformed(format!("the body is over {MAX_BODY} bytes, the most this server reads")));
        }
        let req = Request::parse(http.body)?;
        if req.url != format!("{}{}", self.base, http.path) {
            return Err(Problem::new(
                Kind::Unauthorized,
                format!("the JWS \"url\" {:?} is not this request's URL", req.url),
            ));
        }
        let nonce = req.nonce.as_deref();
        let nonce = nonce.ok_or_else(|| Problem::new(Kind::BadNonce, "the protected header has no \"nonce\""))?;
        if !self.nonces.consume(nonce) {
            return Err(Problem::new(Kind::BadNonce, "the nonce is unknown or was used already; get a new one"));
        }
        let by_jwk = matches!(http.path, path::NEW_ACCOUNT | path::REVOKE);
        let account = match &req.signer {
            Signer::Jwk(key) if by_jwk => {
                req.verify(key)?;
                None
            }
            Signer::Jwk(_) => return Err(malformed("this request must be signed with the account's \"kid\"")),
            Signer::Kid(_) if http.path == path::NEW_ACCOUNT => {
                return Err(malformed("newAccount must be signed with a \"jwk\""))
            }
            Signer::Kid(kid) => {
                let id = kid.strip_prefix(&format!("{}{}", self.base, path::ACCOUNT)).ok_or_else(|| {
                    Problem::new(Kind::AccountDoesNotExist, format!("{kid:?} is not an account URL of this server"))
                })?;
                let account = self
                    .store
                    .account(id)
                    .ok_or_else(|| Problem::new(Kind::AccountDoesNotExist, format!("no account {kid:?}")))?;
                req.verify(&account.key)?;
                if account.status != AccountStatus::Valid {
                    return Err(Problem::new(Kind::Unauthorized, "this account is deactivated"));
                }
                Some(account)
            }
        };
        let signed = Signed { req, account };
        let rest = |prefix: &str| http.path.strip_prefix(prefix);
        match http.path {
            path::NEW_ACCOUNT => self.new_account(&signed, now),
            path::NEW_ORDER => self.new_order(&signed, now),
            path::KEY_CHANGE => self.key_change(&signed),
            path::REVOKE => self.revoke(&signed, now),
            _ => {
                if let Some(id) = rest(path::ACCOUNT) {
                    match id.strip_suffix("/orders") {
                        Some(id) => self.orders_list(&signed, id),
                        None => self.account(&signed, id),
                    }
                } else if let Some(id) = rest(path::ORDER) {
                    match id.strip_suffix("/finalize") {
                        Some(id) => self.finalize(&signed, id, now),
                        None => self.order(&signed, id, now),
                    }
                } else if let Some(id) = rest(path::AUTHZ) {
                    self.authz(&signed, id)
                } else if let Some(id) = rest(path::CHALLENGE) {
                    self.challenge(&signed, id, now)
                } else if let Some(id) = rest(path::CERT) {
                    self.cert(&signed, id)
                } else {
                    Err(Problem::new(Kind::Malformed, format!("no POST {} here", http.path)))
                }
            }
        }
    }

    fn account_url(&self, id: &str) -> String {
        format!("{}{}{id}", self.base, path::ACCOUNT)
    }

    fn order_url(&self, id: &str) -> String {
        format!("{}{}{id}", self.base, path::ORDER)
    }

    /// The signing account (every route but newAccount and revokeCert by
    /// certificate key has one).
    fn signer<'a>(&self, s: &'a Signed) -> Result<&'a Account, Problem> {
        s.account.as_ref().ok_or_else(|| malformed("this request must be signed with the account's \"kid\""))
    }

    /// §7.3: make an account, or find the one this key has.
    fn new_account(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let Signer::Jwk(key) = &s.req.signer else { unreachable!("checked in post") };
        let payload = s.req.json()?;
        if let Some(existing) = self.store.account_by_thumbprint(&key.thumbprint()) {
            return Ok(Reply::json(200, &existing.to_json(&self.base)).with("Location", self.account_url(&existing.id)));
        }
        if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
            return Err(Problem::new(Kind::AccountDoesNotExist, "no account has this key"));
        }
        let eab = match payload.get("externalAccountBinding") {
            Some(binding) => {
                let url = format!("{}{}", self.base, path::NEW_ACCOUNT);
                Some(super::eab::check(binding, key, &url, |kid| self.store.eab_key(kid))?)
            }
            None if self.eab_required => {
                return Err(Problem::new(
                    Kind::ExternalAccountRequired,
                    "this server requires External Account Binding: ask its operator for a kid and HMAC key (certforge acme eab add NAME)",
                ))
            }
            None => None,
        };
        let account = Account {
            id: self.store.next_id(),
            key: key.clone(),
            contact: contacts(&payload)?,
            status: AccountStatus::Valid,
            created: now,
            eab,
        };
        self.store.put_account(&account);
        Ok(Reply::json(201, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }

    /// §7.3.2, §7.3.6: read, update the contacts of, or deactivate an account.
    fn account(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let mut account = self.signer(s)?.clone();
        if account.id != id {
            return Err(Problem::new(Kind::Unauthorized, "a request about an account must be signed by it"));
        }
        if !s.req.payload.is_empty() {
            let payload = s.req.json()?;
            if payload.get("contact").is_some() {
                account.contact = contacts(&payload)?;
            }
            match payload.get("status").and_then(Value::as_str) {
                Some("deactivated") => account.status = AccountStatus::Deactivated,
                Some(other) => {
                    return Err(malformed(format!(
                        "an account's status can only become \"deactivated\", not {other:?}"
                    )))
                }
                None => {}
            }
            self.store.put_account(&account);
        }
        Ok(Reply::json(200, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }

    /// §7.1.2.1: the account's orders.
    fn orders_list(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let account = self.signer(s)?;
        if account.id != id {
            return Err(Problem::new(Kind::Unauthorized, "only the account itself may list its orders"));
        }
        let urls: Vec<String> = self.store.orders_of(id).iter().map(|o| self.order_url(o)).collect();
        Ok(Reply::json(200, &json!({ "orders": urls })))
    }

    /// §7.3.5: roll the account over to a new key. The inner JWS, signed by
    /// the new key, names the account and its old key.
    fn key_change(&self, s: &Signed) -> Result<Reply, Problem> {
        let mut account = self.signer(s)?.clone();
        let inner = Request::parse(&s.req.payload)?;
        let Signer::Jwk(new_key) = &inner.signer else {
            return Err(malformed("the inner JWS of keyChange must carry the new key as \"jwk\""));
        };
        inner.verify(new_key)?;
        if inner.url != s.req.url {
            return Err(malformed("the inner JWS's \"url\" must equal the outer one's"));
        }
        let payload = inner.json()?;
        if payload.get("account").and_then(Value::as_str) != Some(self.account_url(&account.id).as_str()) {
            return Err(malformed("the inner payload's \"account\" is not the signing account"));
        }
        let old = payload.get("oldKey").map(Jwk::from_json).transpose()?;
        if old.as_ref() != Some(&account.key) {
            return Err(malformed("the inner payload's \"oldKey\" is not the account's current key"));
        }
        if let Some(other) = self.store.account_by_thumbprint(&new_key.thumbprint()) {
            // §7.3.5: 409 Conflict, with the other account in Location.
            let p = Problem::new(Kind::Malformed, "another account already uses the new key");
            return Ok(Reply::problem(409, &p).with("Location", self.account_url(&other.id)));
        }
        account.key = new_key.clone();
        self.store.put_account(&account);
        Ok(Reply::json(200, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }

    /// §7.4: a new order, one authorization per identifier.
    fn new_order(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let account = self.signer(s)?;
        let payload = s.req.json()?;
        if payload.get("notBefore").is_some() || payload.get("notAfter").is_some() {
            return Err(malformed(
                "notBefore/notAfter are not supported: certificates get the server's --cert-lifetime",
            ));
        }
        if let Some(replaces) = payload.get("replaces") {
            // RFC 9773 §5: the certificate being renewed must be one this
            // account holds.
            let id = replaces.as_str().ok_or_else(|| malformed("\"replaces\" must be a CertID string"))?;
            let (_, serial) = super::ari::parse_cert_id(id)?;
            if self.owned_cert(account, &serial).is_none() {
                return Err(malformed(format!("\"replaces\" names {id}, which is not a certificate of this account")));
            }
        }
        let identifiers = self.policy.identifiers(&payload)?;
        let expires = now + ORDER_LIFETIME;
        let mut authorizations = Vec::new();
        for ident in &identifiers {
            let challenges = ident
                .challenges()
                .iter()
                .map(|kind| Challenge {
                    id: self.store.next_id(),
                    kind: *kind,
                    token: token(),
                    status: Status::Pending,
                    validated: None,
                    error: None,
                })
                .collect();
            let authz = Authorization {
                id: self.store.next_id(),
                account: account.id.clone(),
                ident: ident.clone(),
                status: Status::Pending,
                expires,
                challenges,
            };
            self.store.put_authz(&authz);
            authorizations.push(authz.id);
        }
        let order = Order {
            id: self.store.next_id(),
            account: account.id.clone(),
            status: Status::Pending,
            expires,
            identifiers,
            authorizations,
            certificate: None,
            error: None,
        };
        self.store.put_order(&order);
        Ok(Reply::json(201, &order.to_json(&self.base)).with("Location", self.order_url(&order.id)))
    }

    /// An order as it stands: "ready" once every authorization is valid,
    /// "invalid" once one is not, "invalid" when expired unfinished.
    fn current(&self, mut order: Order, now: OffsetDateTime) -> Order {
        if order.status == Status::Pending {
            let statuses: Vec<Status> = order
                .authorizations
                .iter()
                .map(|a| self.store.authz(a).map_or(Status::Invalid, |z| z.status))
                .collect();
            if now > order.expires {
                order.status = Status::Invalid;
            } else if statuses.iter().all(|s| *s == Status::Valid) {
                order.status = Status::Ready;
            } else if statuses.iter().any(|s| matches!(s, Status::Invalid | Status::Deactivated | Status::Revoked)) {
                order.status = Status::Invalid;
            }
        }
        order
    }

    fn owned_order(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Order, Problem> {
        let account = self.signer(s)?;
        let order = self.store.order(id).filter(|o| o.account == account.id);
        let order = order.ok_or_else(|| Problem::new(Kind::Malformed, format!("no order {id} of this account")))?;
        Ok(self.current(order, now))
    }

    fn order(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let order = self.owned_order(s, id, now)?;
        let reply = Reply::json(200, &order.to_json(&self.base));
        Ok(match order.status {
            Status::Pending | Status::Processing => reply.retry_after(),
            _ => reply,
        })
    }

    fn owned_authz(&self, s: &Signed, authz: Option<Authorization>) -> Result<Authorization, Problem> {
        let account = self.signer(s)?;
        authz
            .filter(|a| a.account == account.id)
            .ok_or_else(|| Problem::new(Kind::Malformed, "no such authorization of this account"))
    }

    /// §7.5, §7.5.2: read or deactivate an authorization.
    fn authz(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let mut authz = self.owned_authz(s, self.store.authz(id))?;
        if !s.req.payload.is_empty() {
            match s.req.json()?.get("status").and_then(Value::as_str) {
                Some("deactivated") if matches!(authz.status, Status::Pending | Status::Valid) => {
                    authz.status = Status::Deactivated;
                    self.store.put_authz(&authz);
                }
                Some(other) => {
                    return Err(malformed(format!(
                        "an authorization in state {:?} cannot become {other:?}",
                        authz.status.name()
                    )))
                }
                None => {}
            }
        }
        Ok(Reply::json(200, &authz.to_json(&self.base)))
    }

    /// §7.5.1: the client says a challenge is ready. It is checked at once,
    /// so the reply already says valid or invalid: lego and certbot then
    /// need no polling round.
    fn challenge(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let mut authz = self.owned_authz(s, self.store.authz_of_challenge(id))?;
        let up = format!("<{}{}{}>;rel=\"up\"", self.base, path::AUTHZ, authz.id);
        let at = authz.challenges.iter().position(|c| c.id == id).expect("found by this id");
        if !s.req.payload.is_empty()
            && authz.status == Status::Pending
            && authz.challenges[at].status == Status::Pending
        {
            let account = self.signer(s)?;
            let key_authorization = format!("{}.{}", authz.challenges[at].token, account.key.thumbprint());
            let result = self.validator.validate(&authz.ident, authz.challenges[at].kind, &key_authorization);
            let c = &mut authz.challenges[at];
            match result {
                Ok(()) => {
                    c.status = Status::Valid;
                    c.validated = Some(now);
                    authz.status = Status::Valid;
                }
                Err(p) => {
                    c.status = Status::Invalid;
                    c.error = Some(p.to_json());
                    authz.status = Status::Invalid;
                }
            }
            self.store.put_authz(&authz);
        }
        let reply = Reply::json(200, &authz.challenges[at].to_json(&self.base)).with("Link", up);
        Ok(if authz.challenges[at].status == Status::Pending { reply.retry_after() } else { reply })
    }

    /// §7.4: issue for a ready order. Only one finalize can claim it.
    fn finalize(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let account = self.signer(s)?;
        let order = self.owned_order(s, id, now)?;
        if order.status != Status::Ready {
            return Err(Problem::new(
                Kind::OrderNotReady,
                format!("the order is {}; finalize needs it ready (every authorization valid)", order.status.name()),
            ));
        }
        let csr_b64 = s.req.json()?.get("csr").and_then(Value::as_str).map(str::to_string);
        let der = unb64(&csr_b64.ok_or_else(|| malformed("finalize needs \"csr\""))?, "csr")?;
        let csr = parse_csr(&der, "the finalize CSR").map_err(|e| Problem::new(Kind::BadCsr, e.to_string()))?;
        self.policy.check_csr(&csr, &order.identifiers, &account.key)?;
        if !self.store.transition_order(id, Status::Pending, Status::Processing) {
            return Err(Problem::new(Kind::OrderNotReady, "the order is being finalized or was finalized already"));
        }
        let mut done = order;
        match self.issuer.issue(&done.id, &csr, now) {
            Ok(chain) => {
                let serial = leaf_of(&chain).and_then(|der| serial_key(&der)).unwrap_or_default();
                self.store.put_cert(&done.id, &serial, &chain);
                done.status = Status::Valid;
                done.certificate = Some(done.id.clone());
            }
            Err(p) => {
                done.status = Status::Invalid;
                done.error = Some(p.to_json());
                self.store.put_order(&done);
                return Err(p);
            }
        }
        self.store.put_order(&done);
        Ok(Reply::json(200, &done.to_json(&self.base)).with("Location", self.order_url(&done.id)))
    }

    /// §7.4.2: the certificate chain, as PEM; `ID/alt` is the alternate
    /// chain (root included), each linked to the other as rel="alternate".
    fn cert(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let account = self.signer(s)?;
        let (id, alt) = match id.strip_suffix("/alt") {
            Some(id) => (id, true),
            None => (id, false),
        };
        let owned = self.store.order(id).is_some_and(|o| o.account == account.id);
        let missing = || Problem::new(Kind::Malformed, "no such certificate of this account");
        let chain = self.store.cert(id).filter(|_| owned).ok_or_else(missing)?;
        let other = self.issuer.alternate(&chain);
        let url = format!("{}{}{id}", self.base, path::CERT);
        let (body, link) = match (alt, other) {
            (false, Some(_)) => (chain, Some(format!("<{url}/alt>;rel=\"alternate\""))),
            (false, None) => (chain, None),
            (true, Some(other)) => (other, Some(format!("<{url}>;rel=\"alternate\""))),
            (true, None) => return Err(missing()),
        };
        // Caddy wants exactly this type.
        let reply = Reply::typed(200, "application/pem-certificate-chain", body);
        Ok(match link {
            Some(link) => reply.with("Link", link),
            None => reply,
        })
    }

    /// The certificate this server issued with this serial, when the
    /// account ordered it: (order id, chain).
    fn owned_cert(&self, account: &Account, serial: &[u8]) -> Option<(String, String)> {
        let (id, chain) = self.store.cert_by_serial(&hex(serial))?;
        self.store.order(&id).filter(|o| o.account == account.id).map(|_| (id, chain))
    }

    /// RFC 9773 §4: when to renew the certificate named by `cert_id`. A GET,
    /// unauthenticated: it tells nothing a certificate does not.
    fn renewal_info(&self, cert_id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let (_, serial) = super::ari::parse_cert_id(cert_id)?;
        let unknown = || Problem::new(Kind::Malformed, format!("no certificate {cert_id} was issued here"));
        let (_, chain) = self.store.cert_by_serial(&hex(&serial)).ok_or_else(unknown)?;
        let der = leaf_of(&chain).ok_or_else(unknown)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| unknown())?;
        if super::ari::cert_id(&cert).as_deref() != Some(cert_id) {
            return Err(unknown());
        }
        let revoked = self.issuer.is_revoked(&serial);
        let validity = cert.validity();
        let window =
            super::ari::window(validity.not_before.to_datetime(), validity.not_after.to_datetime(), revoked, now);
        Ok(Reply::json(200, &super::ari::to_json(window, revoked))
            .with("Retry-After", super::ari::RETRY_AFTER_SECS.to_string()))
    }

    /// §7.6: revoke, signed by the account that ordered it or by the
    /// certificate's own key.
    fn revoke(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let payload = s.req.json()?;
        let der = unb64(
            payload
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("revokeCert needs \"certificate\""))?,
            "certificate",
        )?;
        let code = match payload.get("reason") {
            None => 0,
            Some(r) => r.as_u64().ok_or_else(|| malformed("\"reason\" must be a number"))?,
        };
        let reason = Reason::from_code(code).ok_or_else(|| {
            Problem::new(
                Kind::BadRevocationReason,
                format!("reason {code} is not one this CA uses; give 0-6 or 9 (RFC 5280 §5.3.1)"),
            )
        })?;
        let pem = crate::pki::to_pem("CERTIFICATE", &der);
        let cert = x509_parser::parse_x509_certificate(&der).ok().map(|(_, c)| c);
        let allowed = match (&s.req.signer, &s.account) {
            (Signer::Jwk(key), _) => {
                let cert = cert.ok_or_else(|| malformed("\"certificate\" is not a certificate"))?;
                Jwk::from_spki(cert.public_key().raw).as_ref() == Some(key)
            }
            (_, Some(account)) => cert
                .and_then(|c| self.owned_cert(account, c.raw_serial()))
                .is_some_and(|(_, chain)| chain.starts_with(&pem)),
            _ => false,
        };
        if !allowed {
            return Err(Problem::new(
                Kind::Unauthorized,
                "only the account that ordered a certificate, or its key, may revoke it",
            ));
        }
        self.issuer.revoke(&der, reason, now)?;
        Ok(Reply { status: 200, headers: Vec::new(), body: Vec::new() })
    }
}

/// The leaf of a PEM chain, DER.
fn leaf_of(chain: &str) -> Option<Vec<u8>> {
    Some(pem::parse(chain).ok()?.into_contents())
}

/// A certificate's serial as the store indexes it.
fn serial_key(der: &[u8]) -> Option<String> {
    Some(hex(x509_parser::parse_x509_certificate(der).ok()?.1.raw_serial()))
}

/// A challenge token: 128 random bits, base64url (§8.1 wants ≥ 128).
fn token() -> String {
    super::jws::random_b64(16)
}

/// An account's `contact`: mailto: URLs only (§7.3).
fn contacts(payload: &Value) -> Result<Vec<String>, Problem> {
    let Some(list) = payload.get("contact") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| malformed("\"contact\" must be an array of mailto: URLs"))?;
    list.iter()
        .map(|c| {
            let c = c.as_str().ok_or_else(|| Problem::new(Kind::InvalidContact, "a contact must be a string"))?;
            match c.strip_prefix("mailto:") {
                Some(addr) if addr.contains('@') && !addr.contains(',') => Ok(c.to_string()),
                Some(_) => Err(Problem::new(Kind::InvalidContact, format!("{c:?} is not one email address"))),
                None => {
                    Err(Problem::new(Kind::UnsupportedContact, format!("{c:?}: only mailto: contacts are supported")))
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::acme::jws::b64;
    use crate::acme::store::MemStore;
    use crate::pki::ca::CaSigner;
    use crate::pki::csr::make_csr;
    use crate::pki::issue::{self, CertSpec};
    use crate::pki::keys::{KeySpec, PrivateKey};
    use crate::pki::profile::{Kind as ProfileKind, LeafProfile};
    use crate::pki::san::San;
    use crate::pki::subject::Subject;
    use crate::pki::validity::{Expiry, ValidityRequest};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    const BASE: &str = "https://127.0.0.1:14000";

    /// A CA in memory that records what it revoked.
    struct TestCa {
        ca: CaSigner,
        revoked: Mutex<Vec<(Vec<u8>, Reason)>>,
    }

    impl Issuer for &'static TestCa {
        fn issue(&self, _: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
            let validity = ValidityRequest::default().resolve(now, Expiry::parse("1 day").unwrap()).unwrap();
            let kind = ProfileKind::Leaf { profile: LeafProfile::Server, code_signing: false };
            let der = issue::signed_by(&CertSpec::from_csr(csr, kind, validity), &csr.spki_der, &self.ca)
                .map_err(|e| Problem::new(Kind::ServerInternal, e.to_string()))?;
            Ok(crate::pki::to_pem("CERTIFICATE", &der) + &crate::pki::to_pem("CERTIFICATE", self.ca.cert_der()))
        }

        fn revoke(&self, der: &[u8], reason: Reason, _: OffsetDateTime) -> Result<(), Problem> {
            self.revoked.lock().unwrap().push((der.to_vec(), reason));
            Ok(())
        }

        fn alternate(&self, chain: &str) -> Option<String> {
            Some(format!("{chain}{}", crate::pki::to_pem("CERTIFICATE", self.ca.cert_der())))
        }

        fn is_revoked(&self, serial: &[u8]) -> bool {
            let revoked = self.revoked.lock().unwrap();
            revoked.iter().any(|(der, _)| x509_parser::parse_x509_certificate(der).unwrap().1.raw_serial() == serial)
        }
    }

    struct Refuse;
    impl Validator for Refuse {
        fn validate(&self, ident: &Ident, _: ChallengeKind, _: &str) -> Result<(), Problem> {
            Err(Problem::new(Kind::Connection, format!("could not reach {}", ident.value)))
        }
    }

    fn engine(validator: Box<dyn Validator>) -> (Engine<MemStore>, &'static TestCa) {
        let now = OffsetDateTime::now_utc();
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let permit = vec!["localhost".to_string(), "test".to_string()];
        let dn = Subject { common_name: Some("ACME Test CA".into()), ..Default::default() }.to_dn().unwrap();
        let validity = ValidityRequest::default().resolve(now, Expiry::parse("30 days").unwrap()).unwrap();
        let spec =
            CertSpec::new(dn, vec![], ProfileKind::Root { path_len: None, permit_domains: permit.clone() }, validity);
        let der = issue::self_signed(&spec, &key).unwrap();
        let ca: &'static TestCa = Box::leak(Box::new(TestCa {
            ca: CaSigner::new(der, key, "ca", "key").unwrap(),
            revoked: Mutex::default(),
        }));
        let (permitted, _) = crate::pki::constraints::effective(&permit);
        let policy = Policy {
            constraints: crate::pki::constraints::NameConstraints { permitted, excluded: vec![] },
            allow: vec![],
        };
        let e = Engine {
            base: BASE.into(),
            store: MemStore::default(),
            nonces: Nonces::default(),
            policy,
            issuer: Box::new(ca),
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
            let (h, p) = (
                b64(header.to_string().as_bytes()),
                payload.map(|p| b64(p.to_string().as_bytes())).unwrap_or_default(),
            );
            let sig = self.key.sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes()).unwrap();
            json!({ "protected": h, "payload": p, "signature": b64(sig.as_ref()) }).to_string().into_bytes()
        }

        /// POSTs `payload` (None: POST-as-GET) to `path`, with a fresh nonce.
        fn post(&self, e: &Engine<MemStore>, path: &str, payload: Option<&Value>) -> (Reply, Value) {
            let nonce = nonce(e);
            let body = self.body(&format!("{BASE}{path}"), &nonce, payload, path == path::NEW_ACCOUNT);
            send(e, path, &body)
        }
    }

    fn nonce(e: &Engine<MemStore>) -> String {
        let r = e.handle(
            &HttpRequest { method: "HEAD", path: path::NEW_NONCE, content_type: None, body: b"" },
            OffsetDateTime::now_utc(),
        );
        r.header("Replay-Nonce").unwrap().to_string()
    }

    fn send(e: &Engine<MemStore>, path: &str, body: &[u8]) -> (Reply, Value) {
        let req = HttpRequest { method: "POST", path, content_type: Some("application/jose+json"), body };
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

    fn register(e: &Engine<MemStore>) -> Client {
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
            &HttpRequest { method: "GET", path: path::DIRECTORY, content_type: None, body: b"" },
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
            };
            let r = e.handle(&get, OffsetDateTime::now_utc());
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!((r.status, r.header("Retry-After")), (200, Some("21600")), "{v}");
            let at = |k: &str| {
                crate::pki::validity::parse_rfc3339("ari", v["suggestedWindow"][k].as_str().unwrap()).unwrap()
            };
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
        let (_, v) =
            client.post(&e, path::REVOKE, Some(&json!({ "certificate": b64(chain[0].contents()), "reason": 7 })));
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
        let req =
            HttpRequest { method: "POST", path: path::NEW_ORDER, content_type: Some("application/json"), body: &body };
        assert_eq!(e.handle(&req, OffsetDateTime::now_utc()).status, 400);
        let big = vec![b'x'; MAX_BODY + 1];
        assert_eq!(problem(&send(&e, path::NEW_ORDER, &big).1), "malformed");
        let unknown = Client { kid: Some(format!("{BASE}/acct/nobody")), ..Client::new() };
        assert_eq!(problem(&unknown.post(&e, path::NEW_ORDER, Some(&json!({}))).1), "accountDoesNotExist");
        let get = HttpRequest { method: "GET", path: "/nothing", content_type: None, body: b"" };
        assert_eq!(e.handle(&get, OffsetDateTime::now_utc()).status, 404);

        // Names outside the CA's constraints: one subproblem each, no order.
        let ids = json!({ "identifiers": [{ "type": "dns", "value": "www.example.com" }, { "type": "ip", "value": "1.1.1.1" }, { "type": "dns", "value": "ok.test" }] });
        let (r, v) = client.post(&e, path::NEW_ORDER, Some(&ids));
        assert_eq!((r.status, problem(&v)), (400, "rejectedIdentifier"));
        assert_eq!(v["subproblems"].as_array().unwrap().len(), 2, "{v}");
        assert!(e.store.orders_of(kid.rsplit('/').next().unwrap()).is_empty());

        // A failed challenge makes its authorization and the order invalid.
        let (_, order) = client.post(
            &e,
            path::NEW_ORDER,
            Some(&json!({ "identifiers": [{ "type": "dns", "value": "localhost" }] })),
        );
        let (_, a) = client.post(&e, &local(order["authorizations"][0].as_str().unwrap()), None);
        let (_, c) = client.post(&e, &local(a["challenges"][0]["url"].as_str().unwrap()), Some(&json!({})));
        assert_eq!((c["status"].as_str(), problem(&c["error"])), (Some("invalid"), "connection"));
        let (_, o) = client.post(
            &e,
            &local(&format!("{BASE}/order/{}", e.store.orders_of(kid.rsplit('/').next().unwrap())[0])),
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
        assert_eq!(
            problem(&client.post(&e, path::NEW_ORDER, Some(&ids)).1),
            "malformed",
            "the old key's signature fails"
        );
        let rolled = Client { kid: Some(kid.clone()), ..new };
        let (r, _) = rolled.post(&e, &local(&kid), Some(&json!({ "status": "deactivated" })));
        assert_eq!(r.status, 200);
        let (r, v) = rolled.post(&e, &local(&kid), None);
        assert_eq!((r.status, problem(&v)), (403, "unauthorized"), "a deactivated account can do nothing");
    }
}
