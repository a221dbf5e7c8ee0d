//! `certforge serve` under load: many ACME clients at once (instant-acme in
//! process, lego as separate processes), each with its own account, against
//! one server with `--skip-validation`. Every certificate must be distinct,
//! valid under the CA, in the depot, and the server must answer no 5xx and
//! never hang: every run is bounded, and a hang fails with how far it got.
//!
//! Measured with `cargo test --release` (what CI runs) on 2 shared cores:
//! 16 × 10 orders 1.4 s, 64 × 10 orders 4.5 s, 20 runs of 16 × 2 orders
//! 7 s, 16 lego processes 0.6 s; 12-15 s for the file. A debug build takes
//! about twice as long (24 s), well inside every bound.

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use acme_server::Server;
use common::{openssl_ok, Env};
use instant_acme::{Account, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus};

/// One load test at a time: on a small machine (CI has 2 cores), tests
/// running side by side would slow each other past their bounds, and the
/// bounds are what tell a hang from a slow run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed while holding it does not make the others fail.
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A fresh depot with a CA, and `serve` on it with every challenge passing.
fn start(env: &Env) -> Server {
    env.ok(&["init", "--cn", "Load CA", "--passphrase", ""]);
    Server::start(env, &["--CA", "Load CA", "--listen", "127.0.0.1:0", "--skip-validation"])
}

/// How far a load run got, for the message when it does not finish.
#[derive(Default)]
struct Progress {
    accounts: AtomicUsize,
    orders: AtomicUsize,
}

/// One client: its own account, then `orders` orders one after another,
/// each for one name. Returns the chains (PEM).
async fn client(directory: String, ca_file: PathBuf, names: Vec<String>, progress: Arc<Progress>) -> Vec<String> {
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _) =
        Account::builder_with_root(&ca_file).unwrap().create(&new, directory, None).await.expect("newAccount");
    progress.accounts.fetch_add(1, Ordering::Relaxed);
    let mut chains = Vec::new();
    for name in names {
        let ids = [Identifier::Dns(name.clone())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz.unwrap();
            authz.challenge(ChallengeType::Http01).expect("http-01").set_ready().await.unwrap();
        }
        // This server checks a challenge and issues while the request
        // waits, so no polling: the order is ready at once, and valid as
        // soon as finalize answers.
        let status = order.refresh().await.unwrap().status;
        assert_eq!(status, OrderStatus::Ready, "{name}");
        order.finalize().await.unwrap_or_else(|e| panic!("{name}: finalize: {e}"));
        let chain = order.certificate().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        chains.push(chain.unwrap_or_else(|| panic!("{name}: still processing after finalize")));
        progress.orders.fetch_add(1, Ordering::Relaxed);
    }
    chains
}

/// `clients` clients at once, `orders` orders each, names under `tag`;
/// fails when it takes longer than `bound`, saying how far it got.
async fn load(server: &Server, tag: &str, clients: usize, orders: usize, bound: Duration) -> Vec<String> {
    let progress = Arc::new(Progress::default());
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let names = (0..orders).map(|o| format!("{tag}-c{c}-o{o}.example.com")).collect();
        tasks.spawn(client(server.directory.clone(), server.ca_file.clone(), names, progress.clone()));
    }
    let all = async {
        let mut chains = Vec::new();
        while let Some(done) = tasks.join_next().await {
            chains.extend(done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        }
        chains
    };
    match tokio::time::timeout(bound, all).await {
        Ok(chains) => chains,
        Err(_) => panic!(
            "{tag}: not done after {bound:?}: {} of {clients} accounts made, {} of {} orders done",
            progress.accounts.load(Ordering::Relaxed),
            progress.orders.load(Ordering::Relaxed),
            clients * orders
        ),
    }
}

/// Checks what a load produced: distinct serials, every leaf valid for a
/// TLS server under the CA (one openssl run), `chains.len()` certificates
/// in the depot, and no 5xx answered.
fn check(env: &Env, server: &Server, chains: &[String]) {
    let dir = env.tmp.path().join("leaves");
    std::fs::create_dir_all(&dir).unwrap();
    let mut serials = HashSet::new();
    let mut files = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let leaf = pem::parse(chain).expect("a PEM chain");
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.contents()).unwrap();
        assert!(serials.insert(cert.raw_serial().to_vec()), "serial {} issued twice", cert.raw_serial_as_string());
        let file = format!("leaf-{i}.pem");
        std::fs::write(dir.join(&file), pem::encode(&leaf)).unwrap();
        files.push(file);
    }
    let ca = server.ca_file.display().to_string();
    let mut args = vec!["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", &ca];
    args.extend(files.iter().map(String::as_str));
    let verified = openssl_ok(&dir, &args);
    assert_eq!(verified.lines().filter(|l| l.ends_with(": OK")).count(), chains.len(), "{verified}");

    // The leaf of each order is D/NAME.acme-ORDER.crt (a root CA: no chain
    // files beside it).
    let in_depot = std::fs::read_dir(env.depot())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".acme-") && n.ends_with(".crt"))
        .count();
    assert_eq!(in_depot, chains.len(), "certificates in the depot");
    let errors: Vec<String> = server.lines().into_iter().filter(|l| l.contains("status=5")).collect();
    assert!(errors.is_empty(), "the server answered 5xx:\n{}", errors.join("\n"));
}

/// `clients` instant-acme clients × `orders` orders on one server, within
/// `bound`.
fn clients_at_once(clients: usize, orders: usize, bound: Duration) {
    let _one = one_at_a_time();
    let env = Env::new();
    let mut server = start(&env);
    let chains = runtime().block_on(load(&server, "load", clients, orders, bound));
    assert_eq!(chains.len(), clients * orders);
    check(&env, &server, &chains);
    server.stop();
}

#[test]
fn sixteen_clients_each_with_ten_orders() {
    clients_at_once(16, 10, Duration::from_secs(180));
}

#[test]
fn sixty_four_clients_each_with_ten_orders() {
    clients_at_once(64, 10, Duration::from_secs(180));
}

/// A hang that shows once in many runs (a lock held across a request, a
/// nonce race) would pass a single load; twenty short ones on one server
/// give it twenty chances.
#[test]
fn no_hang_in_twenty_runs_of_sixteen_clients() {
    let _one = one_at_a_time();
    let env = Env::new();
    let mut server = start(&env);
    let rt = runtime();
    let mut chains = Vec::new();
    for run in 0..20 {
        chains.extend(rt.block_on(load(&server, &format!("run{run}"), 16, 2, Duration::from_secs(30))));
    }
    assert_eq!(chains.len(), 20 * 16 * 2);
    check(&env, &server, &chains);
    server.stop();
}

/// lego, a separate program with its own HTTP stack, 16 at once, each with
/// its own account, key and challenge port (it listens there even though
/// the server does not connect).
#[test]
fn sixteen_lego_processes_at_once() {
    if !clients::require("lego", &["--version"], "apt-get install lego") {
        return;
    }
    let _one = one_at_a_time();
    let env = Env::new();
    let mut server = start(&env);
    // Distinct, and let go just before lego binds them.
    let ports = common::free_ports::<16>();
    let started = Instant::now();
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let runs: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(n, port)| {
                let mut cmd = std::process::Command::new("lego");
                cmd.env("LEGO_CA_CERTIFICATES", &server.ca_file)
                    .arg("--server")
                    .arg(&server.directory)
                    .args(["--accept-tos", "--email", "a@example.com", "--domains", &format!("t{n}.example.com")])
                    .args(["--http", "--http.port", &format!("127.0.0.1:{port}"), "--path"])
                    .arg(env.tmp.path().join(format!("lego/{n}")))
                    .arg("run");
                // Without the machine's CA bundle variables (clients::clean):
                // the depot's CA is what lego is told to trust.
                s.spawn(move || clients::run_bounded(&mut cmd, 120))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let failed: Vec<String> = results
        .iter()
        .enumerate()
        .filter(|(_, (ok, _))| !ok)
        .map(|(n, (_, out))| format!("lego {n} failed after {:?}:\n{out}", started.elapsed()))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    let chains: Vec<String> = (0..16)
        .map(|n| {
            let crt = env.tmp.path().join(format!("lego/{n}/certificates/t{n}.example.com.crt"));
            std::fs::read_to_string(&crt).unwrap_or_else(|e| panic!("{}: {e}", crt.display()))
        })
        .collect();
    check(&env, &server, &chains);
    server.stop();
}
