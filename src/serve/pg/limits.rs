//! Rate limits shared by the fleet: one row per bucket key holding its
//! GCRA theoretical arrival time, decided by the same pure rule as the
//! in-memory limiter (`acme::limits::decide`), under row locks so that two
//! instances spending one bucket at once count twice, never once.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::{schema, PgDb};
use crate::acme::limits::{admitted, charged, decide, Bucket, Limiter, Verdict};
use crate::serve::log::Log;
use crate::storage::StorageError;

impl PgDb {
    /// Locks the rows of `keys` (made when missing) and of `also` (when
    /// they exist) in one transaction, gives their TATs (None: a full
    /// bucket) to `f`, and writes back what `f` returns (Ok) or changes
    /// nothing (Err, its value returned). Rows are locked in key order, one
    /// order for every caller, so two instances never deadlock on each
    /// other's buckets.
    fn with_buckets<E: Send + 'static>(
        &self,
        what: &'static str,
        keys: Vec<String>,
        also: Vec<String>,
        f: impl FnOnce(&HashMap<String, OffsetDateTime>) -> Result<Vec<(String, OffsetDateTime)>, E> + Send + 'static,
    ) -> Result<Result<(), E>, StorageError> {
        self.run(what, move |c| {
            Box::pin(async move {
                let make = c
                    .prepare_cached(
                        "INSERT INTO rate_limits (key, tat) SELECT unnest($1::text[]), '-infinity' ON CONFLICT DO NOTHING",
                    )
                    .await?;
                let lock = c
                    .prepare_cached(
                        "SELECT key, NULLIF(tat, '-infinity') FROM rate_limits WHERE key = ANY($1) OR key = ANY($2) \
                         ORDER BY key FOR UPDATE",
                    )
                    .await?;
                // One round trip for the four (see nonces.rs); a lost commit
                // after a crash forgets a few counts, which a limit survives.
                let made: [&(dyn ToSql + Sync); 1] = [&keys];
                let locked: [&(dyn ToSql + Sync); 2] = [&keys, &also];
                let (_, _, rows) = tokio::try_join!(
                    biased;
                    c.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
                    c.execute(&make, &made),
                    c.query(&lock, &locked),
                )?;
                let tats: HashMap<String, OffsetDateTime> = rows
                    .iter()
                    .filter_map(|r| Some((r.get::<_, String>(0), r.get::<_, Option<OffsetDateTime>>(1)?)))
                    .collect();
                match f(&tats) {
                    Ok(next) => {
                        let (keys, tats): (Vec<String>, Vec<OffsetDateTime>) = next.into_iter().unzip();
                        let update = c
                            .prepare_cached(
                                "UPDATE rate_limits SET tat = n.tat FROM unnest($1::text[], $2::timestamptz[]) \
                                 AS n(key, tat) WHERE rate_limits.key = n.key",
                            )
                            .await?;
                        let params: [&(dyn ToSql + Sync); 2] = [&keys, &tats];
                        tokio::try_join!(biased; c.execute(&update, &params), c.batch_execute("COMMIT"))?;
                        Ok(Ok(()))
                    }
                    Err(e) => {
                        c.batch_execute("ROLLBACK").await?;
                        Ok(Err(e))
                    }
                }
            })
        })
    }
}

impl Limiter for PgDb {
    fn spend(&self, buckets: &[Bucket], now: OffsetDateTime) -> Result<Verdict, StorageError> {
        self.admit(&[], buckets, now)
    }

    /// The checked buckets are read under the same locks as the spent ones
    /// (not made: a check counts nothing), so one round trip decides both.
    fn admit(&self, checks: &[Bucket], buckets: &[Bucket], now: OffsetDateTime) -> Result<Verdict, StorageError> {
        if checks.is_empty() && buckets.is_empty() {
            return Ok(Verdict::Allowed);
        }
        let keys = buckets.iter().map(|b| b.key.clone()).collect();
        let also = checks.iter().map(|b| b.key.clone()).collect();
        let (checks, buckets) = (checks.to_vec(), buckets.to_vec());
        let spent = self.with_buckets("spending a rate limit", keys, also, move |tats| {
            admitted(&checks, &buckets, now, |k| tats.get(k).copied())
        })?;
        Ok(spent.err().unwrap_or(Verdict::Allowed))
    }

    fn check(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<Verdict, StorageError> {
        let key = bucket.key.clone();
        let tat = self.run("checking a rate limit", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT NULLIF(tat, '-infinity') FROM rate_limits WHERE key = $1").await?;
                Ok(c.query_opt(&st, &[&key]).await?.and_then(|r| r.get::<_, Option<OffsetDateTime>>(0)))
            })
        })?;
        Ok(match decide(std::slice::from_ref(bucket), now, |_| tat) {
            Ok(_) => Verdict::Allowed,
            Err(limited) => limited,
        })
    }

    fn charge(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<(), StorageError> {
        let (key, rate) = (bucket.key.clone(), bucket.rate);
        let Ok(()) = self.with_buckets("counting a failed validation", vec![key.clone()], Vec::new(), move |tats| {
            Ok::<_, std::convert::Infallible>(vec![(key.clone(), charged(tats.get(&key).copied(), now, rate))])
        })?;
        Ok(())
    }
}

/// Every minute, on every instance, [`PgDb::sweep`]. A standby has
/// nothing to clean.
pub async fn janitor(db: PgDb, log: Log) {
    if db.standby() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        match db.sweep().await {
            Ok(Some((nonces, buckets))) if nonces + buckets > 0 => log.event(
                "info",
                "deleted expired nonces and full rate-limit buckets",
                &[("nonces", json!(nonces)), ("buckets", json!(buckets))],
            ),
            Ok(_) => {}
            Err(e) => log.event(
                "warn",
                "cannot clean the database's nonces and rate limits",
                &[("error", json!(e.to_string()))],
            ),
        }
    }
}

impl PgDb {
    /// One pass of the janitor: unless another instance is at it (it holds
    /// the lock), deletes the spent nonces past their lifetime and the
    /// buckets that are full again (a TAT in the past allows a whole
    /// burst, as no row does), and says how many of each; None when
    /// another instance held the lock.
    pub async fn sweep(&self) -> Result<Option<(u64, u64)>, StorageError> {
        self.op("cleaning spent nonces and full rate-limit buckets", true, |c| {
            Box::pin(async move {
                let locked: bool =
                    c.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&(schema::LOCK + 1)]).await?.get(0);
                if !locked {
                    return Ok(None);
                }
                let nonces = c.execute("DELETE FROM used_nonces WHERE expires < now()", &[]).await?;
                let buckets = c.execute("DELETE FROM rate_limits WHERE tat < now()", &[]).await?;
                Ok(Some((nonces, buckets)))
            })
        })
        .await
    }
}
