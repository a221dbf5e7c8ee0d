//! A throwaway PostgreSQL cluster for each test: `initdb` into a temp dir,
//! started with `pg_ctl` on a free loopback port (never 5432) and a Unix
//! socket in that dir, and stopped when the `Pg` is dropped. Durability is
//! off (fsync, synchronous_commit, full_page_writes): a test's data need not
//! survive a power cut, and the tests run on a small shared machine.
//!
//! initdb and postgres refuse to run as root, so as root the cluster's
//! directory is chowned to `postgres` and the server programs run under
//! `runuser -u postgres --`. No cluster ever lives in a static: statics are
//! never dropped, and such a cluster would outlive the test binary.
#![allow(dead_code)]

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long one PostgreSQL program (initdb, pg_ctl, psql, pg_basebackup) may run.
const LIMIT: u64 = 60;

/// How a cluster is made.
#[derive(Default, Clone)]
pub struct PgOpts {
    /// `ssl=on` with this certificate and key (copied into the cluster,
    /// the key made 0600 and owned by the server's user).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The `postgres` role's password; TCP connections then need it
    /// (scram-sha-256) while the Unix socket (psql) stays trusted.
    pub password: Option<String>,
}

/// A running (or stopped) throwaway cluster.
pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    sock: PathBuf,
    up: bool,
    opts: PgOpts,
}

/// The newest `/usr/lib/postgresql/*/bin` that has `initdb` (Debian's
/// layout; these programs are not on PATH).
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether PostgreSQL's server programs are here. When they are missing
/// the test skips, saying SKIPPED, unless CI requires the peers
/// (CERTFORGE_REQUIRE_PEERS), where it fails.
pub fn available() -> bool {
    if bin_dir().is_some() {
        return true;
    }
    assert!(
        !crate::common::required(),
        "PostgreSQL is required here but /usr/lib/postgresql/*/bin/initdb is missing (apt-get install postgresql)"
    );
    eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
    false
}

/// The uid and gid of `postgres` when this process is root (the server
/// refuses to run as root); None otherwise: the cluster is then ours.
fn server_user() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam reads a NUL-terminated name; the record it returns
    // is read at once, before any other passwd call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root, and there is no `postgres` user to run the PostgreSQL server as");
    // SAFETY: pw is non-null and points to getpwnam's static record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Gives `path` to the server's user (when we are root).
fn give(path: &Path) {
    if let Some((uid, gid)) = server_user() {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: chown on a NUL-terminated path we own.
        let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
        assert_eq!(rc, 0, "chown postgres {}: {}", path.display(), std::io::Error::last_os_error());
    }
}

/// Whether a process with this pid is alive.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Pg {
    /// A new cluster, trusted on loopback, without TLS. Call
    /// [`available`] first so a machine without PostgreSQL skips.
    pub fn start() -> Pg {
        Pg::start_with(PgOpts::default())
    }

    /// A new cluster made as `opts` says, started.
    pub fn start_with(opts: PgOpts) -> Pg {
        let bin = bin_dir().expect("PostgreSQL is installed (check pg::available() first)");
        let dir = tempfile::Builder::new().prefix("certforge-pg").tempdir().expect("tempdir");
        give(dir.path());
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        give(&sock);
        let mut pg = Pg { dir, bin, port: crate::common::free_port(), sock, up: false, opts };
        let mut initdb = pg.server_cmd("initdb");
        initdb.arg("-D").arg(pg.data()).args(["-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
        match pg.opts.password.clone() {
            None => {
                initdb.args(["-A", "trust"]);
            }
            Some(password) => {
                let pwfile = pg.dir.path().join("pwfile");
                std::fs::write(&pwfile, format!("{password}\n")).unwrap();
                give(&pwfile);
                initdb.args(["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile"]).arg(&pwfile);
            }
        }
        pg.must(&mut initdb, "initdb");
        if let Some((cert, key)) = pg.opts.tls.clone() {
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let to = pg.data().join(to);
                std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
                give(&to);
            }
        }
        pg.start_again();
        pg
    }

    /// The cluster's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the Unix socket (psql's way in).
    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The URL certforge is given: TCP on loopback, user postgres, database
    /// postgres, no password in it (PGPASSWORD or a .pgpass gives one).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL with the password in it (a password cluster only).
    pub fn url_with_password(&self) -> String {
        let password = self.opts.password.as_deref().expect("a cluster made with a password");
        format!("postgres://postgres:{password}@127.0.0.1:{}/postgres", self.port)
    }

    /// Whether the server is running (as far as this handle knows).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs `sql` with psql over the Unix socket as `postgres` and returns
    /// its output: unaligned, tuples only, `|` between columns, so one
    /// value comes back as its bare text. Panics, showing psql's stderr,
    /// when a statement fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_run(sql);
        assert!(out.0, "psql {sql:?} failed:\n{}", out.2);
        out.1.trim_end_matches('\n').to_string()
    }

    /// psql, not panicking: (succeeded, stdout, stderr).
    pub fn psql_run(&self, sql: &str) -> (bool, String, String) {
        let mut c = self.psql_cmd();
        c.args(["-c", sql]);
        let run = crate::common::run_group(&mut c, None, LIMIT).expect("psql runs");
        assert!(!run.timed_out, "psql {sql:?} still running after {LIMIT} s");
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        (run.status.is_some_and(|s| s.success()), text(&run.stdout), text(&run.stderr))
    }

    /// A psql command on this cluster (over the socket, `ON_ERROR_STOP`,
    /// no psqlrc), without `-c`: for a test that feeds it a script or
    /// keeps a transaction open in the background.
    pub fn psql_cmd(&self) -> Command {
        self.psql_on(self.sock.as_os_str())
    }

    /// [`psql_cmd`](Pg::psql_cmd) over TCP to 127.0.0.1, as certforge
    /// connects (password and TLS rules for TCP apply).
    pub fn psql_tcp_cmd(&self) -> Command {
        self.psql_on("127.0.0.1".as_ref())
    }

    fn psql_on(&self, host: &std::ffi::OsStr) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.arg("-h")
            .arg(host)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .current_dir(self.dir.path());
        c
    }

    /// Starts the server (again, after [`stop`](Pg::stop)) on the same port
    /// and data: returns when it accepts connections (pg_ctl -w, ≤ 20 s).
    pub fn start_again(&mut self) {
        assert!(!self.up, "the cluster is already running");
        let mut options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.sock.display(),
            self.port
        );
        if self.opts.tls.is_some() {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let mut c = self.server_cmd("pg_ctl");
        c.arg("-D").arg(self.data()).args(["-w", "-t", "20", "-l"]).arg(self.dir.path().join("log"));
        c.args(["-o", &options, "start"]);
        self.must(&mut c, "pg_ctl start");
        self.up = true;
    }

    /// Stops the server cleanly (fast shutdown: sessions are ended), and
    /// returns once it is down. The data stays for [`start_again`](Pg::start_again).
    pub fn stop(&mut self) {
        assert!(self.up, "the cluster is not running");
        let mut c = self.server_cmd("pg_ctl");
        c.arg("-D").arg(self.data()).args(["-m", "fast", "-w", "-t", "20", "stop"]);
        self.must(&mut c, "pg_ctl stop");
        self.up = false;
    }

    /// A streaming-replication standby of this cluster (`pg_basebackup -R`),
    /// started on a port of its own: it answers reads and refuses writes.
    pub fn standby(&self) -> Pg {
        assert!(self.up, "the primary must be running");
        let dir = tempfile::Builder::new().prefix("certforge-pg-standby").tempdir().expect("tempdir");
        give(dir.path());
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        give(&sock);
        let mut standby = Pg {
            dir,
            bin: self.bin.clone(),
            port: crate::common::free_port(),
            sock,
            up: false,
            opts: self.opts.clone(),
        };
        let mut c = standby.server_cmd("pg_basebackup");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-D"]).arg(standby.data()).args([
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ]);
        if let Some(password) = &self.opts.password {
            c.env("PGPASSWORD", password);
        }
        standby.must(&mut c, "pg_basebackup");
        standby.start_again();
        standby
    }

    /// A server program of the bin dir, run as the server's user (runuser
    /// when we are root), in the cluster's directory.
    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if server_user().is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.current_dir(self.dir.path()).env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
        c
    }

    /// Runs `c` (bounded), panicking with its output and the server log when it fails.
    fn must(&self, c: &mut Command, what: &str) {
        let run = crate::common::run_group(c, None, LIMIT).unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
        let ok = !run.timed_out && run.status.is_some_and(|s| s.success());
        assert!(
            ok,
            "{what} failed (timed out: {}):\n{}{}\n--- server log ---\n{}",
            run.timed_out,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
            self.log()
        );
    }
}

impl Drop for Pg {
    /// Immediate shutdown (no checkpoint: the data is thrown away), then
    /// SIGKILL of the postmaster if it is somehow still alive.
    fn drop(&mut self) {
        let pid = self.pid();
        if self.up || pid.is_some() {
            let mut c = self.server_cmd("pg_ctl");
            c.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "10", "stop"]);
            let _ = crate::common::run_group(&mut c, None, 15);
        }
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                // SAFETY: kill(2) on the postmaster this handle started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
