//! ACME problem documents (RFC 8555 §6.7, RFC 7807): every error the
//! server answers is one of these, with the RFC's type URN, so that clients
//! (certbot, lego, Caddy) can tell a retryable badNonce from a refusal.

use serde::Serialize;

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
    /// Per-identifier problems of an order (§6.7.1), e.g. each name that
    /// falls outside the CA's constraints.
    pub subproblems: Vec<(Kind, String, Identifier)>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem { kind, detail: detail.into(), subproblems: Vec::new() }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body, served as application/problem+json.
    pub fn to_json(&self) -> serde_json::Value {
        let urn = |k: Kind| format!("urn:ietf:params:acme:error:{}", k.name());
        let mut v = serde_json::json!({ "type": urn(self.kind), "detail": self.detail, "status": self.status() });
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
        assert_eq!(Problem::new(Kind::Unauthorized, "x").status(), 403);
        assert!(Problem::new(Kind::BadNonce, "x").to_json().get("subproblems").is_none());
    }
}
