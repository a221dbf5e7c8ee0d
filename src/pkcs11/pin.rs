//! Where a token's PIN comes from: `--pin-file`, then
//! `CERTFORGE_PKCS11_PIN`, then the URI's `pin-source=file:…`, then a
//! prompt when stdin is a terminal. certforge never puts a PIN on a
//! command line, never prints one, and keeps it only in memory that is
//! wiped when dropped (secrecy's `SecretString`, as passphrases are
//! wiped through `Zeroizing`).

use std::io::IsTerminal;
use std::path::Path;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{Options, Pkcs11Uri, TokenError};

/// The environment variable holding a PIN, for CI.
pub const PIN_ENV: &str = "CERTFORGE_PKCS11_PIN";

/// The PIN for `token`, or `NeedPin` when there is no way to get one.
pub fn obtain(uri: &Pkcs11Uri, opts: &Options, token: &str) -> Result<AuthPin, TokenError> {
    if let Some(path) = &opts.pin_file {
        return from_file(path, "--pin-file");
    }
    if let Some(pin) = std::env::var_os(PIN_ENV) {
        let pin = Zeroizing::new(
            pin.into_string()
                .map_err(|_| TokenError::PinFile { what: PIN_ENV.into(), detail: "is not UTF-8".into() })?,
        );
        return checked(pin, PIN_ENV);
    }
    if let Some(path) = uri.pin_file() {
        return from_file(Path::new(path), "the URI's pin-source");
    }
    if std::io::stdin().is_terminal() {
        if let Ok(pin) = rpassword::prompt_password(format!("PIN for token {token:?}: ")) {
            return checked(Zeroizing::new(pin), "the PIN typed");
        }
    }
    Err(TokenError::NeedPin { token: token.to_string() })
}

/// The first line of `path`, without its line ending.
fn from_file(path: &Path, given_by: &str) -> Result<AuthPin, TokenError> {
    let what = format!("{} (the PIN file from {given_by})", path.display());
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| TokenError::PinFile { what: what.clone(), detail: e.to_string() })?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| TokenError::PinFile { what: what.clone(), detail: "is not UTF-8 text".into() })?;
    let line = text.split('\n').next().unwrap_or_default().trim_end_matches('\r');
    checked(Zeroizing::new(line.to_string()), &what)
}

fn checked(pin: Zeroizing<String>, what: &str) -> Result<AuthPin, TokenError> {
    if pin.is_empty() {
        return Err(TokenError::PinFile {
            what: what.into(),
            detail: "is empty; it must hold the token's user PIN".into(),
        });
    }
    Ok(AuthPin::from(pin.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expose(pin: &AuthPin) -> String {
        use secrecy::ExposeSecret;
        pin.expose_secret().to_string()
    }

    #[test]
    fn reads_the_first_line_of_a_pin_file_and_refuses_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pin");
        std::fs::write(&f, "1234\r\nsecond line\n").unwrap();
        assert_eq!(expose(&from_file(&f, "--pin-file").unwrap()), "1234");
        std::fs::write(&f, "\n").unwrap();
        assert!(from_file(&f, "--pin-file").unwrap_err().to_string().contains("is empty"));
        let missing = from_file(&dir.path().join("nope"), "the URI's pin-source").unwrap_err().to_string();
        assert!(missing.contains("nope") && missing.contains("pin-source"), "{missing}");
    }
}
