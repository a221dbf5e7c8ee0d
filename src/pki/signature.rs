//! Signature checks on certificates, CSRs and CRLs. x509-parser's own check
//! knows neither P-521 nor ECDSA with SHA-512 (what rcgen and openssl use
//! for P-521 keys), so ECDSA is checked here with aws-lc directly and
//! everything else (RSA PKCS#1 and PSS, Ed25519) goes to x509-parser.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::der_parser::asn1_rs::BitString;
use x509_parser::prelude::{AlgorithmIdentifier, SubjectPublicKeyInfo};

const ECDSA_SHA1: &str = "1.2.840.10045.4.1";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const RSA_SHA1: [&str; 2] = ["1.2.840.113549.1.1.5", "1.3.14.3.2.29"];
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const P521: &str = "1.3.132.0.35";

/// Checks that `signature` over `signed` was made by `signer`'s key with
/// `alg`. SHA-1 signatures are refused: no TLS stack we target accepts them.
pub fn verify(
    signer: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    signature: &BitString<'_>,
    signed: &[u8],
) -> Result<(), String> {
    let oid = alg.algorithm.to_id_string();
    if oid == ECDSA_SHA1 || RSA_SHA1.contains(&oid.as_str()) {
        return Err("it is signed with SHA-1, which certforge refuses; sign it again with SHA-256".into());
    }
    let curve = signer.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    let ecdsa: Option<&'static dyn VerificationAlgorithm> = match (oid.as_str(), curve.as_deref()) {
        (ECDSA_SHA256, Some(P256)) => Some(&sig::ECDSA_P256_SHA256_ASN1),
        (ECDSA_SHA384, Some(P256)) => Some(&sig::ECDSA_P256_SHA384_ASN1),
        (ECDSA_SHA512, Some(P256)) => Some(&sig::ECDSA_P256_SHA512_ASN1),
        (ECDSA_SHA256, Some(P384)) => Some(&sig::ECDSA_P384_SHA256_ASN1),
        (ECDSA_SHA384, Some(P384)) => Some(&sig::ECDSA_P384_SHA384_ASN1),
        (ECDSA_SHA512, Some(P384)) => Some(&sig::ECDSA_P384_SHA512_ASN1),
        (ECDSA_SHA256, Some(P521)) => Some(&sig::ECDSA_P521_SHA256_ASN1),
        (ECDSA_SHA384, Some(P521)) => Some(&sig::ECDSA_P521_SHA384_ASN1),
        (ECDSA_SHA512, Some(P521)) => Some(&sig::ECDSA_P521_SHA512_ASN1),
        (ECDSA_SHA256 | ECDSA_SHA384 | ECDSA_SHA512, other) => {
            return Err(format!("its ECDSA key is on an unsupported curve ({})", other.unwrap_or("none named")))
        }
        _ => None,
    };
    match ecdsa {
        Some(alg) => UnparsedPublicKey::new(alg, &signer.subject_public_key.data)
            .verify(signed, &signature.data)
            .map_err(|_| "the signature does not match".to_string()),
        None => x509_parser::verify::verify_signature(signer, alg, signature, signed).map_err(|e| match e {
            x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
                format!("its signature algorithm {oid} is not supported")
            }
            _ => "the signature does not match".to_string(),
        }),
    }
}

/// Checks a certificate's signature against its issuer's key.
pub fn verify_cert(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    issuer: &SubjectPublicKeyInfo<'_>,
) -> Result<(), String> {
    verify(issuer, &cert.signature_algorithm, &cert.signature_value, cert.tbs_certificate.as_ref())
}
