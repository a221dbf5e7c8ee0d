//! The CA's state in PostgreSQL, shared by every instance holding the CA:
//! each serial is reserved (PRIMARY KEY) before the CA signs, as Boulder's
//! `serials` table is, each order gets one certificate (a unique index on
//! its location), and the revocations are one table. The CRL built from
//! them is published by one instance at a time (`crl.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::PgDb;
use crate::acme::db::Stored;
use crate::authority::state::{CaState, IssuedCert, Location, Revoked};
use crate::pki::ca::CaSigner;
use crate::pki::crl::{self, normalize_serial, reason_from_code, Reason};
use crate::pki::san::San;
use crate::pki::serial::hex;
use crate::storage::StorageError;

/// Which CA a row belongs to: SHA-256 of the CA certificate's subject DER
/// followed by its SubjectPublicKeyInfo DER. Every instance holding the CA
/// (a copy of its key file, or the same token key) computes the same value,
/// and a re-issued CA certificate with the same name and key stays the same
/// CA, as its serials and CRL (RFC 5280 §5: one per issuer name) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaKey(pub [u8; 32]);

impl CaKey {
    /// The key of the CA `ca` signs for.
    pub fn of(ca: &CaSigner) -> CaKey {
        let cert = ca.cert();
        let mut digest = Context::new(&SHA256);
        digest.update(cert.subject().as_raw());
        digest.update(cert.public_key().raw);
        CaKey(digest.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }
}

/// One CA's state in the database.
pub struct PgState {
    pub(super) db: PgDb,
    pub(super) ca: CaKey,
    pub(super) signer: Arc<CaSigner>,
}

impl PgState {
    /// The state of the CA `signer` signs for, in `db`.
    pub fn new(db: PgDb, signer: Arc<CaSigner>) -> PgState {
        PgState { ca: CaKey::of(&signer), db, signer }
    }

    /// Which CA this is in the tables.
    pub fn ca(&self) -> CaKey {
        self.ca
    }

    /// The database.
    pub fn db(&self) -> &PgDb {
        &self.db
    }
}

/// What [`record_revocation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// Recorded: the CA's CRL is wanted up to `wanted` (a CRL whose
    /// `covers` reaches it lists this revocation), `entries` revocations in
    /// all; `started` when no CRL had been published yet.
    Added { wanted: i64, entries: usize, started: bool },
    /// It was revoked already; nothing changed.
    Already(crl::Entry),
}

/// The names as the table keeps them: a DNS name or IP address as it is
/// (so `acme list NAME` finds it), other SANs with their type in front.
fn name_text(san: &San) -> String {
    match san {
        San::Dns(d) => d.clone(),
        San::Ip(ip) => ip.to_string(),
        other => other.to_string(),
    }
}

fn name_from_text(text: &str) -> San {
    if let Some(uri) = text.strip_prefix("URI:") {
        return San::Uri(uri.to_string());
    }
    if let Some(email) = text.strip_prefix("email:") {
        return San::Email(email.to_string());
    }
    text.parse().map(San::Ip).unwrap_or_else(|_| San::Dns(text.to_string()))
}

/// A `file:` location is a depot file; anything else a database key.
fn location_text(location: &Location) -> String {
    match location {
        Location::DepotFile(path) => format!("file:{}", path.display()),
        Location::Stored(key) => key.clone(),
    }
}

fn location_from_text(text: &str) -> Location {
    match text.strip_prefix("file:") {
        Some(path) => Location::DepotFile(path.into()),
        None => Location::Stored(text.to_string()),
    }
}

/// A revocation row's `revoked_at, reason` as a CRL entry.
pub(super) fn entry(serial: &[u8], revoked_at: OffsetDateTime, reason: Option<i16>) -> crl::Entry {
    crl::Entry {
        serial: serial.to_vec(),
        revoked_at,
        reason: reason.and_then(|r| u8::try_from(r).ok()).and_then(reason_from_code),
    }
}

const ISSUED: &str = "SELECT c.serial, c.names, c.not_after, c.location, r.revoked_at, r.reason \
                      FROM certificates c LEFT JOIN revocations r ON r.ca = c.ca AND r.serial = c.serial \
                      WHERE c.ca = $1 AND c.der IS NOT NULL";

fn issued_cert(row: &Row) -> IssuedCert {
    let serial: Vec<u8> = row.get(0);
    let names: Vec<String> = row.get(1);
    let revoked_at: Option<OffsetDateTime> = row.get(4);
    IssuedCert {
        names: names.iter().map(|n| name_from_text(n)).collect(),
        not_after: row.get(2),
        location: location_from_text(row.get::<_, Option<&str>>(3).unwrap_or_default()),
        revoked: revoked_at.map(|at| entry(&serial, at, row.get(5))),
        serial,
    }
}

/// Records `serial` of the CA `ca` as revoked, and that the CA's CRL is
/// wanted to list it, in one transaction; needs no CA key, so the
/// operator's CLI can revoke and let a running instance publish. The row
/// lock on the CA's `crls` row orders the `wanted` values: a snapshot that
/// sees `wanted = N` sees every revocation counted up to N (a sequence would
/// not, its values are not given out in commit order).
pub fn record_revocation(
    db: &PgDb,
    ca: &CaKey,
    serial: &[u8],
    reason: Option<Reason>,
    now: OffsetDateTime,
) -> Stored<Marked> {
    let (ca, serial) = (ca.0.to_vec(), normalize_serial(serial));
    let code = reason.map(|r| i16::from(r.code()));
    let marked = db.tx("recording a revocation", {
        let serial = serial.clone();
        move |c| {
            Box::pin(async move {
                if c.query_opt("SELECT 1 FROM certificates WHERE ca = $1 AND serial = $2", &[&ca, &serial])
                    .await?
                    .is_none()
                {
                    return Ok(None);
                }
                let added = c
                    .query_opt(
                        "INSERT INTO revocations (ca, serial, revoked_at, reason) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING RETURNING 1",
                        &[&ca, &serial, &now, &code],
                    )
                    .await?;
                if added.is_none() {
                    let row = c
                        .query_one(
                            "SELECT revoked_at, reason FROM revocations WHERE ca = $1 AND serial = $2",
                            &[&ca, &serial],
                        )
                        .await?;
                    return Ok(Some(Marked::Already(entry(&serial, row.get(0), row.get(1)))));
                }
                let row = c
                    .query_one(
                        "INSERT INTO crls (ca, wanted, covers, number) VALUES ($1, 1, 0, 0) \
                         ON CONFLICT (ca) DO UPDATE SET wanted = crls.wanted + 1 RETURNING wanted, number",
                        &[&ca],
                    )
                    .await?;
                let count = c.query_one("SELECT count(*) FROM revocations WHERE ca = $1", &[&ca]).await?;
                let (wanted, number): (i64, i64) = (row.get(0), row.get(1));
                let entries = usize::try_from(count.get::<_, i64>(0)).unwrap_or(usize::MAX);
                Ok(Some(Marked::Added { wanted, entries, started: number == 0 }))
            })
        }
    })?;
    marked.ok_or_else(|| {
        StorageError::Failed(format!(
            "serial {} is not among the certificates this CA issued through the database; a certificate the CA \
             signed in its depot is revoked there, with `certforge revoke`",
            hex(&serial)
        ))
    })
}

/// The CRL of `ca` that lists every revocation counted up to `wanted`:
/// its number once one is published, None when none is within `within`.
/// Polls the CRL row, as the instances serving the CRL do.
pub fn wait_crl(db: &PgDb, ca: &CaKey, wanted: i64, within: Duration) -> Stored<Option<u64>> {
    let until = Instant::now() + within;
    loop {
        let ca = ca.0.to_vec();
        let row = db.run("reading the CRL's state", move |c| {
            Box::pin(async move { c.query_opt("SELECT covers, number FROM crls WHERE ca = $1", &[&ca]).await })
        })?;
        if let Some((covers, number)) = row.map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))) {
            if covers >= wanted {
                return Ok(Some(number as u64));
            }
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

/// How often a caller waiting for a CRL looks again.
pub(super) const POLL: Duration = Duration::from_millis(100);

impl CaState for PgState {
    fn reserve(&self, serial: &[u8], names: &[San], not_after: OffsetDateTime) -> Result<(), StorageError> {
        let (ca, serial) = (self.ca.0.to_vec(), normalize_serial(serial));
        let names: Vec<String> = names.iter().map(name_text).collect();
        let by = self.db.instance().to_string();
        self.db.run("reserving a serial", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO certificates (ca, serial, names, not_after, reserved_by) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .await?;
                c.execute(&st, &[&ca, &serial, &names, &not_after, &by]).await.map(drop)
            })
        })
    }

    /// The certificate goes into the row its serial reserved, once: a row
    /// that has its certificate already, or a location (an order) that has
    /// another, is a `Conflict`.
    fn record(&self, cert_der: &[u8], location: &Location) -> Result<(), StorageError> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| StorageError::Failed(format!("recording a certificate that does not parse: {e}")))?;
        let serial = normalize_serial(cert.raw_serial());
        let (ca, der, at) = (self.ca.0.to_vec(), cert_der.to_vec(), location_text(location));
        let hex_serial = hex(&serial);
        let rows = self.db.run("recording a certificate", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "UPDATE certificates SET der = $3, location = $4 WHERE ca = $1 AND serial = $2 AND der IS NULL",
                    )
                    .await?;
                c.execute(&st, &[&ca, &serial, &der, &at]).await
            })
        })?;
        match rows {
            1 => Ok(()),
            _ => Err(StorageError::Conflict(format!(
                "serial {hex_serial} was not reserved, or has its certificate already"
            ))),
        }
    }

    fn find(&self, serial: &[u8]) -> Result<Option<IssuedCert>, StorageError> {
        let (ca, serial) = (self.ca.0.to_vec(), normalize_serial(serial));
        let row = self.db.run("finding a certificate", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached(&format!("{ISSUED} AND c.serial = $2")).await?;
                c.query_opt(&st, &[&ca, &serial]).await
            })
        })?;
        Ok(row.as_ref().map(issued_cert))
    }

    fn issued(&self) -> Result<Vec<IssuedCert>, StorageError> {
        let ca = self.ca.0.to_vec();
        let rows = self.db.run("listing the certificates", move |c| {
            Box::pin(async move { c.query(&format!("{ISSUED} ORDER BY c.reserved_at, c.serial"), &[&ca]).await })
        })?;
        Ok(rows.iter().map(issued_cert).collect())
    }

    fn revocation(&self, serial: &[u8]) -> Result<Option<crl::Entry>, StorageError> {
        let (ca, serial) = (self.ca.0.to_vec(), normalize_serial(serial));
        let row = self.db.run("reading a revocation", {
            let serial = serial.clone();
            move |c| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached("SELECT revoked_at, reason FROM revocations WHERE ca = $1 AND serial = $2")
                        .await?;
                    c.query_opt(&st, &[&ca, &serial]).await
                })
            }
        })?;
        Ok(row.map(|r| entry(&serial, r.get(0), r.get(1))))
    }

    /// Records the revocation, then publishes the CRL that lists it, or
    /// waits for the instance holding the CRL lease to; `Recorded` when no
    /// such CRL is out within a lease and two seconds (its holder died, or
    /// the database went away after the revocation was recorded).
    fn revoke(&self, serial: &[u8], reason: Option<Reason>, now: OffsetDateTime) -> Result<Revoked, StorageError> {
        match record_revocation(&self.db, &self.ca, serial, reason, now)? {
            Marked::Already(entry) => Ok(Revoked::Already(entry)),
            Marked::Added { wanted, entries, started } => match self.publish_until(wanted)? {
                Some((number, entries)) => Ok(Revoked::Added { number, entries, started }),
                None => Ok(Revoked::Recorded { entries }),
            },
        }
    }

    fn crl(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let ca = self.ca.0.to_vec();
        let row = self.db.run("reading the CRL", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT der FROM crls WHERE ca = $1").await?;
                c.query_opt(&st, &[&ca]).await
            })
        })?;
        Ok(row.and_then(|r| r.get(0)))
    }

    fn stored(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let (ca, key) = (self.ca.0.to_vec(), key.to_string());
        let row = self.db.run("reading a recorded certificate", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT der FROM certificates WHERE ca = $1 AND location = $2").await?;
                c.query_opt(&st, &[&ca, &key]).await
            })
        })?;
        Ok(row.and_then(|r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_locations_read_back_as_written() {
        for san in [
            San::Dns("web.test".into()),
            San::Dns("*.web.test".into()),
            San::Ip("127.0.0.1".parse().unwrap()),
            San::Ip("::1".parse().unwrap()),
            San::Uri("spiffe://example.org/web".into()),
            San::Email("ops@example.org".into()),
        ] {
            assert_eq!(name_from_text(&name_text(&san)), san);
        }
        assert_eq!(name_text(&San::Dns("web.test".into())), "web.test", "a host is found by its name alone");
        for location in [Location::Stored("order:abc".into()), Location::DepotFile("/depot/web.crt".into())] {
            assert_eq!(location_from_text(&location_text(&location)), location);
        }
    }

    #[test]
    fn the_ca_key_is_its_name_and_public_key() {
        let one = crate::pki::issue::tests::ca("Fleet CA");
        let other = crate::pki::issue::tests::ca("Fleet CA");
        assert_eq!(CaKey::of(&one), CaKey::of(&one));
        assert_ne!(CaKey::of(&one), CaKey::of(&other), "same name, another key: another CA");
    }
}
