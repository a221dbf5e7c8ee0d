//! `serve --database postgres://…`: the ACME store, the CA's state, the
//! spent nonces and the rate limits in one PostgreSQL database, shared by
//! every instance of a fleet behind a balancer.
//!
//! The engine's traits (`Store`, `CaState`, `SpentNonces`, `Limiter`) stay
//! synchronous: the protocol core is shared with the in-memory and SQLite
//! stores and does no I/O of its own. [`PgDb::run`] bridges them to the
//! async pool: it blocks the calling thread (a `spawn_blocking` thread in
//! `serve`, the CLI's own thread) on the pool's runtime, bounded by the
//! operation timeout, so a dead database fails a request in seconds.
//!
//! `serve` runs its requests on a few database threads instead
//! ([`PgDb::bind_thread`]): each owns one connection and a current-thread
//! runtime that polls it, so a statement's round trip wakes no other
//! thread. On a pooled connection every round trip is two cross-thread
//! wake-ups (the caller wakes the connection's task on a runtime worker,
//! which wakes the caller on the reply), and at 35 round trips per ACME
//! order those wake-ups were half of the server's CPU.

pub mod crl;
pub mod error;
pub mod limits;
pub mod nonces;
pub mod schema;
pub mod state;
pub mod store;
pub mod tls;
pub mod url;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::acme::db::Stored;
use crate::storage::StorageError;

pub use limits::janitor;
pub use store::{CertFilter, EabError, FleetCert};

/// How the pool behaves.
pub struct PgOptions {
    /// Connections per instance.
    pub pool_size: usize,
    /// The longest one operation (a connection from the pool and its
    /// statements) may take before it is answered `Unavailable`.
    pub op_timeout: Duration,
    /// The runtime the pool's connections live on (`serve`'s own); None
    /// makes a one-worker runtime for a caller without one (the CLI).
    pub runtime: Option<Handle>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { pool_size: 16, op_timeout: Duration::from_secs(5), runtime: None }
    }
}

/// Why the database cannot be used; the message is whole (and holds no
/// password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(pub String);

/// One pool on one database; clones share it.
#[derive(Clone)]
pub struct PgDb {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    handle: Handle,
    /// The runtime made for a caller without one; shut down without
    /// waiting when the last clone goes (a runtime may not be dropped
    /// inside another's async context).
    owned: Mutex<Option<tokio::runtime::Runtime>>,
    op_timeout: Duration,
    /// For a database thread's own connection.
    config: tokio_postgres::Config,
    /// For the cancel request of an operation that timed out.
    connector: tls::Connector,
    instance: String,
    shown: String,
    schema: i32,
    standby: bool,
    nonce_key: [u8; 32],
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.owned.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
    }
}

/// A future a blocking caller can wait for.
pub type Op<'c, T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>>;

impl PgDb {
    /// Connects to the database at `url`, checks that it answers and that
    /// its schema is one this certforge knows (migrating an older one on a
    /// primary), and reads the fleet's nonce key.
    pub fn open(url: &str, opts: PgOptions) -> Result<PgDb, OpenError> {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(std::path::PathBuf::from);
        PgDb::open_env(url, opts, &|k| std::env::var(k).ok(), home.as_deref())
    }

    /// [`PgDb::open`] with the environment variables `env` gives (PGPASSWORD,
    /// PGPASSFILE, PGSSLMODE, PGSSLROOTCERT) and the home directory `home`
    /// (~/.pgpass, ~/.postgresql/root.crt) instead of the process's own.
    pub fn open_env(
        url: &str,
        opts: PgOptions,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&std::path::Path>,
    ) -> Result<PgDb, OpenError> {
        let target = url::parse(url, env, home).map_err(|e| OpenError(e.0))?;
        let shown = target.shown.clone();
        let connector =
            tls::Connector::new(&target.tls).map_err(|e| OpenError(format!("the database {shown}: {e}")))?;
        let (handle, owned) = match opts.runtime {
            Some(h) => (h, None),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("certforge-pg")
                    .enable_all()
                    .build()
                    .map_err(|e| OpenError(format!("cannot start the database client's runtime: {e}")))?;
                (rt.handle().clone(), Some(rt))
            }
        };
        let pool = new_pool(&target.config, &connector, opts.pool_size)
            .map_err(|e| OpenError(format!("the database {shown}: {e}")))?;
        let instance = instance_id();
        let opened = block_on(&handle, async {
            let mut client = pool.get().await.map_err(|e| unreachable(&target, e))?;
            let schema = schema::ensure(&mut client, &instance)
                .await
                .map_err(|e| OpenError(format!("the database {shown}: {e}")))?;
            let key = client
                .query_opt("SELECT value FROM settings WHERE name = 'nonce_key'", &[])
                .await
                .map_err(|e| OpenError(format!("the database {shown}: reading the nonce key: {}", error::chain(&e))))?;
            let key: Vec<u8> = key.map(|r| r.get(0)).unwrap_or_default();
            let key: [u8; 32] = key.try_into().map_err(|_| {
                OpenError(format!(
                    "the database {shown}: its settings row nonce_key is not 32 bytes; it was not made by certforge"
                ))
            })?;
            Ok::<_, OpenError>((schema, key))
        });
        let (schema, nonce_key) = match opened {
            Ok(v) => v,
            Err(e) => {
                if let Some(rt) = owned {
                    rt.shutdown_background();
                }
                return Err(e);
            }
        };
        Ok(PgDb {
            inner: Arc::new(Inner {
                pool,
                handle,
                owned: Mutex::new(owned),
                op_timeout: opts.op_timeout,
                config: target.config.clone(),
                connector,
                instance,
                shown,
                schema: schema.version,
                standby: schema.standby,
                nonce_key,
            }),
        })
    }

    /// Runs `f` on a pooled connection and waits for it, at most the
    /// operation timeout; `what` says what it was doing in errors. Blocks
    /// the calling thread: from async code, call it in `spawn_blocking`
    /// (on a multi-thread runtime's worker it steps out with
    /// `block_in_place`, which stalls that worker's other tasks).
    ///
    /// An error inside a transaction `f` opened with BEGIN is rolled back
    /// before the connection goes back to the pool; [`PgDb::tx`] does the
    /// BEGIN and COMMIT itself.
    pub fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> Op<'c, T> + Send,
    ) -> Stored<T> {
        self.exec(what, false, f)
    }

    /// [`PgDb::run`] inside one transaction: committed when `f` succeeds,
    /// rolled back when it fails.
    pub fn tx<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> Op<'c, T> + Send,
    ) -> Stored<T> {
        self.exec(what, true, f)
    }

    /// Makes the calling thread one of this database's threads: it gets a
    /// connection of its own (made on first use, remade after it broke),
    /// polled by a current-thread runtime only this thread drives, and
    /// [`PgDb::run`] called on it uses that instead of the pool. For
    /// threads that do nothing else: the runtime runs only while a call
    /// waits. Returns false (and the thread keeps using the pool) when no
    /// runtime can be made.
    pub fn bind_thread(&self) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let pool = new_pool(&self.inner.config, &self.inner.connector, 1);
        let (Ok(rt), Ok(pool)) = (rt, pool) else { return false };
        LOCAL.with(|l| *l.borrow_mut() = Some(Local { owner: Arc::downgrade(&self.inner), rt, pool }));
        true
    }

    /// Runs an operation on this thread's own connection when it has one
    /// for this database, else through the pool's runtime.
    fn exec<T: Send + 'static>(
        &self,
        what: &'static str,
        tx: bool,
        f: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> Op<'c, T> + Send,
    ) -> Stored<T> {
        let f = LOCAL.with(|l| match l.borrow().as_ref() {
            Some(l) if std::ptr::eq(l.owner.as_ptr(), Arc::as_ptr(&self.inner)) => {
                Ok(l.rt.block_on(self.op_on(what, tx, &l.pool, true, f)))
            }
            _ => Err(f),
        });
        f.unwrap_or_else(|f| block_on(&self.inner.handle, self.op(what, tx, f)))
    }

    /// An operation on the pool, for async callers (the janitor).
    async fn op<T>(
        &self,
        what: &'static str,
        tx: bool,
        f: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> Op<'c, T>,
    ) -> Stored<T> {
        self.op_on(what, tx, &self.inner.pool, false, f).await
    }

    async fn op_on<T>(
        &self,
        what: &'static str,
        tx: bool,
        pool: &Pool,
        own: bool,
        f: impl for<'c> FnOnce(&'c deadpool_postgres::Client) -> Op<'c, T>,
    ) -> Stored<T> {
        if own {
            // The thread's connection is polled only while a call waits: let
            // it read what came since the last call first, so that one the
            // server closed meanwhile (a restart) is seen closed and
            // replaced now rather than failing this call.
            // (Each yield lets the runtime poll the socket once and run the
            // connection's task: reading the server's last message, then
            // seeing the end of the stream, then ending the task, which is
            // what `is_closed` sees.)
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        let client = match tokio::time::timeout(self.inner.op_timeout, pool.get()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(error::pool(what, e)),
            Err(_) => return Err(timed_out(what)),
        };
        let work = async {
            if tx {
                client.batch_execute("BEGIN").await?;
            }
            let result = f(&client).await;
            match (&result, tx) {
                (Ok(_), true) => client.batch_execute("COMMIT").await?,
                // Never hand the pool a connection in an aborted
                // transaction: its next user's statements would all fail.
                // Outside a transaction ROLLBACK only warns.
                (Err(_), _) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                _ => {}
            }
            result
        };
        let done = tokio::time::timeout(self.inner.op_timeout, work).await;
        match done {
            Ok(result) => result.map_err(|e| error::storage(what, &e)),
            Err(_) => {
                // The statement may still be running or its reply half read:
                // the connection leaves the pool instead of going back, and
                // the server is asked to cancel the statement, so that a
                // write we answered as failed does not commit later (a
                // claim nobody would finish).
                let cancel = client.cancel_token();
                drop(Object::take(client));
                let tls = self.inner.connector.clone();
                self.inner.handle.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), cancel.cancel_query(tls)).await;
                });
                Err(timed_out(what))
            }
        }
    }

    /// Whether the database answers and takes writes, for `/health`: a
    /// standby is `Unavailable`, so a balancer sends no client to an
    /// instance that cannot write.
    pub async fn ping(&self) -> Stored<()> {
        let what = "checking the database";
        let check = async {
            let client = self.inner.pool.get().await.map_err(|e| error::pool(what, e))?;
            let row =
                client.query_one("SELECT pg_is_in_recovery()", &[]).await.map_err(|e| error::storage(what, &e))?;
            match row.get::<_, bool>(0) {
                true => Err(StorageError::Unavailable("the database is a read-only standby".into())),
                false => Ok(()),
            }
        };
        tokio::time::timeout(self.inner.op_timeout, check).await.unwrap_or_else(|_| Err(timed_out(what)))
    }

    /// This instance's id ("host:pid:random"), written beside claims,
    /// reservations and leases.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The URL with its password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// The schema version found (or made) at open.
    pub fn schema(&self) -> i32 {
        self.inner.schema
    }

    /// Whether the database was a read-only standby at open.
    pub fn standby(&self) -> bool {
        self.inner.standby
    }

    /// The fleet's key for MACing nonces (the `settings` row made with the
    /// schema), the same on every instance.
    pub fn nonce_key(&self) -> [u8; 32] {
        self.inner.nonce_key
    }

    /// The runtime the pool lives on.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }
}

thread_local! {
    /// The database thread's own connection ([`PgDb::bind_thread`]).
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

struct Local {
    /// Whose thread this is (a weak reference: the PgDb may go first).
    owner: Weak<Inner>,
    rt: tokio::runtime::Runtime,
    pool: Pool,
}

/// A pool of at most `size` connections, made when first needed.
fn new_pool(
    config: &tokio_postgres::Config,
    connector: &tls::Connector,
    size: usize,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        config.clone(),
        connector.clone(),
        // Fast: a connection is reused unless it is closed; a broken one
        // fails its next statement as `Unavailable` and is dropped then.
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()
}

fn timed_out(what: &str) -> StorageError {
    StorageError::Unavailable(format!("PostgreSQL, {what}: no answer from the database in time"))
}

/// The first connection's failure, said with what to change.
fn unreachable(target: &url::Target, e: deadpool_postgres::PoolError) -> OpenError {
    let shown = &target.shown;
    let cause = match &e {
        deadpool_postgres::PoolError::Backend(e) => error::chain(e),
        deadpool_postgres::PoolError::Timeout(_) => "no connection within 2 s".to_string(),
        other => error::chain(other),
    };
    let mut text = format!("cannot reach the database at {shown}: {cause}");
    if cause.contains("password missing") {
        text = format!(
            "the database at {shown} asks for a password and none was given: put it in PGPASSWORD, or in a \
             password file of mode 0600 (PGPASSFILE, or ~/.pgpass) as HOST:PORT:DATABASE:USER:PASSWORD"
        );
    } else if let (Some(from), true) =
        (&target.password_from, cause.contains("28P01") || cause.contains("password authentication failed"))
    {
        text.push_str(&format!(" (the password came from {from})"));
    }
    for note in &target.notes {
        text.push_str(&format!("; {note}"));
    }
    OpenError(text)
}

/// Runs `fut` to completion on `handle` from synchronous code, wherever
/// that code runs: `Handle::block_on` panics on a runtime's worker thread,
/// so a multi-thread worker steps out with `block_in_place`, and a
/// current-thread runtime's thread hands the wait to a scoped thread.
fn block_on<F>(handle: &Handle, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| handle.block_on(fut)),
        Ok(_) => std::thread::scope(|s| match s.spawn(|| handle.block_on(fut)).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => handle.block_on(fut),
    }
}

/// "host:pid:random": which instance claimed an order, reserved a serial
/// or holds the CRL lease, for an operator reading the tables.
fn instance_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let host = match unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } {
        0 => String::from_utf8_lossy(buf.split(|b| *b == 0).next().unwrap_or_default()).into_owned(),
        _ => "unknown".to_string(),
    };
    format!("{host}:{}:{}", std::process::id(), crate::acme::jws::random_b64(6))
}
