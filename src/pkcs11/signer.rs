//! A CA key on a token as rcgen's remote signing key. rcgen hands over the
//! bytes to sign; the token signs them; rcgen (and then `pki::issue`'s
//! check under the CA's public key) takes the result.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::public::{der_sequence, der_uint, PublicKey};
use super::raw::RawSign;
use super::token::{self, FoundKey, OpenToken};
use super::{Options, Pkcs11Uri, TokenError};
use crate::pki::keys::KeySpec;

/// What a key with CKA_ALWAYS_AUTHENTICATE needs at each signature.
struct PerSignature {
    /// The PIN, kept in wiped memory for the run; None on a token with a
    /// PIN pad, which asks for it itself.
    pin: Option<AuthPin>,
    /// The module's C_Sign, called after the context-specific login.
    raw: RawSign,
}

/// A private key on a token, logged in and ready to sign.
pub struct TokenKey {
    /// One session, one signature at a time: a PKCS#11 session runs one
    /// operation at once (v3.0 §5.1), and `serve`'s threads share the key.
    /// Declared before `tok` so that it closes before the module may be
    /// finalized. No explicit C_Logout: the login belongs to the whole
    /// application (PKCS#11 v3.0 §5.6), so logging out here would log out
    /// another key of the same token still in use (a plan's root and
    /// intermediate); closing the last session logs out.
    session: Mutex<Session>,
    _tok: OpenToken,
    handle: ObjectHandle,
    public: PublicKey,
    /// The URI with the key's id, as the depot keeps it.
    pub uri: Pkcs11Uri,
    pub token_label: String,
    pub module: PathBuf,
    /// For a key that wants the PIN again for each signature.
    each_time: Option<PerSignature>,
    /// Why the last signature failed: rcgen's error has no room for it.
    last_error: Mutex<Option<String>>,
    /// Whether `open_or_generate` made the key just now.
    pub generated: bool,
}

impl TokenKey {
    /// Opens the key the URI names, logged in. The caller checks that it
    /// is the CA certificate's key.
    pub fn open(uri: &Pkcs11Uri, opts: &Options) -> Result<TokenKey, TokenError> {
        TokenKey::open_on(token::open(uri, opts)?, uri, opts)
    }

    /// [`open`](Self::open) on a token already found.
    pub fn open_on(tok: OpenToken, uri: &Pkcs11Uri, opts: &Options) -> Result<TokenKey, TokenError> {
        let (session, pin) = tok.login(uri, opts, false)?;
        let Some(found) = token::find_key(&tok, &session, uri)? else {
            return Err(TokenError::KeyNotFound {
                object: token::object_name(uri),
                token: tok.label.clone(),
                seen: token::list_keys(&session),
            });
        };
        TokenKey::ready(tok, session, pin, found, uri, false)
    }

    /// `init`'s key: the one the URI names when the token has it (checked
    /// to be of `wanted` type when a type was asked for), else a new one
    /// of `spec`.
    pub fn open_or_generate(
        uri: &Pkcs11Uri,
        opts: &Options,
        spec: KeySpec,
        wanted: bool,
    ) -> Result<TokenKey, TokenError> {
        let tok = token::open(uri, opts)?;
        let (session, pin) = tok.login(uri, opts, true)?;
        match token::find_key(&tok, &session, uri)? {
            Some(found) => {
                if wanted && found.public.spec != spec {
                    return Err(TokenError::WrongKeyType {
                        object: token::object_name(uri),
                        token: tok.label.clone(),
                        found: found.public.spec.to_string(),
                        wanted: spec.to_string(),
                    });
                }
                TokenKey::ready(tok, session, pin, found, uri, false)
            }
            None => {
                // Check the signing mechanism before making a key that
                // could not sign.
                let (mech, name) = mechanism_for(spec);
                if !tok.has_mechanism(mech) {
                    return Err(tok.lacks(&format!("sign with {spec} keys"), name, false));
                }
                let found = token::generate(&tok, &session, uri, spec)?;
                TokenKey::ready(tok, session, pin, found, uri, true)
            }
        }
    }

    fn ready(
        tok: OpenToken,
        session: Session,
        pin: Option<AuthPin>,
        found: FoundKey,
        uri: &Pkcs11Uri,
        generated: bool,
    ) -> Result<TokenKey, TokenError> {
        let spec = found.public.spec;
        let (mech, name) = mechanism_for(spec);
        if !tok.has_mechanism(mech) {
            return Err(tok.lacks(&format!("sign with its {spec} key"), name, true));
        }
        let each_time = if found.always_authenticate {
            let raw = RawSign::for_session(&tok.module, &session, tok.slot).map_err(|detail| {
                TokenError::PerSignaturePin {
                    object: token::object_name(uri),
                    token: tok.label.clone(),
                    module: tok.module.display().to_string(),
                    detail,
                }
            })?;
            Some(PerSignature { pin, raw })
        } else {
            None
        };
        let (token_label, module) = (tok.label.clone(), tok.module.clone());
        Ok(TokenKey {
            session: Mutex::new(session),
            _tok: tok,
            handle: found.handle,
            public: found.public,
            uri: uri.with_id(&found.id),
            token_label,
            module,
            each_time,
            last_error: Mutex::new(None),
            generated,
        })
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> Vec<u8> {
        self.public.spki_der()
    }

    /// Why the last signature failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok()?.clone()
    }

    fn sign_on_token(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let (_, mech_name) = mechanism_for(self.public.spec);
        let sign = |mech: &Mechanism, data: &[u8]| {
            self.sign_once(&session, mech, data).map_err(|e| match e {
                // The module listed the mechanism (checked when the key was
                // opened) and then refused it.
                CkError::Pkcs11(rv @ (RvError::MechanismInvalid | RvError::MechanismParamInvalid), f) => format!(
                    "the token refused the mechanism {mech_name} ({rv:?} from {f}) although it lists it; the key cannot sign through this module, so use a module (or device) that offers it (the token lists its mechanisms: pkcs11-tool --module {} --list-mechanisms)",
                    self.module.display()
                ),
                CkError::Pkcs11(rv, f @ Function::Login) => format!("the per-signature PIN was refused ({rv:?} from {f})"),
                e => format!("{mech_name}: {e}"),
            })
        };
        match self.public.spec {
            KeySpec::Ed25519 => sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), msg),
            KeySpec::Rsa(_) => sign(&Mechanism::RsaPkcs, &digest_info_sha256(msg)),
            ec => {
                let (alg, coord) = match ec {
                    KeySpec::EcdsaP256 => (&aws_lc_rs::digest::SHA256, 32),
                    KeySpec::EcdsaP384 => (&aws_lc_rs::digest::SHA384, 48),
                    _ => (&aws_lc_rs::digest::SHA512, 66),
                };
                let raw = sign(&Mechanism::Ecdsa, aws_lc_rs::digest::digest(alg, msg).as_ref())?;
                ecdsa_der(&raw, coord)
            }
        }
    }

    /// One signature on `session`. A key that wants its PIN each time gets
    /// it between C_SignInit and C_Sign, where PKCS#11 puts the
    /// context-specific login (v3.0 §4.9 and §5.6); a login given before
    /// C_SignInit is refused with CKR_OPERATION_NOT_INITIALIZED.
    fn sign_once(&self, session: &Session, mech: &Mechanism, data: &[u8]) -> Result<Vec<u8>, CkError> {
        let Some(each) = &self.each_time else {
            return session.sign(mech, self.handle, data);
        };
        session.sign_init(mech, self.handle)?;
        if let Err(e) = session.login(UserType::ContextSpecific, each.pin.as_ref()) {
            // The operation is still open; C_Sign ends it (it fails, not
            // logged in), so that the next signature on this session, as
            // `serve` makes, can start.
            let _ = each.raw.sign(session, data);
            return Err(e);
        }
        each.raw.sign(session, data)
    }
}

/// The signing mechanism for a key type, and its name for errors. ECDSA
/// and RSA sign a digest made here (CKM_ECDSA, CKM_RSA_PKCS): every token
/// has those, while the hash-and-sign ones (CKM_ECDSA_SHA256…) are missing
/// from many, PIV cards among them.
pub fn mechanism_for(spec: KeySpec) -> (MechanismType, &'static str) {
    match spec {
        KeySpec::Ed25519 => (MechanismType::EDDSA, "CKM_EDDSA"),
        KeySpec::Rsa(_) => (MechanismType::RSA_PKCS, "CKM_RSA_PKCS"),
        _ => (MechanismType::ECDSA, "CKM_ECDSA"),
    }
}

impl rcgen::PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.public.alg
    }
}

impl rcgen::SigningKey for TokenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let result = self.sign_on_token(msg);
        if let Ok(mut last) = self.last_error.lock() {
            *last = result.as_ref().err().cloned();
        }
        result.map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

impl crate::pki::ca::RemoteKey for TokenKey {
    fn location(&self) -> String {
        format!("PKCS#11: {}", self.uri.describe())
    }
    fn last_error(&self) -> Option<String> {
        TokenKey::last_error(self)
    }
    fn uri(&self) -> String {
        self.uri.to_string()
    }
}

/// The DigestInfo that PKCS#1 v1.5 signs (RFC 8017 §9.2, note 1).
fn digest_info_sha256(msg: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg).as_ref());
    out
}

/// CKM_ECDSA gives r‖s, each as wide as the curve (PKCS#11 v3.0 §2.3.1);
/// X.509 wants ECDSA-Sig-Value, a DER SEQUENCE of two INTEGERs (RFC 3279
/// §2.2.3).
fn ecdsa_der(raw: &[u8], coord: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * coord {
        return Err(format!(
            "the token returned a {}-byte ECDSA signature where {} were expected",
            raw.len(),
            2 * coord
        ));
    }
    let (r, s) = raw.split_at(coord);
    Ok(der_sequence(&[der_uint(r), der_uint(s)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw r‖s turned to DER verifies under aws-lc, which takes only DER.
    #[test]
    fn raw_ecdsa_signatures_become_der_that_verifies() {
        use aws_lc_rs::signature::{self as sig, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let fixed = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        for msg in [&b"tbsCertificate"[..], b"", &[0xff; 300]] {
            let raw = fixed.sign(&rng, msg).unwrap();
            let der = ecdsa_der(raw.as_ref(), 32).unwrap();
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, fixed.public_key().as_ref())
                .verify(msg, &der)
                .unwrap();
        }
        assert!(ecdsa_der(&[1; 63], 32).unwrap_err().contains("63-byte"));
    }

    /// The DigestInfo signed with raw RSA equals a PKCS#1 v1.5 SHA-256
    /// signature: checked by verifying it as one.
    #[test]
    fn digest_info_is_what_pkcs1_sha256_signs() {
        let di = digest_info_sha256(b"abc");
        assert_eq!(di.len(), 19 + 32);
        assert_eq!(&di[19..], aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"abc").as_ref());
    }
}
