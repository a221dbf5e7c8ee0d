//! tls-alpn-01 (RFC 8737; RFC 8738 §6 for IP addresses): a TLS handshake
//! offering only ALPN "acme-tls/1" must yield a certificate for exactly the
//! identifier, with the critical acmeIdentifier extension holding the
//! SHA-256 of the key authorization.
//!
//! The certificate is self-signed by the client (RFC 8737 §3), so no chain
//! is verified; the handshake signature still is, which proves the peer
//! holds the certificate's key. webpki, which rustls verifies signatures
//! with, refuses to parse a certificate with a critical extension it does
//! not know (RFC 5280 §4.2), acmeIdentifier among them, so the signature is
//! checked against the certificate's bare public key instead.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use x509_parser::extensions::GeneralName;

use super::{digest, io_error, ip, Checks, Deadline, IdentKind};
use crate::acme::model::Ident;
use crate::acme::problem::{Kind, Problem};
use crate::serve::tls::AnyCertificate;

/// The ALPN protocol of RFC 8737 §6.2.
const ACME_TLS_1: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier (RFC 8737 §6.1).
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

pub(super) fn check(
    checks: &Checks,
    ident: &Ident,
    key_authorization: &str,
    deadline: Deadline,
) -> Result<(), Problem> {
    let internal = |e: rustls::Error| Problem::new(Kind::ServerInternal, format!("setting up TLS: {e}"));
    let mut conn = ClientConnection::new(client_config().map_err(internal)?, server_name(ident)?).map_err(internal)?;
    let mut peer = checks.connect(ident, checks.tlsalpn01_port, deadline)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut peer.stream).map_err(|e| {
            Problem::new(Kind::Tls, format!("the TLS handshake with {} failed: {}", peer.target, io_error(&e)))
        })?;
    }
    // An orderly close for the client's responder; the check is decided.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut peer.stream);
    if conn.alpn_protocol() != Some(ACME_TLS_1) {
        return Err(Problem::new(Kind::Tls, format!("{} did not negotiate acme-tls/1", peer.target)));
    }
    let leaf = conn.peer_certificates().and_then(|chain| chain.first());
    let leaf = leaf.ok_or_else(|| Problem::new(Kind::Tls, format!("{} sent no certificate", peer.target)))?;
    check_certificate(leaf, ident, key_authorization)
        .map_err(|e| Problem::new(Kind::IncorrectResponse, format!("the certificate from {}: {e}", peer.target)))
}

/// A client for one handshake: only "acme-tls/1" (RFC 8737 §3: the server
/// offers that protocol alone), any certificate. Made per check, so no
/// session is ever resumed and every check sees a fresh certificate.
fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyCertificate::of(&provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
    Ok(Arc::new(config))
}

/// The SNI: the name, or for an IP address its reverse-mapping name
/// (RFC 8738 §6), e.g. 4.3.2.1.in-addr.arpa.
fn server_name(ident: &Ident) -> Result<ServerName<'static>, Problem> {
    let name = match ident.kind {
        IdentKind::Dns => ident.value.clone(),
        IdentKind::Ip => reverse_name(ip(ident)?),
    };
    ServerName::try_from(name)
        .map_err(|e| Problem::new(Kind::ServerInternal, format!("{:?} cannot be sent as SNI: {e}", ident.value)))
}

/// The in-addr.arpa (RFC 1035 §3.5) or ip6.arpa (RFC 3596 §2.5) name.
fn reverse_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let nibbles = v6.octets().into_iter().rev().flat_map(|byte| [byte & 0xf, byte >> 4]);
            nibbles.map(|n| format!("{n:x}.")).collect::<String>() + "ip6.arpa"
        }
    }
}

/// RFC 8737 §3: exactly one subjectAltName, the identifier; and a critical
/// acmeIdentifier extension whose value is the DER OCTET STRING of the
/// key authorization's SHA-256.
fn check_certificate(der: &[u8], ident: &Ident, key_authorization: &str) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("it does not parse: {e}"))?;
    let san = cert.subject_alternative_name().map_err(|e| format!("its subjectAltName is unreadable: {e}"))?;
    let names = san.map(|san| san.value.general_names.as_slice()).unwrap_or_default();
    let matches = match (ident.kind, names) {
        (IdentKind::Dns, [GeneralName::DNSName(name)]) => name.eq_ignore_ascii_case(&ident.value),
        (IdentKind::Ip, [GeneralName::IPAddress(bytes)]) => match ident.value.parse() {
            Ok(IpAddr::V4(v4)) => *bytes == v4.octets(),
            Ok(IpAddr::V6(v6)) => *bytes == v6.octets(),
            Err(_) => false,
        },
        _ => false,
    };
    if !matches {
        let found: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let wanted = match ident.kind {
            IdentKind::Dns => "DNSName",
            IdentKind::Ip => "IPAddress",
        };
        return Err(format!("its subjectAltName is [{}], not {wanted}({}) alone", found.join(", "), ident.value));
    }
    let extension =
        match &cert.iter_extensions().filter(|e| e.oid.to_id_string() == ACME_IDENTIFIER).collect::<Vec<_>>()[..] {
            [one] => *one,
            [] => return Err(format!("it has no acmeIdentifier extension ({ACME_IDENTIFIER})")),
            _ => return Err("it has more than one acmeIdentifier extension".to_string()),
        };
    if !extension.critical {
        return Err("its acmeIdentifier extension is not critical".to_string());
    }
    // The OCTET STRING's tag and length, then the 32 digest bytes.
    let expected = [&[0x04, 0x20][..], &digest(key_authorization)].concat();
    if extension.value != expected {
        return Err(format!(
            "its acmeIdentifier is {}, not {} (an OCTET STRING of the key authorization's SHA-256)",
            hex(extension.value),
            hex(&expected)
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};
    use std::thread::JoinHandle;

    use rcgen::{CertificateParams, CustomExtension, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::sign::{CertifiedKey, SingleCertAndKey};
    use rustls::{ServerConfig, ServerConnection};

    use super::super::testing::{dns, ip, serve_once, KEY_AUTHORIZATION};
    use super::*;
    use crate::acme::model::ChallengeKind;
    use crate::acme::Validator;

    /// A self-signed challenge certificate for `sans` with `extension`,
    /// and its key.
    fn challenge_cert(sans: &[&str], extension: Option<CustomExtension>) -> (CertificateDer<'static>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.custom_extensions.extend(extension);
        (params.self_signed(&key).unwrap().der().clone(), key)
    }

    fn acme_identifier() -> Option<CustomExtension> {
        Some(CustomExtension::new_acme_identifier(&digest(KEY_AUTHORIZATION)))
    }

    /// Serves `sans`' challenge certificate once on 127.0.0.1 under `alpn`;
    /// the thread's result is the SNI the client sent.
    fn serve(sans: &[&str], alpn: &[&[u8]]) -> (SocketAddr, JoinHandle<Option<Option<String>>>) {
        let (cert, key) = challenge_cert(sans, acme_identifier());
        serve_with(cert, &key, alpn, rustls::DEFAULT_VERSIONS)
    }

    /// Serves `cert`, signing the handshake with `key`, under `alpn` and
    /// the TLS `versions`.
    fn serve_with(
        cert: CertificateDer<'static>,
        key: &KeyPair,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (SocketAddr, JoinHandle<Option<Option<String>>>) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // CertifiedKey::new, not with_single_cert: that one parses the
        // certificate with webpki, which refuses the acmeIdentifier (and
        // would refuse a key that does not match it).
        let signer = provider.key_provider.load_private_key(key).unwrap();
        let resolver = Arc::new(SingleCertAndKey::from(CertifiedKey::new(vec![cert], signer)));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        serve_once("127.0.0.1:0", move |mut tcp: TcpStream| {
            let mut conn = ServerConnection::new(Arc::new(config)).unwrap();
            while conn.is_handshaking() && conn.complete_io(&mut tcp).is_ok() {}
            conn.server_name().map(str::to_string)
        })
    }

    fn checks(addr: SocketAddr) -> Checks {
        Checks { tlsalpn01_port: addr.port(), ..Checks::default() }
    }

    #[test]
    fn passes_for_an_ip_sending_its_reverse_name_as_sni_over_tls_1_3_and_1_2() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (cert, key) = challenge_cert(&["127.0.0.1"], acme_identifier());
            let (addr, server) = serve_with(cert, &key, &[ACME_TLS_1], &[version]);
            let result = checks(addr).validate(&ip("127.0.0.1"), ChallengeKind::TlsAlpn01, KEY_AUTHORIZATION);
            assert_eq!(result, Ok(()), "{version:?}");
            assert_eq!(server.join().unwrap(), Some(Some("1.0.0.127.in-addr.arpa".to_string())));
        }
    }

    /// A certificate is no proof from a peer that cannot sign with its key.
    #[test]
    fn a_handshake_signed_with_another_key_fails() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (cert, _) = challenge_cert(&["127.0.0.1"], acme_identifier());
            let (addr, server) = serve_with(cert, &KeyPair::generate().unwrap(), &[ACME_TLS_1], &[version]);
            let result = checks(addr).validate(&ip("127.0.0.1"), ChallengeKind::TlsAlpn01, KEY_AUTHORIZATION);
            let p = result.unwrap_err();
            assert_eq!(p.kind, Kind::Tls, "{version:?}");
            assert!(p.detail.ends_with("failed: invalid peer certificate: BadSignature"), "{version:?}: {}", p.detail);
            server.join().unwrap().expect("the check connected");
        }
    }

    #[test]
    fn a_server_without_acme_tls_1_fails() {
        let (addr, server) = serve(&["127.0.0.1"], &[]);
        let p = checks(addr).validate(&ip("127.0.0.1"), ChallengeKind::TlsAlpn01, KEY_AUTHORIZATION).unwrap_err();
        assert_eq!(p.kind, Kind::Tls);
        assert_eq!(p.detail, format!("tls-alpn-01: {addr} did not negotiate acme-tls/1"));
        server.join().unwrap().expect("the check connected");
    }

    #[test]
    fn a_server_refusing_the_protocol_fails_the_handshake() {
        let (addr, server) = serve(&["127.0.0.1"], &[b"h2"]);
        let p = checks(addr).validate(&ip("127.0.0.1"), ChallengeKind::TlsAlpn01, KEY_AUTHORIZATION).unwrap_err();
        assert_eq!(p.kind, Kind::Tls);
        assert!(p.detail.starts_with(&format!("tls-alpn-01: the TLS handshake with {addr} failed: ")), "{}", p.detail);
        server.join().unwrap().expect("the check connected");
    }

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(reverse_name("1.2.3.4".parse().unwrap()), "4.3.2.1.in-addr.arpa");
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert_eq!(v6, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    }

    #[test]
    fn the_certificate_must_name_the_identifier_alone() {
        let (cert, _) = challenge_cert(&["WWW.example.com"], acme_identifier());
        assert_eq!(check_certificate(&cert, &dns("www.example.com"), KEY_AUTHORIZATION), Ok(()));
        let (cert, _) = challenge_cert(&["www.example.com", "other.example.com"], acme_identifier());
        assert_eq!(
            check_certificate(&cert, &dns("www.example.com"), KEY_AUTHORIZATION).unwrap_err(),
            "its subjectAltName is [DNSName(www.example.com), DNSName(other.example.com)], not DNSName(www.example.com) alone"
        );
        let (cert, _) = challenge_cert(&["::1"], acme_identifier());
        assert_eq!(check_certificate(&cert, &ip("::1"), KEY_AUTHORIZATION), Ok(()));
        assert!(check_certificate(&cert, &ip("::2"), KEY_AUTHORIZATION)
            .unwrap_err()
            .ends_with("not IPAddress(::2) alone"));
        assert!(check_certificate(&cert, &dns("localhost"), KEY_AUTHORIZATION).is_err(), "an IP SAN for a name");
    }

    #[test]
    fn the_acme_identifier_must_be_critical_and_hold_the_digest() {
        let name = dns("www.example.com");
        let (cert, _) = challenge_cert(&["www.example.com"], None);
        assert_eq!(
            check_certificate(&cert, &name, KEY_AUTHORIZATION).unwrap_err(),
            "it has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)"
        );
        let mut lax = CustomExtension::new_acme_identifier(&digest(KEY_AUTHORIZATION));
        lax.set_criticality(false);
        let (cert, _) = challenge_cert(&["www.example.com"], Some(lax));
        assert_eq!(
            check_certificate(&cert, &name, KEY_AUTHORIZATION).unwrap_err(),
            "its acmeIdentifier extension is not critical"
        );
        let (cert, _) = challenge_cert(&["www.example.com"], acme_identifier());
        let err = check_certificate(&cert, &name, "another.authorization").unwrap_err();
        assert!(
            err.starts_with(&format!("its acmeIdentifier is 0420{}, not 0420", hex(&digest(KEY_AUTHORIZATION)))),
            "{err}"
        );
    }
}
