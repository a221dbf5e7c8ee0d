//! The pure certificate core: values in, DER out, no file system. The depot
//! and the commands build on it, and so can a Rust test suite.

pub mod ca;
pub mod chain;
pub mod constraints;
pub mod crl;
pub mod csr;
pub mod deterministic;
pub mod inspect;
pub mod issue;
pub mod keys;
pub mod lint;
pub mod names;
pub mod objects;
pub mod pkcs11_uri;
pub mod plan;
pub mod profile;
pub mod san;
pub mod serial;
pub mod signature;
pub mod subject;
pub mod template;
pub mod validity;
pub mod verify;

/// Wraps DER in a PEM block with LF line endings.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), cfg)
}

/// Reads the first PEM block labelled `label`, or takes `bytes` as DER when
/// they hold no PEM at all.
pub fn from_pem_or_der(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    if !bytes.windows(11).take(1 << 16).any(|w| w == b"-----BEGIN ") {
        return Ok(bytes.to_vec());
    }
    let blocks = pem::parse_many(bytes).map_err(|e| format!("bad PEM ({e})"))?;
    let tags: Vec<String> = blocks.iter().map(|b| b.tag().to_string()).collect();
    blocks.into_iter().find(|b| b.tag() == label).map(pem::Pem::into_contents).ok_or_else(|| {
        format!("no {label} PEM block (found: {})", if tags.is_empty() { "none".into() } else { tags.join(", ") })
    })
}
