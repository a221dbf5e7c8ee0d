//! Which resource a request is for, decided once from its method and path
//! (RFC 8555 §7.1's resources under this server's paths), before anything
//! else is read: the front end, the HTTP layer's choice of thread and the
//! JWS check all go by it.

use crate::acme::model::path;
use crate::acme::problem::Problem;

/// One resource and the method used on it. Ids are the path's last
/// segment, as the store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Directory,
    /// `head`: HEAD (200) rather than GET (204), §7.2.
    NewNonce {
        head: bool,
    },
    /// RFC 9773's renewalInfo, GET, with the CertID.
    RenewalInfo(String),
    NewAccount,
    NewOrder,
    KeyChange,
    Revoke,
    Account(String),
    AccountOrders(String),
    Order(String),
    Finalize(String),
    Authz(String),
    Challenge(String),
    /// `alt`: the alternate chain (§7.4.2), `/cert/ID/alt`.
    Cert {
        id: String,
        alt: bool,
    },
}

impl Route {
    /// The route of `method` `path`; any other is a 404 (malformed), as
    /// Pebble and Boulder answer.
    pub fn parse(method: &str, p: &str) -> Result<Route, Problem> {
        let id = |prefix: &str| p.strip_prefix(prefix).map(str::to_string);
        let route = match (method, p) {
            ("GET", path::DIRECTORY) => Some(Route::Directory),
            ("HEAD", path::NEW_NONCE) => Some(Route::NewNonce { head: true }),
            ("GET", path::NEW_NONCE) => Some(Route::NewNonce { head: false }),
            ("GET", _) => id(path::RENEWAL_INFO).map(Route::RenewalInfo),
            ("POST", path::NEW_ACCOUNT) => Some(Route::NewAccount),
            ("POST", path::NEW_ORDER) => Some(Route::NewOrder),
            ("POST", path::KEY_CHANGE) => Some(Route::KeyChange),
            ("POST", path::REVOKE) => Some(Route::Revoke),
            ("POST", _) => Self::post_with_id(p),
            _ => None,
        };
        route.ok_or_else(|| Problem::not_found(format!("no {method} {p} here")))
    }

    fn post_with_id(p: &str) -> Option<Route> {
        let id = |prefix: &str| p.strip_prefix(prefix);
        let with = |id: &str, suffix: &str| id.strip_suffix(suffix).map(str::to_string);
        if let Some(id) = id(path::ACCOUNT) {
            Some(with(id, "/orders").map_or_else(|| Route::Account(id.into()), Route::AccountOrders))
        } else if let Some(id) = id(path::ORDER) {
            Some(with(id, "/finalize").map_or_else(|| Route::Order(id.into()), Route::Finalize))
        } else if let Some(id) = id(path::AUTHZ) {
            Some(Route::Authz(id.into()))
        } else if let Some(id) = id(path::CHALLENGE) {
            Some(Route::Challenge(id.into()))
        } else {
            let id = id(path::CERT)?;
            Some(match with(id, "/alt") {
                Some(id) => Route::Cert { id, alt: true },
                None => Route::Cert { id: id.into(), alt: false },
            })
        }
    }

    /// The resource's name in RFC 8555's directory (§7.1.1), or the path's
    /// for those the directory does not list: a label for the server's
    /// metrics, where an id would make one series per object.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Directory => "directory",
            Route::NewNonce { .. } => "newNonce",
            Route::RenewalInfo(_) => "renewalInfo",
            Route::NewAccount => "newAccount",
            Route::NewOrder => "newOrder",
            Route::KeyChange => "keyChange",
            Route::Revoke => "revokeCert",
            Route::Account(_) => "account",
            Route::AccountOrders(_) => "orders",
            Route::Order(_) => "order",
            Route::Finalize(_) => "finalize",
            Route::Authz(_) => "authz",
            Route::Challenge(_) => "challenge",
            Route::Cert { .. } => "cert",
        }
    }

    /// Whether it is signed by a "jwk" rather than an account's "kid"
    /// (§6.2): newAccount, and revokeCert by the certificate's own key.
    pub fn by_jwk(&self) -> bool {
        matches!(self, Route::NewAccount | Route::Revoke)
    }

    /// Whether answering it may block: a challenge check (network),
    /// finalize (signing and a synced depot write), revokeCert (the CRL
    /// rewrite). The HTTP layer answers these on a blocking thread.
    pub fn blocks(&self) -> bool {
        matches!(self, Route::Challenge(_) | Route::Finalize(_) | Route::Revoke)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_path_has_one_route_or_is_not_found() {
        let table = [
            ("GET", "/directory", Some(Route::Directory)),
            ("HEAD", "/new-nonce", Some(Route::NewNonce { head: true })),
            ("GET", "/new-nonce", Some(Route::NewNonce { head: false })),
            ("GET", "/renewal-info/a.b", Some(Route::RenewalInfo("a.b".into()))),
            ("POST", "/new-account", Some(Route::NewAccount)),
            ("POST", "/new-order", Some(Route::NewOrder)),
            ("POST", "/key-change", Some(Route::KeyChange)),
            ("POST", "/revoke-cert", Some(Route::Revoke)),
            ("POST", "/acct/7", Some(Route::Account("7".into()))),
            ("POST", "/acct/7/orders", Some(Route::AccountOrders("7".into()))),
            ("POST", "/order/7", Some(Route::Order("7".into()))),
            ("POST", "/order/7/finalize", Some(Route::Finalize("7".into()))),
            ("POST", "/authz/7", Some(Route::Authz("7".into()))),
            ("POST", "/chall/7", Some(Route::Challenge("7".into()))),
            ("POST", "/cert/7", Some(Route::Cert { id: "7".into(), alt: false })),
            ("POST", "/cert/7/alt", Some(Route::Cert { id: "7".into(), alt: true })),
            ("POST", "/nowhere", None),
            ("POST", "/directory", None),
            ("GET", "/new-order", None),
            ("PUT", "/new-account", None),
            ("HEAD", "/directory", None),
            ("GET", "/renewal-info", None),
        ];
        for (method, p, want) in table {
            let got = Route::parse(method, p);
            match want {
                Some(route) => assert_eq!(got, Ok(route), "{method} {p}"),
                None => {
                    let e = got.unwrap_err();
                    assert_eq!((e.status, e.detail), (404, format!("no {method} {p} here")));
                }
            }
        }
    }

    #[test]
    fn each_route_has_its_own_name_and_no_id_in_it() {
        let routes = [
            Route::Directory,
            Route::NewNonce { head: true },
            Route::RenewalInfo("x".into()),
            Route::NewAccount,
            Route::NewOrder,
            Route::KeyChange,
            Route::Revoke,
            Route::Account("x".into()),
            Route::AccountOrders("x".into()),
            Route::Order("x".into()),
            Route::Finalize("x".into()),
            Route::Authz("x".into()),
            Route::Challenge("x".into()),
            Route::Cert { id: "x".into(), alt: true },
        ];
        let names: std::collections::BTreeSet<&str> = routes.iter().map(Route::name).collect();
        assert_eq!(names.len(), routes.len(), "{names:?}");
        assert!(names.iter().all(|n| !n.contains('x') || *n == "newAccount"), "{names:?}");
        assert_eq!(Route::Cert { id: "y".into(), alt: false }.name(), "cert");
    }

    #[test]
    fn only_checks_finalize_and_revocation_block() {
        let blocking: Vec<&str> =
            ["/chall/1", "/order/1/finalize", "/revoke-cert", "/order/1", "/new-order", "/acct/1"]
                .into_iter()
                .filter(|p| Route::parse("POST", p).unwrap().blocks())
                .collect();
        assert_eq!(blocking, ["/chall/1", "/order/1/finalize", "/revoke-cert"]);
        assert!(Route::NewAccount.by_jwk() && Route::Revoke.by_jwk() && !Route::NewOrder.by_jwk());
    }
}
