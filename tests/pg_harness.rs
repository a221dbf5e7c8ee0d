//! The throwaway PostgreSQL cluster of tests/common/pg.rs works as the
//! fleet and store tests rely on: it starts, answers psql over its socket
//! and TCP on loopback, keeps its data across a stop and a start, feeds a
//! read-only standby, and is gone after Drop. And haproxy as
//! tests/common/haproxy.rs runs it sees an instance go DOWN and come back UP.

#[path = "common/acme.rs"]
mod acme_server;
mod common;
#[path = "common/haproxy.rs"]
mod haproxy;
#[path = "common/pg.rs"]
mod pg;

use pg::{Pg, PgOpts};

#[test]
fn a_cluster_starts_answers_stops_and_starts_again_with_its_data() {
    if !pg::available() {
        return;
    }
    let mut db = Pg::start();
    assert_ne!(db.port, 5432);
    assert_eq!(db.psql("SELECT 1 + 1"), "2");
    db.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
    // TCP on loopback, as certforge connects: the URL's host and port.
    assert!(db.url().starts_with("postgres://postgres@127.0.0.1:"), "{}", db.url());
    let mut tcp = db.psql_tcp_cmd();
    tcp.args(["-c", "SELECT inet_server_addr()"]);
    let out = tcp.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "127.0.0.1");

    db.stop();
    let (ok, _, err) = db.psql_run("SELECT 1");
    assert!(!ok, "psql worked on a stopped cluster");
    assert!(err.contains("No such file") || err.contains("connection"), "{err}");
    db.start_again();
    assert_eq!(db.psql("SELECT v FROM t"), "7");

    let pid = db.pid().expect("postmaster.pid");
    drop(db);
    // SAFETY: signal 0 only asks whether the process exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the postmaster {pid} outlived Drop");
}

#[test]
fn a_standby_replays_the_primary_and_refuses_writes() {
    if !pg::available() {
        return;
    }
    let primary = Pg::start();
    primary.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    let standby = primary.standby();
    assert_ne!(standby.port, primary.port);
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(standby.psql("SELECT v FROM t"), "1");
    let (ok, _, err) = standby.psql_run("INSERT INTO t VALUES (2)");
    assert!(!ok && err.contains("read-only"), "{err}");
}

#[test]
fn a_password_cluster_wants_the_password_on_tcp_only() {
    if !pg::available() {
        return;
    }
    let db = Pg::start_with(PgOpts { password: Some("s3cret-pw".into()), ..PgOpts::default() });
    // The socket stays trusted: the harness's own psql needs no password.
    assert_eq!(db.psql("SELECT current_user"), "postgres");
    let tcp = |password: Option<&str>| {
        let mut c = db.psql_tcp_cmd();
        c.args(["-w", "-c", "SELECT 1"]);
        if let Some(p) = password {
            c.env("PGPASSWORD", p);
        }
        c.env("PGPASSFILE", "/nonexistent").output().unwrap()
    };
    let none = tcp(None);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("password"), "{}", String::from_utf8_lossy(&none.stderr));
    assert!(tcp(Some("s3cret-pw")).status.success());
    assert!(db.url_with_password().contains(":s3cret-pw@127.0.0.1:"));
}

#[test]
fn a_tls_cluster_serves_its_certificate() {
    if !pg::available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::openssl_ok(
        tmp.path(),
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost"]
            .into_iter()
            .chain(["-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", "k.pem", "-out", "c.pem"])
            .collect::<Vec<_>>(),
    );
    let db =
        Pg::start_with(PgOpts { tls: Some((tmp.path().join("c.pem"), tmp.path().join("k.pem"))), ..PgOpts::default() });
    assert_eq!(db.psql("SHOW ssl"), "on");
    let mut tcp = db.psql_tcp_cmd();
    tcp.args(["-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"]);
    tcp.env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", tmp.path().join("c.pem"));
    let out = tcp.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
}

/// Two `serve` instances (SQLite mode, each its own CA: only the balancer
/// is under test) behind haproxy: both UP, one killed is DOWN within 5 s
/// (two failed checks 500 ms apart), started again it is UP again.
#[test]
fn haproxy_sees_an_instance_go_down_and_come_back() {
    if !haproxy::available() {
        return;
    }
    let envs = [common::Env::new(), common::Env::new()];
    let ports = common::free_ports::<2>();
    let start = |i: usize| {
        envs[i].ok(&["init", "--cn", "LB CA", "--passphrase", ""]);
        acme_server::Server::start(&envs[i], &["--CA", "LB CA", "--listen", &format!("127.0.0.1:{}", ports[i])])
    };
    let lb = haproxy::Haproxy::start(&[("a", ports[0]), ("b", ports[1])], false);
    let mut a = start(0);
    let _b = start(1);
    lb.wait("a", "UP", 20);
    lb.wait("b", "UP", 20);
    a.kill9();
    lb.wait("a", "DOWN", 5);
    assert_eq!(lb.state("b"), "UP");
    let _a = acme_server::Server::start(&envs[0], &["--CA", "LB CA", "--listen", &format!("127.0.0.1:{}", ports[0])]);
    lb.wait("a", "UP", 20);
}
