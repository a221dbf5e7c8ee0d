//! ACME's JSON Web Signatures (RFC 8555 §6.2, RFC 7515 flattened JSON),
//! verified by hand with aws-lc-rs: there is no settled crate for it.
//! Account keys may be ES256, ES384, RS256 (2048–4096 bits) or EdDSA
//! (Ed25519, RFC 8037); HS256 only inside External Account Binding. An
//! account is named by its key's RFC 7638 thumbprint.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::problem::{malformed, Kind, Problem};

/// base64url without padding, as RFC 7515 §2 requires; padded or
/// standard-alphabet input is refused.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes, base64url: nonces, challenge tokens, object ids.
pub fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    b64(&bytes)
}

pub fn unb64(text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| malformed(format!("{what} is not base64url without padding (RFC 7515 §2)")))
}

/// A signature algorithm ACME accounts may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
    EdDsa,
    /// Only for the inner JWS of External Account Binding (RFC 8555 §7.3.4).
    Hs256,
}

impl Alg {
    fn parse(name: &str) -> Result<Alg, Problem> {
        Ok(match name {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "RS256" => Alg::Rs256,
            "EdDSA" => Alg::EdDsa,
            "HS256" => Alg::Hs256,
            other => {
                return Err(Problem::bad_signature_algorithm(
                    format!("{other:?} is not accepted; use ES256, ES384, RS256 or EdDSA"),
                    &ACCOUNT_ALGS,
                ))
            }
        })
    }
}

/// The algorithms a badSignatureAlgorithm problem names in its
/// `algorithms` field (RFC 8555 §6.2).
pub const ACCOUNT_ALGS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// An account's public key. Stored (serde) as its RFC 7638 canonical
/// JSON, the same text the thumbprint hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// P-256 or P-384: the uncompressed point's coordinates.
    Ec {
        p384: bool,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

impl serde::Serialize for Jwk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: Value = serde_json::from_str(&self.canonical()).map_err(serde::ser::Error::custom)?;
        v.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Jwk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Jwk, D::Error> {
        let v = Value::deserialize(d)?;
        Jwk::from_json(&v).map_err(|p| serde::de::Error::custom(p.detail))
    }
}

impl Jwk {
    /// Reads a public JWK; a private member ("d") is refused, since a client
    /// that sends it has leaked its key.
    pub fn from_json(v: &Value) -> Result<Jwk, Problem> {
        let field = |name: &str| -> Result<Vec<u8>, Problem> {
            let s = v.get(name).and_then(Value::as_str).ok_or_else(|| malformed(format!("the jwk has no {name:?}")))?;
            unb64(s, &format!("jwk {name:?}"))
        };
        if v.get("d").is_some() {
            return Err(Problem::new(
                Kind::BadPublicKey,
                "the jwk holds a private key (\"d\"); send the public key only",
            ));
        }
        let bad = |why: String| Problem::new(Kind::BadPublicKey, why);
        match v.get("kty").and_then(Value::as_str) {
            Some("EC") => {
                let (x, y) = (field("x")?, field("y")?);
                let (p384, len) = match v.get("crv").and_then(Value::as_str) {
                    Some("P-256") => (false, 32),
                    Some("P-384") => (true, 48),
                    other => return Err(bad(format!("EC curve {other:?} is not accepted; use P-256 or P-384"))),
                };
                if x.len() != len || y.len() != len {
                    return Err(bad(format!("EC coordinates must be {len} bytes each")));
                }
                Ok(Jwk::Ec { p384, x, y })
            }
            Some("RSA") => {
                let (n, e) = (strip(field("n")?), strip(field("e")?));
                // An empty "n" is 0 bits, not an underflow.
                let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
                if !(2048..=4096).contains(&bits) {
                    return Err(bad(format!("an RSA key of {bits} bits is not accepted; use 2048 to 4096")));
                }
                Ok(Jwk::Rsa { n, e })
            }
            Some("OKP") => match v.get("crv").and_then(Value::as_str) {
                Some("Ed25519") => {
                    let x = field("x")?;
                    if x.len() != 32 {
                        return Err(bad("an Ed25519 key is 32 bytes".into()));
                    }
                    Ok(Jwk::Ed25519 { x })
                }
                other => Err(bad(format!("OKP curve {other:?} is not accepted; use Ed25519"))),
            },
            other => Err(bad(format!("key type {other:?} is not accepted; use EC, RSA or OKP"))),
        }
    }

    /// The same key from a SubjectPublicKeyInfo (a CSR's), to compare with
    /// an account key; none for key types accounts cannot have.
    pub fn from_spki(der: &[u8]) -> Option<Jwk> {
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der).ok()?;
        let oid = spki.algorithm.algorithm.to_id_string();
        if oid == "1.3.101.112" {
            return Some(Jwk::Ed25519 { x: spki.subject_public_key.data.to_vec() });
        }
        match spki.parsed().ok()? {
            PublicKey::EC(point) => {
                let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?.to_id_string();
                let p384 = match curve.as_str() {
                    "1.2.840.10045.3.1.7" => false,
                    "1.3.132.0.34" => true,
                    _ => return None,
                };
                let data = point.data();
                let half = data.len().checked_sub(1)? / 2;
                (data.first() == Some(&4)).then(|| Jwk::Ec {
                    p384,
                    x: data[1..1 + half].to_vec(),
                    y: data[1 + half..].to_vec(),
                })
            }
            PublicKey::RSA(rsa) => Some(Jwk::Rsa { n: strip(rsa.modulus.to_vec()), e: strip(rsa.exponent.to_vec()) }),
            _ => None,
        }
    }

    /// The JWK with its required members only, in lexicographic order and
    /// without whitespace: RFC 7638 §3's input, and the stored form.
    pub fn canonical(&self) -> String {
        match self {
            Jwk::Ec { p384, x, y } => {
                let crv = if *p384 { "P-384" } else { "P-256" };
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#, b64(x), b64(y))
            }
            Jwk::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
            Jwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the account's identity,
    /// and the second half of every key authorization (§8.1).
    pub fn thumbprint(&self) -> String {
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.canonical().as_bytes()).as_ref())
    }

    /// The algorithm this key signs with; RFC 8555 §6.2 wants `alg` to match.
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Jwk::Ec { p384: false, .. }, Alg::Es256)
                | (Jwk::Ec { p384: true, .. }, Alg::Es384)
                | (Jwk::Rsa { .. }, Alg::Rs256)
                | (Jwk::Ed25519 { .. }, Alg::EdDsa)
        )
    }

    /// Whether `sig` is this key's signature of `input` under `alg`.
    pub fn verify(&self, alg: Alg, input: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match self {
            Jwk::Ec { p384, x, y } => {
                let point = [&[4u8][..], x, y].concat();
                let algorithm =
                    if *p384 { &signature::ECDSA_P384_SHA384_FIXED } else { &signature::ECDSA_P256_SHA256_FIXED };
                UnparsedPublicKey::new(algorithm, point).verify(input, sig).is_ok()
            }
            Jwk::Rsa { n, e } => signature::RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
            Jwk::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x).verify(input, sig).is_ok(),
        }
    }
}

/// Big-endian integers without leading zero bytes (JWA §6.3.1 allows none).
fn strip(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}

/// How the request names its signer: a new key (newAccount, revokeCert by
/// certificate key) or an account URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Jwk(Jwk),
    Kid(String),
}

/// A request body whose structure and header are checked, signature not yet
/// (that needs the account's key when it is a kid).
#[derive(Debug, Clone)]
pub struct Request {
    pub alg: Alg,
    /// Required of every request (the engine checks it), but absent from
    /// keyChange's inner JWS, which RFC 8555 §7.3.5 says MUST omit it.
    pub nonce: Option<String>,
    pub url: String,
    pub signer: Signer,
    /// The decoded payload; empty for POST-as-GET (§6.3).
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

impl Request {
    /// Parses a flattened JWS (RFC 8555 §6.2: exactly one signature, no
    /// unprotected header) and checks its protected header.
    pub fn parse(body: &[u8]) -> Result<Request, Problem> {
        let jws: Flattened = serde_json::from_slice(body)
            .map_err(|e| malformed(format!("the body is not a flattened JWS (protected, payload, signature): {e}")))?;
        let header: Value = serde_json::from_slice(&unb64(&jws.protected, "protected")?)
            .map_err(|_| malformed("the protected header is not JSON"))?;
        let text = |name: &str| header.get(name).and_then(Value::as_str);
        let alg_name = text("alg").ok_or_else(|| malformed("the protected header has no \"alg\""))?;
        if alg_name == "none" || alg_name.starts_with("HS") {
            return Err(Problem::bad_signature_algorithm(
                format!("{alg_name:?} cannot sign an ACME request; use ES256, ES384, RS256 or EdDSA"),
                &ACCOUNT_ALGS,
            ));
        }
        let alg = Alg::parse(alg_name)?;
        let url = text("url").ok_or_else(|| Problem::new(Kind::Unauthorized, "the protected header has no \"url\""))?;
        let signer = match (header.get("jwk"), text("kid")) {
            (Some(_), Some(_)) => return Err(malformed("the protected header has both \"jwk\" and \"kid\"; send one")),
            (None, None) => return Err(malformed("the protected header has neither \"jwk\" nor \"kid\"")),
            (Some(jwk), None) => Signer::Jwk(Jwk::from_json(jwk)?),
            (None, Some(kid)) => Signer::Kid(kid.to_string()),
        };
        Ok(Request {
            alg,
            nonce: text("nonce").map(str::to_string),
            url: url.to_string(),
            signer,
            payload: unb64(&jws.payload, "payload")?,
            signing_input: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
            signature: unb64(&jws.signature, "signature")?,
        })
    }

    /// Checks the signature under `key` (the jwk's, or the account's).
    pub fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        if !key.fits(self.alg) {
            return Err(Problem::bad_signature_algorithm("\"alg\" does not match the key's type", &ACCOUNT_ALGS));
        }
        if key.verify(self.alg, &self.signing_input, &self.signature) {
            Ok(())
        } else {
            Err(malformed("the JWS signature does not verify"))
        }
    }

    /// The payload as JSON (an empty payload, POST-as-GET, is refused here).
    pub fn json(&self) -> Result<Value, Problem> {
        serde_json::from_slice(&self.payload).map_err(|_| malformed("the payload is not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    /// A flattened JWS of `payload` with `header`, signed by `sign`.
    fn jws(header: &Value, payload: &str, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let (p, body) = (b64(header.to_string().as_bytes()), b64(payload.as_bytes()));
        let sig = sign(format!("{p}.{body}").as_bytes());
        json!({ "protected": p, "payload": body, "signature": b64(&sig) }).to_string().into_bytes()
    }

    fn ec_key(p384: bool) -> (EcdsaKeyPair, Value) {
        let alg = if p384 {
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING
        } else {
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING
        };
        let key = EcdsaKeyPair::generate(alg).unwrap();
        let point = key.public_key().as_ref().to_vec();
        let half = (point.len() - 1) / 2;
        let crv = if p384 { "P-384" } else { "P-256" };
        let jwk = json!({ "kty": "EC", "crv": crv, "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..]) });
        (key, jwk)
    }

    fn header(alg: &str, jwk: &Value) -> Value {
        json!({ "alg": alg, "nonce": "n1", "url": "https://127.0.0.1:14000/new-account", "jwk": jwk })
    }

    #[test]
    fn the_rfc_7638_thumbprint_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(Jwk::from_json(&jwk).unwrap().thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn ecdsa_and_ed25519_requests_verify_and_tampering_does_not() {
        let rng = SystemRandom::new();
        for p384 in [false, true] {
            let (key, jwk) = ec_key(p384);
            let alg = if p384 { "ES384" } else { "ES256" };
            let body = jws(&header(alg, &jwk), "{}", &|m| key.sign(&rng, m).unwrap().as_ref().to_vec());
            let req = Request::parse(&body).unwrap();
            let Signer::Jwk(k) = &req.signer else { panic!("jwk") };
            req.verify(k).unwrap();
            // The same signature over another payload fails.
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["payload"] = json!(b64(b"{\"x\":1}"));
            let forged = Request::parse(v.to_string().as_bytes()).unwrap();
            assert_eq!(forged.verify(k).unwrap_err().kind, Kind::Malformed);
            // An alg that does not fit the key.
            let other = if p384 { "ES256" } else { "ES384" };
            let body = jws(&header(other, &jwk), "{}", &|m| key.sign(&rng, m).unwrap().as_ref().to_vec());
            assert_eq!(Request::parse(&body).unwrap().verify(k).unwrap_err().kind, Kind::BadSignatureAlgorithm);
        }
        let ed = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref()) });
        let body = jws(&header("EdDSA", &jwk), "", &|m| ed.sign(m).as_ref().to_vec());
        let req = Request::parse(&body).unwrap();
        assert!(req.payload.is_empty(), "POST-as-GET");
        let Signer::Jwk(k) = &req.signer else { panic!("jwk") };
        req.verify(k).unwrap();
    }

    #[test]
    fn rsa_requests_verify_and_small_keys_are_refused() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use x509_parser::prelude::FromDer;
        let rng = SystemRandom::new();
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = key.public_key().as_der().unwrap();
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der.as_ref()).unwrap();
        let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().unwrap() else { panic!("RSA") };
        let jwk = json!({ "kty": "RSA", "n": b64(rsa.modulus), "e": b64(rsa.exponent) });
        let sign = |m: &[u8]| {
            let mut sig = vec![0; key.public_modulus_len()];
            key.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
            sig
        };
        let req = Request::parse(&jws(&header("RS256", &jwk), "{}", &sign)).unwrap();
        let Signer::Jwk(k) = &req.signer else { panic!("jwk") };
        req.verify(k).unwrap();
        let short = json!({ "kty": "RSA", "n": b64(&[0xc5; 128]), "e": "AQAB" });
        assert_eq!(Jwk::from_json(&short).unwrap_err().kind, Kind::BadPublicKey);
    }

    #[test]
    fn hostile_headers_get_the_rfc_problem() {
        let (key, jwk) = ec_key(false);
        let rng = SystemRandom::new();
        let sign = |m: &[u8]| key.sign(&rng, m).unwrap().as_ref().to_vec();
        let kind = |h: Value| Request::parse(&jws(&h, "{}", &sign)).unwrap_err().kind;
        let mut h = header("none", &jwk);
        assert_eq!(kind(h.clone()), Kind::BadSignatureAlgorithm);
        h["alg"] = json!("HS256");
        assert_eq!(kind(h.clone()), Kind::BadSignatureAlgorithm);
        h["alg"] = json!("PS256");
        assert_eq!(kind(h.clone()), Kind::BadSignatureAlgorithm);
        h["alg"] = json!("ES256");
        h["kid"] = json!("https://127.0.0.1:14000/acct/1");
        assert_eq!(kind(h.clone()), Kind::Malformed, "both jwk and kid");
        h.as_object_mut().unwrap().remove("jwk");
        h.as_object_mut().unwrap().remove("kid");
        assert_eq!(kind(h.clone()), Kind::Malformed, "neither");
        let mut no_nonce = header("ES256", &jwk);
        no_nonce.as_object_mut().unwrap().remove("nonce");
        let inner = Request::parse(&jws(&no_nonce, "{}", &sign)).unwrap();
        assert_eq!(inner.nonce, None, "keyChange's inner JWS has none; the engine wants one outside");
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        assert_eq!(kind(header("ES256", &private)), Kind::BadPublicKey);
        let mut curve = jwk.clone();
        curve["crv"] = json!("P-521");
        assert_eq!(kind(header("ES256", &curve)), Kind::BadPublicKey);
        // Padding, an unprotected header, a general-serialization body.
        let good = String::from_utf8(jws(&header("ES256", &jwk), "{}", &sign)).unwrap();
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["signature"] = json!(format!("{}==", v["signature"].as_str().unwrap()));
        assert_eq!(Request::parse(v.to_string().as_bytes()).unwrap_err().kind, Kind::Malformed);
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["header"] = json!({ "kid": "x" });
        assert_eq!(Request::parse(v.to_string().as_bytes()).unwrap_err().kind, Kind::Malformed);
        assert_eq!(Request::parse(b"{\"signatures\":[]}").unwrap_err().kind, Kind::Malformed);
        assert_eq!(Request::parse(b"not json").unwrap_err().kind, Kind::Malformed);
    }
}
