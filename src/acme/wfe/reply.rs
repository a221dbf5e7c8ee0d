//! The HTTP request as the front end needs it, and the reply it makes:
//! plain data, so the whole protocol runs without sockets.

use serde_json::{json, Value};

use crate::acme::problem::{Kind, Problem};

/// The largest request body accepted; a CSR for 100 names is far smaller.
pub const MAX_BODY: usize = 64 * 1024;

/// An HTTP request as the engine needs it.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The client's address, for per-address rate limits.
    pub peer: Option<std::net::IpAddr>,
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// For a 5xx: what went wrong inside the server, for the request's log
    /// line (the client's problem document does not say it).
    pub log_detail: Option<String>,
    /// The problem's type when the reply is a problem document (the
    /// server's metrics count failed orders by it).
    pub problem: Option<Kind>,
}

impl Reply {
    /// A reply whose body is of `content_type`.
    pub fn typed(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into(),
            log_detail: None,
            problem: None,
        }
    }

    /// A reply without a body.
    pub fn empty(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: Vec::new(), log_detail: None, problem: None }
    }

    pub(super) fn json(status: u16, v: &Value) -> Reply {
        Reply::typed(status, "application/json", v.to_string())
    }

    /// A problem document, answered with the problem's status, which its
    /// "status" member repeats (RFC 7807 §3.1). A 503 says when to try
    /// again; a 5xx keeps its cause for the log.
    pub(super) fn problem(p: &Problem) -> Reply {
        let mut body = p.to_json();
        body["status"] = json!(p.status);
        let mut reply = Reply::typed(p.status, "application/problem+json", body.to_string());
        reply.problem = Some(p.kind);
        if p.status >= 500 {
            reply.log_detail = Some(p.cause.clone().unwrap_or_else(|| p.detail.clone()));
        }
        if let Some(secs) = p.retry_after {
            reply = reply.with("Retry-After", secs.to_string());
        } else if p.status == 503 {
            reply = reply.retry_after();
        }
        reply
    }

    pub(super) fn with(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// §7.5.1 and §7.4: when to poll again. Integer seconds, the only form
    /// Caddy accepts (an HTTP date is an error there); one second, because
    /// this server validates and issues while the request waits.
    pub(super) fn retry_after(self) -> Reply {
        self.with("Retry-After", "1".into())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}
