//! Splitting a file into the PKI objects it holds: certificates, CSRs, CRLs
//! and private keys, in PEM (bundles included) or a single DER object.

use x509_parser::prelude::FromDer;

/// One object found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Certificate(Vec<u8>),
    Request(Vec<u8>),
    Crl(Vec<u8>),
    /// A private key: the bytes of its PEM block (or raw DER), to be read
    /// with [`super::keys::PrivateKey::from_bytes`].
    Key(Vec<u8>),
}

impl Object {
    /// "certificate", "CSR", "CRL" or "private key".
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Certificate(_) => "certificate",
            Object::Request(_) => "CSR",
            Object::Crl(_) => "CRL",
            Object::Key(_) => "private key",
        }
    }
}

/// Reads every object in `bytes`. PEM blocks of other kinds are reported
/// by label; a file with nothing certforge can read is an error naming it.
pub fn read_objects(bytes: &[u8], what: &str) -> Result<Vec<Object>, String> {
    if bytes.windows(11).take(1 << 16).any(|w| w == b"-----BEGIN ") {
        let blocks = pem::parse_many(bytes).map_err(|e| format!("{what}: bad PEM ({e})"))?;
        let mut out = Vec::new();
        for block in blocks {
            let obj = match block.tag() {
                "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => {
                    Object::Certificate(block.into_contents())
                }
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Object::Request(block.into_contents()),
                "X509 CRL" => Object::Crl(block.into_contents()),
                t if t.ends_with("PRIVATE KEY") => Object::Key(pem::encode(&block).into_bytes()),
                other => return Err(format!("{what}: a {other} PEM block, which certforge does not read")),
            };
            out.push(obj);
        }
        if out.is_empty() {
            return Err(format!("{what}: no PEM blocks"));
        }
        return Ok(out);
    }
    let der = bytes.to_vec();
    if x509_parser::certificate::X509Certificate::from_der(&der).is_ok_and(|(rest, _)| rest.is_empty()) {
        return Ok(vec![Object::Certificate(der)]);
    }
    if x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .is_ok_and(|(rest, _)| rest.is_empty())
    {
        return Ok(vec![Object::Request(der)]);
    }
    if x509_parser::revocation_list::CertificateRevocationList::from_der(&der).is_ok_and(|(rest, _)| rest.is_empty()) {
        return Ok(vec![Object::Crl(der)]);
    }
    use pkcs8::der::Decode;
    if pkcs8::PrivateKeyInfoRef::from_der(&der).is_ok() || pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).is_ok() {
        return Ok(vec![Object::Key(der)]);
    }
    Err(format!("{what} is neither PEM nor a DER certificate, CSR, CRL or PKCS#8 key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bundles_and_refuses_garbage() {
        let a = crate::pki::to_pem("CERTIFICATE", b"\x30\x00");
        let b = crate::pki::to_pem("X509 CRL", b"\x30\x00");
        let objs = read_objects(format!("{a}{b}").as_bytes(), "f").unwrap();
        assert_eq!(objs.iter().map(Object::kind).collect::<Vec<_>>(), ["certificate", "CRL"]);
        assert!(read_objects(b"hello", "f").unwrap_err().contains("neither PEM"));
        let dh = crate::pki::to_pem("DH PARAMETERS", b"\x30\x00");
        assert!(read_objects(dh.as_bytes(), "f").unwrap_err().contains("DH PARAMETERS"));
    }
}
