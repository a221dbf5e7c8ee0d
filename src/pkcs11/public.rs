//! A token key's type and public key, from the attributes the token gives
//! (PKCS#11 v3.0 §2.3 and §2.3.5): pure, so it is tested without a token.

use rcgen::SignatureAlgorithm;

use crate::pki::keys::KeySpec;

/// CKA_EC_PARAMS of the curves certforge signs with: the DER OID.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const P521_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
/// Ed25519 by OID (RFC 8410). PKCS#11 v3.0 also allows the printable
/// string "edwards25519", which SoftHSM 2.6 and OpenSC accept as well.
pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
pub const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// What the token says about a key.
pub enum Attrs<'a> {
    Ec { params: &'a [u8], point: &'a [u8] },
    Edwards { params: &'a [u8], point: &'a [u8] },
    Rsa { modulus: &'a [u8], exponent: &'a [u8] },
}

/// A token key's public half, as rcgen wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub spec: KeySpec,
    /// rcgen's `der_bytes`: the EC point, the Ed25519 key, or the PKCS#1
    /// RSAPublicKey.
    pub raw: Vec<u8>,
    pub alg: &'static SignatureAlgorithm,
}

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl PublicKey {
    /// Reads the attributes. `Err` says, in words, what the key is when
    /// certforge cannot sign with it.
    pub fn from_attrs(attrs: Attrs<'_>) -> Result<PublicKey, String> {
        match attrs {
            Attrs::Ec { params, point } => {
                let (spec, alg, coord) = match params {
                    p if p == P256_PARAMS => (KeySpec::EcdsaP256, &rcgen::PKCS_ECDSA_P256_SHA256, 32),
                    p if p == P384_PARAMS => (KeySpec::EcdsaP384, &rcgen::PKCS_ECDSA_P384_SHA384, 48),
                    p if p == P521_PARAMS => (KeySpec::EcdsaP521, &rcgen::PKCS_ECDSA_P521_SHA512, 66),
                    _ => return Err("an EC key on a curve other than P-256, P-384 or P-521".into()),
                };
                let raw = unwrap_octets(point, 1 + 2 * coord)?;
                if raw[0] != 0x04 {
                    return Err("an EC key whose point is not in uncompressed form".into());
                }
                Ok(PublicKey { spec, raw, alg })
            }
            Attrs::Edwards { params, point } => {
                if params != ED25519_PARAMS && params != ED25519_NAME_PARAMS {
                    return Err("an Edwards-curve key other than Ed25519 (Ed448?)".into());
                }
                Ok(PublicKey { spec: KeySpec::Ed25519, raw: unwrap_octets(point, 32)?, alg: &rcgen::PKCS_ED25519 })
            }
            Attrs::Rsa { modulus, exponent } => {
                let modulus = strip_zeros(modulus);
                let bits = (modulus.len() * 8) as u32 - modulus.first().map_or(8, |b| b.leading_zeros());
                if !(2048..=4096).contains(&bits) {
                    return Err(format!("an RSA {bits} key (certforge signs with RSA 2048 to 4096)"));
                }
                let raw = der_sequence(&[der_uint(modulus), der_uint(strip_zeros(exponent))]);
                Ok(PublicKey { spec: KeySpec::Rsa(bits.div_ceil(8) * 8), raw, alg: &rcgen::PKCS_RSA_SHA256 })
            }
        }
    }

    /// The SubjectPublicKeyInfo, DER, as it appears in the CA certificate.
    pub fn spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }
}

/// CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v3.0
/// §2.3.3), but some modules give the bare point; `raw_len` tells which.
fn unwrap_octets(v: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    if v.len() == raw_len {
        return Ok(v.to_vec());
    }
    // OCTET STRING, then a short or one-byte long length (points are at
    // most 133 bytes).
    let inner = match v {
        [0x04, 0x81, n, rest @ ..] | [0x04, n, rest @ ..] if usize::from(*n) == rest.len() => rest,
        _ => return Err(format!("CKA_EC_POINT holds {} bytes that are neither a point nor an OCTET STRING", v.len())),
    };
    if inner.len() != raw_len {
        return Err(format!("CKA_EC_POINT holds {} bytes where {raw_len} were expected", inner.len()));
    }
    Ok(inner.to_vec())
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|&&b| b == 0).count();
    &v[n.min(v.len().saturating_sub(1))..]
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

/// A DER INTEGER for the unsigned big-endian `v` (a 0 byte in front when
/// the top bit is set, so it stays positive).
pub fn der_uint(v: &[u8]) -> Vec<u8> {
    let v = strip_zeros(v);
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    let mut out = vec![0x02];
    out.extend(der_len(v.len() + usize::from(pad)));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
    out
}

/// A DER SEQUENCE of already-encoded parts.
pub fn der_sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::PrivateKey;

    /// The SPKI built from token-style attributes equals the one aws-lc
    /// makes for the same key, for each type.
    #[test]
    fn spki_from_attributes_matches_a_file_key() {
        for spec in [KeySpec::EcdsaP256, KeySpec::EcdsaP384] {
            let key = PrivateKey::generate(spec).unwrap();
            let point = rcgen::PublicKeyData::der_bytes(&key).to_vec();
            let params = if spec == KeySpec::EcdsaP256 { P256_PARAMS } else { P384_PARAMS };
            // Wrapped in an OCTET STRING, as SoftHSM gives it, and bare.
            let mut wrapped = vec![0x04, point.len() as u8];
            wrapped.extend(&point);
            for p in [&wrapped, &point] {
                let public = PublicKey::from_attrs(Attrs::Ec { params, point: p }).unwrap();
                assert_eq!(public.spec, spec);
                assert_eq!(public.spki_der(), key.spki_der());
            }
        }
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let point = rcgen::PublicKeyData::der_bytes(&key).to_vec();
        for params in [ED25519_PARAMS, ED25519_NAME_PARAMS] {
            let public = PublicKey::from_attrs(Attrs::Edwards { params, point: &point }).unwrap();
            assert_eq!(public.spki_der(), key.spki_der());
        }
    }

    #[test]
    fn rsa_public_key_from_modulus_and_exponent() {
        let key = PrivateKey::generate(KeySpec::Rsa(2048)).unwrap();
        let spki = key.spki_der();
        let (_, parsed) =
            <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&spki).unwrap();
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = parsed.parsed() else { panic!("not RSA") };
        let public = PublicKey::from_attrs(Attrs::Rsa { modulus: rsa.modulus, exponent: rsa.exponent }).unwrap();
        assert_eq!(public.spec, KeySpec::Rsa(2048));
        assert_eq!(public.spki_der(), spki);
        let small = PublicKey::from_attrs(Attrs::Rsa { modulus: &[0xff; 128], exponent: &[1, 0, 1] });
        assert!(small.unwrap_err().contains("RSA 1024"));
    }

    #[test]
    fn refuses_curves_it_cannot_sign_with() {
        let secp256k1 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
        assert!(PublicKey::from_attrs(Attrs::Ec { params: &secp256k1, point: &[4; 65] })
            .unwrap_err()
            .contains("curve"));
        assert!(PublicKey::from_attrs(Attrs::Edwards { params: b"\x13\x0aedwards448", point: &[0; 57] })
            .unwrap_err()
            .contains("Ed448"));
        assert!(PublicKey::from_attrs(Attrs::Ec { params: P256_PARAMS, point: &[4, 3, 1, 2, 3] })
            .unwrap_err()
            .contains("bytes"));
    }

    #[test]
    fn der_integers_stay_positive() {
        assert_eq!(der_uint(&[0x00, 0x7f]), vec![2, 1, 0x7f]);
        assert_eq!(der_uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_uint(&[0]), vec![2, 1, 0]);
        assert_eq!(der_sequence(&[vec![2, 1, 1]]), vec![0x30, 3, 2, 1, 1]);
    }
}
