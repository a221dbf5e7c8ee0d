//! The HTTPS server: hyper over tokio-rustls on each `--listen` address.
//! It only moves bytes: ACME requests go to the engine, on a blocking
//! thread when they may block (validation, issuing, or any call to a store
//! across the network), plus `/health` and the CA's CRLs.
//! On SIGTERM or Ctrl-C it stops accepting and lets requests in flight
//! finish, for at most [`DRAIN`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use serde_json::json;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::crl::CrlSource;
use super::log::Log;
use super::metrics::Served;
use crate::acme::db::Stored;
use crate::acme::problem::{malformed, Kind, Problem};
use crate::acme::wfe::MAX_BODY;
use crate::acme::{Engine, HttpRequest, Reply, Route, Store};

/// How long requests in flight may take to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(30);

/// A client that has not finished its TLS handshake by then is dropped, so
/// idle sockets cannot pile up.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// How long `/health` waits for the store before calling it unavailable:
/// a balancer's check times out by itself after a few seconds.
const HEALTH: Duration = Duration::from_secs(3);

/// What one listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// ACME over HTTPS, with /health, /metrics and the CRLs.
    Acme,
    /// Plain HTTP for CRL fetchers (openssl -crl_download speaks no TLS;
    /// a CRL is signed anyway), with /health.
    Crl,
    /// Plain HTTP for a Prometheus scraper on a private network: /metrics
    /// and /health only.
    Metrics,
}

/// What the server answers with.
pub struct App<S: Store> {
    pub engine: Engine<S>,
    pub log: Log,
    /// What `/metrics` renders.
    pub metrics: Arc<super::metrics::Metrics>,
    /// `GET /crl/FILE`: the CRLs served (file name, where the bytes are).
    pub crls: Vec<(String, CrlSource)>,
    /// Each connection starts with a PROXY protocol v2 header, whose
    /// client address stands for the peer's (the balancer's).
    pub proxy_protocol: bool,
    /// The store is across the network (PostgreSQL): every call to it
    /// blocks, so every route that may make one runs on a blocking thread
    /// and never on a runtime worker.
    pub remote_store: bool,
    /// Where the routes that block run: a few threads of the store's own
    /// (PostgreSQL's database threads), else tokio's blocking pool.
    pub workers: Option<Workers>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run blocking work, each prepared once by
/// `init` (given a database connection of its own, say).
pub struct Workers {
    queue: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `n` threads named `name-I`, each calling `init` first.
    pub fn start(n: usize, name: &str, init: impl Fn() + Send + Sync + 'static) -> std::io::Result<Workers> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        let init = Arc::new(init);
        for i in 0..n.max(1) {
            let (jobs, init) = (jobs.clone(), init.clone());
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                init();
                loop {
                    let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(Workers { queue })
    }

    /// Runs `f` on one of the threads and waits for it; Err says why it
    /// gave no value (it panicked).
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        self.queue.send(job).map_err(|_| "the database threads have stopped".to_string())?;
        match answer.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(panic)) => Err(panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string())),
            Err(_) => Err("the database threads have stopped".to_string()),
        }
    }
}

/// Serves on `listeners`, each what its [`Port`] says, until `stop`
/// resolves, then drains.
pub async fn serve<S: Store + 'static>(
    app: Arc<App<S>>,
    listeners: Vec<(TcpListener, Port)>,
    tls: Arc<rustls::ServerConfig>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, Port)>(256);
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(l, port)| {
            let (tx, log) = (tx.clone(), app.log);
            tokio::spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, peer)) => {
                            if tx.send((stream, peer, port)).await.is_err() {
                                return;
                            }
                        }
                        // EMFILE and the like: say so, and do not spin.
                        Err(e) => {
                            log.event("warn", "accept failed", &[("error", json!(e.to_string()))]);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            conn = rx.recv() => {
                let Some((stream, peer, port)) = conn else { break };
                let _ = stream.set_nodelay(true);
                let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
                tokio::spawn(connection(app, stream, peer, port, acceptor, watcher));
            }
            () = &mut stop => break,
        }
    }
    for a in &accepting {
        a.abort();
    }
    app.log.event(
        "info",
        "stopping: no new connections; finishing requests in flight",
        &[("in_flight", json!(graceful.count()))],
    );
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        app.log.event("warn", "requests still running after the drain time; stopping anyway", &[]);
    }
    Ok(())
}

/// Serves one connection: its PROXY header first with
/// `--proxy-protocol` (on the ACME and CRL ports the balancer fronts),
/// then TLS on the ACME port, then HTTP/1.1.
async fn connection<S: Store + 'static>(
    app: Arc<App<S>>,
    mut stream: TcpStream,
    mut peer: SocketAddr,
    port: Port,
    acceptor: TlsAcceptor,
    watcher: Watcher,
) {
    let refused = |what: &str, peer: SocketAddr, e: String| {
        app.log.event("info", what, &[("peer", json!(peer.to_string())), ("error", json!(e))]);
    };
    if app.proxy_protocol && port != Port::Metrics {
        match tokio::time::timeout(HANDSHAKE, super::proxy::read_header(&mut stream)).await {
            // LOCAL (the balancer's own check): the peer is the balancer.
            Ok(Ok(client)) => peer = client.unwrap_or(peer),
            Ok(Err(e)) => return refused("PROXY header refused", peer, e.to_string()),
            Err(_) => return,
        }
    }
    let svc = {
        let app = app.clone();
        service_fn(move |req| answer(app.clone(), req, port, peer.ip()))
    };
    if port != Port::Acme {
        let _ = watcher.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), svc)).await;
        return;
    }
    let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return refused("TLS handshake failed", peer, e.to_string()),
        Err(_) => return,
    };
    let _ = watcher.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), svc)).await;
}

async fn answer<S: Store + 'static>(
    app: Arc<App<S>>,
    req: Request<Incoming>,
    port: Port,
    peer: IpAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let _in_flight = app.metrics.in_flight();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = Limited::new(req.into_body(), MAX_BODY).collect().await.map(|b| b.to_bytes());
    let route = (port == Port::Acme).then(|| Route::parse(&method, &path)).and_then(Result::ok);
    let served = Served::of(route.as_ref(), &path);
    let reply = match (port, method.as_str(), path.as_str(), body) {
        (_, "GET", "/health", _) => health(&app).await,
        (Port::Acme | Port::Metrics, "GET", "/metrics", _) => {
            // On a blocking thread: once a minute it reads the depot's
            // certificates. The text exposition format 0.0.4, which
            // Prometheus and promtool read.
            let metrics = app.metrics.clone();
            match tokio::task::spawn_blocking(move || metrics.render(OffsetDateTime::now_utc())).await {
                Ok(text) => Reply::typed(200, "text/plain; version=0.0.4; charset=utf-8", text),
                Err(e) => Reply::typed(500, "text/plain", format!("the metrics could not be rendered: {e}\n")),
            }
        }
        (Port::Acme | Port::Crl, "GET", p, _) if p.starts_with("/crl/") => crl(&app.crls, &p["/crl/".len()..]),
        (Port::Crl, ..) => Reply::typed(
            404,
            "text/plain",
            format!("this port serves CRLs only; the ACME directory is {}/directory\n", app.engine.base),
        ),
        (Port::Metrics, ..) => Reply::typed(404, "text/plain", "this port serves /metrics and /health only\n"),
        (_, _, _, Err(_)) => {
            app.engine.refuse(malformed(format!("the body is over {MAX_BODY} bytes, the most this server reads")))
        }
        (_, _, _, Ok(body)) => {
            let route = route.ok_or_else(|| Route::parse(&method, &path).unwrap_err());
            if !blocks(&route, app.remote_store) {
                handle(&app.engine, &method, &path, content_type.as_deref(), &body, peer, route)
            } else {
                let (worker, method, path) = (app.clone(), method.clone(), path.clone());
                let work = move || handle(&worker.engine, &method, &path, content_type.as_deref(), &body, peer, route);
                let handled = match &app.workers {
                    Some(workers) => workers.run(work).await,
                    None => tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string()),
                };
                handled.unwrap_or_else(|e| {
                    app.engine.refuse(Problem::new(
                        Kind::ServerInternal,
                        format!("the request failed inside the server: {e}"),
                    ))
                })
            }
        }
    };
    app.metrics.answered(served, reply.status, reply.problem, started.elapsed());
    let level = if reply.status >= 500 { "error" } else { "info" };
    let mut fields = vec![
        ("method", json!(method)),
        ("path", json!(path)),
        ("status", json!(reply.status)),
        ("client", json!(peer.to_string())),
        ("ms", json!((started.elapsed().as_secs_f64() * 1e5).round() / 100.0)),
    ];
    // A 5xx's cause (a store that failed, say) is for the operator, not in
    // the client's problem document.
    if let Some(detail) = &reply.log_detail {
        fields.push(("error", json!(detail)));
    }
    app.log.event(level, "request", &fields);
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).expect("valid status and header names"))
}

/// Whether `route` runs on a blocking thread. With the store in this
/// process (SQLite) everything but a challenge check (network), finalize
/// (signing and a synced depot write) and revokeCert (the CRL rewrite)
/// takes tens of microseconds: answered on the worker, without the two
/// thread hand-offs a blocking task costs. With a remote store every call
/// to it waits on the network, and blocking a worker there would stall
/// every connection it carries; only the directory and newNonce (a MACed
/// nonce, no database) stay on the worker. A route that does not parse is
/// refused without touching the store.
fn blocks(route: &Result<Route, Problem>, remote_store: bool) -> bool {
    match route {
        Ok(Route::Directory | Route::NewNonce { .. }) | Err(_) => false,
        Ok(r) => remote_store || r.blocks(),
    }
}

/// `GET /health`, for a balancer's check: 200 while the store answers,
/// else 503 with the reason and `Retry-After`, so that the balancer sends
/// clients to an instance that can serve them. Once the database is back,
/// the next check passes, with no restart.
async fn health<S: Store + 'static>(app: &Arc<App<S>>) -> Reply {
    let worker = app.clone();
    health_within(move || worker.engine.store.health(), HEALTH).await
}

/// Runs `check` on a blocking thread (a remote store's call blocks) and
/// waits for it at most `within`.
async fn health_within(check: impl FnOnce() -> Stored<()> + Send + 'static, within: Duration) -> Reply {
    let reason = match tokio::time::timeout(within, tokio::task::spawn_blocking(check)).await {
        Ok(Ok(Ok(()))) => return Reply::typed(200, "application/json", &br#"{"status":"ok"}"#[..]),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => format!("the check failed inside the server: {e}"),
        Err(_) => format!("the store did not answer within {} s", within.as_secs_f64()),
    };
    let mut reply =
        Reply::typed(503, "application/json", json!({"status": "unavailable", "reason": reason}).to_string());
    reply.headers.push(("Retry-After", "5".into()));
    reply.log_detail = Some(reason);
    reply
}

/// Hands one request to the engine, on whichever thread calls it.
fn handle<S: Store>(
    engine: &Engine<S>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    peer: IpAddr,
    route: Result<Route, Problem>,
) -> Reply {
    let req = HttpRequest { method, path, content_type, body, peer: Some(peer) };
    engine.handle_route(&req, route, OffsetDateTime::now_utc())
}

/// `GET /crl/NAME.crl`: a CA's current CRL, DER, as RFC 5280 §4.2.1.13
/// distribution points are fetched (openssl -crl_download wants DER).
/// A CRL is a few KiB, read in microseconds: no need for a blocking thread.
/// A name may have several sources, tried in order: with a shared store,
/// first the CRL the database holds, kept in memory (no database call, so
/// an outage does not stop it), then the depot's file, which stands in
/// until the fleet has published one (before its first revocation).
fn crl(crls: &[(String, CrlSource)], file: &str) -> Reply {
    for (_, source) in crls.iter().filter(|(name, _)| name == file) {
        match source.current() {
            Ok(Some(der)) => return Reply::typed(200, "application/pkix-crl", der),
            Ok(None) => continue,
            Err(e) => {
                let mut reply = Reply::typed(500, "text/plain", &b"the CRL file is damaged\n"[..]);
                reply.log_detail = Some(e);
                return reply;
            }
        }
    }
    Reply::typed(404, "text/plain", &b"no such CRL\n"[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    /// A store across the network must never be called on a runtime
    /// worker (PgDb's bridge blocks on the runtime itself); with a local
    /// store only the slow routes pay for a blocking thread.
    #[test]
    fn with_a_remote_store_every_route_but_directory_and_new_nonce_blocks() {
        let routes = [
            ("GET", "/directory"),
            ("HEAD", "/new-nonce"),
            ("GET", "/new-nonce"),
            ("GET", "/renewal-info/a.b"),
            ("POST", "/new-account"),
            ("POST", "/new-order"),
            ("POST", "/key-change"),
            ("POST", "/revoke-cert"),
            ("POST", "/acct/7"),
            ("POST", "/acct/7/orders"),
            ("POST", "/order/7"),
            ("POST", "/order/7/finalize"),
            ("POST", "/authz/7"),
            ("POST", "/chall/7"),
            ("POST", "/cert/7"),
        ];
        for (method, path) in routes {
            let route = Route::parse(method, path);
            assert!(route.is_ok(), "{method} {path} is a route");
            let stays = path == "/directory" || path.ends_with("new-nonce");
            assert_eq!(blocks(&route, true), !stays, "{method} {path} with a remote store");
            assert_eq!(blocks(&route, false), route.as_ref().is_ok_and(Route::blocks), "{method} {path} locally");
        }
        assert!(!blocks(&Route::parse("POST", "/nowhere"), true), "a refusal touches no store");
    }

    fn json_of(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[tokio::test]
    async fn health_is_503_with_the_reason_and_retry_after_when_the_store_does_not_answer() {
        let ok = health_within(|| Ok(()), HEALTH).await;
        assert_eq!((ok.status, json_of(&ok)), (200, json!({"status": "ok"})));
        assert_eq!(ok.header("Retry-After"), None);

        let down =
            health_within(|| Err(StorageError::Unavailable("the database is a read-only standby".into())), HEALTH)
                .await;
        assert_eq!(down.status, 503);
        assert_eq!(down.header("Retry-After"), Some("5"));
        let body = json_of(&down);
        assert_eq!(body["status"], "unavailable");
        assert!(body["reason"].as_str().is_some_and(|r| r.contains("read-only standby")), "{body}");

        let hung = health_within(
            || {
                std::thread::sleep(Duration::from_millis(500));
                Ok(())
            },
            Duration::from_millis(50),
        )
        .await;
        assert_eq!((hung.status, hung.header("Retry-After")), (503, Some("5")));
        assert!(json_of(&hung)["reason"].as_str().is_some_and(|r| r.contains("did not answer within 0.05 s")));
    }

    /// Before a fleet's first revocation the database holds no CRL: the
    /// depot's stands in (a fetch right after start or before the first
    /// revocation gets a CRL, not an error), and once the database's is
    /// read, it is the one served.
    #[test]
    fn a_shared_crl_is_served_first_and_the_depot_file_until_there_is_one() {
        use super::super::crl::CrlCache;
        let dir = tempfile::tempdir().unwrap();
        let (file, damaged) = (dir.path().join("CA.crl"), dir.path().join("Bad.crl"));
        std::fs::write(&file, b"depot DER").unwrap();
        std::fs::write(&damaged, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let cache = Arc::new(CrlCache::default());
        let crls = vec![
            ("CA.crl".to_string(), CrlSource::Shared(cache.clone())),
            ("CA.crl".to_string(), CrlSource::File(file)),
            ("Bad.crl".to_string(), CrlSource::File(damaged)),
        ];
        let served = |name: &str| {
            let r = crl(&crls, name);
            (r.status, String::from_utf8_lossy(&r.body).into_owned())
        };
        assert_eq!(served("CA.crl"), (200, "depot DER".into()));
        cache.set(7, Arc::from(&b"database DER"[..]));
        assert_eq!(served("CA.crl"), (200, "database DER".into()));
        assert_eq!(served("Other.crl").0, 404);
        assert_eq!(served("Bad.crl").0, 500);
    }
}
