//! Rate limits (RFC 8555 §6.6: `rateLimited`, with Retry-After): new orders
//! per account and per client address, and failed validations per account
//! and name. Each limit is a bucket keyed by what it counts, kept as one
//! timestamp, the Generic Cell Rate Algorithm's "theoretical arrival time"
//! (TAT), as Let's Encrypt's Boulder keeps its limits: a store shared by
//! several instances then enforces one limit for all of them with one row
//! per key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::storage::StorageError;

/// A limit: at most `per_hour` events in any hour, all of them at once if
/// the bucket was full (burst = `per_hour`). 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    pub per_hour: u32,
}

/// The window a [`Rate`] counts over.
const PERIOD: Duration = Duration::hours(1);

impl Rate {
    pub fn is_off(self) -> bool {
        self.per_hour == 0
    }

    /// The time one event uses up.
    fn emission(self) -> Duration {
        PERIOD / self.per_hour.max(1)
    }
}

/// The server's limits. Default: all off (tests, fuzzing, a laptop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub orders_per_account: Rate,
    pub orders_per_address: Rate,
    pub failed_validations: Rate,
}

/// What a bucket counts, so that a refusal can say it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    OrdersOfAccount,
    OrdersFromAddress,
    FailedValidations,
}

impl Counted {
    fn words(self) -> &'static str {
        match self {
            Counted::OrdersOfAccount => "new orders by this account",
            Counted::OrdersFromAddress => "new orders from this address",
            Counted::FailedValidations => "failed validations of this name by this account",
        }
    }
}

/// One limit applied to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub rate: Rate,
    pub counted: Counted,
}

impl Bucket {
    /// What to tell the client when this bucket is empty.
    pub fn refusal(&self, retry_after: std::time::Duration) -> String {
        format!(
            "too many {}: the limit is {} per hour; retry after {} s",
            self.counted.words(),
            self.rate.per_hour,
            retry_secs(retry_after)
        )
    }
}

/// Whole seconds to wait, rounded up, at least 1 (a Retry-After of 0 would
/// make a client retry at once into the same refusal).
pub fn retry_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl Limits {
    /// The buckets a new order spends, those that are on.
    pub fn new_order(&self, account: &str, peer: Option<IpAddr>) -> Vec<Bucket> {
        let mut buckets = vec![Bucket {
            key: format!("orders/acct/{account}"),
            rate: self.orders_per_account,
            counted: Counted::OrdersOfAccount,
        }];
        if let Some(ip) = peer {
            buckets.push(Bucket {
                key: format!("orders/addr/{}", address_key(ip)),
                rate: self.orders_per_address,
                counted: Counted::OrdersFromAddress,
            });
        }
        buckets.retain(|b| !b.rate.is_off());
        buckets
    }

    /// The bucket of failed validations of `name` by `account`, if on.
    pub fn failed_validation(&self, account: &str, name: &str) -> Option<Bucket> {
        Some(Bucket {
            key: format!("failed/{account}/{}", name.to_ascii_lowercase()),
            rate: self.failed_validations,
            counted: Counted::FailedValidations,
        })
        .filter(|b| !b.rate.is_off())
    }
}

/// An IPv6 client is counted by its /64, which one host usually holds
/// whole (RFC 6177): by /128 one host could use 2^64 buckets.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// What a limiter says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The first bucket that was empty, and when it has room again.
    Limited {
        key: String,
        retry_after: std::time::Duration,
    },
}

/// GCRA: the bucket's next TAT when one more event is allowed now, or how
/// long until it would be. `tat` None is a full bucket.
pub fn gcra(
    tat: Option<OffsetDateTime>,
    now: OffsetDateTime,
    rate: Rate,
) -> Result<OffsetDateTime, std::time::Duration> {
    if rate.is_off() {
        return Ok(tat.unwrap_or(now));
    }
    let next = tat.map_or(now, |t| t.max(now)) + rate.emission();
    // A burst of `per_hour` may use the whole hour ahead at once.
    let allowed_at = next - PERIOD;
    if now >= allowed_at {
        Ok(next)
    } else {
        Err((allowed_at - now).try_into().unwrap_or_default())
    }
}

/// The TAT after counting one event whatever the verdict (a failed
/// validation happened, allowed or not), never more than a full hour
/// ahead, so a flood of failures empties the bucket and no more.
pub fn charged(tat: Option<OffsetDateTime>, now: OffsetDateTime, rate: Rate) -> OffsetDateTime {
    let next = tat.map_or(now, |t| t.max(now)) + rate.emission();
    next.min(now + PERIOD)
}

/// Where the buckets are kept.
pub trait Limiter: Send + Sync {
    /// When every bucket allows one more, counts it in all of them and
    /// says Allowed; otherwise changes nothing and names the first that
    /// does not.
    fn spend(&self, buckets: &[Bucket], now: OffsetDateTime) -> Result<Verdict, StorageError>;
    /// Whether one more would be allowed; changes nothing.
    fn check(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<Verdict, StorageError>;
    /// Counts one event whatever the verdict.
    fn charge(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<(), StorageError>;
    /// [`Limiter::check`] of each of `checks` in turn, then, if all allow,
    /// [`Limiter::spend`] of `buckets`: newOrder's limits, which a shared
    /// store decides in one transaction and one round trip.
    fn admit(&self, checks: &[Bucket], buckets: &[Bucket], now: OffsetDateTime) -> Result<Verdict, StorageError> {
        for bucket in checks {
            if let limited @ Verdict::Limited { .. } = self.check(bucket, now)? {
                return Ok(limited);
            }
        }
        self.spend(buckets, now)
    }
}

/// What [`Limiter::admit`] decides from the buckets' TATs: the first of
/// `checks` that is empty, or the next TATs of `buckets`.
pub fn admitted(
    checks: &[Bucket],
    buckets: &[Bucket],
    now: OffsetDateTime,
    tat_of: impl Fn(&str) -> Option<OffsetDateTime>,
) -> Result<Vec<(String, OffsetDateTime)>, Verdict> {
    for bucket in checks {
        decide(std::slice::from_ref(bucket), now, &tat_of)?;
    }
    decide(buckets, now, tat_of)
}

/// Past this many keys, those whose bucket is full again are dropped.
const KEEP: usize = 100_000;

/// The buckets of one process: `serve` on SQLite, where one process
/// serves the depot.
#[derive(Default)]
pub struct MemLimiter {
    tats: Mutex<HashMap<String, OffsetDateTime>>,
}

impl MemLimiter {
    fn with<T>(&self, now: OffsetDateTime, f: impl FnOnce(&mut HashMap<String, OffsetDateTime>) -> T) -> T {
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() > KEEP {
            // A TAT in the past is a full bucket: the same as no entry.
            tats.retain(|_, tat| *tat > now);
        }
        f(&mut tats)
    }
}

/// The verdict of `buckets` on the TATs `tat_of` gives, and the new TATs
/// when all allow: one rule for every [`Limiter`].
pub fn decide(
    buckets: &[Bucket],
    now: OffsetDateTime,
    tat_of: impl Fn(&str) -> Option<OffsetDateTime>,
) -> Result<Vec<(String, OffsetDateTime)>, Verdict> {
    buckets
        .iter()
        .map(|b| match gcra(tat_of(&b.key), now, b.rate) {
            Ok(next) => Ok((b.key.clone(), next)),
            Err(retry_after) => Err(Verdict::Limited { key: b.key.clone(), retry_after }),
        })
        .collect()
}

impl Limiter for MemLimiter {
    fn spend(&self, buckets: &[Bucket], now: OffsetDateTime) -> Result<Verdict, StorageError> {
        Ok(self.with(now, |tats| match decide(buckets, now, |k| tats.get(k).copied()) {
            Ok(next) => {
                tats.extend(next);
                Verdict::Allowed
            }
            Err(limited) => limited,
        }))
    }

    fn check(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<Verdict, StorageError> {
        Ok(self.with(now, |tats| match decide(std::slice::from_ref(bucket), now, |k| tats.get(k).copied()) {
            Ok(_) => Verdict::Allowed,
            Err(limited) => limited,
        }))
    }

    fn charge(&self, bucket: &Bucket, now: OffsetDateTime) -> Result<(), StorageError> {
        self.with(now, |tats| {
            let next = charged(tats.get(&bucket.key).copied(), now, bucket.rate);
            tats.insert(bucket.key.clone(), next);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(key: &str, per_hour: u32) -> Bucket {
        Bucket { key: key.into(), rate: Rate { per_hour }, counted: Counted::OrdersOfAccount }
    }

    #[test]
    fn gcra_allows_a_burst_of_the_hourly_rate_then_one_per_emission() {
        let now = OffsetDateTime::now_utc();
        let rate = Rate { per_hour: 4 };
        let mut tat = None;
        for i in 0..4 {
            tat = Some(gcra(tat, now, rate).unwrap_or_else(|r| panic!("event {i} refused, retry {r:?}")));
        }
        let retry = gcra(tat, now, rate).unwrap_err();
        assert_eq!(retry, std::time::Duration::from_secs(15 * 60), "one emission: 60 min / 4");
        assert!(gcra(tat, now + Duration::minutes(15), rate).is_ok(), "room again after the retry time");
        assert!(gcra(tat, now + Duration::minutes(14), rate).is_err());
        assert_eq!(gcra(Some(now + Duration::days(9)), now, Rate { per_hour: 0 }), Ok(now + Duration::days(9)), "off");
    }

    #[test]
    fn a_refusal_changes_no_bucket_and_names_the_first_empty_one() {
        let l = MemLimiter::default();
        let now = OffsetDateTime::now_utc();
        let (a, b) = (bucket("a", 2), bucket("b", 100));
        assert_eq!(l.spend(&[a.clone(), b.clone()], now).unwrap(), Verdict::Allowed);
        assert_eq!(l.spend(&[a.clone(), b.clone()], now).unwrap(), Verdict::Allowed);
        let before = l.tats.lock().unwrap().clone();
        match l.spend(&[b.clone(), a.clone()], now).unwrap() {
            Verdict::Limited { key, retry_after } => {
                assert_eq!(key, "a");
                assert_eq!(retry_secs(retry_after), 1800);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*l.tats.lock().unwrap(), before, "b was not charged for the refused order");
        assert_eq!(l.check(&b, now).unwrap(), Verdict::Allowed);
        assert!(matches!(l.check(&a, now).unwrap(), Verdict::Limited { .. }));
    }

    #[test]
    fn charging_counts_whatever_the_verdict_but_empties_the_bucket_no_further() {
        let l = MemLimiter::default();
        let now = OffsetDateTime::now_utc();
        let f = bucket("f", 2);
        for _ in 0..50 {
            l.charge(&f, now).unwrap();
        }
        match l.check(&f, now).unwrap() {
            Verdict::Limited { retry_after, .. } => assert_eq!(retry_secs(retry_after), 1800, "one emission"),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.check(&f, now + Duration::minutes(30)).unwrap(), Verdict::Allowed);
    }

    #[test]
    fn buckets_name_account_address_and_name_and_off_limits_have_none() {
        let limits = Limits {
            orders_per_account: Rate { per_hour: 5 },
            orders_per_address: Rate { per_hour: 9 },
            failed_validations: Rate::default(),
        };
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let keys: Vec<String> = limits.new_order("acct1", Some(v6)).into_iter().map(|b| b.key).collect();
        assert_eq!(keys, ["orders/acct/acct1", "orders/addr/2001:db8:1:2::/64"]);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(limits.new_order("a", Some(mapped))[1].key, "orders/addr/10.0.0.1");
        assert_eq!(limits.new_order("a", None).len(), 1);
        assert_eq!(limits.failed_validation("a", "Web.Test"), None, "off");
        let on = Limits { failed_validations: Rate { per_hour: 3 }, ..limits };
        assert_eq!(on.failed_validation("a", "Web.Test").unwrap().key, "failed/a/web.test");
        assert!(Limits::default().new_order("a", Some(v6)).is_empty());
        let b = &limits.new_order("a", None)[0];
        assert_eq!(
            b.refusal(std::time::Duration::from_millis(1500)),
            "too many new orders by this account: the limit is 5 per hour; retry after 2 s"
        );
    }
}
