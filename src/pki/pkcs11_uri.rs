//! RFC 7512 PKCS#11 URIs: `pkcs11:token=certforge;object=staging-ca` names
//! a key on a token the way p11-kit, OpenSSL's pkcs11 provider, GnuTLS and
//! step-ca name it, so one URI works in all of them.
//!
//! Parsing is pure. An attribute certforge does not know is refused rather
//! than ignored (RFC 7512 §2.3 lets a consumer refuse): a typo such as
//! `tokn=` would otherwise match every token. Vendor attributes (`x-…`)
//! are ignored, as the RFC asks.

use std::fmt;

/// A parsed `pkcs11:` URI. Every field is optional: a missing one matches
/// anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    // Token attributes (CK_TOKEN_INFO).
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    // Slot attributes (CK_SLOT_INFO), RFC 7512 §2.3 as updated by errata.
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    pub slot_id: Option<u64>,
    // Module attributes (CK_INFO).
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    pub library_version: Option<String>,
    // Object attributes.
    /// CKA_LABEL.
    pub object: Option<String>,
    /// CKA_ID, raw bytes.
    pub id: Option<Vec<u8>>,
    /// `private`, `public`, `cert`, `secret-key` or `data`.
    pub object_type: Option<String>,
    // Query attributes.
    /// `file:PATH`: where the PIN is read from.
    pub pin_source: Option<String>,
    pub module_name: Option<String>,
    pub module_path: Option<String>,
}

/// Why a string is not a PKCS#11 URI certforge can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a usable PKCS#11 URI (RFC 7512): {why}")]
pub struct UriError {
    pub uri: String,
    pub why: String,
}

const PATH_ATTRS: &[&str] = &[
    "token",
    "manufacturer",
    "serial",
    "model",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "library-manufacturer",
    "library-description",
    "library-version",
    "object",
    "id",
    "type",
];
const QUERY_ATTRS: &[&str] = &["pin-source", "module-name", "module-path"];

/// True when `s` is meant as a PKCS#11 URI (and so is not a file name).
pub fn is_pkcs11_uri(s: &str) -> bool {
    s.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
}

impl Pkcs11Uri {
    /// Parses `text`, which must start with `pkcs11:`.
    pub fn parse(text: &str) -> Result<Pkcs11Uri, UriError> {
        let err = |why: String| UriError { uri: text.to_string(), why };
        if !is_pkcs11_uri(text) {
            return Err(err("it must start with \"pkcs11:\"".into()));
        }
        let rest = &text[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        let mut seen: Vec<String> = Vec::new();
        let parts =
            path.split(';').map(|a| (a, false)).chain(query.into_iter().flat_map(|q| q.split('&')).map(|a| (a, true)));
        for (attr, in_query) in parts {
            if attr.is_empty() {
                continue;
            }
            let (name, raw) =
                attr.split_once('=').ok_or_else(|| err(format!("{attr:?} has no \"=\"; attributes are NAME=VALUE")))?;
            let name = name.to_ascii_lowercase();
            if name.starts_with("x-") {
                continue;
            }
            let known = if in_query { QUERY_ATTRS } else { PATH_ATTRS };
            if name == "pin-value" {
                return Err(err(
                    "pin-value would put the PIN where `ps` and shell history show it; give it with pin-source=file:PATH in the URI, --pin-file FILE, or CERTFORGE_PKCS11_PIN".into(),
                ));
            }
            if !known.contains(&name.as_str()) {
                let place = if in_query { "query (after \"?\")" } else { "path (before \"?\")" };
                let hint = if PATH_ATTRS.contains(&name.as_str()) || QUERY_ATTRS.contains(&name.as_str()) {
                    format!(
                        "; {name} belongs in the {}",
                        if in_query { "path, before \"?\"" } else { "query, after \"?\"" }
                    )
                } else {
                    format!("; known: {}", known.join(", "))
                };
                return Err(err(format!("unknown attribute {name:?} in the {place}{hint}")));
            }
            if seen.contains(&name) {
                return Err(err(format!("{name} is given twice")));
            }
            seen.push(name.clone());
            let bytes = percent_decode(raw).map_err(|why| err(format!("{name}: {why}")))?;
            if name == "id" {
                uri.id = Some(bytes);
                continue;
            }
            let value = String::from_utf8(bytes).map_err(|_| err(format!("{name} is not UTF-8 once decoded")))?;
            let slot = match name.as_str() {
                "token" => &mut uri.token,
                "manufacturer" => &mut uri.manufacturer,
                "serial" => &mut uri.serial,
                "model" => &mut uri.model,
                "slot-description" => &mut uri.slot_description,
                "slot-manufacturer" => &mut uri.slot_manufacturer,
                "library-manufacturer" => &mut uri.library_manufacturer,
                "library-description" => &mut uri.library_description,
                "library-version" => &mut uri.library_version,
                "object" => &mut uri.object,
                "pin-source" => &mut uri.pin_source,
                "module-name" => &mut uri.module_name,
                "module-path" => &mut uri.module_path,
                "slot-id" => {
                    uri.slot_id = Some(value.parse().map_err(|_| err(format!("slot-id {value:?} is not a number")))?);
                    continue;
                }
                "type" => {
                    if !["private", "public", "cert", "secret-key", "data"].contains(&value.as_str()) {
                        return Err(err(format!(
                            "type {value:?} is unknown; use private, public, cert, secret-key or data"
                        )));
                    }
                    &mut uri.object_type
                }
                _ => unreachable!("checked against the attribute lists"),
            };
            *slot = Some(value);
        }
        if let Some(src) = &uri.pin_source {
            if !src.starts_with("file:") && src.contains(':') || src.starts_with('|') {
                return Err(err(format!(
                    "pin-source {src:?}: certforge reads a PIN only from a file (pin-source=file:PATH)"
                )));
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(err("it names no key: add object=LABEL (or id=%01…) to say which key on the token".into()));
        }
        if uri.object_type.as_deref().is_some_and(|t| t != "private") {
            return Err(err(format!(
                "type={} names no private key; a CA key is type=private (or leave type out)",
                uri.object_type.as_deref().unwrap_or_default()
            )));
        }
        Ok(uri)
    }

    /// The file `pin-source` names, if any (`file:` stripped; a bare path
    /// is taken as a file too, as p11-kit does).
    pub fn pin_file(&self) -> Option<&str> {
        self.pin_source.as_deref().map(|s| s.strip_prefix("file:").unwrap_or(s))
    }

    /// The same URI with `id` set: what the depot keeps once the key is
    /// known, so that a second key with the same label never gets used.
    pub fn with_id(&self, id: &[u8]) -> Pkcs11Uri {
        Pkcs11Uri { id: Some(id.to_vec()), ..self.clone() }
    }

    /// "token X, object Y", for messages and `inspect`.
    pub fn describe(&self) -> String {
        let token = self.token.as_deref().map_or_else(|| "(any)".to_string(), |t| format!("{t:?}"));
        let object = match (&self.object, &self.id) {
            (Some(o), _) => format!("{o:?}"),
            (None, Some(id)) => format!("id {}", hex(id)),
            (None, None) => "(any)".into(),
        };
        format!("token {token}, object {object}")
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The canonical form: path attributes in RFC order, `;`-separated,
    /// then the query. Everything outside RFC 3986's unreserved set is
    /// percent-encoded, and `id` byte by byte (RFC 7512 §2.3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |v: &Option<String>| v.as_deref().map(|s| percent_encode(s.as_bytes(), false));
        let path: Vec<(&str, Option<String>)> = vec![
            ("library-description", text(&self.library_description)),
            ("library-manufacturer", text(&self.library_manufacturer)),
            ("library-version", text(&self.library_version)),
            ("slot-description", text(&self.slot_description)),
            ("slot-manufacturer", text(&self.slot_manufacturer)),
            ("slot-id", self.slot_id.map(|n| n.to_string())),
            ("manufacturer", text(&self.manufacturer)),
            ("model", text(&self.model)),
            ("serial", text(&self.serial)),
            ("token", text(&self.token)),
            ("id", self.id.as_deref().map(|b| percent_encode(b, true))),
            ("object", text(&self.object)),
            ("type", text(&self.object_type)),
        ];
        let query: Vec<(&str, Option<String>)> = vec![
            ("module-name", text(&self.module_name)),
            ("module-path", self.module_path.as_deref().map(percent_encode_path)),
            ("pin-source", self.pin_source.as_deref().map(percent_encode_path)),
        ];
        let join = |attrs: Vec<(&str, Option<String>)>, sep: &str| {
            attrs.into_iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))).collect::<Vec<_>>().join(sep)
        };
        let (p, q) = (join(path, ";"), join(query, "&"));
        write!(f, "pkcs11:{p}")?;
        if !q.is_empty() {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let pair = s.get(i + 1..i + 3).filter(|h| h.len() == 2);
            let byte = pair.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                format!("{:?} is a bad percent-escape; use %XX with two hex digits", &s[i..(i + 3).min(s.len())])
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~".contains(&c)
}

fn percent_encode(bytes: &[u8], every_byte: bool) -> String {
    bytes
        .iter()
        .map(|&c| if !every_byte && unreserved(c) { (c as char).to_string() } else { format!("%{c:02x}") })
        .collect()
}

/// A file path in the query keeps its slashes readable (RFC 7512 allows
/// "/" in query values).
fn percent_encode_path(s: &str) -> String {
    s.bytes()
        .map(|c| if unreserved(c) || c == b'/' || c == b':' { (c as char).to_string() } else { format!("%{c:02x}") })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_examples_and_round_trips() {
        let u = Pkcs11Uri::parse("pkcs11:token=certforge;object=staging-ca").unwrap();
        assert_eq!(u.token.as_deref(), Some("certforge"));
        assert_eq!(u.object.as_deref(), Some("staging-ca"));
        assert_eq!(u.to_string(), "pkcs11:token=certforge;object=staging-ca");

        // RFC 7512 §3's examples, with percent-escapes and a query.
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=private?pin-source=file:/etc/token&module-path=/usr/lib/softhsm/libsofthsm2.so",
        );
        // type=private with a label is fine; the URI is a key.
        let u = u.unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.pin_file(), Some("/etc/token"));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(Pkcs11Uri::parse(&u.to_string()).unwrap(), u);

        let u = Pkcs11Uri::parse("pkcs11:id=%01%02%ff;token=a").unwrap();
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
        assert_eq!(u.to_string(), "pkcs11:token=a;id=%01%02%ff");
        assert_eq!(u.with_id(&[7]).id.as_deref(), Some(&[7u8][..]));
        assert!(is_pkcs11_uri("PKCS11:object=x"));
        assert!(!is_pkcs11_uri("ca.key"));
    }

    #[test]
    fn refuses_what_would_silently_match_the_wrong_key_or_leak_a_pin() {
        let why = |s: &str| Pkcs11Uri::parse(s).unwrap_err().why;
        assert!(why("pkcs11:tokn=a;object=b").contains("unknown attribute \"tokn\""));
        assert!(why("pkcs11:token=a").contains("names no key"));
        assert!(why("pkcs11:object=a;object=b").contains("twice"));
        assert!(why("pkcs11:object=a?pin-value=1234").contains("ps"));
        assert!(why("pkcs11:object=a%zz").contains("percent-escape"));
        assert!(why("pkcs11:object=a%4").contains("percent-escape"));
        assert!(why("pkcs11:object=a;type=cert").contains("type=private"));
        assert!(why("pkcs11:object=a;module-path=/x").contains("belongs in the query"));
        assert!(why("pkcs11:object=a?pin-source=|/bin/cat").contains("file"));
        assert!(why("pkcs11:object=a;slot-id=x").contains("not a number"));
        assert!(why("pkcs11:object").contains("NAME=VALUE"));
        assert!(why("file:object=a").contains("pkcs11:"));
        // Vendor attributes are ignored.
        assert!(Pkcs11Uri::parse("pkcs11:object=a;x-vendor=1").is_ok());
    }

    #[test]
    fn describes_token_and_object() {
        let u = Pkcs11Uri::parse("pkcs11:token=certforge;object=staging-ca").unwrap();
        assert_eq!(u.describe(), "token \"certforge\", object \"staging-ca\"");
        let u = Pkcs11Uri::parse("pkcs11:id=%0a").unwrap();
        assert_eq!(u.describe(), "token (any), object id 0a");
    }
}
