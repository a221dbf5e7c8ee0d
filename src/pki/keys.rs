//! Private keys: choosing a type from certstrap's and certforge's flags,
//! generating, writing PKCS#8 PEM (encrypted with PBES2 when asked), and
//! reading keys back in the forms other tools write.

use std::fmt;

use pkcs8::der::asn1::{AnyRef, OctetStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use rcgen::{PublicKeyData, SignatureAlgorithm};
use zeroize::Zeroizing;

/// The key types certforge makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Rsa(u32),
}

/// `--key-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeyType {
    #[cfg_attr(feature = "clap", value(name = "ecdsa-p256"))]
    EcdsaP256,
    #[cfg_attr(feature = "clap", value(name = "ecdsa-p384"))]
    EcdsaP384,
    #[cfg_attr(feature = "clap", value(name = "ed25519"))]
    Ed25519,
    #[cfg_attr(feature = "clap", value(name = "rsa"))]
    Rsa,
}

/// Why a key could not be chosen, made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Flags(String),
    #[error(
        "{what} is encrypted; give its passphrase with --passphrase-file FILE, --passphrase or CERTFORGE_PASSPHRASE"
    )]
    NeedPassphrase { what: String },
    #[error("{what}: wrong passphrase, or the encrypted key is damaged")]
    WrongPassphrase { what: String },
    #[error("{what} uses legacy PEM encryption (Proc-Type/DEK-Info, as certstrap and `openssl genrsa -des3` write it), which is weak and not supported; convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW` and use NEW")]
    LegacyPem { what: String },
    #[error("{what} is encrypted with a scheme certforge cannot read ({detail}); re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`")]
    UnsupportedEncryption { what: String, detail: String },
    #[error("{what} is not a private key certforge can read ({detail}); supported: PKCS#8, PKCS#1 RSA and SEC1 EC keys (P-256, P-384, P-521), Ed25519, in PEM or DER")]
    Unreadable { what: String, detail: String },
    #[error("could not generate a {spec} key: {detail}")]
    Generate { spec: KeySpec, detail: String },
    #[error("could not encrypt the key: {0}")]
    Encrypt(String),
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeySpec::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeySpec::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeySpec::Ed25519 => f.write_str("Ed25519"),
            KeySpec::Rsa(bits) => write!(f, "RSA {bits}"),
        }
    }
}

impl KeySpec {
    /// Combines `--key-type`, certstrap's `--curve` and `--key-bits`.
    /// `--key-bits` alone means RSA; `rsa_default_bits` applies to
    /// `--key-type rsa` without `--key-bits` (certstrap: 4096 for a CA, 2048
    /// for a leaf). With none of them the key is ECDSA P-256: fast, small and
    /// accepted by every stack we test against.
    pub fn from_flags(
        key_type: Option<KeyType>,
        curve: Option<&str>,
        key_bits: Option<u32>,
        rsa_default_bits: u32,
    ) -> Result<KeySpec, KeyError> {
        let flags = |m: String| KeyError::Flags(m);
        if let Some(bits) = key_bits {
            if !matches!(bits, 2048 | 3072 | 4096) {
                return Err(flags(format!("--key-bits {bits} is not supported; use 2048, 3072 or 4096 (RSA below 2048 is refused by modern TLS stacks)")));
            }
        }
        let from_curve = match curve {
            None => None,
            Some(c) => Some(match c.to_ascii_uppercase().replace('_', "-").as_str() {
                "P-256" | "P256" | "PRIME256V1" | "SECP256R1" => KeySpec::EcdsaP256,
                "P-384" | "P384" | "SECP384R1" => KeySpec::EcdsaP384,
                "P-521" | "P521" | "SECP521R1" => KeySpec::EcdsaP521,
                "ED25519" => KeySpec::Ed25519,
                "P-224" | "P224" => {
                    return Err(flags("--curve P-224 is not supported: Go, BoringSSL (grpcio) and rustls refuse P-224 keys in TLS; use P-256".into()))
                }
                _ => return Err(flags(format!("--curve {c:?} is unknown; use P-256, P-384, P-521 or Ed25519"))),
            }),
        };
        let from_type = key_type.map(|t| match t {
            KeyType::EcdsaP256 => KeySpec::EcdsaP256,
            KeyType::EcdsaP384 => KeySpec::EcdsaP384,
            KeyType::Ed25519 => KeySpec::Ed25519,
            KeyType::Rsa => KeySpec::Rsa(key_bits.unwrap_or(rsa_default_bits)),
        });
        match (from_type, from_curve, key_bits) {
            (Some(t), Some(c), _) if t != c => {
                Err(flags(format!("--key-type and --curve disagree ({t} vs {c}); give one of them")))
            }
            (Some(t), _, Some(_)) if !matches!(t, KeySpec::Rsa(_)) => {
                Err(flags(format!("--key-bits sets an RSA key size, but --key-type asks for {t}; drop one of them")))
            }
            (None, Some(c), Some(_)) => {
                Err(flags(format!("--key-bits sets an RSA key size, but --curve asks for {c}; drop one of them")))
            }
            (Some(t), _, _) => Ok(t),
            (None, Some(c), None) => Ok(c),
            (None, None, Some(bits)) => Ok(KeySpec::Rsa(bits)),
            (None, None, None) => Ok(KeySpec::EcdsaP256),
        }
    }
}

/// A private key with its canonical PKCS#8 v1 encoding. It signs through
/// aws-lc directly (it is rcgen's `SigningKey`) rather than through
/// rcgen's `KeyPair`, which keeps a plain copy of the key's DER that is never
/// zeroized; aws-lc cleanses its own key memory when freed, and the DER
/// here is [`Zeroizing`].
pub struct PrivateKey {
    signer: Signer,
    alg: &'static SignatureAlgorithm,
    public: Vec<u8>,
    pkcs8: Zeroizing<Vec<u8>>,
}

enum Signer {
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(k) => {
                k.sign(&rng, msg).map(|s| s.as_ref().to_vec()).map_err(|_| rcgen::Error::RingUnspecified)
            }
            Signer::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| rcgen::Error::RingUnspecified)?;
                Ok(sig)
            }
        }
    }
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

impl PrivateKey {
    /// Loads canonical PKCS#8 v1 DER into an aws-lc signer.
    fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<PrivateKey, String> {
        use aws_lc_rs::signature::{self as sig, KeyPair as _};
        let info = PrivateKeyInfoRef::from_der(&pkcs8).map_err(|e| e.to_string())?;
        let oid = info.algorithm.oid.to_string();
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<pkcs8::der::asn1::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        let (signer, alg, public) = match (oid.as_str(), curve.as_deref()) {
            (OID_EC, Some(c)) => {
                let (signing, alg): (&'static sig::EcdsaSigningAlgorithm, &'static SignatureAlgorithm) = match c {
                    "1.2.840.10045.3.1.7" => (&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rcgen::PKCS_ECDSA_P256_SHA256),
                    "1.3.132.0.34" => (&sig::ECDSA_P384_SHA384_ASN1_SIGNING, &rcgen::PKCS_ECDSA_P384_SHA384),
                    "1.3.132.0.35" => (&sig::ECDSA_P521_SHA512_ASN1_SIGNING, &rcgen::PKCS_ECDSA_P521_SHA512),
                    other => return Err(format!("an EC key on curve {other}, which TLS stacks here do not take")),
                };
                let k = sig::EcdsaKeyPair::from_pkcs8(signing, &pkcs8).map_err(|e| e.to_string())?;
                let public = k.public_key().as_ref().to_vec();
                (Signer::Ecdsa(k), alg, public)
            }
            (OID_ED25519, _) => {
                let k = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|e| e.to_string())?;
                let public = k.public_key().as_ref().to_vec();
                (Signer::Ed25519(k), &rcgen::PKCS_ED25519, public)
            }
            (OID_RSA, _) => {
                let k = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|e| e.to_string())?;
                let public = k.public_key().as_ref().to_vec();
                (Signer::Rsa(k), &rcgen::PKCS_RSA_SHA256, public)
            }
            _ => return Err(format!("a key of algorithm {oid}")),
        };
        Ok(PrivateKey { signer, alg, public, pkcs8 })
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.describe())
    }
}

/// Where a passphrase comes from when a key turns out to be encrypted.
pub trait PassphraseSource {
    /// The passphrase for `what`, or `None` when there is no way to get one.
    fn passphrase_for(&mut self, what: &str) -> Option<Zeroizing<String>>;
}

impl PassphraseSource for Option<Zeroizing<String>> {
    fn passphrase_for(&mut self, _what: &str) -> Option<Zeroizing<String>> {
        self.clone()
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(spec: KeySpec) -> Result<PrivateKey, KeyError> {
        use aws_lc_rs::signature as sig;
        let fail = |detail: String| KeyError::Generate { spec, detail };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der: Zeroizing<Vec<u8>> = match spec {
            KeySpec::Rsa(bits) => {
                use aws_lc_rs::encoding::AsDer;
                let size = match bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    _ => return Err(KeyError::Flags(format!("RSA {bits} is not supported; use 2048, 3072 or 4096"))),
                };
                let k = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| fail(e.to_string()))?;
                let doc = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).map_err(|e| fail(e.to_string()))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            KeySpec::Ed25519 => Zeroizing::new(
                sig::Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(|e| fail(e.to_string()))?.as_ref().to_vec(),
            ),
            KeySpec::EcdsaP256 | KeySpec::EcdsaP384 | KeySpec::EcdsaP521 => {
                let alg = match spec {
                    KeySpec::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    KeySpec::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                    _ => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                };
                Zeroizing::new(
                    sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| fail(e.to_string()))?.as_ref().to_vec(),
                )
            }
        };
        let pkcs8 = to_pkcs8_v1(&der).map_err(fail)?;
        PrivateKey::from_pkcs8(pkcs8).map_err(fail)
    }

    /// An Ed25519 key from a 32-byte seed: the same seed gives the same key,
    /// for deterministic test fixtures only.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Result<PrivateKey, KeyError> {
        let fail = |detail: String| KeyError::Generate { spec: KeySpec::Ed25519, detail };
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| fail(e.to_string()))?;
        let doc = pair.to_pkcs8v1().map_err(|e| fail(e.to_string()))?;
        PrivateKey::from_pkcs8(Zeroizing::new(doc.as_ref().to_vec())).map_err(fail)
    }

    /// Reads a key from PEM or DER: PKCS#8 (plain or PBES2-encrypted),
    /// PKCS#1 RSA or SEC1 EC. `what` names the file in errors.
    pub fn from_bytes(bytes: &[u8], what: &str, pass: &mut dyn PassphraseSource) -> Result<PrivateKey, KeyError> {
        let unreadable = |detail: String| KeyError::Unreadable { what: what.to_string(), detail };
        let (label, der) = if looks_like_pem(bytes) {
            let text = std::str::from_utf8(bytes).map_err(|_| unreadable("the PEM text is not UTF-8".into()))?;
            if text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("DEK-Info:") {
                return Err(KeyError::LegacyPem { what: what.to_string() });
            }
            let blocks = pem::parse_many(text).map_err(|e| unreadable(format!("bad PEM: {e}")))?;
            let block = blocks
                .into_iter()
                .find(|b| b.tag().ends_with("PRIVATE KEY"))
                .ok_or_else(|| unreadable("no PRIVATE KEY block in the PEM".into()))?;
            (Some(block.tag().to_string()), Zeroizing::new(block.into_contents()))
        } else {
            (None, Zeroizing::new(bytes.to_vec()))
        };
        let encrypted = label.as_deref() == Some("ENCRYPTED PRIVATE KEY")
            || (label.is_none() && EncryptedPrivateKeyInfoRef::from_der(&der).is_ok());
        let plain = if encrypted {
            // PBES1 (3DES, RC2 with SHA-1 or MD5) is refused by name; the
            // pkcs8 crate cannot even decode its parameters.
            if let Some(oid) = encryption_oid(&der).filter(|o| o != OID_PBES2) {
                return Err(KeyError::UnsupportedEncryption { what: what.to_string(), detail: format!("PBES1 {oid}") });
            }
            let info = EncryptedPrivateKeyInfoRef::from_der(&der)
                .map_err(|e| unreadable(format!("bad encrypted PKCS#8: {e}")))?;
            if info.encryption_algorithm.pbes2().is_none() {
                return Err(KeyError::UnsupportedEncryption {
                    what: what.to_string(),
                    detail: format!("PBES1 {}", info.encryption_algorithm.oid()),
                });
            }
            let pw = pass.passphrase_for(what).ok_or_else(|| KeyError::NeedPassphrase { what: what.to_string() })?;
            let doc = info.decrypt(pw.as_bytes()).map_err(|e| match e {
                pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { oid }) => {
                    KeyError::UnsupportedEncryption { what: what.to_string(), detail: oid.to_string() }
                }
                _ => KeyError::WrongPassphrase { what: what.to_string() },
            })?;
            Zeroizing::new(doc.as_bytes().to_vec())
        } else {
            der
        };
        let pkcs8 = to_pkcs8_v1(&plain).map_err(unreadable)?;
        PrivateKey::from_pkcs8(pkcs8).map_err(unreadable)
    }

    /// PKCS#8 PEM; PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) when a non-empty
    /// passphrase is given, which OpenSSL 3, Go, Java and Python all read.
    pub fn to_pem(&self, passphrase: Option<&str>) -> Result<Zeroizing<String>, KeyError> {
        let block = match passphrase.filter(|p| !p.is_empty()) {
            None => pem::Pem::new("PRIVATE KEY", self.pkcs8.to_vec()),
            Some(pw) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                aws_lc_rs::rand::fill(&mut salt).map_err(|_| KeyError::Encrypt("no randomness".into()))?;
                aws_lc_rs::rand::fill(&mut iv).map_err(|_| KeyError::Encrypt("no randomness".into()))?;
                let params =
                    pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, iv)
                        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
                let info = PrivateKeyInfoRef::from_der(&self.pkcs8).map_err(|e| KeyError::Encrypt(e.to_string()))?;
                let doc =
                    info.encrypt_with_params(params, pw.as_bytes()).map_err(|e| KeyError::Encrypt(e.to_string()))?;
                pem::Pem::new("ENCRYPTED PRIVATE KEY", doc.as_bytes().to_vec())
            }
        };
        let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        Ok(Zeroizing::new(pem::encode_config(&block, cfg)))
    }

    /// The key as PKCS#8 v1 DER, for TLS libraries that load keys.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The DER SubjectPublicKeyInfo, to compare with a certificate's.
    pub fn spki_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }

    /// True for RSA keys, which (alone) get keyEncipherment (RFC 5280 §4.2.1.3).
    pub fn is_rsa(&self) -> bool {
        self.alg == &rcgen::PKCS_RSA_SHA256
    }

    /// "ECDSA P-256", "RSA 4096", "Ed25519".
    pub fn describe(&self) -> String {
        describe_spki(&self.spki_der())
    }
}

/// PBKDF2 rounds for encrypted keys: well above OpenSSL's 2048 default,
/// yet quick enough that a CI job signing hundreds of certs does not stall.
const PBKDF2_ROUNDS: u32 = 100_000;

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).take(4096).any(|w| w == b"-----BEGIN ")
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";

/// The encryption algorithm OID of an EncryptedPrivateKeyInfo
/// (SEQUENCE { SEQUENCE { OID, params }, OCTET STRING }).
fn encryption_oid(der: &[u8]) -> Option<String> {
    use x509_parser::der_parser::der::parse_der;
    let (_, outer) = parse_der(der).ok()?;
    let alg = outer.as_sequence().ok()?.first()?;
    let oid = alg.as_sequence().ok()?.first()?.as_oid().ok()?;
    Some(oid.to_id_string())
}

/// Rewrites any supported private key as PKCS#8 v1. aws-lc writes Ed25519 as
/// PKCS#8 v2 (with the public key), which OpenSSL 3.0 cannot read, so the
/// public key is dropped (PKI-NOTES §3). PKCS#1 and SEC1 keys are wrapped.
fn to_pkcs8_v1(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Ok(info) = PrivateKeyInfoRef::from_der(der) {
        if info.public_key.is_none() {
            return Ok(Zeroizing::new(der.to_vec()));
        }
        let v1 = PrivateKeyInfoRef::new(info.algorithm, info.private_key);
        return v1.to_der().map(Zeroizing::new).map_err(|e| e.to_string());
    }
    if aws_lc_rs::rsa::KeyPair::from_der(der).is_ok() {
        let alg = pkcs8::spki::AlgorithmIdentifier {
            oid: OID_RSA.parse().expect("static OID"),
            parameters: Some(AnyRef::NULL),
        };
        let key = OctetStringRef::new(der).map_err(|e| e.to_string())?;
        return PrivateKeyInfoRef::new(alg, key).to_der().map(Zeroizing::new).map_err(|e| e.to_string());
    }
    use aws_lc_rs::signature::{
        EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
    };
    for alg in [&ECDSA_P256_SHA256_ASN1_SIGNING, &ECDSA_P384_SHA384_ASN1_SIGNING, &ECDSA_P521_SHA512_ASN1_SIGNING] {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, der) {
            let doc = pair.to_pkcs8v1().map_err(|_| "could not re-encode the EC key".to_string())?;
            return Ok(Zeroizing::new(doc.as_ref().to_vec()));
        }
    }
    Err("not PKCS#8, PKCS#1 RSA or SEC1 EC DER".into())
}

/// Names a public key from its SubjectPublicKeyInfo: "ECDSA P-256", "RSA 2048".
pub fn describe_spki(spki_der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey as P;
    let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der) else {
        return "unknown key".into();
    };
    let curve = || {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| match oid.to_id_string().as_str() {
                "1.2.840.10045.3.1.7" => "P-256".to_string(),
                "1.3.132.0.34" => "P-384".to_string(),
                "1.3.132.0.35" => "P-521".to_string(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "unknown curve".into())
    };
    match spki.parsed() {
        Ok(P::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(P::EC(_)) => format!("ECDSA {}", curve()),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "Ed25519".into(),
        _ => format!("key {}", spki.algorithm.algorithm.to_id_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_p256_and_key_bits_means_rsa() {
        assert_eq!(KeySpec::from_flags(None, None, None, 2048).unwrap(), KeySpec::EcdsaP256);
        assert_eq!(KeySpec::from_flags(None, None, Some(3072), 2048).unwrap(), KeySpec::Rsa(3072));
        assert_eq!(KeySpec::from_flags(Some(KeyType::Rsa), None, None, 4096).unwrap(), KeySpec::Rsa(4096));
        assert_eq!(KeySpec::from_flags(None, Some("P-384"), None, 2048).unwrap(), KeySpec::EcdsaP384);
        assert_eq!(KeySpec::from_flags(None, Some("Ed25519"), None, 2048).unwrap(), KeySpec::Ed25519);
    }

    #[test]
    fn contradictory_key_flags_are_refused() {
        assert!(KeySpec::from_flags(Some(KeyType::EcdsaP256), None, Some(4096), 2048).is_err());
        assert!(KeySpec::from_flags(Some(KeyType::Ed25519), Some("P-256"), None, 2048).is_err());
        assert!(KeySpec::from_flags(None, Some("P-256"), Some(2048), 2048).is_err());
        assert!(KeySpec::from_flags(None, Some("P-224"), None, 2048).unwrap_err().to_string().contains("P-224"));
        assert!(KeySpec::from_flags(None, None, Some(1024), 2048).is_err());
    }

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1() {
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let info = PrivateKeyInfoRef::from_der(&key.pkcs8).unwrap();
        assert!(info.public_key.is_none(), "OpenSSL 3.0 cannot read PKCS#8 v2 Ed25519");
    }

    #[test]
    fn encrypted_keys_round_trip_and_refuse_a_wrong_passphrase() {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let pem = key.to_pem(Some("s3cret")).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back =
            PrivateKey::from_bytes(pem.as_bytes(), "k", &mut Some(Zeroizing::new("s3cret".to_string()))).unwrap();
        assert_eq!(back.spki_der(), key.spki_der());
        let wrong = PrivateKey::from_bytes(pem.as_bytes(), "k", &mut Some(Zeroizing::new("nope".to_string())));
        assert!(matches!(wrong, Err(KeyError::WrongPassphrase { .. })));
        let none = PrivateKey::from_bytes(pem.as_bytes(), "k", &mut None::<Zeroizing<String>>);
        assert!(matches!(none, Err(KeyError::NeedPassphrase { .. })));
    }

    #[test]
    fn empty_passphrase_means_unencrypted() {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        assert!(key.to_pem(Some("")).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn legacy_pem_encryption_is_named() {
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_bytes(legacy.as_bytes(), "k", &mut None::<Zeroizing<String>>),
            Err(KeyError::LegacyPem { .. })
        ));
    }

    #[test]
    fn describes_keys() {
        assert_eq!(PrivateKey::generate(KeySpec::EcdsaP384).unwrap().describe(), "ECDSA P-384");
        assert_eq!(PrivateKey::generate(KeySpec::Ed25519).unwrap().describe(), "Ed25519");
        assert_eq!(PrivateKey::generate(KeySpec::Rsa(2048)).unwrap().describe(), "RSA 2048");
    }
}
