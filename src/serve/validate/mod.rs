//! The challenge checks of `certforge serve`: the engine's [`Validator`]
//! put on the network. http-01 (RFC 8555 §8.3) fetches the key
//! authorization over HTTP, tls-alpn-01 (RFC 8737) reads it from a
//! certificate offered under ALPN "acme-tls/1", dns-01 (RFC 8555 §8.4)
//! finds its digest in a TXT record. IP identifiers (RFC 8738) get the
//! first two.
//!
//! The engine calls [`Validator::validate`] synchronously from a
//! `spawn_blocking` thread (or, in tests, with no runtime at all), so the
//! checks block: plain `std::net` sockets for HTTP and TLS, and for DNS a
//! current-thread runtime of their own (see `dns01`). Every check is
//! bounded by [`Checks::timeout`] as a whole, not per step, so a server that
//! drips one byte a second cannot hold a validation open.

mod dns01;
mod http01;
#[cfg(test)]
mod testing;
mod tlsalpn01;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::acme::model::{ChallengeKind, Ident, IdentKind};
use crate::acme::problem::{Kind, Problem};
use crate::acme::Validator;

/// The challenge checks and where they look.
#[derive(Debug, Clone)]
pub struct Checks {
    /// Where http-01 connects: 80 by RFC 8555 §8.3, another for tests
    /// (Pebble's challenge test server listens on 5002).
    pub http01_port: u16,
    /// Where tls-alpn-01 connects: 443 by RFC 8737 §3.
    pub tlsalpn01_port: u16,
    /// The DNS server asked for TXT records and for the addresses of DNS
    /// identifiers (as Pebble does with `-dnsserver`), over UDP and TCP;
    /// `None` asks the system's resolvers (/etc/resolv.conf).
    pub dns_resolver: Option<SocketAddr>,
    /// The most one check may take, connection, lookups and reads together.
    pub timeout: Duration,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks { http01_port: 80, tlsalpn01_port: 443, dns_resolver: None, timeout: Duration::from_secs(10) }
    }
}

impl Validator for Checks {
    fn validate(&self, ident: &Ident, kind: ChallengeKind, key_authorization: &str) -> Result<(), Problem> {
        let deadline = Deadline(Instant::now() + self.timeout);
        let result = match kind {
            ChallengeKind::Http01 => http01::check(self, ident, key_authorization, deadline),
            ChallengeKind::TlsAlpn01 => tlsalpn01::check(self, ident, key_authorization, deadline),
            ChallengeKind::Dns01 => dns01::check(self, ident, key_authorization, deadline),
        };
        // Every detail names its challenge type, so that a client's error
        // says which of the authorization's challenges failed.
        result.map_err(|mut p| {
            p.detail = format!("{}: {}", kind.name(), p.detail);
            p
        })
    }
}

impl Checks {
    /// A TCP connection to `ident` on `port`. A name's addresses are tried
    /// in the resolver's order (IPv6 first, as Boulder does) until one
    /// accepts, so a host listening on one family only still passes.
    fn connect(&self, ident: &Ident, port: u16, deadline: Deadline) -> Result<Peer, Problem> {
        let addresses = match ident.kind {
            IdentKind::Ip => vec![ip(ident)?],
            IdentKind::Dns => dns01::addresses(self, &ident.value, deadline)?,
        };
        let mut failures = Vec::new();
        for address in addresses {
            let addr = SocketAddr::new(address, port);
            match deadline.left().and_then(|left| TcpStream::connect_timeout(&addr, left)) {
                Ok(tcp) => {
                    let target = match ident.kind {
                        IdentKind::Ip => addr.to_string(),
                        IdentKind::Dns => format!("{}:{port} ({address})", ident.value),
                    };
                    return Ok(Peer { stream: DeadlineStream { tcp, deadline }, target });
                }
                Err(e) => failures.push(format!("{addr}: {}", io_error(&e))),
            }
        }
        Err(Problem::new(
            Kind::Connection,
            format!("could not connect to {} port {port} ({})", ident.value, failures.join("; ")),
        ))
    }
}

/// An open connection and how details name it: "127.0.0.1:5001", or
/// "www.example.com:443 (192.0.2.1)" for a name.
struct Peer {
    stream: DeadlineStream,
    target: String,
}

/// The instant a check must be over by.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    /// The time left, or a TimedOut error once there is none.
    fn left(self) -> io::Result<Duration> {
        match self.0.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(io::Error::new(io::ErrorKind::TimedOut, "the check's time ran out")),
        }
    }
}

/// A TCP stream whose every read and write waits at most until the
/// deadline: socket timeouts alone bound each call, not their sum.
struct DeadlineStream {
    tcp: TcpStream,
    deadline: Deadline,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.deadline.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.deadline.left()?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// An I/O error as a detail says it. A socket timeout reads as WouldBlock
/// on Unix; both are the deadline passing.
fn io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_string(),
        _ => e.to_string(),
    }
}

/// An IP identifier's address. The engine's policy has already parsed it,
/// so a failure here is the server's own fault.
fn ip(ident: &Ident) -> Result<IpAddr, Problem> {
    ident
        .value
        .parse()
        .map_err(|_| Problem::new(Kind::ServerInternal, format!("{:?} is not an IP address", ident.value)))
}

/// The token of a key authorization "TOKEN.THUMBPRINT" (RFC 8555 §8.1).
fn token(key_authorization: &str) -> &str {
    key_authorization.split('.').next().unwrap_or(key_authorization)
}

/// SHA-256 of the key authorization: tls-alpn-01 puts it in the
/// certificate (RFC 8737 §3), dns-01 in the TXT record (§8.4).
fn digest(key_authorization: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// What a peer sent, quoted for a detail and cut short: a problem
/// document is no place for a whole web page.
fn quote(found: &[u8]) -> String {
    const MAX: usize = 100;
    let text = String::from_utf8_lossy(&found[..found.len().min(MAX)]);
    let more = if found.len() > MAX { format!(" (and {} more bytes)", found.len() - MAX) } else { String::new() };
    format!("{text:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::testing::{dns, ip, ChallTestSrv, KEY_AUTHORIZATION};
    use super::*;

    #[test]
    fn the_token_is_what_precedes_the_first_dot() {
        assert_eq!(token("abc.def.ghi"), "abc");
        assert_eq!(token("nodot"), "nodot");
    }

    #[test]
    fn quotes_are_cut_at_100_bytes() {
        assert_eq!(quote(b"ok\n"), "\"ok\\n\"");
        let long = quote(&[b'a'; 150]);
        assert!(long.ends_with("\" (and 50 more bytes)"), "{long}");
    }

    #[test]
    fn a_spent_deadline_refuses_to_wait() {
        let spent = Deadline(Instant::now());
        assert_eq!(spent.left().unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(Deadline(Instant::now() + Duration::from_secs(5)).left().unwrap() > Duration::from_secs(4));
    }

    #[test]
    fn connection_failures_name_every_address_tried() {
        let port = testing::closed_port();
        let checks = Checks { http01_port: port, ..Checks::default() };
        let p = checks.validate(&ip("127.0.0.1"), ChallengeKind::Http01, KEY_AUTHORIZATION).unwrap_err();
        assert_eq!(p.kind, Kind::Connection);
        assert!(p
            .detail
            .starts_with(&format!("http-01: could not connect to 127.0.0.1 port {port} (127.0.0.1:{port}: ")));
    }

    /// The three checks against Pebble's own challenge responder, which
    /// answers as an ACME client would (and what Pebble itself validates
    /// against): a DNS identifier resolved through `dns_resolver`, whose
    /// AAAA answer (::1) is refused before its A answer (127.0.0.1) is used.
    #[test]
    fn all_three_pass_against_pebble_challtestsrv() {
        let Some(srv) = ChallTestSrv::start() else { return };
        let token = super::token(KEY_AUTHORIZATION);
        srv.post("/add-http01", &serde_json::json!({ "token": token, "content": KEY_AUTHORIZATION }));
        srv.post("/add-tlsalpn01", &serde_json::json!({ "host": "www.example.com", "content": KEY_AUTHORIZATION }));
        let txt = crate::acme::jws::b64(&digest(KEY_AUTHORIZATION));
        srv.post("/set-txt", &serde_json::json!({ "host": "_acme-challenge.www.example.com.", "value": txt }));
        let checks = srv.checks();
        for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01, ChallengeKind::Dns01] {
            assert_eq!(checks.validate(&dns("www.example.com"), kind, KEY_AUTHORIZATION), Ok(()), "{}", kind.name());
        }
        let other = "other.thumbprint";
        let p = checks.validate(&dns("www.example.com"), ChallengeKind::TlsAlpn01, other).unwrap_err();
        assert_eq!(p.kind, Kind::IncorrectResponse, "{p}");
    }
}
