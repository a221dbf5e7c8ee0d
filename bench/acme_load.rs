//! ACME issuance under parallel load: the one client that measures both
//! `certforge serve` and Let's Encrypt's Pebble, so that the two servers'
//! figures differ by the server alone. bench/acme_vs_pebble.sh runs it:
//!
//!   cargo bench --bench acme_load -- --directory URL --root CA.pem \
//!       --parallel N --orders M [--names-per-order K] [--domain D] \
//!       [--server-pid PID]... [--db-pid PID]... [--timeout SECS] [--json]
//!
//! N tasks share one tokio runtime. Each has its own account (ES256) and its
//! own HTTP connection, as N separate ACME clients would, and makes M orders
//! one after another. An order is newOrder, every authorization's http-01
//! challenge set ready (the server is run with validation skipped), polling
//! until the order is ready, finalize with a CSR for a fresh P-256 key,
//! polling until the certificate is there, and its download. Its latency is
//! newOrder to downloaded certificate; the certificate is then checked to
//! parse, to name every requested name, and to have a serial no other
//! certificate of the run has.
//!
//! Exit status: 0 when every order succeeded, 1 when some failed, 2 when the
//! run did not finish within --timeout (Pebble can deadlock under parallel
//! orders): it then prints HANG and how many orders had finished. A bare
//! `cargo bench`, which gives no server, skips it with a note.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient, Identifier, NewAccount,
    NewOrder, Order, OrderStatus,
};
use tokio::task::JoinSet;
use tokio::time::timeout_at;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// How often an order is polled while the server works on it. Fixed, not a
/// flag, so that both servers' figures come from the same client.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long one order may stay pending or processing before it counts as
/// failed. A server that stops answering altogether is caught by --timeout.
const POLL_LIMIT: Duration = Duration::from_secs(10);

/// Error texts kept for the report; the rest are only counted.
const ERRORS_SHOWN: usize = 5;

#[derive(Parser)]
#[command(about = "ACME orders under parallel load (certforge serve, Pebble)")]
struct Args {
    /// The server's ACME directory URL. Without it there is nothing to
    /// measure, as under a bare `cargo bench`, and the run is skipped.
    #[arg(long, requires = "root")]
    directory: Option<String>,
    /// PEM file with the CA certificate(s) that the server's HTTPS
    /// certificate chains to.
    #[arg(long, requires = "directory")]
    root: Option<std::path::PathBuf>,
    /// Parallel clients, each with its own account.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    parallel: u32,
    /// Orders each client makes, one after another.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    orders: u32,
    /// DNS names in each order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    names_per_order: u32,
    /// Domain under which the names are made: t<client>-<order>-<k>.<domain>.
    #[arg(long, default_value = "bench.test")]
    domain: String,
    /// The server's process id: its CPU time per order is reported. Given
    /// several times (instances behind a balancer), their CPU is summed.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// What else serves the orders (the database's postmaster, a balancer):
    /// each process with its children, living or ended, is added to the
    /// server's CPU in a second figure.
    #[arg(long)]
    db_pid: Vec<u32>,
    /// Seconds the whole run (accounts and orders) may take before it is
    /// reported as a hang.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print one JSON object on one line instead of the text report.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One certificate obtained: how long it took, and what makes it distinct.
struct Issued {
    latency: Duration,
    /// Issuer name and serial number, both DER: unique per certificate.
    issuer_serial: (Vec<u8>, Vec<u8>),
}

fn main() {
    let args = Args::parse();
    let (Some(directory), Some(root)) = (&args.directory, &args.root) else {
        eprintln!("acme_load: skipped, no --directory (it needs a running server: bench/acme_vs_pebble.sh)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match runtime.block_on(run(&args, directory, root)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("acme_load: {err:#}");
            1
        }
    };
    // Exit at once: after a hang, tasks are still blocked on the server, and
    // dropping the runtime would only wait on their sockets.
    std::process::exit(code);
}

async fn run(args: &Args, directory: &str, root: &std::path::Path) -> Result<i32> {
    let roots = load_roots(root)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let finished = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let total = args.parallel as usize * args.orders as usize;

    // Accounts are made before the clock starts: the benchmark is about orders.
    let mut accounts = JoinSet::new();
    for _ in 0..args.parallel {
        let (roots, directory, requests) = (roots.clone(), directory.to_owned(), requests.clone());
        accounts.spawn(async move { new_account(roots, directory, requests).await });
    }
    let accounts = match timeout_at(deadline, accounts.join_all()).await {
        Ok(accounts) => accounts.into_iter().collect::<Result<Vec<_>>>().context("creating the accounts")?,
        Err(_) => return Ok(hang(args, 0, total, "creating the accounts")),
    };

    let server_cpu = ticks_of(&args.server_pid, cpu_ticks)?;
    let db_cpu = ticks_of(&args.db_pid, tree_cpu_ticks)?;
    let client_cpu = cpu_ticks(std::process::id())?;
    let requests_before = requests.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for (task, account) in accounts.into_iter().enumerate() {
        let names = NameSpace { task, per_order: args.names_per_order as usize, domain: args.domain.clone() };
        let (orders, finished) = (args.orders as usize, finished.clone());
        clients.spawn(async move { client(account, names, orders, &finished).await });
    }
    let outcomes = match timeout_at(deadline, clients.join_all()).await {
        Ok(outcomes) => outcomes.into_iter().flatten().collect::<Vec<_>>(),
        Err(_) => return Ok(hang(args, finished.load(Ordering::SeqCst), total, "ordering")),
    };
    let spent = Spent {
        wall: started.elapsed(),
        server_cpu_ticks: (!args.server_pid.is_empty())
            .then(|| Ok::<_, anyhow::Error>(ticks_of(&args.server_pid, cpu_ticks)? - server_cpu))
            .transpose()?,
        db_cpu_ticks: (!args.db_pid.is_empty())
            .then(|| Ok::<_, anyhow::Error>(ticks_of(&args.db_pid, tree_cpu_ticks)? - db_cpu))
            .transpose()?,
        client_cpu_ticks: cpu_ticks(std::process::id())? - client_cpu,
        requests: requests.load(Ordering::SeqCst) - requests_before,
    };

    let report = Report::new(outcomes, spent);
    if args.json {
        println!("{}", report.json(args));
    } else {
        print!("{}", report.text(args));
    }
    Ok(if report.failures.is_empty() { 0 } else { 1 })
}

/// Every CERTIFICATE block of the PEM file, as rustls trust anchors.
fn load_roots(path: &std::path::Path) -> Result<rustls::RootCertStore> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for block in pem::parse_many(text)?.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
        roots.add(block.into_contents().into())?;
    }
    if roots.is_empty() {
        bail!("{}: no CERTIFICATE block", path.display());
    }
    Ok(roots)
}

/// A new ES256 account (instant-acme's only key type) with its own HTTP
/// client. instant-acme's `Account::builder_with_root` would trust one root
/// only and leaves Nagle's algorithm on, which adds delayed-ACK stalls to
/// small requests; this client sets TCP_NODELAY, trusts every root given,
/// and speaks HTTP/1.1, which both servers serve. Its requests are counted
/// in `requests`.
async fn new_account(roots: rustls::RootCertStore, directory: String, requests: Arc<AtomicUsize>) -> Result<Account> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let https = HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().wrap_connector(tcp);
    let http: Client<_, BodyWrapper<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let http = Counted { inner: http, requests };
    let new_account = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _credentials) =
        Account::builder_with_http(Box::new(http)).create(&new_account, directory, None).await?;
    Ok(account)
}

/// An HTTP client that counts its requests: how many an order takes (polls
/// included) tells a server that answers at once from one that makes the
/// client come back.
struct Counted<C> {
    inner: C,
    requests: Arc<AtomicUsize>,
}

impl<C: HttpClient> HttpClient for Counted<C> {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.request(req)
    }
}

/// The names one client puts in its orders, distinct across clients and
/// orders so that no server can answer from an earlier authorization.
struct NameSpace {
    task: usize,
    per_order: usize,
    domain: String,
}

impl NameSpace {
    fn order(&self, order: usize) -> Vec<String> {
        (0..self.per_order).map(|k| format!("t{}-{order}-{k}.{}", self.task, self.domain)).collect()
    }
}

/// One client's orders, one after another; an order that fails does not stop
/// the next.
async fn client(account: Account, names: NameSpace, orders: usize, finished: &AtomicUsize) -> Vec<Result<Issued>> {
    let mut outcomes = Vec::with_capacity(orders);
    for n in 0..orders {
        let names = names.order(n);
        let outcome = issue(&account, &names).await.with_context(|| format!("order for {}", names.join(", ")));
        outcomes.push(outcome);
        finished.fetch_add(1, Ordering::SeqCst);
    }
    outcomes
}

/// One order, newOrder to checked certificate.
async fn issue(account: &Account, names: &[String]) -> Result<Issued> {
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let started = Instant::now();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("newOrder")?;

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.context("fetching an authorization")?;
        match authz.status {
            AuthorizationStatus::Pending => {
                let mut challenge = authz.challenge(ChallengeType::Http01).context("no http-01 challenge")?;
                challenge.set_ready().await.context("setting the http-01 challenge ready")?;
            }
            // A server may reuse an authorization it has already validated.
            AuthorizationStatus::Valid => {}
            status => bail!("authorization is {status:?}"),
        }
    }

    // Polled at once, then every POLL_INTERVAL: a server that validates
    // before its first poll is not made to wait a whole interval.
    let polling = Instant::now();
    loop {
        let state = order.refresh().await.context("polling the order")?;
        match state.status {
            OrderStatus::Ready => break,
            OrderStatus::Pending => pause(polling, "ready").await?,
            status => bail!("order is {status:?} before finalize: {:?}", state.error),
        }
    }

    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    order.finalize_csr(params.serialize_request(&key)?.der()).await.context("finalize")?;
    let chain = download(&mut order).await?;
    let latency = started.elapsed();

    let issuer_serial = check(&chain, names)?;
    Ok(Issued { latency, issuer_serial })
}

/// The certificate chain (PEM) once the order is valid, polling while it is
/// processing. `Order::certificate` refreshes a processing order itself and
/// downloads at once from one that finalize already left valid.
async fn download(order: &mut Order) -> Result<String> {
    let polling = Instant::now();
    loop {
        match order.certificate().await.context("fetching the certificate")? {
            Some(chain) => return Ok(chain),
            None => pause(polling, "valid").await?,
        }
    }
}

/// Waits one poll interval, or fails once the order has been polled for
/// POLL_LIMIT without reaching `awaited`.
async fn pause(polling: Instant, awaited: &str) -> Result<()> {
    if polling.elapsed() >= POLL_LIMIT {
        bail!("order not {awaited} after {} s of polling", POLL_LIMIT.as_secs());
    }
    tokio::time::sleep(POLL_INTERVAL).await;
    Ok(())
}

/// Parses the chain's first (leaf) certificate, checks that it names every
/// requested name, and returns its issuer and serial.
fn check(chain: &str, names: &[String]) -> Result<(Vec<u8>, Vec<u8>)> {
    let leaf = pem::parse_many(chain)?.into_iter().next().context("empty certificate chain")?;
    let (_, cert) = X509Certificate::from_der(leaf.contents()).map_err(|e| anyhow!("certificate: {e}"))?;
    let san = cert.subject_alternative_name()?.context("certificate has no subjectAltName")?;
    let dns: HashSet<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        })
        .collect();
    if let Some(missing) = names.iter().find(|name| !dns.contains(name.as_str())) {
        bail!("certificate does not name {missing}");
    }
    Ok((cert.issuer().as_raw().to_vec(), cert.raw_serial().to_vec()))
}

/// Prints (text or JSON) that the run did not finish in time, and returns
/// the exit status for it.
fn hang(args: &Args, finished: usize, total: usize, during: &str) -> i32 {
    if args.json {
        let line = serde_json::json!({
            "hang": true, "during": during, "parallel": args.parallel, "orders": total,
            "finished": finished, "timeout_s": args.timeout,
        });
        println!("{line}");
    } else {
        println!("HANG while {during}: {finished} of {total} orders finished in {} s", args.timeout);
    }
    2
}

/// The sum of `ticks` over `pids`.
fn ticks_of(pids: &[u32], ticks: fn(u32) -> Result<u64>) -> Result<u64> {
    pids.iter().map(|pid| ticks(*pid)).sum()
}

/// Fields 3 onwards of /proc/PID/stat (index 0 is field 3).
fn stat_fields(pid: u32) -> Result<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid}"))?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count the fields after its closing parenthesis, from field 3 (the
    // state, a letter, read as 0).
    let after_name = &stat[stat.rfind(')').context("/proc stat format")? + 1..];
    Ok(after_name.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// Field `n` (counted from 1) of `stat_fields`.
fn field(fields: &[u64], n: usize) -> Result<u64> {
    fields.get(n - 3).copied().context("/proc stat format")
}

/// Utime + stime of a process, all its threads, in clock ticks
/// (/proc/PID/stat fields 14 and 15, counted from 1).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let fields = stat_fields(pid)?;
    Ok(field(&fields, 14)? + field(&fields, 15)?)
}

/// CPU of a process and of all its children: its own utime + stime, the
/// cutime + cstime of the children it has waited for (fields 16 and 17),
/// and the same of each child still running (PostgreSQL's backends, one
/// per connection). A child that ends between two readings moves from the
/// second sum to the first, so nothing is lost or counted twice.
fn tree_cpu_ticks(pid: u32) -> Result<u64> {
    let own = |fields: &[u64]| -> Result<u64> { (14..=17).map(|n| field(fields, n)).sum() };
    let mut total = own(&stat_fields(pid)?)?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process that ended since the listing is skipped.
        let Ok(fields) = stat_fields(child) else { continue };
        if fields.get(1) == Some(&u64::from(pid)) {
            total += own(&fields)?;
        }
    }
    Ok(total)
}

/// Milliseconds per clock tick, the unit of /proc/PID/stat's CPU times
/// (sysconf(_SC_CLK_TCK), 100 Hz on Linux, so a tick is 10 ms).
fn ms_per_tick() -> f64 {
    // SAFETY: sysconf reads a configuration value and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1000.0 / hz as f64
}

/// What the order phase (accounts made) cost, all orders together.
struct Spent {
    wall: Duration,
    server_cpu_ticks: Option<u64>,
    /// The --db-pid processes and their children.
    db_cpu_ticks: Option<u64>,
    client_cpu_ticks: u64,
    /// HTTP requests the clients made.
    requests: usize,
}

struct Report {
    orders: usize,
    /// Latencies of the orders that succeeded, sorted.
    latencies: Vec<Duration>,
    failures: Vec<String>,
    spent: Spent,
}

impl Report {
    fn new(outcomes: Vec<Result<Issued>>, spent: Spent) -> Self {
        let orders = outcomes.len();
        let mut seen = HashSet::new();
        let mut latencies = Vec::with_capacity(orders);
        let mut failures = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(issued) if seen.insert(issued.issuer_serial.clone()) => latencies.push(issued.latency),
                Ok(issued) => failures.push(format!("duplicate serial {}", hex(&issued.issuer_serial.1))),
                Err(err) => failures.push(format!("{err:#}")),
            }
        }
        latencies.sort();
        Report { orders, latencies, failures, spent }
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.spent.wall.as_secs_f64()
    }

    /// Nearest-rank percentile of the successful orders' latencies, in ms.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies.get(rank.max(1) - 1).map(|d| d.as_secs_f64() * 1000.0)
    }

    /// `total` shared out over the successful orders.
    fn per_order(&self, total: f64) -> Option<f64> {
        (!self.latencies.is_empty()).then(|| total / self.latencies.len() as f64)
    }

    /// The server's CPU and the --db-pid processes', when there are both.
    fn server_db_ticks(&self) -> Option<u64> {
        Some(self.spent.server_cpu_ticks? + self.spent.db_cpu_ticks?)
    }

    /// CPU milliseconds per successful order.
    fn cpu_ms_per_order(&self, ticks: u64) -> Option<f64> {
        self.per_order(ticks as f64 * ms_per_tick())
    }

    fn json(&self, args: &Args) -> serde_json::Value {
        serde_json::json!({
            "hang": false,
            "parallel": args.parallel,
            "orders": self.orders,
            "ok": self.latencies.len(),
            "failures": self.failures.len(),
            "errors": self.failures.iter().take(ERRORS_SHOWN).collect::<Vec<_>>(),
            "wall_s": self.spent.wall.as_secs_f64(),
            "orders_per_s": self.per_second(),
            "p50_ms": self.percentile_ms(50.0),
            "p99_ms": self.percentile_ms(99.0),
            "server_cpu_ms_per_order": self.spent.server_cpu_ticks.and_then(|t| self.cpu_ms_per_order(t)),
            "server_db_cpu_ms_per_order": self.server_db_ticks().and_then(|t| self.cpu_ms_per_order(t)),
            "client_cpu_ms_per_order": self.cpu_ms_per_order(self.spent.client_cpu_ticks),
            "requests_per_order": self.per_order(self.spent.requests as f64),
        })
    }

    fn text(&self, args: &Args) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
        let mut out = String::new();
        let _ = writeln!(out, "parallel clients   {}", args.parallel);
        let _ = writeln!(out, "orders             {} ({} failed)", self.orders, self.failures.len());
        let _ = writeln!(out, "wall               {:.2} s", self.spent.wall.as_secs_f64());
        let _ = writeln!(out, "orders/s           {:.1}", self.per_second());
        let _ = writeln!(out, "latency p50        {}", ms(self.percentile_ms(50.0)));
        let _ = writeln!(out, "latency p99        {}", ms(self.percentile_ms(99.0)));
        if let Some(ticks) = self.spent.server_cpu_ticks {
            let _ = writeln!(out, "server CPU/order   {}", ms(self.cpu_ms_per_order(ticks)));
        }
        if let Some(ticks) = self.server_db_ticks() {
            let _ = writeln!(out, "server+db CPU/order {}", ms(self.cpu_ms_per_order(ticks)));
        }
        let _ = writeln!(out, "client CPU/order   {}", ms(self.cpu_ms_per_order(self.spent.client_cpu_ticks)));
        let per_order = self.per_order(self.spent.requests as f64);
        let _ = writeln!(out, "requests/order     {}", per_order.map_or("-".to_owned(), |v| format!("{v:.2}")));
        for failure in self.failures.iter().take(ERRORS_SHOWN) {
            let _ = writeln!(out, "error: {failure}");
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
