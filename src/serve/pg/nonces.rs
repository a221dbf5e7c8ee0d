//! Spent nonces in the shared table: issuing a nonce needs no database
//! (`acme::nonce::SharedNonces` MACs it with the fleet's key), spending one
//! is one insert that only the first instance to see it wins.

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::PgDb;
use crate::acme::nonce::{Checked, Presented, ReadAccount, SpentNonces};
use crate::storage::StorageError;

impl SpentNonces for PgDb {
    fn spend(&self, nonce: &str, expires: OffsetDateTime) -> Result<bool, StorageError> {
        let nonce = nonce.to_string();
        self.run("spending a nonce", move |c| {
            Box::pin(async move {
                // One statement, so one implicit transaction and one round
                // trip. Its commit need not wait for the WAL flush
                // (set_config's `true`: for this transaction only): a crash
                // may forget the last spent nonces, whose clients could then
                // replay one request each at most, and the JWS itself is
                // still checked.
                let insert = c
                    .prepare_cached(
                        "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) \
                         INSERT INTO used_nonces (nonce, expires) SELECT $1::text, $2::timestamptz FROM quick \
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                let params: [&(dyn ToSql + Sync); 2] = [&nonce, &expires];
                let inserted = c.execute(&insert, &params).await?;
                Ok(inserted == 1)
            })
        })
    }

    /// The spend and the account read in one statement, one round trip:
    /// the fleet's accounts are in this database, so `read` is not needed.
    fn spend_for(&self, nonce: &str, expires: OffsetDateTime, id: &str, _: ReadAccount) -> Checked {
        let (nonce, key) = (nonce.to_string(), id.to_string());
        let (spent, body) = self.run("spending a nonce and reading the account", move |c| {
            Box::pin(async move {
                // As in `spend`; the account is read by the same statement,
                // whatever the spend found (a read changes nothing).
                let st = c
                    .prepare_cached(
                        "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)), \
                         spent AS (INSERT INTO used_nonces (nonce, expires) SELECT $1::text, $2::timestamptz FROM quick \
                         ON CONFLICT DO NOTHING RETURNING 1) \
                         SELECT EXISTS (SELECT 1 FROM spent), (SELECT body FROM accounts WHERE id = $3)",
                    )
                    .await?;
                let params: [&(dyn ToSql + Sync); 3] = [&nonce, &expires, &key];
                let row = c.query_one(&st, &params).await?;
                Ok((row.get::<_, bool>(0), row.get::<_, Option<String>>(1)))
            })
        })?;
        match spent {
            true => Ok(Presented::Good(super::store::parse_account(id, body)?)),
            false => Ok(Presented::BadNonce),
        }
    }
}
