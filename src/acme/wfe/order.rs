//! Orders, authorizations and challenges (RFC 8555 §7.4, §7.5): each
//! handler reads, asks `crate::acme::orders` what the objects become, and
//! stores that.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Engine, Reply, Signed};
use crate::acme::db::Store;
use crate::acme::jws::unb64;
use crate::acme::limits::{Bucket, Verdict};
use crate::acme::model::{path, Account, Authorization, Ident, Order, Status};
use crate::acme::orders::{self, challenge_checkable, challenge_checked, deactivate_authz, finalize_ready, finalized};
use crate::acme::problem::{malformed, Kind, Problem};
use crate::pki::csr::parse_csr;

impl<S: Store> Engine<S> {
    /// §7.4: a new order, one authorization per identifier.
    pub(super) fn new_order(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let account = s.account()?;
        let payload = s.req.json()?;
        if payload.get("notBefore").is_some() || payload.get("notAfter").is_some() {
            return Err(malformed(
                "notBefore/notAfter are not supported: certificates get the server's --cert-lifetime",
            ));
        }
        if let Some(replaces) = payload.get("replaces") {
            // RFC 9773 §5: the certificate being renewed must be one this
            // account holds.
            let id = replaces.as_str().ok_or_else(|| malformed("\"replaces\" must be a CertID string"))?;
            let (_, serial) = crate::acme::ari::parse_cert_id(id)?;
            if self.owned_cert(account, &serial)?.is_none() {
                return Err(malformed(format!("\"replaces\" names {id}, which is not a certificate of this account")));
            }
        }
        let identifiers = self.policy.identifiers(&payload)?;
        self.within_limits(account, &identifiers, s.peer, now)?;
        let (order, authzs) = orders::new_order(&account.id, identifiers, now, || self.store.next_id());
        self.store.put_new_order(&order, &authzs)?;
        Ok(Reply::json(201, &order.to_json(&self.base)).with("Location", self.order_url(&order.id)))
    }

    /// §6.6: refuses a new order, before anything is stored for it, when
    /// the account has failed validating one of its names too often, or
    /// the account or the client's address has made too many orders.
    fn within_limits(
        &self,
        account: &Account,
        identifiers: &[Ident],
        peer: Option<std::net::IpAddr>,
        now: OffsetDateTime,
    ) -> Result<(), Problem> {
        let (checks, names): (Vec<Bucket>, Vec<&str>) = identifiers
            .iter()
            .filter_map(|i| Some((self.limits.failed_validation(&account.id, &i.value)?, i.value.as_str())))
            .unzip();
        let buckets = self.limits.new_order(&account.id, peer);
        match self.limiter.admit(&checks, &buckets, now)? {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { key, retry_after } => {
                let refusal = match checks.iter().position(|b| b.key == key) {
                    Some(at) => format!("{} ({})", checks[at].refusal(retry_after), names[at]),
                    None => buckets.iter().find(|b| b.key == key).expect("a bucket it was given").refusal(retry_after),
                };
                Err(Problem::rate_limited(refusal, retry_after))
            }
        }
    }

    /// An order of the signing account as it stands
    /// (`orders::order_status`).
    fn owned_order(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Order, Problem> {
        let account = s.account()?;
        let found = self.store.order_with_authzs(id)?.filter(|(o, _)| o.account == account.id);
        let (order, authzs) = found.ok_or_else(|| Problem::not_found(format!("no order {id} of this account")))?;
        if order.status != Status::Pending {
            return Ok(order);
        }
        // A missing authorization counts as invalid.
        let statuses: Vec<Status> = authzs.into_iter().map(|z| z.unwrap_or(Status::Invalid)).collect();
        Ok(Order { status: orders::order_status(&order, &statuses, now), ..order })
    }

    pub(super) fn order(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let order = self.owned_order(s, id, now)?;
        let reply = Reply::json(200, &order.to_json(&self.base));
        Ok(match order.status {
            Status::Pending | Status::Processing => reply.retry_after(),
            _ => reply,
        })
    }

    fn owned_authz(&self, s: &Signed, authz: Option<Authorization>) -> Result<Authorization, Problem> {
        let account = s.account()?;
        authz
            .filter(|a| a.account == account.id)
            .ok_or_else(|| Problem::not_found("no such authorization of this account"))
    }

    /// §7.5, §7.5.2: read or deactivate an authorization.
    pub(super) fn authz(&self, s: &Signed, id: &str) -> Result<Reply, Problem> {
        let mut authz = self.owned_authz(s, self.store.authz(id)?)?;
        if !s.req.payload.is_empty() {
            if let Some(changed) = deactivate_authz(&authz, s.req.json()?.get("status").and_then(Value::as_str))? {
                self.store.put_authz(&changed)?;
                authz = changed;
            }
        }
        Ok(Reply::json(200, &authz.to_json(&self.base)))
    }

    /// §7.5.1: the client says a challenge is ready. It is checked at once,
    /// so the reply already says valid or invalid: lego and certbot then
    /// need no polling round.
    pub(super) fn challenge(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let mut authz = self.owned_authz(s, self.store.authz_of_challenge(id)?)?;
        let up = format!("<{}{}{}>;rel=\"up\"", self.base, path::AUTHZ, authz.id);
        let at = authz.challenges.iter().position(|c| c.id == id).expect("found by this id");
        if !s.req.payload.is_empty() && challenge_checkable(&authz, at) {
            let account = s.account()?;
            let key_authorization = format!("{}.{}", authz.challenges[at].token, account.key.thumbprint());
            let result = self.validator.validate(&authz.ident, authz.challenges[at].kind, &key_authorization);
            authz = challenge_checked(authz, at, result, now);
            self.store.put_authz(&authz)?;
            if authz.challenges[at].status == Status::Invalid {
                if let Some(bucket) = self.limits.failed_validation(&account.id, &authz.ident.value) {
                    // The failure is stored; a limiter that cannot count it
                    // now only makes the limit looser, so the reply stands.
                    let _ = self.limiter.charge(&bucket, now);
                }
            }
        }
        let reply = Reply::json(200, &authz.challenges[at].to_json(&self.base)).with("Link", up);
        Ok(if authz.challenges[at].status == Status::Pending { reply.retry_after() } else { reply })
    }

    /// §7.4: issue for a ready order. Only one finalize can claim it (the
    /// store moves it to processing atomically); if storing the result
    /// fails, the claim is released so that the client can finalize again,
    /// and the issuer then returns the certificate it already signed.
    pub(super) fn finalize(&self, s: &Signed, id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let account = s.account()?;
        let order = self.owned_order(s, id, now)?;
        finalize_ready(&order)?;
        let csr_b64 = s.req.json()?.get("csr").and_then(Value::as_str).map(str::to_string);
        let der = unb64(&csr_b64.ok_or_else(|| malformed("finalize needs \"csr\""))?, "csr")?;
        let csr = parse_csr(&der, "the finalize CSR").map_err(|e| Problem::new(Kind::BadCsr, e.to_string()))?;
        self.policy.check_csr(&csr, &order.identifiers, &account.key)?;
        if !self.store.transition_order(id, Status::Pending, Status::Processing)? {
            return Err(Problem::new(Kind::OrderNotReady, "the order is being finalized or was finalized already"));
        }
        let issued = self.issuer.issue(&order.id, &csr, now);
        let stored = match &issued {
            Ok(chain) => {
                let serial = crate::acme::ca::leaf_of(chain).and_then(|der| crate::acme::ca::serial_key(&der));
                let done = finalized(order, Ok(()));
                self.store.put_issued(&done, &serial.unwrap_or_default(), chain).map(|()| done)
            }
            Err(p) => {
                let done = finalized(order, Err(p));
                self.store.put_order(&done).map(|()| done)
            }
        };
        let done = stored.inspect_err(|_| {
            // Best effort: if this fails too, the next start's recovery
            // releases the claim (`SqlStore::recover`).
            let _ = self.store.transition_order(id, Status::Processing, Status::Pending);
        })?;
        issued?;
        Ok(Reply::json(200, &done.to_json(&self.base)).with("Location", self.order_url(&done.id)))
    }
}
