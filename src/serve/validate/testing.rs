//! What the checks' tests share: identifiers, one-connection servers on
//! loopback, and Pebble's challenge test server. Every wait is bounded and
//! every thread and process ends with its test.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{http01, Checks, Deadline, DeadlineStream};
use crate::acme::model::{Ident, IdentKind};

/// A key authorization as the engine makes one: token "." thumbprint.
pub const KEY_AUTHORIZATION: &str =
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

/// How long a test server waits for its one client.
const WAIT: Duration = Duration::from_secs(10);

pub fn dns(name: &str) -> Ident {
    Ident { kind: IdentKind::Dns, value: name.into() }
}

pub fn ip(address: &str) -> Ident {
    Ident { kind: IdentKind::Ip, value: address.into() }
}

/// A loopback port nothing listens on (it was bound, then let go).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Listens on `bind` (port 0) and hands the first connection to `handler`
/// on a thread; the thread gives up after [`WAIT`] without one, so joining
/// it never hangs. Returns the address and the thread, whose result is the
/// handler's (None when no client came).
pub fn serve_once<T: Send + 'static>(
    bind: &str,
    handler: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<Option<T>>) {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let thread = thread::spawn(move || {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(WAIT)).unwrap();
                    stream.set_write_timeout(Some(WAIT)).unwrap();
                    return Some(handler(stream));
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
        None
    });
    (addr, thread)
}

/// `pebble-challtestsrv` on loopback ports of its own: DNS (answering A
/// 127.0.0.1 and AAAA ::1 for any name, and the TXT records it is given),
/// http-01 and tls-alpn-01 responders, and its management API. Killed when
/// dropped.
pub struct ChallTestSrv {
    child: Child,
    dns: SocketAddr,
    management: SocketAddr,
    http01: u16,
    tlsalpn01: u16,
}

impl ChallTestSrv {
    /// Starts it, or None when it is not installed and CI does not require
    /// it (CERTFORGE_REQUIRE_PEERS, as in tests/common/clients.rs).
    pub fn start() -> Option<ChallTestSrv> {
        let [dns, management, http01, tlsalpn01] = [(); 4].map(|_| closed_port());
        let at = |port: u16| format!("127.0.0.1:{port}");
        let spawned = Command::new("pebble-challtestsrv")
            .args(["-dns01", &at(dns), "-management", &at(management), "-http01", &at(http01)])
            .args(["-tlsalpn01", &at(tlsalpn01), "-https01", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
                    "pebble-challtestsrv is required here but does not run ({e}); install Pebble's challtestsrv"
                );
                eprintln!("SKIPPED: pebble-challtestsrv is not installed ({e})");
                return None;
            }
        };
        let mut srv = ChallTestSrv {
            child,
            dns: at(dns).parse().unwrap(),
            management: at(management).parse().unwrap(),
            http01,
            tlsalpn01,
        };
        // Ready once every listener accepts (the DNS server serves TCP too).
        let until = Instant::now() + WAIT;
        for port in [dns, management, http01, tlsalpn01] {
            while TcpStream::connect(at(port)).is_err() {
                assert!(Instant::now() < until, "pebble-challtestsrv did not listen on {port} within {WAIT:?}");
                // A port taken since closed_port() let it go, say.
                if let Ok(Some(status)) = srv.child.try_wait() {
                    panic!("pebble-challtestsrv exited early: {status}");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Some(srv)
    }

    /// Checks that look where this server answers.
    pub fn checks(&self) -> Checks {
        Checks {
            http01_port: self.http01,
            tlsalpn01_port: self.tlsalpn01,
            dns_resolver: Some(self.dns),
            timeout: Duration::from_secs(5),
        }
    }

    /// Calls its management API, e.g. `/set-txt`; panics unless it says 200.
    pub fn post(&self, path: &str, body: &serde_json::Value) {
        let body = body.to_string();
        let tcp = TcpStream::connect_timeout(&self.management, WAIT).unwrap();
        let mut stream = DeadlineStream { tcp, deadline: Deadline(Instant::now() + WAIT) };
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.management,
            body.len()
        )
        .unwrap();
        let response = http01::read_response(&mut stream).unwrap();
        assert_eq!(response.status, 200, "{path} {body}: {}", String::from_utf8_lossy(&response.body));
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
