//! The database's tables, versioned: `certforge_schema` holds one row per
//! version applied. An instance starting against a current schema writes
//! nothing (so it can start against a read-only standby); one finding an
//! older schema applies the missing steps under an advisory lock, so that
//! a fleet starting at once migrates exactly once; one finding a newer
//! schema refuses to start rather than write rows it does not understand.

use tokio_postgres::Client;

/// The schema version this certforge writes.
pub const VERSION: i32 = 1;

/// The advisory lock held while migrating ("certforg" in ASCII); the
/// janitor takes LOCK + 1.
pub(crate) const LOCK: i64 = 0x6365_7274_666f_7267;

/// Each version's DDL, in order. Plain CREATE (not IF NOT EXISTS): a table
/// already there means the version table lies, which should stop us.
static STEPS: &[(i32, &str)] = &[(1, V1)];

const V1: &str = "
CREATE TABLE certforge_schema (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now(), by_instance text NOT NULL);
CREATE TABLE settings (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE accounts (id text PRIMARY KEY, thumbprint text NOT NULL UNIQUE, body text NOT NULL);
CREATE TABLE orders (id text PRIMARY KEY, account text NOT NULL, status text NOT NULL,
                     claimed_at timestamptz, claimed_by text, body text NOT NULL);
CREATE INDEX orders_account ON orders (account, id);
CREATE TABLE authzs (id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE challenges (id text PRIMARY KEY, authz text NOT NULL REFERENCES authzs (id));
CREATE TABLE acme_certs (order_id text PRIMARY KEY, serial text NOT NULL, chain text NOT NULL);
CREATE INDEX acme_certs_serial ON acme_certs (serial);
CREATE TABLE eab_keys (kid text PRIMARY KEY, name text NOT NULL UNIQUE, key bytea NOT NULL, created timestamptz NOT NULL);
CREATE TABLE used_nonces (nonce text PRIMARY KEY, expires timestamptz NOT NULL);
CREATE INDEX used_nonces_expires ON used_nonces (expires);
CREATE TABLE rate_limits (key text PRIMARY KEY, tat timestamptz NOT NULL);
CREATE TABLE certificates (ca bytea NOT NULL, serial bytea NOT NULL, names text[] NOT NULL, not_after timestamptz NOT NULL,
                           reserved_at timestamptz NOT NULL DEFAULT now(), reserved_by text NOT NULL,
                           location text, der bytea, PRIMARY KEY (ca, serial));
CREATE UNIQUE INDEX certificates_location ON certificates (location) WHERE location IS NOT NULL;
CREATE INDEX certificates_names ON certificates USING gin (names);
CREATE TABLE revocations (ca bytea NOT NULL, serial bytea NOT NULL, revoked_at timestamptz NOT NULL, reason smallint,
                          PRIMARY KEY (ca, serial), FOREIGN KEY (ca, serial) REFERENCES certificates);
CREATE TABLE crls (ca bytea PRIMARY KEY, wanted bigint NOT NULL, covers bigint NOT NULL, number bigint NOT NULL,
                   this_update timestamptz, next_update timestamptz, der bytea,
                   CHECK (covers <= wanted));
CREATE TABLE crl_history (ca bytea NOT NULL, number bigint NOT NULL, der bytea NOT NULL, PRIMARY KEY (ca, number));
CREATE TABLE crl_lease (ca bytea PRIMARY KEY, holder text NOT NULL, token bigint NOT NULL, leased_until timestamptz NOT NULL);
";

/// What `ensure` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub version: i32,
    /// A read-only standby (in recovery): reads only.
    pub standby: bool,
    /// Whether this call applied a step.
    pub migrated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database's schema is version {db}; this certforge knows versions up to {known}: upgrade certforge \
         here (another instance already runs a newer one)"
    )]
    Newer { db: i32, known: i32 },
    #[error(
        "the database is a read-only standby {}; this certforge needs version {VERSION}: start it once against \
         the primary",
        match .db { Some(v) => format!("at schema version {v}"), None => "with no certforge schema".to_string() }
    )]
    Standby { db: Option<i32> },
    #[error("{0}")]
    Db(String),
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> SchemaError + '_ {
    move |e| SchemaError::Db(format!("{what}: {}", super::error::chain(&e)))
}

/// The version in the database, None when it has no schema table.
async fn version(c: &impl tokio_postgres::GenericClient) -> Result<Option<i32>, SchemaError> {
    let what = "reading the schema version";
    // pg_tables, not to_regclass: after waiting for the migration lock, a
    // name lookup can still answer from this session's catalog cache, from
    // before the other instance's commit; a query of the catalog sees
    // what is committed.
    let exists: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = 'certforge_schema')",
            &[],
        )
        .await
        .map_err(db(what))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = c.query_one("SELECT max(version) FROM certforge_schema", &[]).await.map_err(db(what))?;
    Ok(row.get(0))
}

/// Brings the schema to [`VERSION`], or says why not. Reads only when it
/// is current.
pub async fn ensure(c: &mut Client, instance: &str) -> Result<Schema, SchemaError> {
    let found = version(c).await?;
    let standby: bool = c
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(db("asking whether the database is a standby"))?
        .get(0);
    match found {
        Some(v) if v == VERSION => return Ok(Schema { version: v, standby, migrated: false }),
        Some(v) if v > VERSION => return Err(SchemaError::Newer { db: v, known: VERSION }),
        _ if standby => return Err(SchemaError::Standby { db: found }),
        _ => {}
    }
    let what = "migrating the schema";
    let tx = c.transaction().await.map_err(db(what))?;
    // Held to COMMIT: a second instance starting now waits here, then
    // finds the schema current below.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(db(what))?;
    let now = version(&tx).await?;
    if now.is_some_and(|v| v > VERSION) {
        return Err(SchemaError::Newer { db: now.unwrap_or_default(), known: VERSION });
    }
    let mut migrated = false;
    for (step, ddl) in STEPS.iter().filter(|(v, _)| now.is_none_or(|n| *v > n)) {
        tx.batch_execute(ddl).await.map_err(db(what))?;
        if *step == 1 {
            // The fleet's nonce MAC key (RFC 8555 §6.5: any instance must
            // accept a nonce another issued).
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| SchemaError::Db("no random bytes for the nonce key".into()))?;
            tx.execute("INSERT INTO settings (name, value) VALUES ('nonce_key', $1)", &[&&key[..]])
                .await
                .map_err(db(what))?;
        }
        tx.execute("INSERT INTO certforge_schema (version, by_instance) VALUES ($1, $2)", &[step, &instance])
            .await
            .map_err(db(what))?;
        migrated = true;
    }
    tx.commit().await.map_err(db(what))?;
    Ok(Schema { version: VERSION, standby: false, migrated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_both_versions_and_the_fix() {
        let newer = SchemaError::Newer { db: 3, known: VERSION }.to_string();
        assert!(newer.contains("version 3") && newer.contains(&format!("up to {VERSION}")), "{newer}");
        let standby = SchemaError::Standby { db: None }.to_string();
        assert!(standby.contains("read-only standby with no certforge schema") && standby.contains("primary"));
        let standby = SchemaError::Standby { db: Some(0) }.to_string();
        assert!(standby.contains("at schema version 0") && standby.contains(&format!("needs version {VERSION}")));
    }

    #[test]
    fn steps_run_in_order_and_end_at_this_version() {
        assert!(STEPS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(STEPS.last().map(|s| s.0), Some(VERSION));
    }
}
