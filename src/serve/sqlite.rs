//! The ACME server's state in the depot: `acme.sqlite`, so that accounts,
//! orders and authorizations survive a restart, and two `serve` processes
//! on one depot see the same accounts.
//!
//! Why SQLite (rusqlite, bundled): one file beside the depot's entries, no
//! server to run, transactions that survive kill -9, and its file locking
//! lets two processes share it. Objects are stored as JSON (the model's
//! serde form) with the columns the lookups need beside them.
//!
//! WAL with `synchronous = NORMAL`: a commit is in the WAL file (the OS's
//! cache) before the reply, so a killed process loses nothing it answered;
//! only a power cut can drop the last commits, and the certificates
//! themselves are in the depot, written and synced by `depot::write_all`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::acme::db::Stored;
use crate::acme::jws::random_b64;
use crate::acme::model::{Account, Authorization, Order, Status};
use crate::acme::Store;
use crate::storage::StorageError;

/// The store's file name in the depot.
pub const FILE: &str = "acme.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, thumbprint TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, account TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_account ON orders (account);
CREATE TABLE IF NOT EXISTS authzs (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenges (id TEXT PRIMARY KEY, authz TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certs (id TEXT PRIMARY KEY, serial TEXT NOT NULL, chain TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS certs_serial ON certs (serial);
CREATE TABLE IF NOT EXISTS eab (kid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key BLOB NOT NULL, created TEXT NOT NULL);
";

pub struct SqlStore {
    /// One connection per process: every call is a statement or two, far
    /// shorter than the lock waits a pool would save.
    conn: Mutex<Connection>,
}

impl SqlStore {
    /// Opens (or makes) the store at `path`, mode 0600: it holds account
    /// keys' public halves and contact addresses, nothing secret, but no
    /// one else has business reading it.
    pub fn open(path: &Path) -> Result<SqlStore> {
        let what = || format!("the ACME store {}", path.display());
        // Made 0600 before SQLite opens it; SQLite gives its -wal and -shm
        // files the database file's mode.
        match crate::sys::create_new(path, 0o600) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e).with_context(what),
            _ => {}
        }
        let conn = Connection::open(path).with_context(what)?;
        // Another `serve` on the same depot may hold the write lock for a
        // moment; wait for it rather than fail the client's request.
        conn.busy_timeout(Duration::from_secs(10)).with_context(what)?;
        conn.pragma_update(None, "journal_mode", "WAL").with_context(what)?;
        conn.pragma_update(None, "synchronous", "NORMAL").with_context(what)?;
        conn.execute_batch(SCHEMA).with_context(what)?;
        Ok(SqlStore { conn: Mutex::new(conn) })
    }

    /// Puts orders a killed process left "processing" back to pending, so
    /// that their clients can finalize again: the issuer finds a certificate
    /// already written for the order and returns it instead of a second.
    pub fn recover(&self) -> Result<usize> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT body FROM orders WHERE status = 'processing'")?;
        let stuck: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for body in &stuck {
            let mut order: Order = serde_json::from_str(body)?;
            order.status = Status::Pending;
            write_order(&conn, &order)?;
        }
        Ok(stuck.len())
    }

    /// Adds an External Account Binding key for `name` (who it was given
    /// to); a name is given one key.
    pub fn add_eab(&self, kid: &str, name: &str, key: &[u8], created: &str) -> Result<()> {
        let added = self.conn().execute(
            "INSERT INTO eab (kid, name, key, created) VALUES (?1, ?2, ?3, ?4)",
            params![kid, name, key, created],
        );
        match added {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                anyhow::bail!("an External Account Binding key named {name:?} exists already; choose another name")
            }
            other => other.map(drop).context("cannot write the ACME store"),
        }
    }

    /// Every EAB key's (kid, name, created), oldest first; never the keys.
    pub fn eab_list(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT kid, name, created FROM eab ORDER BY created, name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One object by key, from its JSON; a row that does not parse is a
    /// damaged file, said as such.
    fn get<T: DeserializeOwned>(&self, what: &str, sql: &str, key: &str) -> Stored<Option<T>> {
        let Some(body) = self.get_text(what, sql, key)? else { return Ok(None) };
        serde_json::from_str(&body).map(Some).map_err(|e| StorageError::Damaged {
            what: format!("the ACME store's {what} {key:?}"),
            detail: e.to_string(),
        })
    }

    /// One text column by key, the statement parsed once per connection.
    fn get_text(&self, what: &str, sql: &str, key: &str) -> Stored<Option<String>> {
        let conn = self.conn();
        let row = conn.prepare_cached(sql).and_then(|mut st| st.query_row([key], |r| r.get(0)).optional());
        row.map_err(|e| db_error(&format!("reading {what} {key:?}"), e))
    }

    /// Runs `f`'s writes in one transaction, committed if it succeeds.
    /// IMMEDIATE: the write lock is taken at BEGIN, where a second `serve`
    /// on this file holding it is waited for (the busy timeout), never
    /// halfway through.
    fn in_transaction(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        f(&tx)?;
        tx.commit()
    }

    fn put(&self, what: &str, sql: &str, params: impl rusqlite::Params) -> Stored<()> {
        let conn = self.conn();
        written(what, conn.prepare_cached(sql).and_then(|mut st| st.execute(params)))
    }
}

/// A write's outcome for the engine, which answers an Err as a problem
/// document rather than tell the client it succeeded.
fn written<T>(what: &str, result: rusqlite::Result<T>) -> Stored<()> {
    result.map(drop).map_err(|e| db_error(&format!("writing {what}"), e))
}

/// What SQLite said, as the engine tells it apart: a busy or locked file
/// may be free on the next try (another `serve` on this depot holds it
/// past the busy timeout); a broken constraint is a conflict; the rest
/// (a read-only or full disk, a damaged file) is a failure.
fn db_error(what: &str, e: rusqlite::Error) -> StorageError {
    use rusqlite::ErrorCode::{ConstraintViolation, DatabaseBusy, DatabaseLocked};
    let what = format!("ACME store ({FILE}): {what}");
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => StorageError::Unavailable(format!("{what}: {e}")),
        Some(ConstraintViolation) => StorageError::Conflict(format!("{what}: {e}")),
        _ => StorageError::failed(what, e),
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("the model always serializes")
}

fn write_authz(conn: &Connection, authz: &Authorization) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO authzs (id, body) VALUES (?1, ?2)")?
        .execute(params![authz.id, json(authz)])?;
    let mut add = conn.prepare_cached("INSERT OR IGNORE INTO challenges (id, authz) VALUES (?1, ?2)")?;
    for c in &authz.challenges {
        add.execute(params![c.id, authz.id])?;
    }
    Ok(())
}

fn write_cert(conn: &Connection, id: &str, serial: &str, pem_chain: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO certs (id, serial, chain) VALUES (?1, ?2, ?3)")?
        .execute(params![id, serial, pem_chain])
        .map(drop)
}

fn write_order(conn: &Connection, order: &Order) -> rusqlite::Result<usize> {
    conn.prepare_cached("INSERT OR REPLACE INTO orders (id, account, status, body) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![order.id, order.account, order.status.name(), json(order)])
}

impl Store for SqlStore {
    fn next_id(&self) -> String {
        // Random, not a counter: two processes share the file, and 96 bits
        // never collide in practice.
        random_b64(12)
    }

    fn account(&self, id: &str) -> Stored<Option<Account>> {
        self.get("account", "SELECT body FROM accounts WHERE id = ?1", id)
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>> {
        self.get("account with key", "SELECT body FROM accounts WHERE thumbprint = ?1", thumbprint)
    }

    fn put_account(&self, account: &Account) -> Stored<()> {
        self.put(
            &format!("account {:?}", account.id),
            "INSERT OR REPLACE INTO accounts (id, thumbprint, body) VALUES (?1, ?2, ?3)",
            params![account.id, account.key.thumbprint(), json(account)],
        )
    }

    fn order(&self, id: &str) -> Stored<Option<Order>> {
        self.get("order", "SELECT body FROM orders WHERE id = ?1", id)
    }

    fn put_order(&self, order: &Order) -> Stored<()> {
        written(&format!("order {:?}", order.id), write_order(&self.conn(), order))
    }

    fn orders_of(&self, account: &str) -> Stored<Vec<String>> {
        let conn = self.conn();
        let ids = conn
            .prepare_cached("SELECT id FROM orders WHERE account = ?1 ORDER BY id")
            .and_then(|mut s| s.query_map([account], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>());
        ids.map_err(|e| db_error(&format!("reading the orders of account {account:?}"), e))
    }

    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool> {
        // One statement, so SQLite's write lock makes it atomic across
        // threads and processes: only one finalize claims an order.
        let conn = self.conn();
        let changed = conn
            .prepare_cached(
                "UPDATE orders SET status = ?3, body = json_set(body, '$.status', ?3) WHERE id = ?1 AND status = ?2",
            )
            .and_then(|mut st| st.execute(params![id, from.name(), to.name()]));
        changed.map(|n| n == 1).map_err(|e| db_error(&format!("moving order {id:?} to {}", to.name()), e))
    }

    fn authz(&self, id: &str) -> Stored<Option<Authorization>> {
        self.get("authorization", "SELECT body FROM authzs WHERE id = ?1", id)
    }

    fn put_authz(&self, authz: &Authorization) -> Stored<()> {
        written(&format!("authorization {:?}", authz.id), self.in_transaction(|tx| write_authz(tx, authz)))
    }

    /// One transaction for the order and all its authorizations: each
    /// commit takes and drops SQLite's WAL locks and appends the pages it
    /// changed, so one commit instead of one per object is fewer locks and
    /// writes for every newOrder.
    fn put_new_order(&self, order: &Order, authzs: &[Authorization]) -> Stored<()> {
        let stored = self.in_transaction(|tx| {
            for authz in authzs {
                write_authz(tx, authz)?;
            }
            write_order(tx, order).map(drop)
        });
        written(&format!("order {:?}", order.id), stored)
    }

    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>> {
        self.get(
            "authorization of challenge",
            "SELECT a.body FROM challenges c JOIN authzs a ON a.id = c.authz WHERE c.id = ?1",
            id,
        )
    }

    fn cert(&self, id: &str) -> Stored<Option<String>> {
        self.get_text("certificate", "SELECT chain FROM certs WHERE id = ?1", id)
    }

    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()> {
        written(&format!("the certificate of order {id:?}"), write_cert(&self.conn(), id, serial, pem_chain))
    }

    /// The certificate and its now valid order in one commit (see
    /// `put_new_order`).
    fn put_issued(&self, order: &Order, serial: &str, pem_chain: &str) -> Stored<()> {
        let stored = self.in_transaction(|tx| {
            write_cert(tx, &order.id, serial, pem_chain)?;
            write_order(tx, order).map(drop)
        });
        written(&format!("order {:?} and its certificate", order.id), stored)
    }

    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>> {
        let conn = self.conn();
        let row =
            conn.query_row("SELECT id, chain FROM certs WHERE serial = ?1", [serial], |r| Ok((r.get(0)?, r.get(1)?)));
        row.optional().map_err(|e| db_error(&format!("reading the certificate with serial {serial}"), e))
    }

    fn eab_key(&self, kid: &str) -> Stored<Option<Vec<u8>>> {
        let row = self.conn().query_row("SELECT key FROM eab WHERE kid = ?1", [kid], |r| r.get(0)).optional();
        row.map_err(|e| db_error(&format!("reading External Account Binding key {kid:?}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::jws::Jwk;
    use crate::acme::model::{AccountStatus, Challenge, ChallengeKind, Ident, IdentKind};
    use time::OffsetDateTime;

    fn objects(s: &SqlStore) -> (Account, Authorization, Order) {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let account = Account {
            id: s.next_id(),
            key: Jwk::Ed25519 { x: vec![7; 32] },
            contact: vec!["mailto:ops@example.com".into()],
            status: AccountStatus::Valid,
            created: now,
            eab: Some("team-a".into()),
        };
        let authz = Authorization {
            id: s.next_id(),
            account: account.id.clone(),
            ident: Ident { kind: IdentKind::Dns, value: "www.example.com".into() },
            status: Status::Pending,
            expires: now,
            challenges: vec![Challenge {
                id: s.next_id(),
                kind: ChallengeKind::TlsAlpn01,
                token: "tok".into(),
                status: Status::Pending,
                validated: Some(now),
                error: None,
            }],
        };
        let order = Order {
            id: s.next_id(),
            account: account.id.clone(),
            status: Status::Pending,
            expires: now,
            identifiers: vec![authz.ident.clone()],
            authorizations: vec![authz.id.clone()],
            certificate: None,
            error: None,
        };
        (account, authz, order)
    }

    #[test]
    fn everything_survives_reopening_and_a_stuck_finalize_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let s = SqlStore::open(&path).unwrap();
        assert_eq!(crate::sys::mode(&std::fs::metadata(&path).unwrap()) & 0o777, 0o600);
        let (account, authz, order) = objects(&s);
        s.put_account(&account).unwrap();
        s.put_authz(&authz).unwrap();
        s.put_order(&order).unwrap();
        s.put_cert(&order.id, "0a", "CHAIN").unwrap();
        assert!(s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
        assert!(!s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap(), "claimed once only");
        drop(s);

        let s = SqlStore::open(&path).unwrap();
        let got = s.account_by_thumbprint(&account.key.thumbprint()).unwrap().expect("account by key");
        assert_eq!(
            (got.id.as_str(), &got.key, &got.contact, got.created),
            (account.id.as_str(), &account.key, &account.contact, account.created)
        );
        let got = s.authz_of_challenge(&authz.challenges[0].id).unwrap().expect("authz by challenge");
        assert_eq!(
            (got.id, got.ident, got.challenges[0].kind, got.challenges[0].validated),
            (authz.id, authz.ident, ChallengeKind::TlsAlpn01, authz.challenges[0].validated)
        );
        assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Processing);
        assert_eq!(s.orders_of(&account.id).unwrap(), vec![order.id.clone()]);
        assert_eq!(s.cert(&order.id).unwrap().as_deref(), Some("CHAIN"));
        assert_eq!(s.cert_by_serial("0a").unwrap(), Some((order.id.clone(), "CHAIN".to_string())));
        assert_eq!(s.recover().unwrap(), 1);
        assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Pending);
        assert!(s.transition_order(&order.id, Status::Pending, Status::Processing).unwrap(), "claimable again");
        assert!(
            s.account("nope").unwrap().is_none()
                && s.order("nope").unwrap().is_none()
                && s.cert("nope").unwrap().is_none()
        );
        s.add_eab("kid1", "team-a", b"secret", "2026-11-22T00:00:00Z").unwrap();
        let again = s.add_eab("kid2", "team-a", b"other", "2026-11-22T00:00:00Z").unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        assert_eq!(s.eab_key("kid1").unwrap().as_deref(), Some(&b"secret"[..]));
        assert_eq!(s.eab_list().unwrap(), vec![("kid1".into(), "team-a".into(), "2026-11-22T00:00:00Z".into())]);
        assert!(s.eab_key("kid2").unwrap().is_none());
    }

    /// newOrder's objects, and finalize's certificate and order, are one
    /// commit each: when the order's write is refused (a trigger here),
    /// nothing of the set is stored, so no authorization or certificate is
    /// left without its order.
    #[test]
    fn an_order_and_what_comes_with_it_are_stored_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlStore::open(&dir.path().join(FILE)).unwrap();
        let (_, authz, order) = objects(&s);
        s.put_new_order(&order, std::slice::from_ref(&authz)).unwrap();
        assert_eq!(s.order(&order.id).unwrap().unwrap().authorizations, std::slice::from_ref(&authz.id));
        assert_eq!(s.authz_of_challenge(&authz.challenges[0].id).unwrap().unwrap().id, authz.id);
        let valid = Order { status: Status::Valid, certificate: Some(order.id.clone()), ..order.clone() };
        s.put_issued(&valid, "0b", "CHAIN").unwrap();
        assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Valid);
        assert_eq!(s.cert_by_serial("0b").unwrap(), Some((order.id.clone(), "CHAIN".to_string())));

        s.conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON orders BEGIN SELECT RAISE(ABORT, 'refused'); END;
                 CREATE TRIGGER refuse_update BEFORE UPDATE ON orders BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let (_, authz2, order2) = objects(&s);
        assert!(s.put_new_order(&order2, std::slice::from_ref(&authz2)).is_err());
        assert!(s.authz(&authz2.id).unwrap().is_none(), "the authorization went with the refused order");
        assert!(s.put_issued(&Order { id: order2.id.clone(), ..valid }, "0c", "CHAIN2").is_err());
        assert!(s.cert(&order2.id).unwrap().is_none() && s.cert_by_serial("0c").unwrap().is_none());
    }

    #[test]
    fn two_stores_on_one_file_let_only_one_finalize_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (a, b) = (SqlStore::open(&path).unwrap(), SqlStore::open(&path).unwrap());
        let (_, _, order) = objects(&a);
        a.put_order(&order).unwrap();
        let wins = std::thread::scope(|t| {
            let ha = t.spawn(|| a.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
            let hb = t.spawn(|| b.transition_order(&order.id, Status::Pending, Status::Processing).unwrap());
            [ha.join().unwrap(), hb.join().unwrap()]
        });
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        assert_eq!(b.order(&order.id).unwrap().unwrap().status, Status::Processing);
    }

    #[test]
    fn a_write_the_database_refuses_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlStore::open(&dir.path().join(FILE)).unwrap();
        let (account, authz, order) = objects(&s);
        s.put_order(&order).unwrap();
        s.conn().pragma_update(None, "query_only", "ON").unwrap();
        let refused = [
            s.put_account(&account),
            s.put_authz(&authz),
            s.put_order(&order),
            s.put_cert(&order.id, "0a", "CHAIN"),
            s.put_new_order(&order, std::slice::from_ref(&authz)),
            s.put_issued(&order, "0a", "CHAIN"),
            s.transition_order(&order.id, Status::Pending, Status::Processing).map(drop),
        ];
        for r in refused {
            let e = r.unwrap_err();
            assert!(matches!(e, StorageError::Failed(_)) && e.to_string().contains(FILE), "{e}");
        }
        // Reads still answer, and the order was not claimed.
        assert_eq!(s.order(&order.id).unwrap().unwrap().status, Status::Pending);
        // A row that does not parse is damaged, not missing.
        s.conn().pragma_update(None, "query_only", "OFF").unwrap();
        s.conn().execute("UPDATE orders SET body = '{' WHERE id = ?1", [&order.id]).unwrap();
        assert!(matches!(s.order(&order.id), Err(StorageError::Damaged { .. })));
    }
}
