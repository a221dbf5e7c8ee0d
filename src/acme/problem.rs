//! ACME problem documents (RFC 8555 §6.7, RFC 7807): every error the
//! server answers is one of these, with the RFC's type URN, so that clients
//! (certbot, lego, Caddy) can tell a retryable badNonce from a refusal.

use serde::Serialize;

use crate::storage::StorageError;

/// The error types of RFC 8555 §6.7 that certforge's server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccountDoesNotExist,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Caa,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
}

impl Kind {
    /// The type's name after "urn:ietf:params:acme:error:".
    pub fn name(self) -> &'static str {
        match self {
            Kind::AccountDoesNotExist => "accountDoesNotExist",
            Kind::AlreadyRevoked => "alreadyRevoked",
            Kind::BadCsr => "badCSR",
            Kind::BadNonce => "badNonce",
            Kind::BadPublicKey => "badPublicKey",
            Kind::BadRevocationReason => "badRevocationReason",
            Kind::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Kind::Caa => "caa",
            Kind::Connection => "connection",
            Kind::Dns => "dns",
            Kind::ExternalAccountRequired => "externalAccountRequired",
            Kind::IncorrectResponse => "incorrectResponse",
            Kind::InvalidContact => "invalidContact",
            Kind::Malformed => "malformed",
            Kind::OrderNotReady => "orderNotReady",
            Kind::RateLimited => "rateLimited",
            Kind::RejectedIdentifier => "rejectedIdentifier",
            Kind::ServerInternal => "serverInternal",
            Kind::Tls => "tls",
            Kind::Unauthorized => "unauthorized",
            Kind::UnsupportedContact => "unsupportedContact",
            Kind::UnsupportedIdentifier => "unsupportedIdentifier",
            Kind::UserActionRequired => "userActionRequired",
        }
    }

    /// The HTTP status that goes with it: 400 unless the RFC or common
    /// client practice says otherwise (Boulder and Pebble use these too).
    pub fn status(self) -> u16 {
        match self {
            Kind::Unauthorized => 403,
            Kind::AccountDoesNotExist => 400,
            Kind::OrderNotReady => 403,
            Kind::RateLimited => 429,
            Kind::ServerInternal => 500,
            _ => 400,
        }
    }
}

/// An identifier a subproblem is about (RFC 8555 §6.7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// One problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    pub detail: String,
    /// The HTTP status it is answered with, which the document repeats
    /// (RFC 7807 §3.1). Set from the kind, unless a constructor says
    /// otherwise (404 for a resource that is not there, 415, 409, 503).
    pub status: u16,
    /// Per-identifier problems of an order (§6.7.1), e.g. each name that
    /// falls outside the CA's constraints.
    pub subproblems: Vec<(Kind, String, Identifier)>,
    /// badSignatureAlgorithm's `algorithms`: what the server accepts
    /// instead (RFC 8555 §6.2 SHOULD).
    pub algorithms: &'static [&'static str],
    /// What went wrong inside the server, for its log and never for the
    /// client: a database error's text says nothing a client can act on.
    pub cause: Option<String>,
    /// Seconds the client should wait before trying again (a rate limit,
    /// RFC 8555 §6.6), sent as Retry-After.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            status: kind.status(),
            subproblems: Vec::new(),
            algorithms: &[],
            cause: None,
            retry_after: None,
        }
    }

    /// rateLimited (RFC 8555 §6.6), 429 with the seconds to wait.
    pub fn rate_limited(detail: impl Into<String>, retry_after: std::time::Duration) -> Problem {
        Problem {
            retry_after: Some(crate::acme::limits::retry_secs(retry_after)),
            ..Problem::new(Kind::RateLimited, detail)
        }
    }

    /// A malformed request for a resource that is not there: 404, as
    /// Boulder and Pebble answer an unknown path or another account's order.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Malformed, detail).with_status(404)
    }

    /// A POST whose body is not application/jose+json: 415 (RFC 8555 §6.2).
    pub fn unsupported_media_type(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Malformed, detail).with_status(415)
    }

    /// badSignatureAlgorithm, naming the algorithms that would be accepted.
    pub fn bad_signature_algorithm(detail: impl Into<String>, algorithms: &'static [&'static str]) -> Problem {
        Problem { algorithms, ..Problem::new(Kind::BadSignatureAlgorithm, detail) }
    }

    /// The same problem, answered with another status.
    pub fn with_status(self, status: u16) -> Problem {
        Problem { status, ..self }
    }

    /// The JSON body, served as application/problem+json.
    pub fn to_json(&self) -> serde_json::Value {
        let urn = |k: Kind| format!("urn:ietf:params:acme:error:{}", k.name());
        let mut v = serde_json::json!({ "type": urn(self.kind), "detail": self.detail, "status": self.status });
        if !self.algorithms.is_empty() {
            v["algorithms"] = serde_json::json!(self.algorithms);
        }
        if !self.subproblems.is_empty() {
            v["subproblems"] = self
                .subproblems
                .iter()
                .map(|(k, d, id)| serde_json::json!({ "type": urn(*k), "detail": d, "identifier": id }))
                .collect();
        }
        v
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

impl std::error::Error for Problem {}

/// A store that failed: the client hears "try again later" (503 and
/// Retry-After, RFC 9110 §15.6.4) when the failure may pass, a
/// serverInternal 500 otherwise; the store's own words go to the log.
impl From<StorageError> for Problem {
    fn from(e: StorageError) -> Problem {
        let p = match e {
            StorageError::Unavailable(_) => {
                Problem::new(Kind::ServerInternal, "the server's store is unavailable; try again later")
                    .with_status(503)
            }
            _ => Problem::new(Kind::ServerInternal, "the server could not read or write its store"),
        };
        Problem { cause: Some(e.to_string()), ..p }
    }
}

/// Shorthand for a malformed request.
pub fn malformed(detail: impl Into<String>) -> Problem {
    Problem::new(Kind::Malformed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_rfc_urn_status_and_subproblems() {
        let mut p = Problem::new(Kind::RejectedIdentifier, "2 names are outside the CA's name constraints");
        p.subproblems.push((
            Kind::RejectedIdentifier,
            "outside DNS:localhost, DNS:test".into(),
            Identifier { kind: "dns".into(), value: "www.example.com".into() },
        ));
        let v = p.to_json();
        assert_eq!(v["type"], "urn:ietf:params:acme:error:rejectedIdentifier");
        assert_eq!(v["status"], 400);
        assert_eq!(v["subproblems"][0]["identifier"]["value"], "www.example.com");
        assert_eq!(Problem::new(Kind::BadCsr, "x").to_json()["type"], "urn:ietf:params:acme:error:badCSR");
        assert_eq!(Problem::new(Kind::Unauthorized, "x").status, 403);
        assert!(Problem::new(Kind::BadNonce, "x").to_json().get("subproblems").is_none());
    }

    #[test]
    fn the_status_goes_with_the_problem_not_its_words() {
        // A detail starting with "no " once made a 404; now only the
        // constructor does.
        assert_eq!(Problem::new(Kind::Malformed, "no such thing").status, 400);
        let p = Problem::not_found("x");
        assert_eq!((p.status, p.to_json()["status"].as_u64(), p.kind), (404, Some(404), Kind::Malformed));
        assert_eq!(Problem::unsupported_media_type("x").to_json()["status"], 415);
        let p = Problem::bad_signature_algorithm("x", &crate::acme::jws::ACCOUNT_ALGS);
        assert_eq!(p.to_json()["algorithms"], serde_json::json!(["ES256", "ES384", "RS256", "EdDSA"]));
        assert!(Problem::new(Kind::Malformed, "x").to_json().get("algorithms").is_none());
    }

    #[test]
    fn a_store_failure_is_500_or_503_and_its_words_stay_in_the_log() {
        let p = Problem::from(StorageError::failed("writing order 7", "attempt to write a readonly database"));
        assert_eq!((p.kind, p.status), (Kind::ServerInternal, 500));
        assert!(!p.detail.contains("readonly") && p.cause.as_deref().unwrap().contains("readonly"), "{p:?}");
        let p = Problem::from(StorageError::Unavailable("database is locked".into()));
        assert_eq!((p.kind, p.to_json()["status"].as_u64()), (Kind::ServerInternal, Some(503)));
        assert_eq!(Problem::from(StorageError::Conflict("x".into())).status, 500);
    }
}
