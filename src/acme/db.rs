//! Where the ACME server keeps its accounts, orders, authorizations and
//! certificates (Pebble's `db` role). The front end sees only this trait;
//! `MemStore` keeps them in memory (the engine's tests and the fuzz
//! target), and `serve` keeps them in the depot's SQLite file
//! (`crate::serve::sqlite`) so that they survive restarts.
//!
//! Every method but `next_id` can fail: a database can refuse a write or
//! be out of reach, and the front end must answer that as a problem
//! document (500, or 503 when it may pass), never as a success.
//!
//! Every method takes one lock and releases it before returning, and no
//! method calls another: so there is no lock order to get wrong (Pebble's
//! deadlock took two locks in opposite orders).

use std::collections::HashMap;
use std::sync::Mutex;

use super::model::{Account, Authorization, Order, Status};
use crate::storage::StorageError;

/// What a store call answers.
pub type Stored<T> = Result<T, StorageError>;

pub trait Store: Send + Sync {
    /// A new unique id for any object.
    fn next_id(&self) -> String;
    fn account(&self, id: &str) -> Stored<Option<Account>>;
    /// The account whose key has this RFC 7638 thumbprint.
    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>>;
    fn put_account(&self, account: &Account) -> Stored<()>;
    fn order(&self, id: &str) -> Stored<Option<Order>>;
    /// Order `id` and, while it is pending, the status of each of its
    /// authorizations in its order (None for one that is missing): what
    /// the front end needs to say whether it is ready (§7.1.6). A database
    /// answers both in one round trip.
    fn order_with_authzs(&self, id: &str) -> Stored<Option<(Order, Vec<Option<Status>>)>> {
        let Some(order) = self.order(id)? else { return Ok(None) };
        let statuses = match order.status {
            Status::Pending => {
                order.authorizations.iter().map(|a| Ok(self.authz(a)?.map(|z| z.status))).collect::<Stored<_>>()?
            }
            _ => Vec::new(),
        };
        Ok(Some((order, statuses)))
    }
    fn put_order(&self, order: &Order) -> Stored<()>;
    fn orders_of(&self, account: &str) -> Stored<Vec<String>>;
    /// Moves order `id` from status `from` to `to` if it is still in
    /// `from`, atomically: two finalize requests can never both issue.
    /// Ok(false) when it was not in `from`.
    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool>;
    fn authz(&self, id: &str) -> Stored<Option<Authorization>>;
    fn put_authz(&self, authz: &Authorization) -> Stored<()>;
    /// The authorization holding challenge `id`.
    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>>;
    /// A new order and its authorizations, stored together (newOrder). A
    /// store with transactions makes this one write, not one per object:
    /// the authorizations go first, so an order never names one missing.
    fn put_new_order(&self, order: &Order, authzs: &[Authorization]) -> Stored<()> {
        for authz in authzs {
            self.put_authz(authz)?;
        }
        self.put_order(order)
    }
    /// An issued certificate chain (PEM), by id (its order's).
    fn cert(&self, id: &str) -> Stored<Option<String>>;
    /// Stores a chain under its order id and its leaf's serial (hex).
    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()>;
    /// A finalized order and its certificate (chain under the order's id,
    /// `serial` its leaf's, hex), stored together; the certificate first,
    /// so a valid order never lacks it. One write where the store allows.
    fn put_issued(&self, order: &Order, serial: &str, pem_chain: &str) -> Stored<()> {
        self.put_cert(&order.id, serial, pem_chain)?;
        self.put_order(order)
    }
    /// The (id, chain) of the certificate with this serial (hex).
    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>>;
    /// The MAC key of External Account Binding key id `kid`.
    fn eab_key(&self, kid: &str) -> Stored<Option<Vec<u8>>>;
    /// Whether the store can answer now (`/health`): a database that is
    /// out of reach says so here, so a balancer takes the instance out.
    fn health(&self) -> Stored<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Maps {
    next: u64,
    accounts: HashMap<String, Account>,
    orders: HashMap<String, Order>,
    authzs: HashMap<String, Authorization>,
    certs: HashMap<String, String>,
    serials: HashMap<String, String>,
}

/// Everything in memory, behind one lock.
#[derive(Default)]
pub struct MemStore {
    maps: Mutex<Maps>,
}

impl MemStore {
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

    fn account(&self, id: &str) -> Stored<Option<Account>> {
        Ok(self.with(|m| m.accounts.get(id).cloned()))
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>> {
        Ok(self.with(|m| m.accounts.values().find(|a| a.key.thumbprint() == thumbprint).cloned()))
    }

    fn put_account(&self, account: &Account) -> Stored<()> {
        self.with(|m| m.accounts.insert(account.id.clone(), account.clone()));
        Ok(())
    }

    fn order(&self, id: &str) -> Stored<Option<Order>> {
        Ok(self.with(|m| m.orders.get(id).cloned()))
    }

    fn put_order(&self, order: &Order) -> Stored<()> {
        self.with(|m| m.orders.insert(order.id.clone(), order.clone()));
        Ok(())
    }

    fn orders_of(&self, account: &str) -> Stored<Vec<String>> {
        let mut ids: Vec<String> =
            self.with(|m| m.orders.values().filter(|o| o.account == account).map(|o| o.id.clone()).collect());
        ids.sort();
        Ok(ids)
    }

    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool> {
        Ok(self.with(|m| match m.orders.get_mut(id) {
            Some(o) if o.status == from => {
                o.status = to;
                true
            }
            _ => false,
        }))
    }

    fn authz(&self, id: &str) -> Stored<Option<Authorization>> {
        Ok(self.with(|m| m.authzs.get(id).cloned()))
    }

    fn put_authz(&self, authz: &Authorization) -> Stored<()> {
        self.with(|m| m.authzs.insert(authz.id.clone(), authz.clone()));
        Ok(())
    }

    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>> {
        Ok(self.with(|m| m.authzs.values().find(|a| a.challenges.iter().any(|c| c.id == id)).cloned()))
    }

    fn cert(&self, id: &str) -> Stored<Option<String>> {
        Ok(self.with(|m| m.certs.get(id).cloned()))
    }

    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()> {
        self.with(|m| {
            m.certs.insert(id.to_string(), pem_chain.to_string());
            m.serials.insert(serial.to_string(), id.to_string());
        });
        Ok(())
    }

    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>> {
        Ok(self.with(|m| m.serials.get(serial).and_then(|id| Some((id.clone(), m.certs.get(id)?.clone())))))
    }

    /// No External Account Binding keys in memory: `--require-eab` needs
    /// the depot's store, where `certforge acme eab add` puts them.
    fn eab_key(&self, _: &str) -> Stored<Option<Vec<u8>>> {
        Ok(None)
    }
}
