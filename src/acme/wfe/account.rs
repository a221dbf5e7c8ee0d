//! Accounts (RFC 8555 §7.3): newAccount, reading and updating one, its
//! orders, and keyChange.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{Engine, Reply, Signed};
use crate::acme::db::Store;
use crate::acme::jws::{Jwk, Request, Signer};
use crate::acme::model::{path, Account, AccountStatus};
use crate::acme::orders::{contacts, update_account};
use crate::acme::problem::{malformed, Kind, Problem};

impl<S: Store> Engine<S> {
    /// §7.3: make an account, or find the one this key has.
    pub(super) fn new_account(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let Signer::Jwk(key) = &s.req.signer else { unreachable!("authenticate checked it") };
        let payload = s.req.json()?;
        if let Some(existing) = self.store.account_by_thumbprint(&key.thumbprint())? {
            return Ok(Reply::json(200, &existing.to_json(&self.base)).with("Location", self.account_url(&existing.id)));
        }
        if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
            return Err(Problem::new(Kind::AccountDoesNotExist, "no account has this key"));
        }
        let eab = match payload.get("externalAccountBinding") {
            Some(binding) => {
                let url = format!("{}{}", self.base, path::NEW_ACCOUNT);
                Some(crate::acme::eab::check(binding, key, &url, |kid| Ok(self.store.eab_key(kid)?))?)
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
        self.store.put_account(&account)?;
        Ok(Reply::json(201, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }

    /// §7.3.2, §7.3.6: read, update the contacts of, or deactivate an account.
    pub(super) fn account(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let mut account = s.account()?.clone();
        if account.id != id {
            return Err(Problem::new(Kind::Unauthorized, "a request about an account must be signed by it"));
        }
        if !s.req.payload.is_empty() {
            account = update_account(&account, &s.req.json()?)?;
            self.store.put_account(&account)?;
        }
        Ok(Reply::json(200, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }

    /// §7.1.2.1: the account's orders.
    pub(super) fn orders_list(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let account = s.account()?;
        if account.id != id {
            return Err(Problem::new(Kind::Unauthorized, "only the account itself may list its orders"));
        }
        let urls: Vec<String> = self.store.orders_of(id)?.iter().map(|o| self.order_url(o)).collect();
        Ok(Reply::json(200, &json!({ "orders": urls })))
    }

    /// §7.3.5: roll the account over to a new key. The inner JWS, signed by
    /// the new key, names the account and its old key.
    pub(super) fn key_change(&self, s: &Signed) -> Result<Reply, Problem> {
        let mut account = s.account()?.clone();
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
        if let Some(other) = self.store.account_by_thumbprint(&new_key.thumbprint())? {
            // §7.3.5: 409 Conflict, with the other account in Location.
            let p = Problem::new(Kind::Malformed, "another account already uses the new key").with_status(409);
            return Ok(Reply::problem(&p).with("Location", self.account_url(&other.id)));
        }
        account.key = new_key.clone();
        self.store.put_account(&account)?;
        Ok(Reply::json(200, &account.to_json(&self.base)).with("Location", self.account_url(&account.id)))
    }
}
