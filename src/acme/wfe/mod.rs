//! The web front end (Pebble's `wfe` role): an HTTP request in, an HTTP
//! reply out, without sockets. It parses the request into a [`Route`]
//! once, authenticates the JWS (RFC 8555 §6.2), and hands the signed
//! request to the handler of its resource (`account`, `order`, `cert`),
//! which reads the objects from the [`Store`], asks [`crate::acme::orders`]
//! what they become, and stores the result. The depot is reached through
//! the [`Issuer`], challenge checks through the [`Validator`]; so the
//! whole protocol runs in memory in tests.
//!
//! No lock is held across a request (Pebble takes one global lock): each
//! store call is one step, and the only race that matters, two finalizes
//! of one order, is settled by the store's atomic `transition_order`.

mod account;
mod cert;
mod order;
mod reply;
mod route;

pub use reply::{HttpRequest, Reply, MAX_BODY};
pub use route::Route;

use time::OffsetDateTime;

use super::ca::Issuer;
use super::db::Store;
use super::jws::{Request, Signer};
use super::limits::{Limiter, Limits};
use super::model::{directory, path, Account, AccountStatus};
use super::nonce::{NoncePool, Presented};
use super::policy::Policy;
use super::problem::{malformed, Kind, Problem};
use super::va::Validator;

pub struct Engine<S: Store> {
    /// "https://127.0.0.1:14000", no trailing slash.
    pub base: String,
    pub store: S,
    /// Replay nonces: this process's, or a fleet's shared ones.
    pub nonces: Box<dyn NoncePool>,
    /// The rate limits, and where their buckets are kept.
    pub limits: Limits,
    pub limiter: Box<dyn Limiter>,
    pub policy: Policy,
    pub issuer: Box<dyn Issuer>,
    pub validator: Box<dyn Validator>,
    /// `--require-eab`: new accounts need an External Account Binding.
    pub eab_required: bool,
}

/// A request whose signature checked out.
struct Signed {
    req: Request,
    /// The client's address (per-address limits).
    peer: Option<std::net::IpAddr>,
    /// The signing account, unless the request was signed by a jwk.
    account: Option<Account>,
}

impl Signed {
    /// The signing account (every route but newAccount and revokeCert by
    /// certificate key has one).
    fn account(&self) -> Result<&Account, Problem> {
        self.account.as_ref().ok_or_else(|| malformed("this request must be signed with the account's \"kid\""))
    }
}

impl<S: Store> Engine<S> {
    /// Answers one request. Every reply carries a fresh Replay-Nonce
    /// (§6.5: certbot fails with MissingNonce without it) and the index link.
    pub fn handle(&self, req: &HttpRequest<'_>, now: OffsetDateTime) -> Reply {
        self.handle_route(req, Route::parse(req.method, req.path), now)
    }

    /// [`Engine::handle`] with the route already parsed (the HTTP layer
    /// parses it to choose a thread).
    pub fn handle_route(&self, req: &HttpRequest<'_>, route: Result<Route, Problem>, now: OffsetDateTime) -> Reply {
        self.finish(route.and_then(|route| self.route(req, &route, now)), now)
    }

    /// The reply for a request refused before the engine saw it (the HTTP
    /// layer's body limit), with the headers every reply carries.
    pub fn refuse(&self, p: Problem) -> Reply {
        self.finish(Err(p), OffsetDateTime::now_utc())
    }

    fn finish(&self, reply: Result<Reply, Problem>, now: OffsetDateTime) -> Reply {
        reply
            .unwrap_or_else(|p| Reply::problem(&p))
            .with("Replay-Nonce", self.nonces.issue(now))
            .with("Link", format!("<{}{}>;rel=\"index\"", self.base, path::DIRECTORY))
            .with("Cache-Control", "no-store".into())
    }

    fn route(&self, http: &HttpRequest<'_>, route: &Route, now: OffsetDateTime) -> Result<Reply, Problem> {
        let signed = match route {
            Route::Directory => return Ok(Reply::json(200, &directory(&self.base, self.eab_required))),
            Route::NewNonce { head: true } => return Ok(Reply::empty(200)),
            Route::NewNonce { head: false } => return Ok(Reply::empty(204)),
            Route::RenewalInfo(cert_id) => return self.renewal_info(cert_id, now),
            _ => self.authenticate(http, route, now)?,
        };
        let s = &signed;
        match route {
            Route::NewAccount => self.new_account(s, now),
            Route::Account(id) => self.account(s, id),
            Route::AccountOrders(id) => self.orders_list(s, id),
            Route::KeyChange => self.key_change(s),
            Route::NewOrder => self.new_order(s, now),
            Route::Order(id) => self.order(s, id, now),
            Route::Finalize(id) => self.finalize(s, id, now),
            Route::Authz(id) => self.authz(s, id),
            Route::Challenge(id) => self.challenge(s, id, now),
            Route::Cert { id, alt } => self.cert(s, id, *alt),
            Route::Revoke => self.revoke(s, now),
            Route::Directory | Route::NewNonce { .. } | Route::RenewalInfo(_) => unreachable!("answered above"),
        }
    }

    /// §6.2, §6.4, §6.5: a POST's framing, its URL, its nonce and its
    /// signature, by the jwk (newAccount, revokeCert) or by the account
    /// its kid names.
    fn authenticate(&self, http: &HttpRequest<'_>, route: &Route, now: OffsetDateTime) -> Result<Signed, Problem> {
        if http.content_type.map(|c| c.split(';').next().unwrap_or("").trim()) != Some("application/jose+json") {
            return Err(Problem::unsupported_media_type(
                "POST bodies must be Content-Type: application/jose+json (RFC 8555 §6.2)",
            ));
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
        let bad_nonce = || Problem::new(Kind::BadNonce, "the nonce is unknown or was used already; get a new one");
        let account = match &req.signer {
            Signer::Kid(kid) if *route != Route::NewAccount => {
                let id = kid.strip_prefix(&format!("{}{}", self.base, path::ACCOUNT)).ok_or_else(|| {
                    Problem::new(Kind::AccountDoesNotExist, format!("{kid:?} is not an account URL of this server"))
                })?;
                // The nonce is spent and the account read together (one
                // round trip in a fleet's database).
                let account = match self.nonces.consume_for(nonce, now, id, &|id| self.store.account(id))? {
                    Presented::BadNonce => return Err(bad_nonce()),
                    Presented::Good(account) => account,
                };
                let account =
                    account.ok_or_else(|| Problem::new(Kind::AccountDoesNotExist, format!("no account {kid:?}")))?;
                req.verify(&account.key)?;
                if account.status != AccountStatus::Valid {
                    return Err(Problem::new(Kind::Unauthorized, "this account is deactivated"));
                }
                Some(account)
            }
            signer => {
                if !self.nonces.consume(nonce, now)? {
                    return Err(bad_nonce());
                }
                match signer {
                    Signer::Jwk(key) if route.by_jwk() => req.verify(key)?,
                    Signer::Jwk(_) => return Err(malformed("this request must be signed with the account's \"kid\"")),
                    Signer::Kid(_) => return Err(malformed("newAccount must be signed with a \"jwk\"")),
                }
                None
            }
        };
        Ok(Signed { req, peer: http.peer, account })
    }

    fn account_url(&self, id: &str) -> String {
        format!("{}{}{id}", self.base, path::ACCOUNT)
    }

    fn order_url(&self, id: &str) -> String {
        format!("{}{}{id}", self.base, path::ORDER)
    }
}

#[cfg(test)]
mod tests;
