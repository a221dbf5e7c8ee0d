//! Finding the token and the key a URI names, logging in, and making a
//! key on the token. Every failure becomes a [`TokenError`] that says what
//! to do; nothing here writes outside the token.

use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use super::module::{self, Module};
use super::public::{self, Attrs, PublicKey};
use super::{pin, Options, Pkcs11Uri, TokenError};
use crate::pki::keys::KeySpec;

/// A token the URI matched, in a loaded module.
pub struct OpenToken {
    /// The module, shared; kept until the token's sessions are closed.
    pub loaded: Arc<Module>,
    pub slot: Slot,
    /// Its label, trimmed of PKCS#11's space padding.
    pub label: String,
    pub module: PathBuf,
}

/// A private key found (or made) on a logged-in session.
pub struct FoundKey {
    pub handle: ObjectHandle,
    pub public: PublicKey,
    pub id: Vec<u8>,
    /// CKA_ALWAYS_AUTHENTICATE: the PIN must be given again for each
    /// signature (PIV's signature slot 9c on a YubiKey).
    pub always_authenticate: bool,
}

/// Trims the blank padding PKCS#11 puts after fixed-size strings.
fn trimmed(s: &str) -> String {
    s.trim_end_matches([' ', '\0']).to_string()
}

fn wanted_token(uri: &Pkcs11Uri) -> String {
    let mut parts = Vec::new();
    for (k, v) in
        [("token", &uri.token), ("manufacturer", &uri.manufacturer), ("serial", &uri.serial), ("model", &uri.model)]
    {
        if let Some(v) = v {
            parts.push(format!("{k}={v:?}"));
        }
    }
    if let Some(id) = uri.slot_id {
        parts.push(format!("slot-id={id}"));
    }
    if parts.is_empty() {
        "(any token)".into()
    } else {
        parts.join(", ")
    }
}

/// Loads the module(s) and finds the one token the URI names. The first
/// module that has a match wins (p11-kit-proxy shows SoftHSM's tokens too).
pub fn open(uri: &Pkcs11Uri, opts: &Options) -> Result<OpenToken, TokenError> {
    let mut seen = Vec::new();
    let candidates = module::candidates(Some(uri), opts)?;
    let mut last_load_error = None;
    for (path, chosen_by) in &candidates {
        let loaded = match module::load(path, chosen_by) {
            Ok(c) => c,
            Err(e) if candidates.len() > 1 => {
                last_load_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let ctx = &loaded.ctx;
        let lib = ctx.get_library_info().ok();
        let lib_ok =
            |want: &Option<String>, have: Option<String>| want.as_ref().is_none_or(|w| Some(w) == have.as_ref());
        if !lib_ok(&uri.library_manufacturer, lib.as_ref().map(|l| trimmed(l.manufacturer_id())))
            || !lib_ok(&uri.library_description, lib.as_ref().map(|l| trimmed(l.library_description())))
            || !lib_ok(&uri.library_version, lib.as_ref().map(|l| l.library_version().to_string()))
        {
            continue;
        }
        let slots = ctx.get_slots_with_token().map_err(|e| token_err("module", "listing slots", e))?;
        let mut matches = Vec::new();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else { continue };
            // An uninitialized token (SoftHSM always shows one in its free
            // slot) holds no key and takes no login: it is no candidate,
            // else a URI without token= would always be ambiguous.
            if !info.token_initialized() {
                continue;
            }
            let label = trimmed(info.label());
            let file =
                path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
            seen.push(format!("{label:?} (in {file})"));
            let slot_info = ctx.get_slot_info(slot).ok();
            let eq = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w == have);
            if eq(&uri.token, &label)
                && eq(&uri.manufacturer, &trimmed(info.manufacturer_id()))
                && eq(&uri.serial, &trimmed(info.serial_number()))
                && eq(&uri.model, &trimmed(info.model()))
                && uri.slot_id.is_none_or(|id| id == slot.id())
                && eq(
                    &uri.slot_description,
                    &slot_info.as_ref().map(|s| trimmed(s.slot_description())).unwrap_or_default(),
                )
                && eq(
                    &uri.slot_manufacturer,
                    &slot_info.as_ref().map(|s| trimmed(s.manufacturer_id())).unwrap_or_default(),
                )
            {
                matches.push((slot, label));
            }
        }
        match matches.len() {
            0 => continue,
            1 => {
                let (slot, label) = matches.remove(0);
                return Ok(OpenToken { loaded, slot, label, module: path.clone() });
            }
            n => {
                return Err(TokenError::TokenAmbiguous {
                    wanted: wanted_token(uri),
                    module: path.display().to_string(),
                    count: n,
                    seen: matches.iter().map(|(_, l)| format!("{l:?}")).collect::<Vec<_>>().join(", "),
                })
            }
        }
    }
    if seen.is_empty() {
        if let Some(e) = last_load_error {
            return Err(e);
        }
    }
    Err(TokenError::TokenAbsent {
        wanted: wanted_token(uri),
        modules: candidates.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", "),
        first: candidates[0].0.display().to_string(),
        seen: if seen.is_empty() { "no initialized token at all".into() } else { seen.join(", ") },
    })
}

fn token_err(token: &str, action: &str, e: CkError) -> TokenError {
    TokenError::Token { token: token.to_string(), action: action.to_string(), detail: e.to_string() }
}

impl OpenToken {
    /// Opens a session and logs the user in, with the PIN from [`pin`].
    pub fn login(
        &self,
        uri: &Pkcs11Uri,
        opts: &Options,
        read_write: bool,
    ) -> Result<(Session, Option<cryptoki::types::AuthPin>), TokenError> {
        let session = if read_write {
            self.loaded.ctx.open_rw_session(self.slot)
        } else {
            self.loaded.ctx.open_ro_session(self.slot)
        }
        .map_err(|e| token_err(&self.label, "opening a session", e))?;
        let info =
            self.loaded.ctx.get_token_info(self.slot).map_err(|e| token_err(&self.label, "reading token info", e))?;
        if !info.login_required() {
            return Ok((session, None));
        }
        if info.user_pin_locked() {
            return Err(TokenError::PinLocked { token: self.label.clone() });
        }
        // A PIN pad: the token asks for the PIN itself.
        if info.protected_authentication_path() {
            session.login(UserType::User, None).map_err(|e| self.login_error(e))?;
            return Ok((session, None));
        }
        let pin = pin::obtain(uri, opts, &self.label)?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok((session, Some(pin))),
            Err(e) => Err(self.login_error(e)),
        }
    }

    fn login_error(&self, e: CkError) -> TokenError {
        let token = self.label.clone();
        match e {
            CkError::Pkcs11(RvError::PinIncorrect, _) => {
                let info = self.loaded.ctx.get_token_info(self.slot).ok();
                let tries = match info {
                    Some(i) if i.user_pin_locked() => return TokenError::PinLocked { token },
                    Some(i) if i.user_pin_final_try() => "one try is left before the token locks the PIN".into(),
                    Some(i) if i.user_pin_count_low() => "few tries are left before the token locks the PIN".into(),
                    _ => "the token does not say how many tries are left".into(),
                };
                TokenError::WrongPin { token, tries }
            }
            CkError::Pkcs11(RvError::PinLocked, _) => TokenError::PinLocked { token },
            CkError::Pkcs11(RvError::PinLenRange, _) => {
                TokenError::WrongPin { token, tries: "it is not of a length this token accepts".into() }
            }
            other => token_err(&token, "logging in", other),
        }
    }

    /// True when the token offers `mech`.
    pub fn has_mechanism(&self, mech: MechanismType) -> bool {
        self.loaded.ctx.get_mechanism_list(self.slot).is_ok_and(|l| l.contains(&mech))
    }

    /// The mechanism error for `action`. For a key that exists already
    /// another key type is no help; another module (or device) is.
    pub fn lacks(&self, action: &str, mech: &str, existing_key: bool) -> TokenError {
        TokenError::Mechanism {
            token: self.label.clone(),
            action: action.into(),
            mechanism: mech.into(),
            module: self.module.display().to_string(),
            advice: if existing_key {
                "the key cannot sign through this module; use a module (or device) that offers it".into()
            } else {
                "choose a key type it can sign with (--key-type)".into()
            },
        }
    }
}

/// The search template for the URI's private key.
fn key_template(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Finds the URI's private key; `Ok(None)` when there is none.
pub fn find_key(tok: &OpenToken, session: &Session, uri: &Pkcs11Uri) -> Result<Option<FoundKey>, TokenError> {
    let found = session.find_objects(&key_template(uri)).map_err(|e| token_err(&tok.label, "searching keys", e))?;
    let handle = match found.len() {
        0 => return Ok(None),
        1 => found[0],
        n => {
            let ids: Vec<String> = found.iter().map(|h| hex(&id_of(session, *h))).collect();
            return Err(TokenError::KeyAmbiguous {
                object: object_name(uri),
                token: tok.label.clone(),
                count: n,
                ids: ids.join(", "),
            });
        }
    };
    read_key(tok, session, uri, handle).map(Some)
}

fn id_of(session: &Session, h: ObjectHandle) -> Vec<u8> {
    match session.get_attributes(h, &[AttributeType::Id]).ok().and_then(|v| v.into_iter().next()) {
        Some(Attribute::Id(id)) => id,
        _ => Vec::new(),
    }
}

/// How messages name the URI's object.
pub fn object_name(uri: &Pkcs11Uri) -> String {
    match (&uri.object, &uri.id) {
        (Some(l), Some(id)) => format!("{l:?} (id {})", hex(id)),
        (Some(l), None) => format!("{l:?}"),
        (None, Some(id)) => format!("id {}", hex(id)),
        (None, None) => "(any)".into(),
    }
}

/// What the token holds, for a "not found" message.
pub fn list_keys(session: &Session) -> String {
    let labels: Vec<String> = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap_or_default()
        .into_iter()
        .map(|h| match session.get_attributes(h, &[AttributeType::Label]).ok().and_then(|v| v.into_iter().next()) {
            Some(Attribute::Label(l)) => format!("{:?}", String::from_utf8_lossy(&l)),
            _ => format!("id {}", hex(&id_of(session, h))),
        })
        .collect();
    if labels.is_empty() {
        "the token holds no private key".into()
    } else {
        format!("it holds {}", labels.join(", "))
    }
}

/// Reads a private key's type and public key. EC public points live on the
/// public-key object (PKCS#11 keeps CKA_EC_POINT off private keys), found
/// by the same CKA_ID, else the same label.
fn read_key(tok: &OpenToken, session: &Session, uri: &Pkcs11Uri, handle: ObjectHandle) -> Result<FoundKey, TokenError> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::AlwaysAuthenticate,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(|e| token_err(&tok.label, "reading the key's attributes", e))?;
    let (mut key_type, mut id, mut label, mut always, mut modulus, mut exponent) =
        (None, Vec::new(), Vec::new(), false, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Id(v) => id = v,
            Attribute::Label(v) => label = v,
            Attribute::AlwaysAuthenticate(b) => always = b,
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    let object = object_name(uri);
    let unsupported =
        |found: String| TokenError::UnsupportedKey { object: object.clone(), token: tok.label.clone(), found };
    let public = match key_type {
        Some(KeyType::RSA) => {
            let (Some(m), Some(e)) = (modulus, exponent) else {
                return Err(TokenError::NoPublicKey {
                    object,
                    token: tok.label.clone(),
                    detail: "the token hides its modulus".into(),
                });
            };
            PublicKey::from_attrs(Attrs::Rsa { modulus: &m, exponent: &e }).map_err(unsupported)?
        }
        Some(t) if t == KeyType::EC || t == KeyType::EC_EDWARDS => {
            let (params, point) = ec_public(session, &id, &label).ok_or_else(|| TokenError::NoPublicKey {
                object: object.clone(),
                token: tok.label.clone(),
                detail: "no public-key object with its id or label holds CKA_EC_POINT; import the public key beside it (pkcs11-tool --write-object KEY.pub --type pubkey --id ID)".into(),
            })?;
            let attrs = if t == KeyType::EC {
                Attrs::Ec { params: &params, point: &point }
            } else {
                Attrs::Edwards { params: &params, point: &point }
            };
            PublicKey::from_attrs(attrs).map_err(unsupported)?
        }
        Some(other) => return Err(unsupported(format!("a {other} key"))),
        None => return Err(unsupported("a key of no stated type".into())),
    };
    Ok(FoundKey { handle, public, id, always_authenticate: always })
}

fn ec_public(session: &Session, id: &[u8], label: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let by = |a: Attribute| session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), a]).unwrap_or_default();
    let mut handles = if id.is_empty() { Vec::new() } else { by(Attribute::Id(id.to_vec())) };
    if handles.is_empty() && !label.is_empty() {
        handles = by(Attribute::Label(label.to_vec()));
    }
    let h = *handles.first()?;
    let (mut params, mut point) = (None, None);
    for a in session.get_attributes(h, &[AttributeType::EcParams, AttributeType::EcPoint]).ok()? {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    Some((params?, point?))
}

/// Makes a key pair on the token for the URI: private, sensitive and never
/// extractable, usable only to sign (the public half only to verify). The
/// label is the URI's object, the id the URI's or 16 random bytes.
pub fn generate(tok: &OpenToken, session: &Session, uri: &Pkcs11Uri, spec: KeySpec) -> Result<FoundKey, TokenError> {
    let id = match &uri.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0u8; 16];
            aws_lc_rs::rand::fill(&mut id).map_err(|_| TokenError::Token {
                token: tok.label.clone(),
                action: "making a key id".into(),
                detail: "no randomness".into(),
            })?;
            id
        }
    };
    let label = uri.object.clone().unwrap_or_else(|| format!("certforge-{}", hex(&id)));
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        // A CA key signs and does nothing else (RFC 5280 §4.2.1.3).
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let (mech, mech_name) = match spec {
        KeySpec::Rsa(bits) => {
            public.push(Attribute::ModulusBits((bits as u64).into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            (Mechanism::RsaPkcsKeyPairGen, "CKM_RSA_PKCS_KEY_PAIR_GEN")
        }
        KeySpec::Ed25519 => {
            public.push(Attribute::EcParams(public::ED25519_PARAMS.to_vec()));
            (Mechanism::EccEdwardsKeyPairGen, "CKM_EC_EDWARDS_KEY_PAIR_GEN")
        }
        ec => {
            let params = match ec {
                KeySpec::EcdsaP256 => public::P256_PARAMS,
                KeySpec::EcdsaP384 => public::P384_PARAMS,
                _ => public::P521_PARAMS,
            };
            public.push(Attribute::EcParams(params.to_vec()));
            (Mechanism::EccKeyPairGen, "CKM_EC_KEY_PAIR_GEN")
        }
    };
    if !tok.has_mechanism(mech.mechanism_type()) {
        return Err(tok.lacks(&format!("make {spec} keys"), mech_name, false));
    }
    let made = session.generate_key_pair(&mech, &public, &private);
    let (_, priv_handle) = match made {
        Ok(pair) => pair,
        // SoftHSM before 2.6 and some modules name Ed25519 only by its
        // printable-string form (PKCS#11 v3.0 §2.3.10).
        Err(CkError::Pkcs11(
            RvError::CurveNotSupported | RvError::AttributeValueInvalid | RvError::DomainParamsInvalid,
            _,
        )) if spec == KeySpec::Ed25519 => {
            let p = public.len() - 1;
            public[p] = Attribute::EcParams(public::ED25519_NAME_PARAMS.to_vec());
            session
                .generate_key_pair(&mech, &public, &private)
                .map_err(|e| token_err(&tok.label, &format!("making a {spec} key"), e))?
        }
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
            return Err(tok.lacks(&format!("make {spec} keys"), mech_name, false))
        }
        Err(e) => return Err(token_err(&tok.label, &format!("making a {spec} key"), e)),
    };
    read_key(tok, session, &uri.with_id(&id), priv_handle)
}

/// The URI's public key read without logging in, from its public-key
/// object (public objects need no PIN): for `inspect`, `list` and
/// `verify --key`. `Ok(None)` when the token shows no such object.
pub fn public_key_without_login(tok: &OpenToken, uri: &Pkcs11Uri) -> Result<Option<PublicKey>, TokenError> {
    let session =
        tok.loaded.ctx.open_ro_session(tok.slot).map_err(|e| token_err(&tok.label, "opening a session", e))?;
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    } else if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    let found = session.find_objects(&template).map_err(|e| token_err(&tok.label, "searching keys", e))?;
    let Some(&h) = found.first() else { return Ok(None) };
    let wanted = [
        AttributeType::KeyType,
        AttributeType::EcParams,
        AttributeType::EcPoint,
        AttributeType::Modulus,
        AttributeType::PublicExponent,
    ];
    let attrs = session.get_attributes(h, &wanted).map_err(|e| token_err(&tok.label, "reading the public key", e))?;
    let (mut kt, mut params, mut point, mut modulus, mut exponent) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => kt = Some(t),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    let attrs = match (kt, &params, &point, &modulus, &exponent) {
        (Some(KeyType::RSA), _, _, Some(m), Some(e)) => Attrs::Rsa { modulus: m, exponent: e },
        (Some(t), Some(p), Some(q), _, _) if t == KeyType::EC => Attrs::Ec { params: p, point: q },
        (Some(t), Some(p), Some(q), _, _) if t == KeyType::EC_EDWARDS => Attrs::Edwards { params: p, point: q },
        _ => return Ok(None),
    };
    let unsupported =
        |found: String| TokenError::UnsupportedKey { object: object_name(uri), token: tok.label.clone(), found };
    PublicKey::from_attrs(attrs).map(Some).map_err(unsupported)
}
