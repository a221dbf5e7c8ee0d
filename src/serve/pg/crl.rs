//! One CRL per CA for the whole fleet, published by one instance at a time
//! and served as the same bytes by all (Boulder's crl-updater and storer
//! in one binary). The instance that takes the lease (a compare-and-set on
//! the database's clock) signs the revocations of one consistent snapshot,
//! numbers the CRL from its thisUpdate, and stores it only if it still
//! holds that lease (its token: a holder that paused past its lease cannot
//! write) and the number rises over the stored one (RFC 5280 §5.2.3). A
//! dead holder's lease runs out by itself, and any instance takes over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;

use super::state::{PgState, POLL};
use crate::acme::db::Stored;
use crate::pki::crl::{next_number, CrlState};
use crate::pki::validity::BACKDATE;
use crate::serve::crl::CrlCache;
use crate::serve::log::Log;
use crate::storage::StorageError;

/// How long a lease lets its holder publish: a signature and two
/// statements take milliseconds, even on a token.
pub const LEASE: Duration = Duration::from_secs(5);
/// How often each instance looks at the CRL's row.
pub const TICK: Duration = Duration::from_secs(1);

/// A CRL that was stored.
#[derive(Clone)]
pub struct Published {
    pub number: u64,
    pub der: Arc<[u8]>,
    /// How many certificates it lists.
    pub entries: usize,
    /// The `wanted` count it reaches: it lists every revocation counted up
    /// to this one.
    pub covers: i64,
}

/// Its bytes by their length: a test's failure message stays readable.
impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("number", &self.number)
            .field("der_len", &self.der.len())
            .field("entries", &self.entries)
            .field("covers", &self.covers)
            .finish()
    }
}

/// A CRL signed from one snapshot, not yet stored.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The `wanted` count of the snapshot: the CRL lists every revocation
    /// counted up to it.
    pub wanted: i64,
    pub number: u64,
    pub der: Vec<u8>,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: usize,
}

/// The CRL as stored: its number, the `wanted` count it covers, its bytes.
struct StoredCrl {
    number: u64,
    covers: i64,
    der: Arc<[u8]>,
}

/// The CRL row as the poller reads it.
struct Row {
    number: i64,
    covers: i64,
    wanted: i64,
    this_update: Option<OffsetDateTime>,
    next_update: Option<OffsetDateTime>,
}

/// Whether the CRL must be published again: a revocation it does not list
/// yet, or a third of its lifetime left (as the server's own certificate is
/// renewed at two thirds), or none published at all.
fn due(row: &Row, now: OffsetDateTime) -> bool {
    match (row.this_update, row.next_update) {
        _ if row.wanted > row.covers => true,
        (Some(this), Some(next)) => next - now < (next - this) / 3,
        _ => false,
    }
}

impl PgState {
    /// Takes the CA's CRL lease for [`LEASE`], by the database's clock (the
    /// instances' clocks may differ): the new fencing token, or None while
    /// another holder's lease runs.
    pub fn take_lease(&self) -> Stored<Option<i64>> {
        let (ca, holder) = (self.ca.0.to_vec(), self.db.instance().to_string());
        let ms = LEASE.as_millis() as i64;
        self.db.run("taking the CRL lease", move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "INSERT INTO crl_lease (ca, holder, token, leased_until) \
                         VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond') \
                         ON CONFLICT (ca) DO UPDATE SET holder = $2, token = crl_lease.token + 1, \
                         leased_until = now() + $3 * interval '1 millisecond' \
                         WHERE crl_lease.leased_until < now() RETURNING token",
                        &[&ca, &holder, &(ms as f64)],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    /// Reads the revocations and the CRL's number in one REPEATABLE READ
    /// snapshot, then signs outside any transaction (a token may take its
    /// time) the CRL numbered from its thisUpdate; None when the CA has no
    /// CRL row (nothing was ever revoked).
    pub fn sign_snapshot(&self, now: OffsetDateTime) -> Stored<Option<Signed>> {
        let ca = self.ca.0.to_vec();
        let snapshot = self.db.tx("reading the revocations", move |c| {
            Box::pin(async move {
                c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
                let Some(row) = c.query_opt("SELECT wanted, number FROM crls WHERE ca = $1", &[&ca]).await? else {
                    return Ok(None);
                };
                let revoked = c
                    .query(
                        "SELECT serial, revoked_at, reason FROM revocations WHERE ca = $1 ORDER BY revoked_at, serial",
                        &[&ca],
                    )
                    .await?;
                let entries: Vec<_> =
                    revoked.iter().map(|r| super::state::entry(r.get::<_, &[u8]>(0), r.get(1), r.get(2))).collect();
                Ok(Some((row.get::<_, i64>(0), row.get::<_, i64>(1), entries)))
            })
        })?;
        let Some((wanted, number, entries)) = snapshot else { return Ok(None) };
        let this_update = now - BACKDATE;
        let number = next_number(u64::try_from(number).unwrap_or(0), this_update);
        let mut state = CrlState { number: 0, entries };
        let der = state
            .sign_numbered(&self.signer, now, number)
            .map_err(|e| StorageError::Failed(format!("signing the CRL: {e}")))?;
        let (_, crl) = x509_parser::parse_x509_crl(&der)
            .map_err(|e| StorageError::Failed(format!("reading back the CRL just signed: {e}")))?;
        let next_update = crl.next_update().map(|t| t.to_datetime()).unwrap_or(this_update);
        Ok(Some(Signed {
            wanted,
            number,
            this_update: crl.last_update().to_datetime(),
            next_update,
            entries: state.entries.len(),
            der,
        }))
    }

    /// Stores `signed` as the CA's CRL, if `token` still holds the lease
    /// (which it then gives up) and its number is higher than the stored
    /// one; either refusal is a `Conflict` and changes nothing.
    pub fn store(&self, token: i64, signed: Signed) -> Stored<Published> {
        let ca = self.ca.0.to_vec();
        let number = i64::try_from(signed.number)
            .map_err(|_| StorageError::Failed(format!("CRL number {} does not fit the table", signed.number)))?;
        let der: Arc<[u8]> = Arc::from(signed.der);
        let stored = self.db.tx("storing the CRL", {
            let der = der.clone();
            move |c| {
                Box::pin(async move {
                    // Fencing first: a holder whose lease was taken over
                    // writes nothing.
                    let held = c
                        .execute(
                            "UPDATE crl_lease SET leased_until = now() WHERE ca = $1 AND token = $2",
                            &[&ca, &token],
                        )
                        .await?;
                    if held == 0 {
                        return Ok(Err("the CRL lease was taken over by another instance; nothing was stored"));
                    }
                    let raised = c
                        .execute(
                            "UPDATE crls SET number = $2, der = $3, covers = $4, this_update = $5, next_update = $6 \
                             WHERE ca = $1 AND number < $2",
                            &[&ca, &number, &&der[..], &signed.wanted, &signed.this_update, &signed.next_update],
                        )
                        .await?;
                    if raised == 0 {
                        return Ok(Err("the CRL number would not increase over the stored CRL's; nothing was stored"));
                    }
                    c.execute(
                        "INSERT INTO crl_history (ca, number, der) VALUES ($1, $2, $3)",
                        &[&ca, &number, &&der[..]],
                    )
                    .await?;
                    Ok(Ok(()))
                })
            }
        })?;
        stored.map_err(|why| StorageError::Conflict(why.into()))?;
        Ok(Published { number: signed.number, der, entries: signed.entries, covers: signed.wanted })
    }

    /// Takes the lease, signs and stores the CA's CRL: None when another
    /// instance holds the lease, or nothing was ever revoked.
    pub fn publish(&self, now: OffsetDateTime) -> Stored<Option<Published>> {
        let Some(token) = self.take_lease()? else { return Ok(None) };
        match self.sign_snapshot(now)? {
            Some(signed) => self.store(token, signed).map(Some),
            None => Ok(None),
        }
    }

    /// The CRL row, if the CA has one.
    fn row(&self) -> Stored<Option<Row>> {
        let ca = self.ca.0.to_vec();
        let row = self.db.run("reading the CRL's state", move |c| {
            Box::pin(async move {
                c.query_opt("SELECT number, covers, wanted, this_update, next_update FROM crls WHERE ca = $1", &[&ca])
                    .await
            })
        })?;
        Ok(row.map(|r| Row {
            number: r.get(0),
            covers: r.get(1),
            wanted: r.get(2),
            this_update: r.get(3),
            next_update: r.get(4),
        }))
    }

    /// The stored CRL.
    fn stored_crl(&self) -> Stored<Option<StoredCrl>> {
        let ca = self.ca.0.to_vec();
        let row = self.db.run("reading the CRL", move |c| {
            Box::pin(async move { c.query_opt("SELECT number, covers, der FROM crls WHERE ca = $1", &[&ca]).await })
        })?;
        Ok(row.and_then(|r| {
            let der: Option<Vec<u8>> = r.get(2);
            der.map(|d| StoredCrl { number: r.get::<_, i64>(0) as u64, covers: r.get(1), der: Arc::from(d) })
        }))
    }

    /// Publishes until a stored CRL lists every revocation counted up to
    /// `wanted`, or a lease and two seconds pass (long enough for a dead
    /// holder's lease to lapse): the number and entries of that CRL, or
    /// None. Another instance holding the lease may be the one that does;
    /// a database that stops answering meanwhile is waited for too, since
    /// the revocation itself is recorded already.
    pub(super) fn publish_until(&self, wanted: i64) -> Stored<Option<(u64, usize)>> {
        let until = Instant::now() + LEASE + Duration::from_secs(2);
        loop {
            match self.publish(OffsetDateTime::now_utc()) {
                Ok(Some(p)) if p.covers >= wanted => return Ok(Some((p.number, p.entries))),
                // Lost the lease or the race for a higher number: whoever
                // won has stored a CRL, maybe one that lists ours.
                Ok(_) | Err(StorageError::Conflict(_) | StorageError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if let Ok(Some(crl)) = self.stored_crl() {
                if crl.covers >= wanted {
                    let entries =
                        x509_parser::parse_x509_crl(&crl.der).map_or(0, |(_, c)| c.iter_revoked_certificates().count());
                    return Ok(Some((crl.number, entries)));
                }
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// One look at the CRL row: the cache gets a newer stored CRL, and the
    /// CRL is published when it is due.
    fn tick(&self, cache: &CrlCache, now: OffsetDateTime) -> Stored<Option<Published>> {
        let Some(row) = self.row()? else { return Ok(None) };
        if cache.number() != Some(row.number as u64) {
            if let Some(crl) = self.stored_crl()? {
                cache.set(crl.number, crl.der);
            }
        }
        if !due(&row, now) {
            return Ok(None);
        }
        let published = self.publish(now)?;
        if let Some(p) = &published {
            cache.set(p.number, p.der.clone());
        }
        Ok(published)
    }
}

/// Runs on every instance for as long as `serve` does: every [`TICK`] it
/// fills `cache` from the stored CRL (so `/crl/` answers without a
/// database call, the same bytes on every instance) and publishes when a
/// revocation is not listed yet or the CRL nears its nextUpdate. A failure
/// is logged when it starts and when it ends, not every second.
pub async fn crl_loop(state: Arc<PgState>, cache: Arc<CrlCache>, log: Log) {
    let mut failing: Option<String> = None;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (state, cache) = (state.clone(), cache.clone());
        let done = tokio::task::spawn_blocking(move || state.tick(&cache, OffsetDateTime::now_utc())).await;
        let result = done.unwrap_or_else(|e| Err(StorageError::Failed(format!("the CRL poller stopped: {e}"))));
        match result {
            Ok(published) => {
                if failing.take().is_some() {
                    log.event("info", "the CRL is read from the database again", &[]);
                }
                if let Some(p) = published {
                    log.event(
                        "info",
                        "published the CRL",
                        &[("crl_number", json!(p.number.to_string())), ("entries", json!(p.entries))],
                    );
                }
            }
            // Another instance stored first: its CRL is read on the next tick.
            Err(StorageError::Conflict(_)) => {}
            Err(e) => {
                let text = e.to_string();
                if failing.as_deref() != Some(text.as_str()) {
                    log.event(
                        "warn",
                        "cannot read or publish the CRL; serving the last one read",
                        &[("error", json!(text))],
                    );
                    failing = Some(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(wanted: i64, covers: i64, this: Option<i64>, next: Option<i64>) -> Row {
        let at = |d: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::days(d);
        Row { number: 1, covers, wanted, this_update: this.map(at), next_update: next.map(at) }
    }

    #[test]
    fn a_crl_is_due_for_an_unlisted_revocation_or_with_a_third_of_its_life_left() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        assert!(due(&row(3, 2, Some(99), Some(400)), now), "a revocation it does not list");
        assert!(!due(&row(3, 3, Some(99), Some(400)), now), "fresh and complete");
        assert!(!due(&row(3, 3, Some(0), Some(151)), now), "just over a third left");
        assert!(due(&row(3, 3, Some(0), Some(149)), now), "under a third left");
        assert!(due(&row(1, 0, None, None), now), "wanted, none published yet");
        assert!(!due(&row(0, 0, None, None), now));
    }
}
