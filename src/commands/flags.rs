//! The command-line flags that set each field the library names in its
//! errors, so that a message names what the user typed (`--domain "a..b":
//! …`) while the library speaks of a DNS name; and the key flags, which
//! only the command line combines.

use crate::cli::KeyType;
use crate::pki::ca::CaError;
use crate::pki::keys::{KeyError, KeySpec};
use crate::pki::san::SanField;
use crate::pki::subject::SubjectField;
use crate::pki::validity::ValidityField;

/// The `request-cert` flag for each kind of SAN.
pub fn san(field: SanField) -> &'static str {
    match field {
        SanField::Domain => "--domain",
        SanField::Ip => "--ip",
        SanField::Uri => "--uri",
        SanField::Email => "--email",
    }
}

/// The flags that set a certificate's validity: `--expires`, `--not-before`
/// and `--not-after`.
pub fn validity(field: ValidityField) -> &'static str {
    match field {
        ValidityField::Lifetime => "--expires",
        ValidityField::NotBefore => "--not-before",
        ValidityField::NotAfter => "--not-after",
    }
}

/// A flag that takes a span in `--expires`'s grammar, such as
/// `--expiring-within`: the flags for an error about it.
pub fn span(flag: &'static str) -> impl Fn(ValidityField) -> &'static str {
    move |field| if field == ValidityField::Lifetime { flag } else { validity(field) }
}

/// The flags that set each subject attribute.
pub fn subject(field: SubjectField) -> &'static str {
    match field {
        SubjectField::CommonName => "--common-name",
        SubjectField::Organization => "--organization",
        SubjectField::OrganizationalUnit => "--organizational-unit",
        SubjectField::Country => "--country",
        SubjectField::Province => "--province",
        SubjectField::Locality => "--locality",
    }
}

/// Combines `--key-type`, certstrap's `--curve` and `--key-bits`.
/// `--key-bits` alone means RSA; `rsa_default_bits` applies to
/// `--key-type rsa` without `--key-bits` (certstrap: 4096 for a CA, 2048
/// for a leaf). With none of them the key is ECDSA P-256: fast, small and
/// accepted by every stack we test against.
pub fn key_spec(
    key_type: Option<KeyType>,
    curve: Option<&str>,
    key_bits: Option<u32>,
    rsa_default_bits: u32,
) -> Result<KeySpec, String> {
    if let Some(bits) = key_bits {
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(format!("--key-bits {bits} is not supported; use 2048, 3072 or 4096 (RSA below 2048 is refused by modern TLS stacks)"));
        }
    }
    let from_curve = match curve {
        None => None,
        Some(c) => Some(match c.to_ascii_uppercase().replace('_', "-").as_str() {
            "P-256" | "P256" | "PRIME256V1" | "SECP256R1" => KeySpec::EcdsaP256,
            "P-384" | "P384" | "SECP384R1" => KeySpec::EcdsaP384,
            "P-521" | "P521" | "SECP521R1" => KeySpec::EcdsaP521,
            "ED25519" => KeySpec::Ed25519,
            "P-224" | "P224" => return Err(
                "--curve P-224 is not supported: Go, BoringSSL (grpcio) and rustls refuse P-224 keys in TLS; use P-256"
                    .into(),
            ),
            _ => return Err(format!("--curve {c:?} is unknown; use P-256, P-384, P-521 or Ed25519")),
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
            Err(format!("--key-type and --curve disagree ({t} vs {c}); give one of them"))
        }
        (Some(t), _, Some(_)) if !matches!(t, KeySpec::Rsa(_)) => {
            Err(format!("--key-bits sets an RSA key size, but --key-type asks for {t}; drop one of them"))
        }
        (None, Some(c), Some(_)) => {
            Err(format!("--key-bits sets an RSA key size, but --curve asks for {c}; drop one of them"))
        }
        (Some(t), _, _) => Ok(t),
        (None, Some(c), None) => Ok(c),
        (None, None, Some(bits)) => Ok(KeySpec::Rsa(bits)),
        (None, None, None) => Ok(KeySpec::EcdsaP256),
    }
}

/// The ways to give a key's passphrase.
const PASSPHRASE: &str = "--passphrase-file FILE, --passphrase or CERTFORGE_PASSPHRASE";

/// A key error as the user reads it: a key that needs a passphrase names
/// the flags that give one.
pub fn key_error(e: &KeyError) -> String {
    match e {
        KeyError::NeedPassphrase { what } => format!("{what} is encrypted; give its passphrase with {PASSPHRASE}"),
        e => e.to_string(),
    }
}

/// A CA error as the user reads it: a certificate that is no CA names the
/// commands that make one.
pub fn ca_error(e: &CaError) -> String {
    match e {
        CaError::NotCa { .. } => {
            format!("{e}; use a CA made with `certforge init`, or a cert made with `sign --intermediate`")
        }
        e => e.to_string(),
    }
}

/// `e` in the binary's words when it is a [`KeyError`] or a [`CaError`]
/// itself (as reading a key or loading a CA returns them, unwrapped).
pub fn worded(e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e = e.into();
    if e.chain().len() > 1 {
        return e;
    }
    if let Some(k) = e.downcast_ref::<KeyError>() {
        return anyhow::anyhow!(key_error(k));
    }
    if let Some(c) = e.downcast_ref::<CaError>() {
        return anyhow::anyhow!(ca_error(c));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Ca, Leaf};
    use crate::pki::ca::CaSigner;
    use crate::pki::keys::PrivateKey;
    use zeroize::Zeroizing;

    #[test]
    fn default_is_p256_and_key_bits_means_rsa() {
        assert_eq!(key_spec(None, None, None, 2048).unwrap(), KeySpec::EcdsaP256);
        assert_eq!(key_spec(None, None, Some(3072), 2048).unwrap(), KeySpec::Rsa(3072));
        assert_eq!(key_spec(Some(KeyType::Rsa), None, None, 4096).unwrap(), KeySpec::Rsa(4096));
        assert_eq!(key_spec(None, Some("P-384"), None, 2048).unwrap(), KeySpec::EcdsaP384);
        assert_eq!(key_spec(None, Some("Ed25519"), None, 2048).unwrap(), KeySpec::Ed25519);
    }

    #[test]
    fn contradictory_key_flags_are_refused_naming_the_flags() {
        let refused = |t, c, b| key_spec(t, c, b, 2048).unwrap_err();
        assert_eq!(
            refused(None, None, Some(1024)),
            "--key-bits 1024 is not supported; use 2048, 3072 or 4096 (RSA below 2048 is refused by modern TLS stacks)"
        );
        assert_eq!(
            refused(None, Some("P-224"), None),
            "--curve P-224 is not supported: Go, BoringSSL (grpcio) and rustls refuse P-224 keys in TLS; use P-256"
        );
        assert_eq!(refused(None, Some("foo"), None), "--curve \"foo\" is unknown; use P-256, P-384, P-521 or Ed25519");
        assert_eq!(
            refused(Some(KeyType::Ed25519), Some("P-256"), None),
            "--key-type and --curve disagree (Ed25519 vs ECDSA P-256); give one of them"
        );
        assert_eq!(
            refused(Some(KeyType::EcdsaP256), None, Some(4096)),
            "--key-bits sets an RSA key size, but --key-type asks for ECDSA P-256; drop one of them"
        );
        assert_eq!(
            refused(None, Some("P-256"), Some(2048)),
            "--key-bits sets an RSA key size, but --curve asks for ECDSA P-256; drop one of them"
        );
    }

    #[test]
    fn a_key_that_needs_a_passphrase_names_the_ways_to_give_one() {
        let pem = PrivateKey::generate(KeySpec::EcdsaP256).unwrap().to_pem(Some("s3cret")).unwrap();
        let e = PrivateKey::from_bytes(pem.as_bytes(), "d/ca.key", &mut None::<Zeroizing<String>>).err().unwrap();
        let today = "d/ca.key is encrypted; give its passphrase with --passphrase-file FILE, --passphrase or CERTFORGE_PASSPHRASE";
        assert_eq!(key_error(&e), today);
        assert_eq!(worded(e).to_string(), today);
    }

    #[test]
    fn a_leaf_given_as_a_ca_names_the_commands_that_make_one() {
        let leaf = Ca::new("Unit CA").unwrap().issue(Leaf::server(["leaf.test"])).unwrap();
        let key = PrivateKey::from_bytes(leaf.key_der(), "d/leaf.key", &mut None::<Zeroizing<String>>).unwrap();
        let e = CaSigner::new(leaf.cert_der().to_vec(), key, "d/leaf.crt", "d/leaf.key").err().unwrap();
        let today = "d/leaf.crt is not a CA certificate (basicConstraints CA:TRUE is missing), so it cannot sign; use a CA made with `certforge init`, or a cert made with `sign --intermediate`";
        assert_eq!(ca_error(&e), today);
        assert_eq!(worded(e).to_string(), today);
        let wrapped = anyhow::Error::from(CaError::NotCa { what: "x".into() }).context("loading");
        assert_eq!(
            format!("{:#}", worded(wrapped)),
            "loading: x is not a CA certificate (basicConstraints CA:TRUE is missing), so it cannot sign",
            "a wrapped error is left as it is"
        );
    }

    #[test]
    fn verify_names_request_certs_flag_for_a_missing_host() {
        use crate::pki::verify::{verify, Input};
        let ca = Ca::new("Unit CA").unwrap();
        let leaf = ca.issue(Leaf::server(["leaf.test"])).unwrap();
        let input = Input {
            leaf: leaf.cert_der().to_vec(),
            leaf_label: "leaf.crt".into(),
            anchors: vec![ca.cert_der().to_vec()],
            chain: vec![],
            hosts: vec!["127.0.0.1".into(), "other.test".into()],
            purpose: None,
            crls: vec![],
            key: None,
            at: time::OffsetDateTime::now_utc(),
        };
        let messages: Vec<String> = verify(&input, san).unwrap().problems.into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "leaf.crt is not valid for 127.0.0.1: its SANs are DNS:leaf.test; re-issue with --ip 127.0.0.1",
                "leaf.crt is not valid for other.test: its SANs are DNS:leaf.test; re-issue with --domain other.test",
            ]
        );
    }
}
