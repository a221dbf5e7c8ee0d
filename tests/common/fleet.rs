//! A fleet as an operator runs one: N `certforge serve --database URL`
//! instances sharing one PostgreSQL cluster and one CA (the same CA files
//! copied into each instance's depot), behind haproxy, every instance
//! announcing the balancer's URL (`--external-url`). Everything listens on
//! 127.0.0.1; every process is stopped when the fleet is dropped (the
//! instances first, then haproxy, then the cluster).
//!
//! A test file using it includes, with `#[path]`: common, acme_server
//! (common/acme.rs), pg, haproxy, raw_acme and fleet.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use instant_acme::{Account, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus};

use crate::acme_server::Server;
use crate::common::Env;
use crate::haproxy::Haproxy;
use crate::pg::Pg;
use crate::raw_acme::{parse_response, Acme, Response};

/// The CA every instance issues under.
pub const CA: &str = "Fleet CA";

/// How long an instance may take to be seen UP by haproxy.
const UP_WITHIN: u64 = 30;

pub struct Fleet {
    // Dropped in this order: the instances, the balancer, their depots,
    // and the cluster last, so no instance outlives its database.
    pub servers: Vec<Option<Server>>,
    pub lb: Haproxy,
    pub envs: Vec<Env>,
    pub pg: Pg,
    /// Each instance's ACME (HTTPS) port and plain-HTTP CRL port.
    pub ports: Vec<u16>,
    pub crl_ports: Vec<u16>,
    /// "https://127.0.0.1:LB/directory": what every instance announces.
    pub directory: String,
    /// The CA certificate clients trust (instance 0's depot).
    pub ca_file: PathBuf,
    /// "/crl/NAME.crl", the CRL's path on every CRL port.
    pub crl_path: String,
    extra: Vec<String>,
}

/// The name of instance `i` in haproxy's configuration and in messages:
/// a, b, c…
pub fn name(i: usize) -> &'static str {
    ["a", "b", "c", "d", "e", "f", "g", "h"][i]
}

/// Polls `f` every 50 ms until it gives Some, for at most `secs`; panics
/// saying `what` (and the last value `show` gives) when it never does.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain-HTTP GET of 127.0.0.1:`port``path` (the CRL ports), bounded
/// to 10 s. None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<Response> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).ok()?;
    parse_response(&raw)
}

impl Fleet {
    /// A new cluster and `n` instances on it, each started with `extra`
    /// added to its `serve` arguments; returns once haproxy sees all UP.
    pub fn start(n: usize, extra: &[&str]) -> Fleet {
        Fleet::on(Pg::start(), n, extra)
    }

    /// [`start`](Fleet::start) on a cluster the test made.
    pub fn on(pg: Pg, n: usize, extra: &[&str]) -> Fleet {
        Fleet::behind(pg, n, extra, false)
    }

    /// [`on`](Fleet::on), with haproxy opening each connection with a
    /// PROXY protocol v2 header when `proxy_v2` (the instances then need
    /// `--proxy-protocol` in `extra`).
    pub fn behind(pg: Pg, n: usize, extra: &[&str], proxy_v2: bool) -> Fleet {
        let envs: Vec<Env> = (0..n).map(|_| Env::new()).collect();
        envs[0].ok(&["init", "--cn", CA, "--passphrase", ""]);
        // The same CA in every depot, as an operator copies it to each
        // machine of the fleet.
        for env in &envs[1..] {
            std::fs::create_dir_all(env.depot()).unwrap();
            for entry in std::fs::read_dir(envs[0].depot()).unwrap().flatten() {
                if entry.file_type().unwrap().is_file() {
                    let to = env.depot().join(entry.file_name());
                    std::fs::copy(entry.path(), &to).unwrap();
                }
            }
        }
        let ports: Vec<u16> = (0..n).map(|_| crate::common::free_port()).collect();
        let crl_ports: Vec<u16> = (0..n).map(|_| crate::common::free_port()).collect();
        let backends: Vec<(&str, u16)> = (0..n).map(|i| (name(i), ports[i])).collect();
        let lb = Haproxy::start(&backends, proxy_v2);
        let directory = format!("https://127.0.0.1:{}/directory", lb.port);
        let mut fleet = Fleet {
            servers: (0..n).map(|_| None).collect(),
            lb,
            envs,
            pg,
            ports,
            crl_ports,
            directory,
            ca_file: PathBuf::new(),
            crl_path: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            fleet.launch(i);
        }
        let banner = fleet.server(0).lines();
        fleet.ca_file = fleet.server(0).ca_file.clone();
        let crl_line = banner
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix("CRL ").map(str::trim))
            .find(|r| r.starts_with("http://"))
            .map(|r| r.split(' ').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no CRL line in the banner:\n{}", banner.join("\n")));
        fleet.crl_path = format!("/{}", crl_line.splitn(4, '/').nth(3).unwrap());
        for i in 0..n {
            fleet.lb.wait(name(i), "UP", UP_WITHIN);
        }
        fleet
    }

    /// "https://127.0.0.1:LB": the external URL.
    pub fn base(&self) -> &str {
        self.directory.trim_end_matches("/directory")
    }

    /// The `serve` arguments of instance `i`.
    pub fn serve_args(&self, i: usize) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--CA".into(),
            CA.into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.ports[i]),
            "--crl-listen".into(),
            format!("127.0.0.1:{}", self.crl_ports[i]),
            "--database".into(),
            self.pg.url(),
            "--external-url".into(),
            self.base().to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts instance `i` and waits for its banner (not for haproxy).
    fn launch(&mut self, i: usize) {
        let args = self.serve_args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(&self.envs[i], &args);
        assert_eq!(server.directory, self.directory, "instance {} announces the balancer's URL", name(i));
        self.servers[i] = Some(server);
    }

    pub fn server(&self, i: usize) -> &Server {
        self.servers[i].as_ref().unwrap_or_else(|| panic!("instance {} is not running", name(i)))
    }

    /// kill -9 of instance `i`: no drain, no cleanup, as a crash.
    pub fn kill9(&mut self, i: usize) {
        self.servers[i].take().unwrap_or_else(|| panic!("instance {} is not running", name(i))).kill9();
    }

    /// Starts instance `i` again (same ports, depot and arguments) and
    /// waits until haproxy sees it UP.
    pub fn restart(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "instance {} is still running", name(i));
        self.launch(i);
        self.lb.wait(name(i), "UP", UP_WITHIN);
    }

    /// A raw ACME client sending to instance `i` directly, signing the
    /// balancer's URLs.
    pub fn acme(&self, i: usize) -> Acme {
        Acme::at(self.ports[i], self.base(), &self.ca_file)
    }

    /// A raw ACME client sending through haproxy.
    pub fn acme_lb(&self) -> Acme {
        Acme::at(self.lb.port, self.base(), &self.ca_file)
    }

    /// `GET /health` on instance `i`'s ACME port.
    pub fn health(&self, i: usize) -> Response {
        self.acme(i).get("/health")
    }

    /// The CRL instance `i` serves now, DER (panics when it serves none).
    pub fn crl(&self, i: usize) -> Vec<u8> {
        let r = http_get(self.crl_ports[i], &self.crl_path)
            .unwrap_or_else(|| panic!("instance {}: no answer on its CRL port", name(i)));
        assert_eq!(r.status, 200, "instance {} CRL: {}", name(i), r.show());
        r.body
    }

    /// `certforge ARGS` run in instance 0's depot (the operator's side:
    /// `acme list|revoke|eab … --database URL`), bounded to 60 s.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = self.envs[0].cmd(args);
        c.env_remove("CERTFORGE_DATABASE_URL");
        let run = crate::common::run_group(&mut c, None, 60).expect("certforge runs");
        assert!(!run.timed_out, "certforge {args:?} still running after 60 s");
        Output { status: run.status.expect("reaped"), stdout: run.stdout, stderr: run.stderr }
    }

    /// Every instance's log so far, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.servers.iter().enumerate() {
            if let Some(s) = s {
                out.push_str(&format!("--- instance {} ---\n{}\n", name(i), s.lines().join("\n")));
            }
        }
        out.push_str(&format!("--- haproxy ---\n{}\n--- postgres ---\n{}", self.lb.log(), self.pg.log()));
        out
    }
}

/// A serial as hex digits, lowercase, without colons or leading zeros, so
/// that the DER bytes, openssl's text and certforge's JSON compare equal.
pub fn serial_hex(text: &str) -> String {
    let digits: String = text.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_string()
    }
}

/// [`serial_hex`] of a serial's DER content bytes.
pub fn serial_of_bytes(bytes: &[u8]) -> String {
    serial_hex(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The leaf (first certificate) of a PEM chain: (serial as [`serial_hex`], DER).
pub fn leaf(chain: &str) -> (String, Vec<u8>) {
    let der = pem::parse_many(chain)
        .expect("a PEM chain")
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .expect("a certificate in the chain")
        .into_contents();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    (serial_of_bytes(cert.raw_serial()), der.clone())
}

/// A CRL's number (decimal) and its revoked serials ([`serial_hex`]).
pub fn crl_entries(der: &[u8]) -> (String, Vec<String>) {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("a DER CRL");
    let number = crl.crl_number().map(|n| n.to_string()).unwrap_or_default();
    (number, crl.iter_revoked_certificates().map(|r| serial_of_bytes(r.raw_serial())).collect())
}

/// Every chain's leaf has its own serial and verifies for a TLS server
/// under `ca_file` (one `openssl verify` run); returns the serials.
pub fn check_chains(
    dir: &std::path::Path,
    ca_file: &std::path::Path,
    chains: &[String],
) -> std::collections::BTreeSet<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut serials = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let (serial, der) = leaf(chain);
        assert!(serials.insert(serial.clone()), "serial {serial} issued twice");
        let file = format!("leaf-{i}.pem");
        std::fs::write(dir.join(&file), pem::encode(&pem::Pem::new("CERTIFICATE", der))).unwrap();
        files.push(file);
    }
    let ca = ca_file.display().to_string();
    let mut args = vec!["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", &ca];
    args.extend(files.iter().map(String::as_str));
    let verified = crate::common::openssl_ok(dir, &args);
    assert_eq!(verified.lines().filter(|l| l.ends_with(": OK")).count(), chains.len(), "{verified}");
    serials
}

/// How far a load got, for the message when it does not finish, and for
/// a test that acts in the middle of it.
#[derive(Default)]
pub struct Progress {
    pub accounts: AtomicUsize,
    pub orders: AtomicUsize,
    pub failed: AtomicUsize,
}

/// One name a load client got a certificate for: the chain, and the error
/// of a first attempt when one failed (the order was then made afresh).
#[derive(Debug)]
pub struct Issued {
    pub name: String,
    pub chain: String,
    pub first_error: Option<String>,
}

/// One order for `name` with instant-acme on a server that skips
/// validation: new order, every challenge ready, finalize, certificate.
async fn order_one(account: &Account, name: &str) -> Result<String, String> {
    let ids = [Identifier::Dns(name.to_string())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.map_err(|e| format!("newOrder: {e}"))?;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(|e| format!("authz: {e}"))?;
        let mut challenge = authz.challenge(ChallengeType::Http01).ok_or("no http-01 challenge")?;
        challenge.set_ready().await.map_err(|e| format!("challenge: {e}"))?;
    }
    let status = order.refresh().await.map_err(|e| format!("order: {e}"))?.status;
    if status != OrderStatus::Ready {
        return Err(format!("order is {status:?}, not ready, after its challenges"));
    }
    order.finalize().await.map_err(|e| format!("finalize: {e}"))?;
    let chain = order.certificate().await.map_err(|e| format!("certificate: {e}"))?;
    chain.ok_or_else(|| "still processing after finalize".to_string())
}

/// One load client: its own account, then one order per name, one after
/// another. With `retry`, a failed step (an instance killed under it) is
/// allowed once per name: the client then makes a fresh order for the
/// same name, which must succeed.
async fn client(
    directory: String,
    ca_file: PathBuf,
    names: Vec<String>,
    retry: bool,
    progress: Arc<Progress>,
) -> Vec<Issued> {
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let create = || async {
        Account::builder_with_root(&ca_file).unwrap().create(&new, directory.clone(), None).await.map(|(a, _)| a)
    };
    let account = match create().await {
        Ok(a) => a,
        Err(e) if retry => {
            progress.failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            create().await.unwrap_or_else(|again| panic!("newAccount failed twice: {e}; then {again}"))
        }
        Err(e) => panic!("newAccount: {e}"),
    };
    progress.accounts.fetch_add(1, Ordering::Relaxed);
    let mut issued = Vec::new();
    for name in names {
        let (chain, first_error) = match order_one(&account, &name).await {
            Ok(chain) => (chain, None),
            Err(e) if retry => {
                progress.failed.fetch_add(1, Ordering::Relaxed);
                // As a client backs off after an error, long enough for the
                // balancer's checks (every 500 ms) to see a dead instance.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let chain = order_one(&account, &name)
                    .await
                    .unwrap_or_else(|again| panic!("{name}: failed, and a fresh order failed too: {e}; then {again}"));
                (chain, Some(e))
            }
            Err(e) => panic!("{name}: {e}"),
        };
        issued.push(Issued { name, chain, first_error });
        progress.orders.fetch_add(1, Ordering::Relaxed);
    }
    issued
}

/// `clients` instant-acme clients at once against `directory`, `orders`
/// orders each (names under `tag`), every instance skipping validation;
/// fails when it takes longer than `bound`, saying how far it got.
pub async fn load(
    directory: &str,
    ca_file: &std::path::Path,
    tag: &str,
    (clients, orders): (usize, usize),
    bound: Duration,
    retry: bool,
    progress: Arc<Progress>,
) -> Vec<Issued> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let names = (0..orders).map(|o| format!("{tag}-c{c}-o{o}.example.com")).collect();
        tasks.spawn(client(directory.to_string(), ca_file.to_path_buf(), names, retry, progress.clone()));
    }
    let all = async {
        let mut issued = Vec::new();
        while let Some(done) = tasks.join_next().await {
            issued.extend(done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        }
        issued
    };
    match tokio::time::timeout(bound, all).await {
        Ok(issued) => issued,
        Err(_) => panic!(
            "{tag}: not done after {bound:?}: {} of {clients} accounts made, {} of {} orders done, {} failures",
            progress.accounts.load(Ordering::Relaxed),
            progress.orders.load(Ordering::Relaxed),
            clients * orders,
            progress.failed.load(Ordering::Relaxed)
        ),
    }
}

/// The runtime the load clients run on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// One heavy fleet test at a time: on a small machine (CI has 2 cores),
/// fleets running side by side would slow each other past their bounds,
/// and the bounds are what tell a hang from a slow run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed while holding it does not make the others fail.
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fleet {
    /// Waits (≤ `secs`) until every running instance serves a CRL listing
    /// `serial` ([`serial_hex`]) and all serve the same bytes; returns
    /// that CRL's number. Panics saying what each serves otherwise.
    pub fn wait_revoked_everywhere(&self, serial: &str, secs: u64) -> String {
        let running: Vec<usize> = (0..self.servers.len()).filter(|i| self.servers[*i].is_some()).collect();
        let mut last = Vec::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eventually(secs, "every instance serving one CRL listing the serial", || {
                last = running.iter().map(|i| self.crl(*i)).collect::<Vec<_>>();
                let listed = last.iter().all(|der| crl_entries(der).1.iter().any(|s| s == serial));
                (listed && last.windows(2).all(|w| w[0] == w[1])).then(|| crl_entries(&last[0]).0)
            })
        }));
        found.unwrap_or_else(|_| {
            let shown: Vec<String> =
                last.iter().zip(&running).map(|(der, i)| format!("{}: {:?}", name(*i), crl_entries(der))).collect();
            panic!("{serial} is not in one CRL served by all within {secs} s: {}\n{}", shown.join("; "), self.logs())
        })
    }

    /// `certforge acme list --json --database URL`, parsed.
    pub fn list_json(&self) -> Vec<serde_json::Value> {
        let url = self.pg.url();
        let out = self.cli(&["acme", "list", "--json", "--database", &url]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "acme list --json: {}{text}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("acme list --json: {e}: {text}"));
        v.as_array().unwrap_or_else(|| panic!("acme list --json is not an array: {text}")).clone()
    }
}
