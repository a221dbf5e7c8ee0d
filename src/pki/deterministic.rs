//! Deterministic fixtures: keys and serials derived from a seed and an
//! entry's name, so the same plan, seed and notBefore give byte-identical
//! files on any machine. Anyone with the seed has the private keys: this is
//! for test fixtures only, never for anything that protects data.

use aws_lc_rs::digest::{Context, SHA256};
use zeroize::Zeroizing;

use super::keys::{KeyError, PrivateKey};

/// SHA-256 over a domain-separated (purpose, seed, name) triple.
fn derive(seed: &str, purpose: &str, name: &str) -> Zeroizing<[u8; 32]> {
    let mut ctx = Context::new(&SHA256);
    for part in ["certforge deterministic v1", purpose, seed, name] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The Ed25519 key of entry `name` under `seed`.
pub fn key(seed: &str, name: &str) -> Result<PrivateKey, KeyError> {
    PrivateKey::ed25519_from_seed(&derive(seed, "key", name))
}

/// The serial of entry `name` under `seed`: 16 bytes, positive, like the
/// random ones.
pub fn serial(seed: &str, name: &str) -> Vec<u8> {
    let mut s = derive(seed, "serial", name)[..16].to_vec();
    s[0] = (s[0] & 0x7f).max(1);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_name_give_the_same_key_and_serial() {
        assert_eq!(key("s", "a").unwrap().spki_der(), key("s", "a").unwrap().spki_der());
        assert_ne!(key("s", "a").unwrap().spki_der(), key("t", "a").unwrap().spki_der());
        assert_ne!(key("s", "a").unwrap().spki_der(), key("s", "b").unwrap().spki_der());
        assert_eq!(serial("s", "a"), serial("s", "a"));
        assert_ne!(serial("s", "a"), serial("s", "b"));
        assert!(serial("s", "a")[0] >= 1 && serial("s", "a")[0] <= 0x7f);
    }
}
