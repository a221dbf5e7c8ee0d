//! The ACME store in PostgreSQL, as `SqlStore` keeps it in SQLite: each
//! object as its JSON (the model's serde form) with the columns its
//! lookups need beside it. Plus the operator's views across the fleet
//! (`acme list`, `acme eab`).
//!
//! An order's `status` column is authoritative: `transition_order` moves
//! it with one conditional UPDATE, so of all the instances finalizing one
//! order exactly one claims it, as Boulder's `SetOrderProcessing`. No
//! instance ever releases another's claim: an order left `processing` by
//! a killed instance stays so until it expires, and its client orders
//! again (SQLite mode's `recover()` has no safe equivalent in a fleet).

use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::PgDb;
use crate::acme::db::Stored;
use crate::acme::jws::random_b64;
use crate::acme::model::{Account, Authorization, Order, Status};
use crate::acme::Store;
use crate::storage::StorageError;

/// One certificate the fleet's CA state knows: reserved before signing,
/// signed once its DER is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCert {
    /// Which CA: SHA-256 of its subject and public key.
    pub ca: [u8; 32],
    pub serial: Vec<u8>,
    pub names: Vec<String>,
    pub not_after: OffsetDateTime,
    /// Where the certificate is kept (the ACME order, for `serve`'s).
    pub order: Option<String>,
    /// When it was revoked and the reason code (RFC 5280 §5.3.1).
    pub revoked: Option<(OffsetDateTime, Option<u8>)>,
    pub signed: bool,
}

/// Which certificates `fleet_certs` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFilter {
    All,
    Serial(Vec<u8>),
    /// Those whose names include this one.
    Name(String),
}

/// Why an External Account Binding key was not added.
#[derive(Debug, thiserror::Error)]
pub enum EabError {
    #[error("an External Account Binding key named {0:?} exists already; choose another name")]
    NameTaken(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("the model always serializes")
}

/// A row's JSON as the model; one that does not parse is damaged, not
/// missing.
fn parse<T: DeserializeOwned>(what: &str, key: &str, body: Option<String>) -> Stored<Option<T>> {
    let Some(body) = body else { return Ok(None) };
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| StorageError::Damaged { what: format!("the ACME store's {what} {key:?}"), detail: e.to_string() })
}

/// An account row's body as the model.
pub(super) fn parse_account(id: &str, body: Option<String>) -> Stored<Option<Account>> {
    parse("account", id, body)
}

impl PgDb {
    /// One text column of the row with `key`, the statement prepared once
    /// per connection.
    fn text(&self, what: &'static str, sql: &'static str, key: &str) -> Stored<Option<String>> {
        let key = key.to_string();
        self.run(what, move |c| {
            Box::pin(async move {
                let st = c.prepare_cached(sql).await?;
                Ok(c.query_opt(&st, &[&key]).await?.map(|r| r.get(0)))
            })
        })
    }

    fn object<T: DeserializeOwned>(&self, what: &'static str, sql: &'static str, key: &str) -> Stored<Option<T>> {
        parse(what, key, self.text(what, sql, key)?)
    }

    /// The certificates of the fleet's CA state that `filter` selects,
    /// oldest reservation first.
    pub fn fleet_certs(&self, filter: CertFilter) -> Stored<Vec<FleetCert>> {
        const SELECT: &str = "SELECT c.ca, c.serial, c.names, c.not_after, c.location, r.revoked_at, r.reason, \
                              c.der IS NOT NULL FROM certificates c \
                              LEFT JOIN revocations r ON r.ca = c.ca AND r.serial = c.serial";
        let rows = self.run("listing the certificates", move |c| {
            Box::pin(async move {
                match &filter {
                    CertFilter::All => c.query(&format!("{SELECT} ORDER BY c.reserved_at, c.serial"), &[]).await,
                    CertFilter::Serial(serial) => {
                        c.query(&format!("{SELECT} WHERE c.serial = $1 ORDER BY c.reserved_at"), &[serial]).await
                    }
                    CertFilter::Name(name) => {
                        let st = format!("{SELECT} WHERE c.names @> ARRAY[$1::text] ORDER BY c.reserved_at, c.serial");
                        c.query(&st, &[name]).await
                    }
                }
            })
        })?;
        rows.iter()
            .map(|r| {
                let ca: Vec<u8> = r.get(0);
                let revoked_at: Option<OffsetDateTime> = r.get(5);
                let reason: Option<i16> = r.get(6);
                Ok(FleetCert {
                    ca: ca.try_into().map_err(|_| StorageError::Damaged {
                        what: "the certificates table".into(),
                        detail: "a CA key is not 32 bytes".into(),
                    })?,
                    serial: r.get(1),
                    names: r.get(2),
                    not_after: r.get(3),
                    order: r.get(4),
                    revoked: revoked_at.map(|at| (at, reason.and_then(|n| u8::try_from(n).ok()))),
                    signed: r.get(7),
                })
            })
            .collect()
    }

    /// Adds an External Account Binding key for `name` (who it was given
    /// to); a name is given one key.
    pub fn add_eab(&self, kid: &str, name: &str, key: &[u8], created: OffsetDateTime) -> Result<(), EabError> {
        let (kid, owner, key) = (kid.to_string(), name.to_string(), key.to_vec());
        let added = self.run("adding an External Account Binding key", move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO eab_keys (kid, name, key, created) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                    &[&kid, &owner, &key, &created],
                )
                .await
            })
        })?;
        match added {
            0 => Err(EabError::NameTaken(name.to_string())),
            _ => Ok(()),
        }
    }

    /// Every EAB key's (kid, name, created), oldest first; never the keys.
    pub fn eab_list(&self) -> Stored<Vec<(String, String, OffsetDateTime)>> {
        let rows = self.run("listing the External Account Binding keys", |c| {
            Box::pin(
                async move { c.query("SELECT kid, name, created FROM eab_keys ORDER BY created, name", &[]).await },
            )
        })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}

impl Store for PgDb {
    fn next_id(&self) -> String {
        // Random, not a sequence: 96 bits never collide in practice, and
        // need no round trip.
        random_b64(12)
    }

    fn account(&self, id: &str) -> Stored<Option<Account>> {
        parse_account(id, self.text("account", "SELECT body FROM accounts WHERE id = $1", id)?)
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Stored<Option<Account>> {
        self.object("account with key", "SELECT body FROM accounts WHERE thumbprint = $1", thumbprint)
    }

    fn put_account(&self, account: &Account) -> Stored<()> {
        let (id, thumbprint, body) = (account.id.clone(), account.key.thumbprint(), json(account));
        self.run("writing an account", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO accounts (id, thumbprint, body) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET thumbprint = excluded.thumbprint, body = excluded.body",
                    )
                    .await?;
                c.execute(&st, &[&id, &thumbprint, &body]).await.map(drop)
            })
        })
    }

    fn order(&self, id: &str) -> Stored<Option<Order>> {
        Ok(self.order_with_authzs(id)?.map(|(order, _)| order))
    }

    fn order_with_authzs(&self, id: &str) -> Stored<Option<(Order, Vec<Option<Status>>)>> {
        let key = id.to_string();
        let row = self.run("reading an order", move |c| {
            Box::pin(async move {
                // The authorizations' statuses only while the order is
                // pending, in the order its body lists them; NULL for one
                // that is missing.
                let st = c
                    .prepare_cached(
                        "SELECT o.status, o.body, CASE WHEN o.status = 'pending' THEN ARRAY( \
                         SELECT a.body::json->>'status' \
                         FROM json_array_elements_text(o.body::json->'authorizations') WITH ORDINALITY AS z(id, n) \
                         LEFT JOIN authzs a ON a.id = z.id ORDER BY z.n) END \
                         FROM orders o WHERE o.id = $1",
                    )
                    .await?;
                Ok(c.query_opt(&st, &[&key]).await?.map(|r| {
                    (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, Option<Vec<Option<String>>>>(2))
                }))
            })
        })?;
        let Some((status, body, authzs)) = row else { return Ok(None) };
        let damaged = |detail: String| StorageError::Damaged { what: format!("the ACME store's order {id:?}"), detail };
        let mut order: Order = parse("order", id, Some(body))?.expect("a body was given");
        // The column is what transition_order moves; the body keeps the rest.
        order.status = Status::from_name(&status).ok_or_else(|| damaged(format!("status {status:?}")))?;
        let statuses = authzs
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.map(|s| Status::from_name(&s).ok_or_else(|| damaged(format!("authorization status {s:?}")))))
            .map(Option::transpose)
            .collect::<Stored<Vec<Option<Status>>>>()?;
        Ok(Some((order, statuses)))
    }

    /// The authorizations, their challenges and the order in one
    /// statement: atomic without BEGIN and COMMIT, and one round trip. The
    /// challenges' foreign key is checked at the statement's end, when the
    /// authorizations are in.
    fn put_new_order(&self, order: &Order, authzs: &[Authorization]) -> Stored<()> {
        let (ids, bodies): (Vec<String>, Vec<String>) = authzs.iter().map(|a| (a.id.clone(), json(a))).unzip();
        let (challenges, of): (Vec<String>, Vec<String>) =
            authzs.iter().flat_map(|a| a.challenges.iter().map(|c| (c.id.clone(), a.id.clone()))).unzip();
        let (id, account, status, body) = (order.id.clone(), order.account.clone(), order.status.name(), json(order));
        self.run("writing a new order", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "WITH a AS (INSERT INTO authzs (id, body) SELECT * FROM unnest($1::text[], $2::text[])), \
                         c AS (INSERT INTO challenges (id, authz) SELECT * FROM unnest($3::text[], $4::text[])) \
                         INSERT INTO orders (id, account, status, body) VALUES ($5, $6, $7, $8)",
                    )
                    .await?;
                let params: [&(dyn ToSql + Sync); 8] = [&ids, &bodies, &challenges, &of, &id, &account, &status, &body];
                c.execute(&st, &params).await.map(drop)
            })
        })
    }

    /// The certificate and the finalized order in one statement.
    fn put_issued(&self, order: &Order, serial: &str, pem_chain: &str) -> Stored<()> {
        let (id, account, status, body) = (order.id.clone(), order.account.clone(), order.status.name(), json(order));
        let (serial, chain) = (serial.to_string(), pem_chain.to_string());
        self.run("writing an issued certificate and its order", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "WITH c AS (INSERT INTO acme_certs (order_id, serial, chain) VALUES ($1, $5, $6) \
                         ON CONFLICT (order_id) DO UPDATE SET serial = excluded.serial, chain = excluded.chain) \
                         INSERT INTO orders (id, account, status, body) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET account = excluded.account, status = excluded.status, \
                         body = excluded.body",
                    )
                    .await?;
                let params: [&(dyn ToSql + Sync); 6] = [&id, &account, &status, &body, &serial, &chain];
                c.execute(&st, &params).await.map(drop)
            })
        })
    }

    fn put_order(&self, order: &Order) -> Stored<()> {
        let (id, account, status, body) = (order.id.clone(), order.account.clone(), order.status.name(), json(order));
        self.run("writing an order", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO orders (id, account, status, body) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET account = excluded.account, status = excluded.status, \
                         body = excluded.body",
                    )
                    .await?;
                c.execute(&st, &[&id, &account, &status, &body]).await.map(drop)
            })
        })
    }

    fn orders_of(&self, account: &str) -> Stored<Vec<String>> {
        let account = account.to_string();
        self.run("reading an account's orders", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT id FROM orders WHERE account = $1 ORDER BY id").await?;
                Ok(c.query(&st, &[&account]).await?.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn transition_order(&self, id: &str, from: Status, to: Status) -> Stored<bool> {
        // One conditional UPDATE: PostgreSQL's row lock makes the second of
        // two racing instances re-check `status` after the first commits,
        // and find it moved (READ COMMITTED's EvalPlanQual).
        let (id, from, to, by) = (id.to_string(), from.name(), to.name(), self.instance().to_string());
        self.run("moving an order", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "UPDATE orders SET status = $3, \
                         claimed_at = CASE WHEN $3 = 'processing' THEN now() ELSE claimed_at END, \
                         claimed_by = CASE WHEN $3 = 'processing' THEN $4 ELSE claimed_by END \
                         WHERE id = $1 AND status = $2",
                    )
                    .await?;
                Ok(c.execute(&st, &[&id, &from, &to, &by]).await? == 1)
            })
        })
    }

    fn authz(&self, id: &str) -> Stored<Option<Authorization>> {
        self.object("authorization", "SELECT body FROM authzs WHERE id = $1", id)
    }

    fn put_authz(&self, authz: &Authorization) -> Stored<()> {
        let (id, body) = (authz.id.clone(), json(authz));
        let challenges: Vec<String> = authz.challenges.iter().map(|c| c.id.clone()).collect();
        // One statement, so one round trip and atomic without BEGIN and
        // COMMIT: the challenges' foreign key is checked at its end, when
        // the authorization is in.
        self.run("writing an authorization", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "WITH a AS (INSERT INTO authzs (id, body) VALUES ($1, $2) \
                         ON CONFLICT (id) DO UPDATE SET body = excluded.body RETURNING id) \
                         INSERT INTO challenges (id, authz) SELECT unnest($3::text[]), (SELECT id FROM a) \
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                c.execute(&st, &[&id, &body, &challenges]).await.map(drop)
            })
        })
    }

    fn authz_of_challenge(&self, id: &str) -> Stored<Option<Authorization>> {
        self.object(
            "authorization of challenge",
            "SELECT a.body FROM challenges c JOIN authzs a ON a.id = c.authz WHERE c.id = $1",
            id,
        )
    }

    fn cert(&self, id: &str) -> Stored<Option<String>> {
        self.text("reading a certificate", "SELECT chain FROM acme_certs WHERE order_id = $1", id)
    }

    fn put_cert(&self, id: &str, serial: &str, pem_chain: &str) -> Stored<()> {
        let (id, serial, chain) = (id.to_string(), serial.to_string(), pem_chain.to_string());
        self.run("writing a certificate", move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO acme_certs (order_id, serial, chain) VALUES ($1, $2, $3) \
                         ON CONFLICT (order_id) DO UPDATE SET serial = excluded.serial, chain = excluded.chain",
                    )
                    .await?;
                c.execute(&st, &[&id, &serial, &chain]).await.map(drop)
            })
        })
    }

    fn cert_by_serial(&self, serial: &str) -> Stored<Option<(String, String)>> {
        let serial = serial.to_string();
        self.run("reading a certificate by serial", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT order_id, chain FROM acme_certs WHERE serial = $1 LIMIT 1").await?;
                Ok(c.query_opt(&st, &[&serial]).await?.map(|r| (r.get(0), r.get(1))))
            })
        })
    }

    /// Whether the database answers and takes writes (`/health`).
    fn health(&self) -> Stored<()> {
        super::block_on(self.handle(), self.ping())
    }

    fn eab_key(&self, kid: &str) -> Stored<Option<Vec<u8>>> {
        let kid = kid.to_string();
        self.run("reading an External Account Binding key", move |c| {
            Box::pin(async move {
                let st = c.prepare_cached("SELECT key FROM eab_keys WHERE kid = $1").await?;
                Ok(c.query_opt(&st, &[&kid]).await?.map(|r| r.get(0)))
            })
        })
    }
}
