//! Replay nonces (RFC 8555 §6.5): each is good for one request.
//!
//! One server keeps them in memory ([`Nonces`]); after a restart clients
//! get badNonce and retry with a fresh one, as every ACME client does
//! (§6.5's error is made for that). Several servers behind one balancer
//! share [`SharedNonces`]: a nonce carries its issue time and a MAC under a
//! key the instances share, so any instance can check one it did not make
//! without a database write per reply, and the store each spends it in
//! ([`SpentNonces`]) accepts it exactly once across the fleet.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use base64::Engine;
use time::{Duration, OffsetDateTime};

use super::jws::{b64, random_b64};
use super::model::Account;
use crate::storage::StorageError;

/// Reads the account with this id (the ACME store's `account`).
pub type ReadAccount<'a> = &'a dyn Fn(&str) -> Result<Option<Account>, StorageError>;

/// What checking a request's nonce (and reading its signer) came to.
pub type Checked = Result<Presented, StorageError>;

/// What a request signed by an account's kid presented.
#[derive(Debug, Clone)]
pub enum Presented {
    /// Its nonce is unknown, forged, too old or used already.
    BadNonce,
    /// Its nonce was good (and is now spent); the account its kid names,
    /// if there is one.
    Good(Option<Account>),
}

/// Where the server's nonces come from and are spent.
pub trait NoncePool: Send + Sync {
    /// A fresh nonce for a reply's Replay-Nonce header.
    fn issue(&self, now: OffsetDateTime) -> String;
    /// Uses up `nonce`: Ok(true) the first time, Ok(false) for one that is
    /// unknown, forged, too old or replayed.
    fn consume(&self, nonce: &str, now: OffsetDateTime) -> Result<bool, StorageError>;
    /// [`NoncePool::consume`], then, when the nonce was good, account `id`
    /// as `read` finds it: the two things every request signed by a kid
    /// needs first. A fleet's pool, whose spent nonces are kept beside the
    /// accounts, has both in one database round trip.
    fn consume_for(&self, nonce: &str, now: OffsetDateTime, id: &str, read: ReadAccount) -> Checked {
        then_read(self.consume(nonce, now)?, id, read)
    }
}

/// The account `id` once a nonce was `good`: a bad nonce reads nothing.
fn then_read(good: bool, id: &str, read: ReadAccount) -> Checked {
    match good {
        true => read(id).map(Presented::Good),
        false => Ok(Presented::BadNonce),
    }
}

/// How many unused nonces are remembered; the oldest is forgotten first, so
/// a client flooding newNonce cannot grow memory without bound.
const KEEP: usize = 100_000;

/// The nonces of one server process.
#[derive(Default)]
pub struct Nonces {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl NoncePool for Nonces {
    /// 128 random bits, base64url (§6.5.1 wants at least 64 bits of
    /// entropy and base64url).
    fn issue(&self, _: OffsetDateTime) -> String {
        let nonce = random_b64(16);
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *guard;
        if order.len() >= KEEP {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        set.insert(nonce.clone());
        order.push_back(nonce.clone());
        nonce
    }

    fn consume(&self, nonce: &str, _: OffsetDateTime) -> Result<bool, StorageError> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The order queue keeps the spent entry until it ages out; the set
        // is what decides.
        Ok(guard.0.remove(nonce))
    }
}

/// A store that remembers which nonces were used (a database table the
/// instances share).
pub trait SpentNonces: Send + Sync {
    /// Records `nonce` as used until `expires`: Ok(true) the first time,
    /// Ok(false) when it was used before, by any instance.
    fn spend(&self, nonce: &str, expires: OffsetDateTime) -> Result<bool, StorageError>;
    /// [`SpentNonces::spend`], then, the first time, account `id`. A store
    /// that keeps the accounts too (the fleet's database) reads it itself,
    /// in the same round trip, rather than through `read`.
    fn spend_for(&self, nonce: &str, expires: OffsetDateTime, id: &str, read: ReadAccount) -> Checked {
        then_read(self.spend(nonce, expires)?, id, read)
    }
}

/// How long a shared nonce is good for. Clients fetch one right before
/// each request; an hour is generous, and it bounds the spent-nonce table.
pub const LIFETIME: Duration = Duration::hours(1);

/// How far ahead of an instance's clock a nonce's issue time may be: the
/// instances' clocks are close (NTP) but not equal.
const SKEW: Duration = Duration::seconds(60);

/// Bytes in a shared nonce: issue time (8), random (16), MAC (16).
const SHARED_LEN: usize = 40;

/// Nonces any instance of a fleet can check: base64url of the issue time
/// (seconds, big-endian), 16 random bytes and the first 16 bytes of an
/// HMAC-SHA256 over both under the fleet's key. Issuing needs no store, so
/// even a reply during a database outage carries a good nonce; spending is
/// one insert into the shared store.
pub struct SharedNonces<S> {
    key: hmac::Key,
    spent: S,
}

impl<S: SpentNonces> SharedNonces<S> {
    pub fn new(key: [u8; 32], spent: S) -> Self {
        SharedNonces { key: hmac::Key::new(hmac::HMAC_SHA256, &key), spent }
    }

    /// The issue time of a nonce this fleet made, or None.
    fn issued(&self, nonce: &str) -> Option<OffsetDateTime> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if bytes.len() != SHARED_LEN {
            return None;
        }
        let (body, mac) = bytes.split_at(24);
        let expected = hmac::sign(&self.key, body);
        // Constant time: a timing difference must not let a client learn a
        // valid MAC byte by byte.
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected.as_ref()[..16], mac).ok()?;
        let secs = i64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
        OffsetDateTime::from_unix_timestamp(secs).ok()
    }

    /// Until when a nonce this fleet made must be remembered as spent, or
    /// None when it is not one, or is too old or from the future: all
    /// decided without the store.
    fn expires(&self, nonce: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let issued = self.issued(nonce)?;
        if issued > now + SKEW || now - issued > LIFETIME {
            return None;
        }
        Some(issued + LIFETIME + SKEW)
    }
}

impl<S: SpentNonces> NoncePool for SharedNonces<S> {
    fn issue(&self, now: OffsetDateTime) -> String {
        let mut body = [0u8; 24];
        body[..8].copy_from_slice(&now.unix_timestamp().to_be_bytes());
        aws_lc_rs::rand::fill(&mut body[8..]).expect("the system's random source");
        let mac = hmac::sign(&self.key, &body);
        let mut nonce = body.to_vec();
        nonce.extend_from_slice(&mac.as_ref()[..16]);
        b64(&nonce)
    }

    fn consume(&self, nonce: &str, now: OffsetDateTime) -> Result<bool, StorageError> {
        match self.expires(nonce, now) {
            Some(expires) => self.spent.spend(nonce, expires),
            None => Ok(false),
        }
    }

    fn consume_for(&self, nonce: &str, now: OffsetDateTime, id: &str, read: ReadAccount) -> Checked {
        match self.expires(nonce, now) {
            Some(expires) => self.spent.spend_for(nonce, expires, id, read),
            None => Ok(Presented::BadNonce),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_nonce_is_good_once() {
        let n = Nonces::default();
        let now = OffsetDateTime::now_utc();
        let (a, b) = (n.issue(now), n.issue(now));
        assert_ne!(a, b);
        assert_eq!(a.len(), 22, "16 bytes, base64url without padding");
        assert!(n.consume(&a, now).unwrap());
        assert!(!n.consume(&a, now).unwrap(), "replayed");
        assert!(!n.consume("made-up", now).unwrap());
        assert!(n.consume(&b, now).unwrap());
    }

    /// A spent-nonce table two instances share.
    #[derive(Clone, Default)]
    struct Table(std::sync::Arc<Mutex<HashMap<String, OffsetDateTime>>>);

    impl SpentNonces for Table {
        fn spend(&self, nonce: &str, expires: OffsetDateTime) -> Result<bool, StorageError> {
            Ok(self.0.lock().unwrap().insert(nonce.to_string(), expires).is_none())
        }
    }

    #[test]
    fn a_shared_nonce_from_one_instance_is_good_once_on_any() {
        let table = Table::default();
        let (a, b) = (SharedNonces::new([7; 32], table.clone()), SharedNonces::new([7; 32], table.clone()));
        let now = OffsetDateTime::now_utc();
        let n = a.issue(now);
        assert_eq!(n.len(), 54, "40 bytes, base64url without padding");
        assert_ne!(n, a.issue(now), "random part");
        assert!(b.consume(&n, now).unwrap(), "made by a, spent on b");
        assert!(!a.consume(&n, now).unwrap(), "replayed on a");
        assert!(!b.consume(&n, now).unwrap(), "replayed on b");
        let expires = table.0.lock().unwrap()[&n];
        assert!(expires > now + LIFETIME - Duration::seconds(2), "kept as long as it could be presented");
    }

    #[test]
    fn a_forged_tampered_old_or_future_nonce_is_refused_without_touching_the_store() {
        let table = Table::default();
        let pool = SharedNonces::new([7; 32], table.clone());
        let other = SharedNonces::new([8; 32], table.clone());
        let now = OffsetDateTime::now_utc();
        assert!(!pool.consume(&other.issue(now), now).unwrap(), "another fleet's key");
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(pool.issue(now)).unwrap();
        raw[10] ^= 1;
        assert!(!pool.consume(&b64(&raw), now).unwrap(), "a changed random byte breaks the MAC");
        assert!(!pool.consume(&pool.issue(now - Duration::hours(2)), now).unwrap(), "older than its lifetime");
        assert!(!pool.consume(&pool.issue(now + Duration::minutes(5)), now).unwrap(), "from the future");
        assert!(pool.consume(&pool.issue(now - Duration::seconds(30)), now).unwrap(), "a half-minute-old one is fine");
        for junk in ["", "made-up", "!!!!", &"A".repeat(54)] {
            assert!(!pool.consume(junk, now).unwrap(), "{junk:?}");
        }
        assert_eq!(table.0.lock().unwrap().len(), 1, "only the good nonce reached the store");
    }

    #[test]
    fn a_request_by_kid_reads_its_account_only_once_its_nonce_is_spent() {
        let reads = std::cell::Cell::new(0);
        let read: ReadAccount = &|id| {
            reads.set(reads.get() + 1);
            Ok((id == "acct1").then(|| Account {
                id: id.into(),
                key: crate::acme::jws::Jwk::Ed25519 { x: vec![1; 32] },
                contact: vec![],
                status: crate::acme::model::AccountStatus::Valid,
                created: OffsetDateTime::UNIX_EPOCH,
                eab: None,
            }))
        };
        let now = OffsetDateTime::now_utc();
        let local = Nonces::default();
        let shared = SharedNonces::new([7; 32], Table::default());
        let pools: [&dyn NoncePool; 2] = [&local, &shared];
        for pool in pools {
            reads.set(0);
            let n = pool.issue(now);
            assert!(
                matches!(pool.consume_for(&n, now, "acct1", read).unwrap(), Presented::Good(Some(a)) if a.id == "acct1")
            );
            assert!(matches!(pool.consume_for(&n, now, "acct1", read).unwrap(), Presented::BadNonce), "replayed");
            assert!(matches!(pool.consume_for("made-up", now, "acct1", read).unwrap(), Presented::BadNonce));
            let n = pool.issue(now);
            assert!(matches!(pool.consume_for(&n, now, "nope", read).unwrap(), Presented::Good(None)));
            assert_eq!(reads.get(), 2, "no read for a refused nonce");
        }
    }

    struct Down;
    impl SpentNonces for Down {
        fn spend(&self, _: &str, _: OffsetDateTime) -> Result<bool, StorageError> {
            Err(StorageError::Unavailable("the database is down".into()))
        }
    }

    #[test]
    fn issuing_needs_no_store_and_spending_says_when_it_is_down() {
        let pool = SharedNonces::new([1; 32], Down);
        let now = OffsetDateTime::now_utc();
        let n = pool.issue(now);
        assert!(matches!(pool.consume(&n, now), Err(StorageError::Unavailable(_))));
    }
}
