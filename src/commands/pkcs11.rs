//! CA keys on PKCS#11 tokens, as the commands meet them (the capability
//! itself is `crate::pkcs11`). The depot keeps `NAME.key.uri`, the RFC
//! 7512 URI of the key (never a PIN), where a file CA keeps `NAME.key`.

use anyhow::Result;

pub use crate::authority::keys::{read_uri, URI_EXT};
use crate::cli::PassArgs;
use crate::depot::Depot;
use crate::pkcs11::{token, Pkcs11Uri, TokenKey};
use crate::pki::keys::KeySpec;
use crate::pki::names::EntryName;

/// `init --key pkcs11:…`: the key the URI names, or a new one of `spec`
/// when the token has none. `asked` is true when a key type was given, so
/// an existing key of another type is refused.
pub fn init_key(text: &str, spec: KeySpec, asked: bool, pass: &PassArgs) -> Result<TokenKey> {
    let uri = Pkcs11Uri::parse(text).map_err(|e| super::output::usage(format!("--key: {e}")))?;
    Ok(TokenKey::open_or_generate(&uri, &pass.token.options(), spec, asked)?)
}

/// What `inspect` and `list` say of a token key, asking no PIN.
pub struct Status {
    /// "PKCS#11: token X, object Y (token reachable through M)", or why not.
    pub location: String,
    pub reachable: bool,
    /// The public key, when the token shows it without a login.
    pub spki: Option<Vec<u8>>,
}

/// Opens the token once and says where the key is, whether the token
/// answers now, and its public key when it shows one.
pub fn status(uri: &Pkcs11Uri, token_args: &crate::cli::Pkcs11Args) -> Status {
    let (reach, reachable, spki) = match token::open(uri, &token_args.options()) {
        Ok(tok) => {
            let spki = token::public_key_without_login(&tok, uri).ok().flatten().map(|p| p.spki_der());
            (format!("token reachable through {}", tok.module.display()), true, spki)
        }
        Err(e) => (format!("token NOT reachable: {e}"), false, None),
    };
    Status { location: format!("PKCS#11: {} ({reach})", uri.describe()), reachable, spki }
}

/// The SubjectPublicKeyInfo of the key a URI names: from its public-key
/// object without a PIN when the token shows one, else after logging in
/// on the token already open.
pub fn public_key(uri: &Pkcs11Uri, pass: &PassArgs) -> Result<Vec<u8>> {
    let opts = pass.token.options();
    let tok = token::open(uri, &opts)?;
    if let Some(public) = token::public_key_without_login(&tok, uri)? {
        return Ok(public.spki_der());
    }
    Ok(TokenKey::open_on(tok, uri, &opts)?.spki_der())
}

/// `status` of the depot CA `name` when its key is on a token.
pub fn depot_status(depot: &Depot, name: &EntryName, token_args: &crate::cli::Pkcs11Args) -> Option<String> {
    let path = depot.path(name, URI_EXT);
    if !path.is_file() {
        return None;
    }
    Some(match read_uri(&path) {
        Ok(uri) => status(&uri, token_args).location,
        Err(e) => format!("{e:#}"),
    })
}
