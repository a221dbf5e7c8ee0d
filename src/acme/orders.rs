//! How ACME's objects change state (RFC 8555 §7.1.6), as pure functions
//! on the model types: no store, no clock, no network. The front end
//! reads the objects, asks these what they become, and stores the result;
//! so every rule of the status diagrams is tested here, one table per
//! transition.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::model::{Account, AccountStatus, Authorization, Challenge, Ident, Order, Status};
use super::problem::{malformed, Kind, Problem};

/// How long an order and its authorizations stay usable.
pub const ORDER_LIFETIME: Duration = Duration::days(7);

/// A challenge token: 128 random bits, base64url (§8.1 wants ≥ 128).
pub fn token() -> String {
    super::jws::random_b64(16)
}

/// §7.4: a new pending order of `account` for `identifiers`, one pending
/// authorization per identifier, each offering the challenges its type
/// allows. `id` hands out the objects' ids.
pub fn new_order(
    account: &str,
    identifiers: Vec<Ident>,
    now: OffsetDateTime,
    mut id: impl FnMut() -> String,
) -> (Order, Vec<Authorization>) {
    let expires = now + ORDER_LIFETIME;
    let authzs: Vec<Authorization> = identifiers
        .iter()
        .map(|ident| {
            let challenges = ident
                .challenges()
                .iter()
                .map(|kind| Challenge {
                    id: id(),
                    kind: *kind,
                    token: token(),
                    status: Status::Pending,
                    validated: None,
                    error: None,
                })
                .collect();
            Authorization {
                id: id(),
                account: account.to_string(),
                ident: ident.clone(),
                status: Status::Pending,
                expires,
                challenges,
            }
        })
        .collect();
    let order = Order {
        id: id(),
        account: account.to_string(),
        status: Status::Pending,
        expires,
        identifiers,
        authorizations: authzs.iter().map(|a| a.id.clone()).collect(),
        certificate: None,
        error: None,
    };
    (order, authzs)
}

/// §7.1.6: a pending order's status as its authorizations stand
/// (`authzs`, one per authorization; a missing one counts as invalid):
/// invalid once expired, ready once all are valid, invalid once one
/// cannot become valid. Other statuses are stored as they are.
pub fn order_status(order: &Order, authzs: &[Status], now: OffsetDateTime) -> Status {
    if order.status != Status::Pending {
        order.status
    } else if now > order.expires {
        Status::Invalid
    } else if authzs.iter().all(|s| *s == Status::Valid) {
        Status::Ready
    } else if authzs.iter().any(|s| matches!(s, Status::Invalid | Status::Deactivated | Status::Revoked)) {
        Status::Invalid
    } else {
        Status::Pending
    }
}

/// §7.5.2: a client's update of an authorization (its payload's
/// "status"); Some when it changes. Only a pending or valid one can be
/// deactivated.
pub fn deactivate_authz(authz: &Authorization, wanted: Option<&str>) -> Result<Option<Authorization>, Problem> {
    match wanted {
        None => Ok(None),
        Some("deactivated") if matches!(authz.status, Status::Pending | Status::Valid) => {
            Ok(Some(Authorization { status: Status::Deactivated, ..authz.clone() }))
        }
        Some(other) => {
            Err(malformed(format!("an authorization in state {:?} cannot become {other:?}", authz.status.name())))
        }
    }
}

/// §7.5.1: whether a client's POST to challenge `at` starts a check: only
/// while both it and its authorization are pending.
pub fn challenge_checkable(authz: &Authorization, at: usize) -> bool {
    authz.status == Status::Pending && authz.challenges[at].status == Status::Pending
}

/// §7.1.6: the authorization after challenge `at` was checked with
/// `result`: both valid, or both invalid with the check's problem.
pub fn challenge_checked(
    mut authz: Authorization,
    at: usize,
    result: Result<(), Problem>,
    now: OffsetDateTime,
) -> Authorization {
    let c = &mut authz.challenges[at];
    match result {
        Ok(()) => {
            c.status = Status::Valid;
            c.validated = Some(now);
            authz.status = Status::Valid;
        }
        Err(p) => {
            c.status = Status::Invalid;
            c.error = Some(p.to_json());
            authz.status = Status::Invalid;
        }
    }
    authz
}

/// §7.4: finalize needs a ready order.
pub fn finalize_ready(order: &Order) -> Result<(), Problem> {
    if order.status == Status::Ready {
        return Ok(());
    }
    Err(Problem::new(
        Kind::OrderNotReady,
        format!("the order is {}; finalize needs it ready (every authorization valid)", order.status.name()),
    ))
}

/// §7.1.6: the order after issuance: valid with its certificate (stored
/// under the order's id), or invalid with the issuer's problem.
pub fn finalized(order: Order, issued: Result<(), &Problem>) -> Order {
    match issued {
        Ok(()) => Order { status: Status::Valid, certificate: Some(order.id.clone()), ..order },
        Err(p) => Order { status: Status::Invalid, error: Some(p.to_json()), ..order },
    }
}

/// §7.3.2, §7.3.6: an account after its owner's update (new contacts, or
/// deactivation). An account can only become deactivated.
pub fn update_account(account: &Account, payload: &Value) -> Result<Account, Problem> {
    let mut account = account.clone();
    if payload.get("contact").is_some() {
        account.contact = contacts(payload)?;
    }
    match payload.get("status").and_then(Value::as_str) {
        Some("deactivated") => account.status = AccountStatus::Deactivated,
        Some(other) => {
            return Err(malformed(format!("an account's status can only become \"deactivated\", not {other:?}")))
        }
        None => {}
    }
    Ok(account)
}

/// An account's `contact`: mailto: URLs only (§7.3).
pub fn contacts(payload: &Value) -> Result<Vec<String>, Problem> {
    let Some(list) = payload.get("contact") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| malformed("\"contact\" must be an array of mailto: URLs"))?;
    list.iter()
        .map(|c| {
            let c = c.as_str().ok_or_else(|| Problem::new(Kind::InvalidContact, "a contact must be a string"))?;
            match c.strip_prefix("mailto:") {
                Some(addr) if addr.contains('@') && !addr.contains(',') => Ok(c.to_string()),
                Some(_) => Err(Problem::new(Kind::InvalidContact, format!("{c:?} is not one email address"))),
                None => {
                    Err(Problem::new(Kind::UnsupportedContact, format!("{c:?}: only mailto: contacts are supported")))
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::jws::Jwk;
    use crate::acme::model::{ChallengeKind, IdentKind};
    use serde_json::json;

    /// The new status (None: unchanged), or Err for a refusal.
    type Outcome = Result<Option<Status>, ()>;
    /// The account's (status, contacts), or the problem's type.
    type Updated = Result<(AccountStatus, Vec<&'static str>), Kind>;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    fn dns(name: &str) -> Ident {
        Ident { kind: IdentKind::Dns, value: name.into() }
    }

    fn order(status: Status) -> Order {
        let (o, _) = new_order("acct", vec![dns("a.test")], at(0), counter());
        Order { status, ..o }
    }

    fn authz(status: Status, challenge: Status) -> Authorization {
        let (_, mut a) = new_order("acct", vec![dns("a.test")], at(0), counter());
        let mut a = a.remove(0);
        a.status = status;
        a.challenges[0].status = challenge;
        a
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            n.to_string()
        }
    }

    #[test]
    fn new_order_makes_one_pending_authorization_per_identifier() {
        use ChallengeKind::*;
        let ip = Ident { kind: IdentKind::Ip, value: "127.0.0.1".into() };
        // identifiers → challenge kinds of each authorization
        let table: [(Vec<Ident>, Vec<Vec<ChallengeKind>>); 2] = [
            (vec![dns("a.test")], vec![vec![Http01, Dns01, TlsAlpn01]]),
            (vec![dns("a.test"), ip.clone()], vec![vec![Http01, Dns01, TlsAlpn01], vec![Http01, TlsAlpn01]]),
        ];
        for (idents, kinds) in table {
            let (o, authzs) = new_order("acct", idents.clone(), at(0), counter());
            assert_eq!((o.status, o.expires, &o.identifiers), (Status::Pending, at(0) + ORDER_LIFETIME, &idents));
            assert_eq!(o.authorizations, authzs.iter().map(|a| a.id.clone()).collect::<Vec<_>>());
            let got: Vec<Vec<ChallengeKind>> =
                authzs.iter().map(|a| a.challenges.iter().map(|c| c.kind).collect()).collect();
            assert_eq!(got, kinds);
            for a in &authzs {
                assert_eq!((a.status, a.expires, a.account.as_str()), (Status::Pending, o.expires, "acct"));
                assert!(a.challenges.iter().all(|c| c.status == Status::Pending && c.token.len() >= 22));
            }
            let mut ids: Vec<&str> = authzs.iter().flat_map(|a| a.challenges.iter().map(|c| c.id.as_str())).collect();
            ids.extend(authzs.iter().map(|a| a.id.as_str()));
            ids.push(&o.id);
            let n = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n, "every object gets its own id");
        }
    }

    #[test]
    fn order_status_follows_its_authorizations_and_its_expiry() {
        use Status::*;
        // (stored status, authorization statuses, seconds after creation) → status
        let late = ORDER_LIFETIME.whole_seconds() + 1;
        let table = [
            (Pending, vec![Pending], 0, Pending),
            (Pending, vec![Valid, Pending], 0, Pending),
            (Pending, vec![Valid, Valid], 0, Ready),
            (Pending, vec![Valid, Invalid], 0, Invalid),
            (Pending, vec![Deactivated], 0, Invalid),
            (Pending, vec![Revoked, Pending], 0, Invalid),
            (Pending, vec![Valid], late, Invalid),
            (Pending, vec![Pending], late, Invalid),
            (Processing, vec![Valid], 0, Processing),
            (Valid, vec![Valid], late, Valid),
            (Invalid, vec![Valid], 0, Invalid),
        ];
        for (stored, authzs, secs, want) in table {
            assert_eq!(order_status(&order(stored), &authzs, at(secs)), want, "{stored:?} {authzs:?} +{secs}s");
        }
    }

    #[test]
    fn deactivate_authz_only_from_pending_or_valid() {
        use Status::*;
        // (status, requested) → Ok(new status, None if unchanged) or Err
        let table: [(Status, Option<&str>, Outcome); 7] = [
            (Pending, None, Ok(None)),
            (Pending, Some("deactivated"), Ok(Some(Deactivated))),
            (Valid, Some("deactivated"), Ok(Some(Deactivated))),
            (Invalid, Some("deactivated"), Err(())),
            (Deactivated, Some("deactivated"), Err(())),
            (Pending, Some("valid"), Err(())),
            (Valid, None, Ok(None)),
        ];
        for (status, wanted, want) in table {
            let got = deactivate_authz(&authz(status, Pending), wanted);
            let got = got.map(|a| a.map(|a| a.status)).map_err(|p| assert_eq!(p.kind, Kind::Malformed));
            assert_eq!(got, want, "{status:?} → {wanted:?}");
        }
    }

    #[test]
    fn challenge_checked_settles_challenge_and_authorization_together() {
        use Status::*;
        // (authz, challenge) → whether a POST checks it
        let table = [
            (Pending, Pending, true),
            (Pending, Valid, false),
            (Valid, Valid, false),
            (Invalid, Invalid, false),
            (Deactivated, Pending, false),
        ];
        for (a, c, want) in table {
            assert_eq!(challenge_checkable(&authz(a, c), 0), want, "{a:?} {c:?}");
        }
        // result → (authz, challenge, validated, error type)
        let refused = Problem::new(Kind::Connection, "could not reach a.test");
        let table = [
            (Ok(()), (Valid, Valid, Some(at(5)), None)),
            (Err(refused), (Invalid, Invalid, None, Some("urn:ietf:params:acme:error:connection"))),
        ];
        for (result, (want_a, want_c, validated, error)) in table {
            let a = challenge_checked(authz(Pending, Pending), 0, result, at(5));
            let c = &a.challenges[0];
            let error_type = c.error.as_ref().map(|e| e["type"].as_str().unwrap());
            assert_eq!((a.status, c.status, c.validated, error_type), (want_a, want_c, validated, error));
            assert!(a.challenges[1..].iter().all(|c| c.status == Pending), "the other challenges stay");
        }
    }

    #[test]
    fn finalize_ready_needs_a_ready_order() {
        use Status::*;
        let table = [(Ready, true), (Pending, false), (Processing, false), (Valid, false), (Invalid, false)];
        for (status, ok) in table {
            let got = finalize_ready(&order(status));
            assert_eq!(got.is_ok(), ok, "{status:?}");
            if let Err(p) = got {
                assert_eq!((p.kind, p.status), (Kind::OrderNotReady, 403));
                assert!(p.detail.contains(status.name()), "{p}");
            }
        }
    }

    #[test]
    fn finalized_is_valid_with_a_certificate_or_invalid_with_the_problem() {
        let refused = Problem::new(Kind::BadCsr, "no");
        // issuance → (status, certificate id is the order's, error type)
        let table = [
            (Ok(()), (Status::Valid, true, None)),
            (Err(&refused), (Status::Invalid, false, Some("urn:ietf:params:acme:error:badCSR"))),
        ];
        for (issued, (status, has_cert, error)) in table {
            let o = order(Status::Processing);
            let id = o.id.clone();
            let done = finalized(o, issued);
            let error_type = done.error.as_ref().map(|e| e["type"].as_str().unwrap());
            assert_eq!((done.status, done.certificate == Some(id), error_type), (status, has_cert, error));
        }
    }

    #[test]
    fn update_account_changes_contacts_or_deactivates() {
        let account = Account {
            id: "1".into(),
            key: Jwk::Ed25519 { x: vec![7; 32] },
            contact: vec!["mailto:old@a.test".into()],
            status: AccountStatus::Valid,
            created: at(0),
            eab: None,
        };
        // payload → Ok((status, contacts)) or Err(problem type)
        let table: [(Value, Updated); 7] = [
            (json!({}), Ok((AccountStatus::Valid, vec!["mailto:old@a.test"]))),
            (json!({ "contact": ["mailto:new@a.test"] }), Ok((AccountStatus::Valid, vec!["mailto:new@a.test"]))),
            (json!({ "contact": [] }), Ok((AccountStatus::Valid, vec![]))),
            (json!({ "status": "deactivated" }), Ok((AccountStatus::Deactivated, vec!["mailto:old@a.test"]))),
            (json!({ "status": "valid" }), Err(Kind::Malformed)),
            (json!({ "contact": ["tel:+1555"] }), Err(Kind::UnsupportedContact)),
            (json!({ "contact": ["mailto:a@x.test,b@x.test"] }), Err(Kind::InvalidContact)),
        ];
        for (payload, want) in table {
            let got = update_account(&account, &payload).map(|a| (a.status, a.contact)).map_err(|p| p.kind);
            let want = want.map(|(s, c)| (s, c.into_iter().map(String::from).collect::<Vec<_>>()));
            assert_eq!(got, want, "{payload}");
        }
    }
}
