//! Prometheus's own programs in tests, each on 127.0.0.1 and stopped when
//! dropped: node_exporter with only its textfile collector, and a
//! Prometheus server with a scrape configuration and its query API.
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

/// node_exporter on 127.0.0.1, killed when dropped.
pub struct NodeExporter {
    child: Child,
    pub port: u16,
    /// Its log, shown when it does not answer.
    log: std::fs::File,
}

impl NodeExporter {
    /// Only the textfile collector, reading `dir`.
    pub fn start(dir: &Path) -> NodeExporter {
        let port = common::free_port();
        let log = tempfile::tempfile().unwrap();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile", "--web.disable-exporter-metrics"])
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .stdout(Stdio::null())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .expect("start prometheus-node-exporter");
        NodeExporter { child, port, log }
    }

    /// GET /metrics, retried until it answers 200 (at most 10 s).
    pub fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(body) = http_get(self.port, "/metrics") {
                return body;
            }
            if Instant::now() >= deadline {
                let mut log = String::new();
                let _ = (&self.log).rewind().and_then(|()| (&self.log).read_to_string(&mut log));
                panic!("node_exporter on port {} did not answer within 10 s:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a 200 answer to a plain HTTP/1.0 GET, bounded to 5 s.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_string())
}

/// A Prometheus server scraping every second, with its TSDB in a
/// temporary directory; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    log: std::fs::File,
}

impl Prometheus {
    /// Starts it with `jobs` (YAML list items under scrape_configs) and
    /// waits (at most 30 s) until it is ready.
    pub fn start(jobs: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}");
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = common::free_port();
        let log = tempfile::tempfile().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, port, _dir: dir, log };
        p.until("Prometheus to be ready", 30, || http_get(p.port, "/-/ready").map(|_| ()));
        p
    }

    /// The result vector of an instant query.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent(promql));
        let body = http_get(self.port, &path).unwrap_or_else(|| panic!("query {promql:?} failed"));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of a query that returns one series.
    pub fn value(&self, promql: &str) -> f64 {
        let result = self.query(promql);
        assert_eq!(result.len(), 1, "{promql}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// Retries `f` every 200 ms until it gives Some, for at most `secs`
    /// seconds; then fails showing Prometheus's log.
    pub fn until<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                let mut log = String::new();
                let _ = (&self.log).rewind().and_then(|()| (&self.log).read_to_string(&mut log));
                panic!("waited {secs} s for {what}; Prometheus's log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s` for a URL's query string: everything but unreserved characters
/// percent-encoded (RFC 3986 §2.3).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
