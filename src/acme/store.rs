//! Where the ACME server keeps its accounts, orders, authorizations and
//! certificates. The engine sees only this trait; `MemStore` keeps them in
//! memory (tests, and `serve --ephemeral` later), a SQLite store in the
//! depot will make them survive restarts.
//!
//! Every method takes one lock and releases it before returning, and no
//! method calls another: so there is no lock order to get wrong (Pebble's
//! deadlock took two locks in opposite orders).

use std::collections::HashMap;
use std::sync::Mutex;

use super::model::{Account, Authorization, Order};

pub trait Store: Send + Sync {
    /// A new unique id for any object.
    fn next_id(&self) -> String;
    fn account(&self, id: &str) -> Option<Account>;
    /// The account whose key has this RFC 7638 thumbprint.
    fn account_by_thumbprint(&self, thumbprint: &str) -> Option<Account>;
    fn put_account(&self, account: &Account);
    fn order(&self, id: &str) -> Option<Order>;
    fn put_order(&self, order: &Order);
    fn orders_of(&self, account: &str) -> Vec<String>;
    /// Moves order `id` from status `from` to `to` if it is still in
    /// `from`, atomically: two finalize requests can never both issue.
    fn transition_order(&self, id: &str, from: super::model::Status, to: super::model::Status) -> bool;
    fn authz(&self, id: &str) -> Option<Authorization>;
    fn put_authz(&self, authz: &Authorization);
    /// The authorization holding challenge `id`.
    fn authz_of_challenge(&self, id: &str) -> Option<Authorization>;
    /// An issued certificate chain (PEM), by id (its order's).
    fn cert(&self, id: &str) -> Option<String>;
    /// Stores a chain under its order id and its leaf's serial (hex).
    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str);
    /// The (id, chain) of the certificate with this serial (hex).
    fn cert_by_serial(&self, serial: &str) -> Option<(String, String)>;
    /// The MAC key of External Account Binding key id `kid`.
    fn eab_key(&self, kid: &str) -> Option<Vec<u8>>;
}

#[derive(Default)]
struct Maps {
    next: u64,
    accounts: HashMap<String, Account>,
    orders: HashMap<String, Order>,
    authzs: HashMap<String, Authorization>,
    certs: HashMap<String, String>,
    serials: HashMap<String, String>,
    eab: HashMap<String, Vec<u8>>,
}

/// Everything in memory, behind one lock.
#[derive(Default)]
pub struct MemStore {
    maps: Mutex<Maps>,
}

impl MemStore {
    /// Adds an External Account Binding key.
    pub fn put_eab(&self, kid: &str, key: &[u8]) {
        self.with(|m| m.eab.insert(kid.to_string(), key.to_vec()));
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> T {
        f(&mut self.maps.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Store for MemStore {
    fn next_id(&self) -> String {
        let n = self.with(|m| {
            m.next += 1;
            m.next
        });
        // Unguessable as well as unique: an order URL is not a secret in
        // RFC 8555, but there is no reason to make them enumerable.
        format!("{n}{}", super::jws::random_b64(6))
    }

    fn account(&self, id: &str) -> Option<Account> {
        self.with(|m| m.accounts.get(id).cloned())
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Option<Account> {
        self.with(|m| m.accounts.values().find(|a| a.key.thumbprint() == thumbprint).cloned())
    }

    fn put_account(&self, account: &Account) {
        self.with(|m| m.accounts.insert(account.id.clone(), account.clone()));
    }

    fn order(&self, id: &str) -> Option<Order> {
        self.with(|m| m.orders.get(id).cloned())
    }

    fn put_order(&self, order: &Order) {
        self.with(|m| m.orders.insert(order.id.clone(), order.clone()));
    }

    fn orders_of(&self, account: &str) -> Vec<String> {
        let mut ids: Vec<String> =
            self.with(|m| m.orders.values().filter(|o| o.account == account).map(|o| o.id.clone()).collect());
        ids.sort();
        ids
    }

    fn transition_order(&self, id: &str, from: super::model::Status, to: super::model::Status) -> bool {
        self.with(|m| match m.orders.get_mut(id) {
            Some(o) if o.status == from => {
                o.status = to;
                true
            }
            _ => false,
        })
    }

    fn authz(&self, id: &str) -> Option<Authorization> {
        self.with(|m| m.authzs.get(id).cloned())
    }

    fn put_authz(&self, authz: &Authorization) {
        self.with(|m| m.authzs.insert(authz.id.clone(), authz.clone()));
    }

    fn authz_of_challenge(&self, id: &str) -> Option<Authorization> {
        self.with(|m| m.authzs.values().find(|a| a.challenges.iter().any(|c| c.id == id)).cloned())
    }

    fn cert(&self, id: &str) -> Option<String> {
        self.with(|m| m.certs.get(id).cloned())
    }

    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) {
        self.with(|m| {
            m.certs.insert(id.to_string(), pem_chain.to_string());
            m.serials.insert(serial.to_string(), id.to_string());
        });
    }

    fn cert_by_serial(&self, serial: &str) -> Option<(String, String)> {
        self.with(|m| m.serials.get(serial).and_then(|id| Some((id.clone(), m.certs.get(id)?.clone()))))
    }

    fn eab_key(&self, kid: &str) -> Option<Vec<u8>> {
        self.with(|m| m.eab.get(kid).cloned())
    }
}
