//! haproxy in front of `certforge serve` instances, as an operator would
//! run a fleet: TCP mode (TLS ends at each instance, so every instance
//! serves the balancer's name), round robin, and an HTTPS health check of
//! `GET /health` every 500 ms that takes an instance out after two
//! failures and back after two passes. Its configuration is checked with
//! `haproxy -c` before it starts; it runs in the foreground (`-db`) as our
//! child and is killed when dropped. Its admin socket answers `show stat`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The backend's name in the configuration and in `show stat`.
pub const BACKEND: &str = "certforge";

pub struct Haproxy {
    child: Child,
    /// The frontend's port on 127.0.0.1.
    pub port: u16,
    stats: PathBuf,
    dir: tempfile::TempDir,
}

/// The haproxy program: on PATH, else Debian's /usr/sbin/haproxy (not on
/// a non-root PATH).
pub fn program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file());
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
}

/// Whether haproxy is here. When it is missing the test skips, saying
/// SKIPPED, unless CI requires the peers (CERTFORGE_REQUIRE_PEERS).
pub fn available() -> bool {
    if program().is_some() {
        return true;
    }
    assert!(!crate::common::required(), "haproxy is required here but missing (apt-get install haproxy)");
    eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
    false
}

/// The configuration: `backends` are (server name, port on 127.0.0.1).
/// With `proxy_v2`, haproxy opens each connection (checks included) with a
/// PROXY protocol v2 header carrying the client's address.
pub fn config(port: u16, stats: &Path, backends: &[(&str, u16)], proxy_v2: bool) -> String {
    let mut c = format!(
        "global
    stats socket {stats} level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    # Every retry of a failed connection goes to another server: a killed
    # instance costs a client one connection attempt, not three.
    option redispatch 1
frontend acme
    bind 127.0.0.1:{port}
    default_backend {BACKEND}
backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host certforge
    http-check expect status 200
    default-server check check-ssl verify none inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions{}
",
        if proxy_v2 { " send-proxy-v2 check-send-proxy" } else { "" },
        stats = stats.display(),
    );
    for (name, port) in backends {
        c.push_str(&format!("    server {name} 127.0.0.1:{port}\n"));
    }
    c
}

impl Haproxy {
    /// Starts haproxy on a free port in front of `backends` and returns
    /// once its frontend accepts connections (≤ 10 s). The backends need
    /// not be up yet: they are DOWN until their health checks pass.
    pub fn start(backends: &[(&str, u16)], proxy_v2: bool) -> Haproxy {
        Haproxy::start_on(crate::common::free_port(), backends, proxy_v2)
    }

    /// [`start`](Haproxy::start) on a port the caller chose (a fleet needs
    /// the balancer's URL before its instances start).
    pub fn start_on(port: u16, backends: &[(&str, u16)], proxy_v2: bool) -> Haproxy {
        let program = program().expect("haproxy is installed (check haproxy::available() first)");
        let dir = tempfile::Builder::new().prefix("certforge-haproxy").tempdir().expect("tempdir");
        let stats = dir.path().join("stats.sock");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port, &stats, backends, proxy_v2)).unwrap();
        let mut check = Command::new(&program);
        check.arg("-c").arg("-f").arg(&cfg);
        let run = crate::common::run_group(&mut check, None, 30).expect("haproxy -c runs");
        assert!(
            run.status.is_some_and(|s| s.success()),
            "haproxy -c refused the configuration:\n{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(&program)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut lb = Haproxy { child, port, stats, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !lb.stats.exists() {
            if let Some(status) = lb.child.try_wait().unwrap() {
                panic!("haproxy exited ({status}) before serving:\n{}", lb.log());
            }
            assert!(Instant::now() < deadline, "haproxy did not accept on {port} in 10 s:\n{}", lb.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        lb
    }

    /// What haproxy printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The answer to an admin-socket command (≤ 5 s).
    pub fn admin(&self, command: &str) -> String {
        let mut s = UnixStream::connect(&self.stats).unwrap_or_else(|e| panic!("{}: {e}", self.stats.display()));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap_or_else(|e| panic!("haproxy {command:?}: {e}"));
        out
    }

    /// A column of `show stat` for one server of the backend (`status`:
    /// "UP", "DOWN", "UP 1/2" while it rises…; `check_status`: "L7OK"…).
    pub fn stat(&self, server: &str, column: &str) -> String {
        let csv = self.admin("show stat");
        let mut lines = csv.lines();
        let head: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let at = |name: &str| head.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {csv}"));
        let (px, sv, col) = (at("pxname"), at("svname"), at(column));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.get(px) == Some(&BACKEND) && f.get(sv) == Some(&server))
            .and_then(|f| f.get(col).map(|v| v.to_string()))
            .unwrap_or_else(|| panic!("no server {server} in haproxy's stats:\n{csv}"))
    }

    /// The server's state as the health checks see it.
    pub fn state(&self, server: &str) -> String {
        self.stat(server, "status")
    }

    /// Waits (≤ `secs`) until `server`'s state is exactly `want` ("UP" or
    /// "DOWN"); panics with the state and the log otherwise. "UP" also
    /// needs a passed check (L7OK): a server is UP before its first check.
    pub fn wait(&self, server: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let state = self.state(server);
            if state == want && (want != "UP" || self.stat(server, "check_status") == "L7OK") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy: {server} is {state:?} (last check {}), not {want} after {secs} s:\n{}",
                self.stat(server, "check_status"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many connections haproxy sent to `server` so far.
    pub fn sessions(&self, server: &str) -> u64 {
        self.stat(server, "stot").parse().unwrap_or(0)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
