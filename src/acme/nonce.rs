//! Replay nonces (RFC 8555 §6.5): each is good for one request. Nonces live
//! in memory only; after a restart clients get badNonce and retry with a
//! fresh one, as every ACME client does (§6.5's error is made for that).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use super::jws::random_b64;

/// How many unused nonces are remembered; the oldest is forgotten first, so
/// a client flooding newNonce cannot grow memory without bound.
const KEEP: usize = 100_000;

#[derive(Default)]
pub struct Nonces {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Nonces {
    /// A fresh nonce: 128 random bits, base64url (§6.5.1 wants at least
    /// 64 bits of entropy and base64url).
    pub fn issue(&self) -> String {
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

    /// Uses up `nonce`: true the first time, false for an unknown or
    /// replayed one.
    pub fn consume(&self, nonce: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The order queue keeps the spent entry until it ages out; the set
        // is what decides.
        guard.0.remove(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_once() {
        let n = Nonces::default();
        let (a, b) = (n.issue(), n.issue());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22, "16 bytes, base64url without padding");
        assert!(n.consume(&a));
        assert!(!n.consume(&a), "replayed");
        assert!(!n.consume("made-up"));
        assert!(n.consume(&b));
    }
}
