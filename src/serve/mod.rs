//! `certforge serve`: the ACME protocol core (`crate::acme`) put on the
//! network and on the depot. Everything here does I/O: the HTTPS server
//! (`http`, `tls`), the store in the depot (`sqlite`), the challenge checks
//! (`validate`) and the issuer that writes depot entries (`issuer`).
//! `commands/serve.rs` turns the command line into a [`Config`].

pub mod crl;
pub mod http;
pub mod issuer;
pub mod log;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod proxy;
pub mod sqlite;
pub mod tls;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use time::OffsetDateTime;

use crate::acme::limits::{Limits, MemLimiter};
use crate::acme::nonce::Nonces;
use crate::acme::policy::Policy;
use crate::acme::{Engine, Validator};
use crate::pki::san::San;

/// Everything `serve` needs, checked.
pub struct Config {
    pub issuer: issuer::DepotIssuer,
    /// Each with whether it speaks TLS (ACME) or plain HTTP (CRLs only).
    pub listeners: Vec<(std::net::TcpListener, bool)>,
    /// "https://host:port", no trailing slash.
    pub base: String,
    /// The names in the server's own certificate.
    pub own_names: Vec<San>,
    /// That certificate, issued before start-up is announced, and when to
    /// renew it.
    pub own: (rustls::sign::CertifiedKey, OffsetDateTime),
    pub policy: Policy,
    pub validator: Box<dyn Validator>,
    pub log: log::Log,
    /// `GET /crl/FILE` → the depot file.
    pub crls: Vec<(String, std::path::PathBuf)>,
    /// `--require-eab`.
    pub eab_required: bool,
    /// Says the server is up (the URL, the client lines); called once the
    /// sockets and the SIGTERM handler are in place, so that a client or
    /// supervisor acting on it at once finds them.
    pub announce: Box<dyn FnOnce() + Send>,
}

/// Whether every address is loopback, where `--skip-validation` can only
/// hand out certificates to this machine's own processes.
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    addrs.iter().all(|a| a.ip().is_loopback())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(config: Config) -> Result<()> {
    let Config { issuer, listeners, base, own_names, own, policy, validator, log, crls, eab_required, announce } =
        config;
    let store = sqlite::SqlStore::open(&issuer.depot.root().join(sqlite::FILE))?;
    let recovered = store.recover().context("cannot read the ACME store")?;
    if recovered > 0 {
        log.event(
            "warn",
            "orders left mid-finalize by an earlier run can be finalized again",
            &[("orders", json!(recovered))],
        );
    }
    let (ca, chain) = (issuer.ca.clone(), issuer.chain.clone());
    let own = Arc::new(tls::OwnCert::new(own.0, own.1));
    let mut tls_config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(own.clone());
    tls_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let app = Arc::new(http::App {
        engine: Engine {
            base,
            store,
            nonces: Box::new(Nonces::default()),
            limits: Limits::default(),
            limiter: Box::new(MemLimiter::default()),
            policy,
            issuer: Box::new(issuer),
            validator,
            eab_required,
        },
        log,
        crls,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listeners = listeners
            .into_iter()
            .map(|(l, tls)| {
                l.set_nonblocking(true)?;
                Ok((tokio::net::TcpListener::from_std(l)?, tls))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let stop = stop_signal()?;
        announce();
        let renewing = tokio::spawn(renew_own(own, ca, app.log, chain, own_names));
        let served = http::serve(app.clone(), listeners, Arc::new(tls_config), stop).await;
        renewing.abort();
        app.log.event("info", "stopped", &[]);
        served
    })
}

/// Replaces the server's own certificate when two thirds of its life
/// have passed; checked hourly, and a failure is retried an hour later.
async fn renew_own(
    own: Arc<tls::OwnCert>,
    ca: Arc<crate::pki::ca::CaSigner>,
    log: log::Log,
    chain: Vec<Vec<u8>>,
    names: Vec<San>,
) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        let now = OffsetDateTime::now_utc();
        if now < own.renew_at() {
            continue;
        }
        match tls::issue_own(&ca, &chain, &names, now) {
            Ok((key, renew_at)) => {
                own.replace(key, renew_at);
                log.event("info", "renewed the server's own certificate", &[]);
            }
            Err(e) => {
                log.event("error", "cannot renew the server's own certificate", &[("error", json!(format!("{e:#}")))])
            }
        }
    }
}

/// Resolves on SIGTERM (systemd, Kubernetes, `kill`) or Ctrl-C. The
/// handlers are installed at once, not when the future is first polled.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
