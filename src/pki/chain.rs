//! Chains: from a certificate up through its issuers, found among a pool of
//! CA certificates by name and checked by signature.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The issuers of a certificate, nearest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// CA certificates between the certificate and the root (DER).
    pub intermediates: Vec<Vec<u8>>,
    /// The self-signed root, when the pool holds it.
    pub root: Option<Vec<u8>>,
}

/// The pool certificate that issued `der`: its subject is `der`'s issuer
/// and its key verifies `der`'s signature.
pub fn issuer_of<'p>(der: &[u8], pool: &'p [Vec<u8>]) -> Option<&'p Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    if cert.subject().as_raw() == cert.issuer().as_raw()
        && super::signature::verify_cert(&cert, cert.public_key()).is_ok()
    {
        return None;
    }
    pool.iter().find(|cand| {
        X509Certificate::from_der(cand).is_ok_and(|(_, ca)| {
            ca.is_ca()
                && ca.subject().as_raw() == cert.issuer().as_raw()
                && super::signature::verify_cert(&cert, ca.public_key()).is_ok()
        })
    })
}

/// Walks up from `der` through `pool` (at most 8 steps).
pub fn build(der: &[u8], pool: &[Vec<u8>]) -> Chain {
    let mut chain = Chain::default();
    let mut current = der.to_vec();
    for _ in 0..8 {
        let Some(issuer) = issuer_of(&current, pool) else { break };
        let self_signed =
            X509Certificate::from_der(issuer).is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw());
        if self_signed {
            chain.root = Some(issuer.clone());
            break;
        }
        if chain.intermediates.contains(issuer) {
            break;
        }
        chain.intermediates.push(issuer.clone());
        current = issuer.clone();
    }
    chain
}
