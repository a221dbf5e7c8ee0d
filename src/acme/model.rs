//! ACME's objects (RFC 8555 §7.1): accounts, orders, authorizations and
//! challenges, their statuses, and their JSON as clients read it. URLs are
//! made from the server's base URL and each object's id.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::jws::Jwk;
use crate::pki::validity::fmt_time;

/// The paths of the resources, under the base URL.
pub mod path {
    pub const DIRECTORY: &str = "/directory";
    pub const NEW_NONCE: &str = "/new-nonce";
    pub const NEW_ACCOUNT: &str = "/new-account";
    pub const NEW_ORDER: &str = "/new-order";
    pub const REVOKE: &str = "/revoke-cert";
    pub const KEY_CHANGE: &str = "/key-change";
    pub const ACCOUNT: &str = "/acct/";
    pub const ORDER: &str = "/order/";
    pub const AUTHZ: &str = "/authz/";
    pub const CHALLENGE: &str = "/chall/";
    pub const CERT: &str = "/cert/";
    /// RFC 9773's renewalInfo: the directory names it without the slash.
    pub const RENEWAL_INFO: &str = "/renewal-info/";
}

/// An identifier (§9.7.7): "dns" or "ip" (RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ident {
    pub kind: IdentKind,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentKind {
    Dns,
    Ip,
}

impl Ident {
    pub fn to_json(&self) -> Value {
        json!({ "type": match self.kind { IdentKind::Dns => "dns", IdentKind::Ip => "ip" }, "value": self.value })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Valid,
    Deactivated,
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub key: Jwk,
    pub contact: Vec<String>,
    pub status: AccountStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The External Account Binding kid it was made with, if any.
    #[serde(default)]
    pub eab: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Processing => "processing",
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Deactivated => "deactivated",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// The status [`Status::name`] names, or None.
    pub fn from_name(name: &str) -> Option<Status> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }
}

/// A challenge type (§8.3, §8.4, RFC 8737).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    Http01,
    Dns01,
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// dns-01 proves control of a name only; IP identifiers get http-01 and
    /// tls-alpn-01 (RFC 8738 §7).
    pub fn for_ident(kind: IdentKind) -> &'static [ChallengeKind] {
        match kind {
            IdentKind::Dns => &[ChallengeKind::Http01, ChallengeKind::Dns01, ChallengeKind::TlsAlpn01],
            IdentKind::Ip => &[ChallengeKind::Http01, ChallengeKind::TlsAlpn01],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    pub kind: ChallengeKind,
    pub token: String,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub validated: Option<OffsetDateTime>,
    /// Why validation failed, as a problem document.
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authorization {
    pub id: String,
    pub account: String,
    pub ident: Ident,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub challenges: Vec<Challenge>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub account: String,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub identifiers: Vec<Ident>,
    pub authorizations: Vec<String>,
    pub certificate: Option<String>,
    pub error: Option<Value>,
}

impl Account {
    pub fn to_json(&self, base: &str) -> Value {
        let status = match self.status {
            AccountStatus::Valid => "valid",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Revoked => "revoked",
        };
        json!({
            "status": status,
            "contact": self.contact,
            "orders": format!("{base}{}{}/orders", path::ACCOUNT, self.id),
        })
    }
}

impl Challenge {
    pub fn to_json(&self, base: &str) -> Value {
        let mut v = json!({
            "type": self.kind.name(),
            "url": format!("{base}{}{}", path::CHALLENGE, self.id),
            "token": self.token,
            "status": self.status.name(),
        });
        if let Some(t) = self.validated {
            v["validated"] = json!(fmt_time(t));
        }
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        v
    }
}

impl Authorization {
    pub fn to_json(&self, base: &str) -> Value {
        // §7.1.4: a wildcard's authorization names the base domain, with
        // "wildcard": true (lego builds the TXT record name from it).
        let (ident, wildcard) = match self.ident.value.strip_prefix("*.") {
            Some(base) => (Ident { kind: self.ident.kind, value: base.to_string() }, true),
            None => (self.ident.clone(), false),
        };
        let mut v = json!({
            "identifier": ident.to_json(),
            "status": self.status.name(),
            "expires": fmt_time(self.expires),
            "challenges": self.challenges.iter().map(|c| c.to_json(base)).collect::<Vec<_>>(),
        });
        if wildcard {
            v["wildcard"] = json!(true);
        }
        v
    }
}

impl Order {
    pub fn to_json(&self, base: &str) -> Value {
        let mut v = json!({
            "status": self.status.name(),
            "expires": fmt_time(self.expires),
            "identifiers": self.identifiers.iter().map(Ident::to_json).collect::<Vec<_>>(),
            "authorizations": self.authorizations.iter().map(|a| format!("{base}{}{a}", path::AUTHZ)).collect::<Vec<_>>(),
            "finalize": format!("{base}{}{}/finalize", path::ORDER, self.id),
        });
        if let Some(c) = &self.certificate {
            v["certificate"] = json!(format!("{base}{}{c}", path::CERT));
        }
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        v
    }
}

/// The directory (§7.1.1).
pub fn directory(base: &str, eab_required: bool) -> Value {
    json!({
        "newNonce": format!("{base}{}", path::NEW_NONCE),
        "newAccount": format!("{base}{}", path::NEW_ACCOUNT),
        "newOrder": format!("{base}{}", path::NEW_ORDER),
        "revokeCert": format!("{base}{}", path::REVOKE),
        "keyChange": format!("{base}{}", path::KEY_CHANGE),
        "renewalInfo": format!("{base}{}", path::RENEWAL_INFO.trim_end_matches('/')),
        "meta": { "externalAccountRequired": eab_required },
    })
}
