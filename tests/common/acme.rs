//! A `certforge serve` process for tests: started on a free loopback port
//! (`--listen 127.0.0.1:0`), its directory URL read from what it prints,
//! stopped (SIGTERM, then SIGKILL) when dropped, and the instant-acme
//! steps tests drive it with. Every wait is bounded.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::CertificateDer;

use crate::common::Env;

pub struct Server {
    child: Option<Child>,
    /// "https://127.0.0.1:PORT/directory".
    pub directory: String,
    /// The CA file clients trust (the depot root's .crt).
    pub ca_file: PathBuf,
    /// Everything it printed on stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `certforge --depot-path D serve ARGS` and waits (at most 30 s)
    /// until it prints its directory URL.
    pub fn start(env: &Env, args: &[&str]) -> Server {
        Server::start_cmd(env, env.cmd(&[&["serve"], args].concat()))
    }

    /// [`start`](Self::start) with a `certforge … serve …` command built
    /// by the caller (e.g. with a token's configuration).
    pub fn start_cmd(env: &Env, mut cmd: std::process::Command) -> Server {
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start certforge serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server { child: Some(child), directory: String::new(), ca_file: PathBuf::new(), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = server
                .lines()
                .iter()
                .find_map(|l| l.trim_start().strip_prefix("directory").map(|rest| rest.trim().to_string()));
            if let Some(url) = found {
                server.directory = url;
                break;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("certforge serve exited ({status}) before serving:\n{}", server.lines().join("\n"));
            }
            assert!(Instant::now() < deadline, "certforge serve did not start in 30 s:\n{}", server.lines().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
        let trust = server.lines().iter().find_map(|l| {
            l.trim_start().strip_prefix("trust").map(|r| r.trim().split(" (").next().unwrap_or("").to_string())
        });
        let trust = PathBuf::from(trust.expect("a trust line"));
        server.ca_file = if trust.is_absolute() { trust } else { env.tmp.path().join(trust) };
        server
    }

    /// The base URL, without "/directory".
    pub fn base(&self) -> &str {
        self.directory.trim_end_matches("/directory")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base().rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits at most 10 s for a line of the server's log that `wanted`
    /// accepts, and panics naming `what` without one. The log reaches the
    /// test through a pipe and a thread, so a line can come a moment after
    /// the reply or the closed connection it belongs to.
    pub fn wait_line(&self, what: &str, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.lines().iter().any(|l| wanted(l)) {
            assert!(Instant::now() < deadline, "no {what} in the server's log:\n{}", self.lines().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, and waits (at most 40 s: the drain is 30) for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        exited_within(&mut child, 40).unwrap_or_else(|| panic!("certforge serve did not stop within 40 s of SIGTERM"))
    }

    /// kill -9: no drain, no cleanup, as a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `serve ARGS` expecting it to refuse to start: exit 2 within 30 s
/// (a server that starts instead is killed, and the test fails). Returns
/// what it printed.
pub fn refused(env: &Env, args: &[&str]) -> String {
    let mut child = env
        .cmd(&[&["serve"], args].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certforge serve");
    let status =
        exited_within(&mut child, 30).unwrap_or_else(|| panic!("certforge serve {args:?} started instead of refusing"));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "serve {args:?}: {err}");
    err
}

/// The child's exit status if it exits within `secs`; else it is killed
/// (and reaped) and the answer is None.
fn exited_within(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// http-01 answers (token → key authorization), served on 127.0.0.1 by a
/// task that ends with the test's runtime.
pub type Answers = Arc<Mutex<HashMap<String, String>>>;

/// A new account on `server`, trusting its CA file.
pub async fn account(server: &Server, eab: Option<&ExternalAccountKey>) -> Account {
    let new =
        NewAccount { contact: &["mailto:ops@example.com"], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _) = Account::builder_with_root(&server.ca_file)
        .unwrap()
        .create(&new, server.directory.clone(), eab)
        .await
        .expect("account");
    account
}

/// Orders `ids`, answers every http-01 challenge through `answers`, and
/// returns the chain (PEM) and the key.
pub async fn obtain(account: &Account, ids: &[Identifier], answers: &Answers) -> (String, String) {
    let mut order = account.new_order(&NewOrder::new(ids)).await.expect("new order");
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.unwrap();
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authz.challenge(ChallengeType::Http01).expect("an http-01 challenge");
        let ka = challenge.key_authorization().as_str().to_string();
        answers.lock().unwrap().insert(ka.split('.').next().unwrap().to_string(), ka);
        challenge.set_ready().await.unwrap();
    }
    let status = order.poll_ready(&RetryPolicy::default()).await.unwrap();
    assert_eq!(status, OrderStatus::Ready);
    let key = order.finalize().await.expect("finalize");
    let chain = order.poll_certificate(&RetryPolicy::default()).await.expect("certificate");
    (chain, key)
}

/// The first certificate of a PEM chain, DER.
pub fn first_der(chain: &str) -> CertificateDer<'static> {
    CertificateDer::from(pem::parse(chain).unwrap().into_contents())
}
