//! http-01 (RFC 8555 §8.3; RFC 8738 §3 for IP addresses): GET
//! http://HOST/.well-known/acme-challenge/TOKEN must answer 200 with the
//! key authorization.
//!
//! A small HTTP/1.1 client on a std socket: one request with
//! `Connection: close`, a response read up to its framing (Content-Length,
//! chunked, or the end of the stream) and at most [`MAX_RESPONSE`] bytes.
//!
//! Redirects are not followed. §8.3 says the server SHOULD follow them, and
//! §10.2 that doing so lets the client point the server at any host it can
//! reach; Boulder limits them to ports 80 and 443, which a private CA's
//! test setups (http-01 on 5002, say) do not use, and an https hop would
//! need a second, certificate-blind TLS client. certforge serves clients
//! (certbot, lego, Caddy) that answer the challenge themselves, so a 3xx
//! fails, and its detail names where it pointed.

use std::io::{Read, Write};

use super::{io_error, quote, token, Checks, Deadline, IdentKind};
use crate::acme::model::Ident;
use crate::acme::problem::{Kind, Problem};

/// The most of a response that is read: headers, framing and body. A key
/// authorization is under 100 bytes; anything near this is not one.
const MAX_RESPONSE: usize = 16 * 1024;
/// The most of a body that is kept.
const MAX_BODY: usize = 8 * 1024;

pub(super) fn check(
    checks: &Checks,
    ident: &Ident,
    key_authorization: &str,
    deadline: Deadline,
) -> Result<(), Problem> {
    // The Host header and URL carry the identifier, an IPv6 literal in
    // brackets (RFC 8738 §3, RFC 3986 §3.2.2).
    let host = match ident.kind {
        IdentKind::Ip if ident.value.contains(':') => format!("[{}]", ident.value),
        _ => ident.value.clone(),
    };
    let path = format!("/.well-known/acme-challenge/{}", token(key_authorization));
    let url = format!("http://{host}:{}{path}", checks.http01_port);
    let mut peer = checks.connect(ident, checks.http01_port, deadline)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: certforge-acme\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let response = peer
        .stream
        .write_all(request.as_bytes())
        .map_err(|e| io_error(&e))
        .and_then(|()| read_response(&mut peer.stream))
        .map_err(|e| Problem::new(Kind::Connection, format!("{url} (at {}): {e}", peer.target)))?;
    match response.status {
        200 => {}
        // Any other status: the key authorization is not served at the
        // URL, so control is not shown (§6.7 unauthorized, as Boulder and
        // Pebble answer).
        status @ 300..=399 => {
            let to = response.location.as_deref().unwrap_or("nowhere");
            return Err(Problem::new(
                Kind::Unauthorized,
                format!("{url} answered {status}, a redirect to {to}, which certforge does not follow"),
            ));
        }
        status => return Err(Problem::new(Kind::Unauthorized, format!("{url} answered {status}"))),
    }
    // §8.3: the server SHOULD ignore whitespace at the end of the body.
    if response.body.trim_ascii_end() != key_authorization.as_bytes() {
        return Err(Problem::new(
            Kind::IncorrectResponse,
            format!("{url} answered {}, not the key authorization {key_authorization:?}", quote(&response.body)),
        ));
    }
    Ok(())
}

/// A response's status, Location and body.
#[derive(Debug, PartialEq)]
pub(super) struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// Reads one response, stopping where its framing says it ends so that a
/// server that keeps the connection open despite `Connection: close` does
/// not hold the check until its deadline.
pub(super) fn read_response(stream: &mut impl Read) -> Result<Response, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).map_err(|e| io_error(&e))?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(response) = parse(&buf, n == 0)? {
            return Ok(response);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(format!("the response is longer than {MAX_RESPONSE} bytes"));
        }
    }
}

/// The response in `buf`, None while more is to come. `eof`: the peer has
/// closed, so nothing more will.
fn parse(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return more(eof, "before the end of the headers");
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "the headers are not text".to_string())?;
    let rest = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") && code.len() == 3 => code.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("not an HTTP/1.x response: {}", quote(status_line.as_bytes())))?;
    let headers: Vec<(String, &str)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest, eof)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
        if length > MAX_BODY {
            return Err(format!("the body is {length} bytes, more than a key authorization could be"));
        }
        match rest.get(..length) {
            Some(body) => Some(body.to_vec()),
            None => return more(eof, "before the end of the body"),
        }
    } else if eof {
        // Neither framing: the body runs to the end of the stream (RFC 9112 §6.3).
        Some(rest.to_vec())
    } else {
        None
    };
    Ok(body.map(|body| Response { status, location: header("location").map(str::to_string), body }))
}

/// A chunked body (RFC 9112 §7.1), None while incomplete. Trailers are not
/// read: the body is whole at the last chunk.
fn dechunk(mut data: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(end) = find(data, b"\r\n") else { return more(eof, "inside a chunk") };
        let line = String::from_utf8_lossy(&data[..end]);
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16).map_err(|_| format!("bad chunk size {:?}", line))?;
        if size == 0 {
            return Ok(Some(body));
        }
        if size > MAX_BODY - body.len() {
            return Err(format!("the chunked body is over {MAX_BODY} bytes"));
        }
        data = &data[end + 2..];
        match data.get(size..size + 2) {
            Some(b"\r\n") => body.extend_from_slice(&data[..size]),
            Some(_) => return Err("a chunk does not end in CRLF".to_string()),
            None => return more(eof, "inside a chunk"),
        }
        data = &data[size + 2..];
    }
}

/// Incomplete: wait for more, or fail if the peer has closed.
fn more<T>(eof: bool, where_: &str) -> Result<Option<T>, String> {
    if eof {
        Err(format!("the connection closed {where_}"))
    } else {
        Ok(None)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::super::testing::{ip, serve_once, KEY_AUTHORIZATION};
    use super::*;
    use crate::acme::model::ChallengeKind;
    use crate::acme::Validator;

    /// Serves `response` once on `bind` and validates `ident` against it.
    /// Returns the result, the request head the server saw and its port.
    fn against(bind: &str, ident: &Ident, response: String) -> (Result<(), Problem>, String, u16) {
        let (addr, server) = serve_once(bind, move |mut stream: TcpStream| {
            let mut head = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut head).unwrap() > 2 {}
            stream.write_all(response.as_bytes()).unwrap();
            head
        });
        let checks = Checks { http01_port: addr.port(), ..Checks::default() };
        let result = checks.validate(ident, ChallengeKind::Http01, KEY_AUTHORIZATION);
        (result, server.join().unwrap().expect("the check connected"), addr.port())
    }

    #[test]
    fn passes_with_the_key_authorization_and_trailing_whitespace() {
        let body = format!("{KEY_AUTHORIZATION}\r\n");
        let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let (result, head, _) = against("127.0.0.1:0", &ip("127.0.0.1"), response);
        assert_eq!(result, Ok(()));
        let token = token(KEY_AUTHORIZATION);
        assert!(head.starts_with(&format!("GET /.well-known/acme-challenge/{token} HTTP/1.1\r\n")), "{head}");
        assert!(head.contains("\r\nHost: 127.0.0.1\r\n"), "{head}");
    }

    #[test]
    fn passes_for_ipv6_with_a_bracketed_host_and_a_chunked_body() {
        let (k, rest) = KEY_AUTHORIZATION.split_at(40);
        let response = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n{k}\r\n{:x};x=y\r\n{rest}\r\n0\r\n\r\n",
            rest.len()
        );
        let (result, head, _) = against("[::1]:0", &ip("::1"), response);
        assert_eq!(result, Ok(()));
        assert!(head.contains("\r\nHost: [::1]\r\n"), "{head}");
    }

    #[test]
    fn a_wrong_body_is_an_incorrect_response_quoting_both() {
        let (result, ..) = against("127.0.0.1:0", &ip("127.0.0.1"), "HTTP/1.0 200 OK\r\n\r\nsomething.else".into());
        let p = result.unwrap_err();
        assert_eq!(p.kind, Kind::IncorrectResponse);
        assert!(p.detail.contains("answered \"something.else\", not the key authorization \"LoqX"), "{}", p.detail);
    }

    #[test]
    fn a_404_is_unauthorized_and_names_the_url() {
        let response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into();
        let (result, _, port) = against("127.0.0.1:0", &ip("127.0.0.1"), response);
        let p = result.unwrap_err();
        assert_eq!(p.kind, Kind::Unauthorized);
        let token = token(KEY_AUTHORIZATION);
        assert_eq!(
            p.detail,
            format!("http-01: http://127.0.0.1:{port}/.well-known/acme-challenge/{token} answered 404")
        );
    }

    #[test]
    fn a_redirect_is_not_followed() {
        let response = "HTTP/1.1 301 Moved\r\nLocation: https://example.com/x\r\nContent-Length: 0\r\n\r\n".into();
        let p = against("127.0.0.1:0", &ip("127.0.0.1"), response).0.unwrap_err();
        assert_eq!(p.kind, Kind::Unauthorized);
        assert!(p
            .detail
            .ends_with("answered 301, a redirect to https://example.com/x, which certforge does not follow"));
    }

    #[test]
    fn a_silent_server_times_out_at_the_deadline() {
        let (addr, server) = serve_once("127.0.0.1:0", |mut stream: TcpStream| {
            // Holds the connection, answering nothing, until the check gives up.
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.read(&mut [0u8; 1]);
        });
        let checks = Checks { http01_port: addr.port(), timeout: Duration::from_millis(300), ..Checks::default() };
        let started = Instant::now();
        let p = checks.validate(&ip("127.0.0.1"), ChallengeKind::Http01, KEY_AUTHORIZATION).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(p.kind, Kind::Connection);
        assert!(p.detail.ends_with(": timed out"), "{}", p.detail);
        server.join().unwrap().expect("the check connected");
    }

    #[test]
    fn parsing_waits_for_the_framing_and_bounds_the_body() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(format!("{head}abc").as_bytes(), false), Ok(None));
        assert_eq!(
            parse(format!("{head}abc").as_bytes(), true),
            Err("the connection closed before the end of the body".into())
        );
        let whole = parse(format!("{head}abcdefg").as_bytes(), false).unwrap().unwrap();
        assert_eq!((whole.status, whole.body), (200, b"abcde".to_vec()));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n", false).unwrap_err(),
            "the body is 9000 bytes, more than a key authorization could be"
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", false), Ok(None));
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", true).unwrap_err().starts_with("not an HTTP/1.x response"));
        let endless = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'x'; MAX_RESPONSE]].concat();
        let err = read_response(&mut endless.as_slice().chain(std::io::repeat(b'x'))).unwrap_err();
        assert_eq!(err, format!("the response is longer than {MAX_RESPONSE} bytes"));
    }
}
