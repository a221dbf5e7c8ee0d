//! External Account Binding (RFC 8555 §7.3.4): with `serve --require-eab`,
//! a new account must carry a JWS over its own key, MACed with a key the
//! CA's operator handed out (`certforge acme eab add NAME`), so that only
//! people given a kid and key can get certificates.

use aws_lc_rs::hmac;
use serde_json::Value;

use super::jws::{unb64, Jwk};
use super::problem::{malformed, Kind, Problem};

/// The MACs a binding may use, named in badSignatureAlgorithm's
/// `algorithms` (RFC 8555 §6.2).
const MAC_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// Checks newAccount's `externalAccountBinding` for the account key
/// `account_key`, posted to `url`; `key_of` finds a kid's MAC key.
/// Returns the kid.
pub fn check(
    binding: &Value,
    account_key: &Jwk,
    url: &str,
    key_of: impl Fn(&str) -> Result<Option<Vec<u8>>, Problem>,
) -> Result<String, Problem> {
    let field = |name: &str| {
        binding
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(format!("externalAccountBinding must be a flattened JWS; it has no {name:?}")))
    };
    let (protected, payload, signature) = (field("protected")?, field("payload")?, field("signature")?);
    let header: Value = serde_json::from_slice(&unb64(protected, "externalAccountBinding protected")?)
        .map_err(|_| malformed("externalAccountBinding's protected header is not JSON"))?;
    let text = |name: &str| header.get(name).and_then(Value::as_str);
    let alg = match text("alg") {
        Some("HS256") => hmac::HMAC_SHA256,
        Some("HS384") => hmac::HMAC_SHA384,
        Some("HS512") => hmac::HMAC_SHA512,
        other => {
            return Err(Problem::bad_signature_algorithm(
                format!("externalAccountBinding's alg {other:?} is not a MAC; use HS256"),
                &MAC_ALGS,
            ))
        }
    };
    // §7.3.4: the binding carries no nonce, and names the newAccount URL.
    if header.get("nonce").is_some() {
        return Err(malformed("externalAccountBinding must not carry a nonce (RFC 8555 §7.3.4)"));
    }
    if text("url") != Some(url) {
        return Err(malformed(format!("externalAccountBinding's url must be {url}")));
    }
    let kid = text("kid").ok_or_else(|| malformed("externalAccountBinding has no \"kid\""))?;
    let bound: Value = serde_json::from_slice(&unb64(payload, "externalAccountBinding payload")?)
        .map_err(|_| malformed("externalAccountBinding's payload is not a JWK"))?;
    if Jwk::from_json(&bound)? != *account_key {
        return Err(malformed("externalAccountBinding binds another key than the account's"));
    }
    let unauthorized = || {
        Problem::new(
            Kind::Unauthorized,
            format!("the external account {kid:?} is unknown, or its MAC does not verify; ask the CA's operator for a kid and key (certforge acme eab add NAME)"),
        )
    };
    let secret = key_of(kid)?.ok_or_else(unauthorized)?;
    let mac = unb64(signature, "externalAccountBinding signature")?;
    hmac::verify(&hmac::Key::new(alg, &secret), format!("{protected}.{payload}").as_bytes(), &mac)
        .map_err(|_| unauthorized())?;
    Ok(kid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::jws::b64;
    use serde_json::json;

    const URL: &str = "https://127.0.0.1:14000/new-account";

    fn binding(header: Value, jwk: &Value, secret: &[u8]) -> Value {
        let (p, body) = (b64(header.to_string().as_bytes()), b64(jwk.to_string().as_bytes()));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), format!("{p}.{body}").as_bytes());
        json!({ "protected": p, "payload": body, "signature": b64(tag.as_ref()) })
    }

    #[test]
    fn a_binding_verifies_only_with_its_kid_key_url_and_account_key() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[9; 32])});
        let key = Jwk::from_json(&jwk).unwrap();
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let keys = |kid: &str| Ok((kid == "team-a").then(|| secret.clone()));
        let good = json!({"alg": "HS256", "kid": "team-a", "url": URL});
        assert_eq!(check(&binding(good.clone(), &jwk, &secret), &key, URL, keys).unwrap(), "team-a");

        let kind = |b: Value| check(&b, &key, URL, keys).unwrap_err().kind;
        assert_eq!(kind(binding(good.clone(), &jwk, b"another key")), Kind::Unauthorized);
        assert_eq!(
            kind(binding(json!({"alg": "HS256", "kid": "team-b", "url": URL}), &jwk, &secret)),
            Kind::Unauthorized
        );
        assert_eq!(
            kind(binding(json!({"alg": "ES256", "kid": "team-a", "url": URL}), &jwk, &secret)),
            Kind::BadSignatureAlgorithm
        );
        assert_eq!(
            kind(binding(json!({"alg": "HS256", "kid": "team-a", "url": "https://x/new-account"}), &jwk, &secret)),
            Kind::Malformed
        );
        assert_eq!(
            kind(binding(json!({"alg": "HS256", "kid": "team-a", "url": URL, "nonce": "n"}), &jwk, &secret)),
            Kind::Malformed
        );
        let other = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[8; 32])});
        assert_eq!(kind(binding(good, &other, &secret)), Kind::Malformed);
        assert_eq!(kind(json!({"protected": "x"})), Kind::Malformed);
    }
}
