//! TLS to the database over tokio-rustls and aws-lc-rs (already what
//! `serve` speaks), as libpq's `sslmode`s mean it:
//! - `verify-full`: the chain to a CA in `sslrootcert` and the URL's host
//!   in the certificate;
//! - `verify-ca`: the chain only, any name;
//! - `require` and `prefer`: encrypted, the certificate not checked (libpq
//!   documents these as protection against passive eavesdropping only).
//!
//! Channel binding (SCRAM-SHA-256-PLUS) is not offered: the handshake
//! reports none, so SCRAM runs without it.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;

use super::url::TlsMode;
use crate::serve::tls::AnyCertificate;

/// Makes the TLS session of each new connection.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    /// The `sslrootcert` file, named when the chain does not verify.
    root: Option<PathBuf>,
}

impl Connector {
    /// The connector for `mode`; Err names `sslrootcert` when its file
    /// cannot be read or holds no certificate.
    pub fn new(mode: &TlsMode) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (verifier, root): (Arc<dyn ServerCertVerifier>, _) = match mode {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => (Arc::new(AnyCertificate::of(&provider)), None),
            TlsMode::VerifyCa(root) | TlsMode::VerifyFull(root) => {
                let roots = Arc::new(read_roots(root)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {}: {e}", root.display()))?;
                let verifier: Arc<dyn ServerCertVerifier> = match mode {
                    TlsMode::VerifyCa(_) => Arc::new(AnyName(webpki)),
                    _ => webpki,
                };
                (verifier, Some(root.clone()))
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector { config: Arc::new(config), root })
    }
}

/// The CA certificates in the PEM file `path`.
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read sslrootcert {}: {e}; set sslrootcert=FILE (the CA that issued the database server's \
             certificate) in the URL or PGSSLROOTCERT",
            path.display()
        )
    })?;
    let mut roots = RootCertStore::empty();
    for block in pem::parse_many(&bytes).map_err(|e| format!("sslrootcert {}: {e}", path.display()))? {
        if block.tag() == "CERTIFICATE" {
            roots
                .add(CertificateDer::from(block.into_contents()))
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = TlsStream;
    type TlsConnect = Connect;
    type Error = io::Error;

    /// Called for every connection, TLS or not: over a Unix socket
    /// (`host=/run/postgresql`) the host is "", and the server refuses TLS
    /// there anyway, so a name TLS cannot check is an error only when a
    /// handshake is actually made.
    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| host.to_string());
        Ok(Connect { config: self.config.clone(), name, root: self.root.clone() })
    }
}

/// One connection's TLS handshake.
pub struct Connect {
    config: Arc<ClientConfig>,
    name: Result<ServerName<'static>, String>,
    root: Option<PathBuf>,
}

impl TlsConnect<Socket> for Connect {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.map_err(|host| {
                let text = format!("{host:?} is not a host name or address TLS can check");
                io::Error::new(io::ErrorKind::InvalidInput, text)
            })?;
            let connector = tokio_rustls::TlsConnector::from(self.config);
            match connector.connect(name.clone(), socket).await {
                Ok(stream) => Ok(TlsStream(stream)),
                Err(e) => Err(explain(e, &name, self.root.as_deref())),
            }
        })
    }
}

/// A refused certificate said with what to change.
fn explain(e: io::Error, name: &ServerName<'_>, root: Option<&Path>) -> io::Error {
    let Some(rustls::Error::InvalidCertificate(cert)) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let root = root.map_or_else(String::new, |r| r.display().to_string());
    let text = match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the database server's certificate is not issued by a CA in sslrootcert {root}: give the CA that \
             issued it as sslrootcert"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
            "the database server's certificate is not for {}: connect with the name it holds, or use \
             sslmode=verify-ca to check the issuer only",
            name.to_str()
        ),
        other => format!("the database server's certificate is refused: {other:?} (sslrootcert {root})"),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

/// An established TLS session.
pub struct TlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `verify-ca`: WebPKI's chain checks, but a certificate for another name
/// passes. rustls checks the name last, after the chain, so a
/// `NotValidForName` means the chain verified.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Connector::new(&TlsMode::VerifyFull(missing.clone())).err().unwrap();
        assert!(e.contains("sslrootcert") && e.contains(&missing.display().to_string()), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Connector::new(&TlsMode::VerifyCa(empty.clone())).err().unwrap();
        assert!(e.contains("holds no PEM certificate") && e.contains(&empty.display().to_string()), "{e}");
        assert!(Connector::new(&TlsMode::Require).is_ok());
    }
}
