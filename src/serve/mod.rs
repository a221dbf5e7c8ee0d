//! `certforge serve`: the ACME protocol core (`crate::acme`) put on the
//! network and on the depot. Everything here does I/O: the HTTPS server
//! (`http`, `tls`), the store in the depot (`sqlite`), the challenge checks
//! (`validate`) and the issuer that writes depot entries (`issuer`).
//! `commands/serve.rs` turns the command line into a [`Config`].

pub mod crl;
pub mod http;
pub mod issuer;
pub mod log;
pub mod metrics;
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

use crate::acme::limits::{Limiter, Limits, MemLimiter};
use crate::acme::nonce::{NoncePool, Nonces};
use crate::acme::policy::Policy;
use crate::acme::{Engine, Store, Validator};
use crate::pki::san::San;
use crl::CrlSource;
use metrics::meter::{MeteredIssuer, MeteredNonces, MeteredStore, MeteredValidator, StoreKind};

/// Where the ACME state lives.
pub enum Backend {
    /// The depot's acme.sqlite, for one process; nonces and rate limits
    /// are kept in that process's memory.
    Depot,
    /// A PostgreSQL database shared by every instance of a fleet: the
    /// state, the nonces, the rate limits, the revocations and the CRL.
    #[cfg(feature = "postgres")]
    Postgres { url: String },
}

/// What only the started server knows, for the banner.
pub struct Started<'a> {
    /// The database as shown (no password) and its schema version.
    pub database: Option<(&'a str, i32)>,
}

/// Everything `serve` needs, checked.
pub struct Config {
    pub issuer: issuer::DepotIssuer,
    /// Each with what it serves.
    pub listeners: Vec<(std::net::TcpListener, http::Port)>,
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
    /// `GET /crl/FILE` → where the CRL is (the depot's file; with
    /// PostgreSQL, replaced by the bytes the database holds).
    pub crls: Vec<(String, CrlSource)>,
    /// `--require-eab`.
    pub eab_required: bool,
    pub backend: Backend,
    /// The `--rate-*` limits on new orders.
    pub limits: Limits,
    /// `--proxy-protocol`: each connection starts with a PROXY v2 header.
    pub proxy_protocol: bool,
    /// Says the server is up (the URL, the client lines); called once the
    /// sockets and the SIGTERM handler are in place, so that a client or
    /// supervisor acting on it at once finds them.
    pub announce: Box<dyn FnOnce(&Started) + Send>,
}

/// Whether every address is loopback, where `--skip-validation` can only
/// hand out certificates to this machine's own processes.
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    addrs.iter().all(|a| a.ip().is_loopback())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(mut config: Config) -> Result<()> {
    let backend = std::mem::replace(&mut config.backend, Backend::Depot);
    // Built first: the PostgreSQL pool lives on it.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match backend {
        Backend::Depot => {
            let store = sqlite::SqlStore::open(&config.issuer.depot.root().join(sqlite::FILE))?;
            let recovered = store.recover().context("cannot read the ACME store")?;
            if recovered > 0 {
                config.log.event(
                    "warn",
                    "orders left mid-finalize by an earlier run can be finalized again",
                    &[("orders", json!(recovered))],
                );
            }
            let pools = (Box::new(Nonces::default()) as Box<dyn NoncePool>, Box::new(MemLimiter::default()) as _);
            serve_with(runtime, config, store, pools, None, None)
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres { url } => {
            // Opened before anything is announced: an unreachable database,
            // a schema this version does not know or a read-only standby
            // stops the start with the reason.
            let opts = pg::PgOptions { runtime: Some(runtime.handle().clone()), ..Default::default() };
            let db = pg::PgDb::open(&url, opts).map_err(|e| anyhow::anyhow!("{e}"))?;
            // The register of serials and certificates, the revocations
            // and the CRL live in the database too: no instance writes a
            // depot file another cannot see.
            let ca = config.issuer.ca.clone();
            let state = Box::new(pg::state::PgState::new(db.clone(), ca.clone()));
            config.issuer = config.issuer.with_state(state, issuer::Sink::Database);
            // Every instance serves the CRL the database holds, never one
            // of its own signing, so all of them hand out the same bytes;
            // the depot's file (the same on every instance, copied with
            // the CA) only until the fleet has published its first.
            let cache = Arc::new(crl::CrlCache::default());
            let files = std::mem::take(&mut config.crls);
            let shared = files.iter().map(|(name, _)| (name.clone(), CrlSource::Shared(cache.clone())));
            config.crls = shared.collect::<Vec<_>>().into_iter().chain(files).collect();
            let publisher = Arc::new(pg::state::PgState::new(db.clone(), ca));
            runtime.spawn(pg::crl::crl_loop(publisher, cache, config.log));
            runtime.spawn(pg::janitor(db.clone(), config.log));
            let pools = (
                Box::new(crate::acme::nonce::SharedNonces::new(db.nonce_key(), db.clone())) as Box<dyn NoncePool>,
                Box::new(db.clone()) as Box<dyn Limiter>,
            );
            let shown = (db.shown().to_string(), db.schema());
            // The engine's calls run on database threads with a
            // connection each (as many as the pool holds), not through
            // the pool: no thread wake-up per round trip.
            let bound = db.clone();
            let workers = http::Workers::start(pg::PgOptions::default().pool_size, "certforge-db", move || {
                bound.bind_thread();
            })?;
            serve_with(runtime, config, db, pools, Some(shown), Some(workers))
        }
    }
}

/// Serves `store` with the rest of `parts`. `database` (shown URL and
/// schema) is set when the store is remote: its calls then block on the
/// network, so every request that may touch it runs on a blocking thread.
fn serve_with<S: Store + 'static>(
    runtime: tokio::runtime::Runtime,
    config: Config,
    store: S,
    (nonces, limiter): (Box<dyn NoncePool>, Box<dyn Limiter>),
    database: Option<(String, i32)>,
    workers: Option<http::Workers>,
) -> Result<()> {
    let (ca, chain) = (config.issuer.ca.clone(), config.issuer.chain.clone());
    let own = Arc::new(tls::OwnCert::new(config.own.0, config.own.1));
    let mut tls_config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(own.clone());
    tls_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // First: the decorators below count into it from their first call.
    let depot = config.issuer.depot.clone();
    let metrics = runtime.block_on(async { metrics::Metrics::start(ca.not_after, config.crls.clone(), depot) });
    let kind = if database.is_some() { StoreKind::Postgresql } else { StoreKind::Sqlite };
    let app = Arc::new(http::App {
        engine: Engine {
            base: config.base,
            store: MeteredStore::new(store, kind),
            nonces: Box::new(MeteredNonces::new(nonces)),
            limits: config.limits,
            limiter,
            policy: config.policy,
            issuer: Box::new(MeteredIssuer(Box::new(config.issuer))),
            validator: Box::new(MeteredValidator(config.validator)),
            eab_required: config.eab_required,
        },
        log: config.log,
        metrics,
        crls: config.crls,
        proxy_protocol: config.proxy_protocol,
        remote_store: database.is_some(),
        workers,
    });
    runtime.block_on(async move {
        let listeners = config
            .listeners
            .into_iter()
            .map(|(l, tls)| {
                l.set_nonblocking(true)?;
                Ok((tokio::net::TcpListener::from_std(l)?, tls))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let stop = stop_signal()?;
        (config.announce)(&Started { database: database.as_ref().map(|(shown, schema)| (shown.as_str(), *schema)) });
        let renewing = tokio::spawn(renew_own(own, ca, app.log, chain, config.own_names));
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
