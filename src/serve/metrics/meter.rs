//! Decorators that count what the engine's parts do, so that neither the
//! protocol core nor the parts themselves know of metrics: the server
//! wraps each part in one of these when it builds the engine.

use std::time::Instant;

use metrics::{counter, histogram, Counter, Histogram};
use time::OffsetDateTime;

use super::name;
use crate::acme::ca::Issuer;
use crate::acme::db::Stored;
use crate::acme::model::{Account, Authorization, ChallengeKind, Ident, Order, Status};
use crate::acme::nonce::{Checked, NoncePool, Presented, ReadAccount};
use crate::acme::problem::Problem;
use crate::acme::{Store, Validator};
use crate::pki::crl::Reason;
use crate::pki::csr::ParsedCsr;
use crate::storage::StorageError;

/// Counts challenge checks by type and result.
pub struct MeteredValidator(pub Box<dyn Validator>);

impl Validator for MeteredValidator {
    fn validate(&self, ident: &Ident, kind: ChallengeKind, key_authorization: &str) -> Result<(), Problem> {
        let result = self.0.validate(ident, kind, key_authorization);
        let outcome = if result.is_ok() { "valid" } else { "invalid" };
        counter!(name::VALIDATIONS, "type" => kind.name(), "result" => outcome).increment(1);
        result
    }
}

/// Times each issuance and counts revocations.
pub struct MeteredIssuer(pub Box<dyn Issuer>);

impl Issuer for MeteredIssuer {
    fn issue(&self, order: &str, csr: &ParsedCsr, now: OffsetDateTime) -> Result<String, Problem> {
        let started = Instant::now();
        let issued = self.0.issue(order, csr, now);
        if issued.is_ok() {
            histogram!(name::ISSUANCE_DURATION).record(started.elapsed().as_secs_f64());
        }
        issued
    }

    fn revoke(&self, der: &[u8], reason: Reason, now: OffsetDateTime) -> Result<(), Problem> {
        let revoked = self.0.revoke(der, reason, now);
        if revoked.is_ok() {
            counter!(name::REVOCATIONS).increment(1);
        }
        revoked
    }

    fn is_revoked(&self, serial: &[u8]) -> bool {
        self.0.is_revoked(serial)
    }

    fn alternate(&self, chain: &str) -> Option<String> {
        self.0.alternate(chain)
    }
}

/// Counts nonces handed out and refused.
pub struct MeteredNonces {
    pool: Box<dyn NoncePool>,
    issued: Counter,
    rejected: Counter,
}

impl MeteredNonces {
    pub fn new(pool: Box<dyn NoncePool>) -> MeteredNonces {
        MeteredNonces { pool, issued: counter!(name::NONCES_ISSUED), rejected: counter!(name::NONCES_REJECTED) }
    }
}

impl NoncePool for MeteredNonces {
    fn issue(&self, now: OffsetDateTime) -> String {
        self.issued.increment(1);
        self.pool.issue(now)
    }

    fn consume(&self, nonce: &str, now: OffsetDateTime) -> Result<bool, StorageError> {
        let good = self.pool.consume(nonce, now)?;
        if !good {
            self.rejected.increment(1);
        }
        Ok(good)
    }

    fn consume_for(&self, nonce: &str, now: OffsetDateTime, id: &str, read: ReadAccount) -> Checked {
        let presented = self.pool.consume_for(nonce, now, id, read)?;
        if matches!(presented, Presented::BadNonce) {
            self.rejected.increment(1);
        }
        Ok(presented)
    }
}

/// Which store a [`MeteredStore`] times, its series' label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgresql,
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgresql => "postgresql",
        }
    }
}

/// Times every call to the ACME store and counts those that fail. Every
/// method is passed on, the provided ones too: a store's own one-round-trip
/// versions (PostgreSQL's) must not fall back to the trait's defaults.
pub struct MeteredStore<S> {
    inner: S,
    duration: Histogram,
    errors: Counter,
}

impl<S: Store> MeteredStore<S> {
    pub fn new(inner: S, kind: StoreKind) -> MeteredStore<S> {
        let errors = counter!(name::STORE_ERRORS, "store" => kind.label());
        // At 0 from the start: an alert on store errors has a series.
        errors.increment(0);
        MeteredStore { inner, duration: histogram!(name::STORE_DURATION, "store" => kind.label()), errors }
    }

    fn timed<T>(&self, call: impl FnOnce(&S) -> Stored<T>) -> Stored<T> {
        let started = Instant::now();
        let result = call(&self.inner);
        self.duration.record(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.increment(1);
        }
        result
    }
}

impl<S: Store> Store for MeteredStore<S> {
    fn next_id(&self) -> String {
        self.inner.next_id()
    }
    fn account(&self, id: &str) -> Stored<Option<Account>> {
        self.timed(|s| s.account(id))
    }
    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>> {
        self.timed(|s| s.account_by_thumbprint(thumbprint))
    }
    fn put_account(&self, account: &Account) -> Stored<()> {
        self.timed(|s| s.put_account(account))
    }
    fn order(&self, id: &str) -> Stored<Option<Order>> {
        self.timed(|s| s.order(id))
    }
    fn order_with_authzs(&self, id: &str) -> Stored<Option<(Order, Vec<Option<Status>>)>> {
        self.timed(|s| s.order_with_authzs(id))
    }
    fn put_order(&self, order: &Order) -> Stored<()> {
        self.timed(|s| s.put_order(order))
    }
    fn orders_of(&self, account: &str) -> Stored<Vec<String>> {
        self.timed(|s| s.orders_of(account))
    }
    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool> {
        self.timed(|s| s.transition_order(id, from, to))
    }
    fn authz(&self, id: &str) -> Stored<Option<Authorization>> {
        self.timed(|s| s.authz(id))
    }
    fn put_authz(&self, authz: &Authorization) -> Stored<()> {
        self.timed(|s| s.put_authz(authz))
    }
    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>> {
        self.timed(|s| s.authz_of_challenge(id))
    }
    fn put_new_order(&self, order: &Order, authzs: &[Authorization]) -> Stored<()> {
        self.timed(|s| s.put_new_order(order, authzs))
    }
    fn cert(&self, id: &str) -> Stored<Option<String>> {
        self.timed(|s| s.cert(id))
    }
    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()> {
        self.timed(|s| s.put_cert(id, serial, pem_chain))
    }
    fn put_issued(&self, order: &Order, serial: &str, pem_chain: &str) -> Stored<()> {
        self.timed(|s| s.put_issued(order, serial, pem_chain))
    }
    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>> {
        self.timed(|s| s.cert_by_serial(serial))
    }
    fn eab_key(&self, kid: &str) -> Stored<Option<Vec<u8>>> {
        self.timed(|s| s.eab_key(kid))
    }
    fn health(&self) -> Stored<()> {
        self.timed(|s| s.health())
    }
}
