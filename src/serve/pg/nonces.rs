//! Spent nonces in the shared table: issuing a nonce needs no database
//! (`acme::nonce::SharedNonces` MACs it with the fleet's key), spending one
//! is one insert that only the first instance to see it wins.

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::PgDb;
use crate::acme::nonce::SpentNonces;
use crate::storage::StorageError;

impl SpentNonces for PgDb {
    fn spend(&self, nonce: &str, expires: OffsetDateTime) -> Result<bool, StorageError> {
        let nonce = nonce.to_string();
        self.run("spending a nonce", move |c| {
            Box::pin(async move {
                let insert = c
                    .prepare_cached("INSERT INTO used_nonces (nonce, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .await?;
                // One round trip: the three requests are sent in this order
                // before any reply is read (tokio-postgres pipelines what is
                // polled together). The commit need not wait for the WAL
                // flush: a crash may forget the last spent nonces, whose
                // clients could then replay one request each at most, and
                // the JWS itself is still checked.
                let params: [&(dyn ToSql + Sync); 2] = [&nonce, &expires];
                let (_, inserted, _) = tokio::try_join!(
                    biased;
                    c.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
                    c.execute(&insert, &params),
                    c.batch_execute("COMMIT"),
                )?;
                Ok(inserted == 1)
            })
        })
    }
}
