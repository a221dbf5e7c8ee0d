//! Real TLS clients as probes, and an HTTPS server on 127.0.0.1 for them to
//! fetch from. Each probe does what a user of that client does: verify the
//! chain and the host name, then read the page. The TCP connection always
//! goes to 127.0.0.1, whatever name is verified.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// Where the CA a client trusts comes from.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// This root PEM, handed to the client explicitly.
    CaFile(&'a Path),
    /// No CA flag at all: the client's default trust.
    System,
    /// Chromium only: HOME for the browser, whose `.pki/nssdb` holds the trust.
    NssHome(&'a Path),
}

/// This machine exports these; each would replace or extend what a client
/// trusts by default (OpenSSL, curl, Python requests, Node, gRPC), so a
/// probe would not show what the client itself does.
pub const CA_ENV: [&str; 6] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
];

/// Removes [`CA_ENV`] from the command's environment.
pub fn clean(cmd: &mut Command) -> &mut Command {
    for var in CA_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Whether `program` runs; panics when it does not and CI requires it
/// (CERTFORGE_REQUIRE_PEERS), else says SKIPPED.
pub fn require(program: &str, probe: &[&str], install: &str) -> bool {
    let (ok, _) = run_bounded(Command::new(program).args(probe), 30);
    if !ok {
        assert!(
            std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
            "{program} is required here but missing; install it with: {install}"
        );
        eprintln!("SKIPPED: {program} is not installed ({install})");
    }
    ok
}

/// Runs `cmd` (without [`CA_ENV`]) for at most `secs` seconds, stdin closed.
/// Returns (exited 0, stdout + stderr). On timeout the child is killed.
pub fn run_bounded(cmd: &mut Command, secs: u64) -> (bool, String) {
    run_with_input(cmd, None, secs)
}

/// [`run_bounded`] writing `input` to stdin, through
/// [`crate::common::run_group`] (its own process group, killed at the end),
/// inside this thread's namespace when [`inside`] set one.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, secs: u64) -> (bool, String) {
    let mut entered;
    let cmd = match NAMESPACE.get() {
        Some(pid) => {
            entered = nsenter(pid, cmd);
            &mut entered
        }
        None => cmd,
    };
    let run = match crate::common::run_group(clean(cmd), input, secs) {
        Ok(r) => r,
        Err(e) => return (false, format!("{:?}: {e}", cmd.get_program())),
    };
    let mut text = String::from_utf8_lossy(&run.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&run.stderr));
    if run.timed_out {
        return (false, format!("timed out after {secs} s and killed\n{text}"));
    }
    (run.status.is_some_and(|s| s.success()), text)
}

thread_local! {
    /// The process whose mount namespace this thread's probes run in.
    static NAMESPACE: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every probe (and [`run_bounded`] command) of this thread
/// inside the mount namespace of process `pid`: the system store test
/// gives that namespace copies of the store (tests/interop/private_stores.sh).
pub fn inside<R>(pid: u32, f: impl FnOnce() -> R) -> R {
    NAMESPACE.set(Some(pid));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    NAMESPACE.set(None);
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// `cmd` as `nsenter -t PID -m -- cmd`, with its arguments and environment.
/// Entering a mount namespace moves the working directory to its root, so
/// paths given to commands run this way must be absolute.
pub fn nsenter(pid: u32, cmd: &Command) -> Command {
    let mut wrapped = Command::new("nsenter");
    wrapped.args(["-t", &pid.to_string(), "-m", "--"]).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    manifest().join("tests/interop").join(name)
}

/// The PEM blocks tagged `tag` in `path`.
fn pem_blocks(path: &Path, tag: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pem::parse_many(bytes).unwrap().into_iter().filter(|p| p.tag() == tag).map(|p| p.into_contents()).collect()
}

/// An HTTPS server on 127.0.0.1:`port` answering every GET with a page
/// holding the marker. Dropping it stops it.
pub struct Https {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `chain_pem` (leaf first, then every intermediate, all sent: the
/// clients hold only the root) with `key_pem`.
pub fn serve(chain_pem: &Path, key_pem: &Path, marker: &str) -> Https {
    let chain: Vec<CertificateDer<'static>> =
        pem_blocks(chain_pem, "CERTIFICATE").into_iter().map(CertificateDer::from).collect();
    assert!(!chain.is_empty(), "no certificate in {}", chain_pem.display());
    let key_der = std::fs::read(key_pem).map(|b| pem::parse(b).expect("PEM key").into_contents()).unwrap();
    let key = PrivateKeyDer::try_from(key_der).expect("a private key");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("key matches the leaf");
    let config = Arc::new(config);
    let body: Arc<str> = format!("<html><body><p id=\"m\">{marker}</p></body></html>").into();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        for sock in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            let Ok(sock) = sock else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            // A thread per connection: Chromium opens several at once. Each
            // ends within the socket timeouts, so none needs joining.
            let (config, body) = (config.clone(), body.clone());
            std::thread::spawn(move || {
                let _ = answer(sock, config, &body);
            });
        }
    });
    Https { port, stop, thread: Some(thread) }
}

/// One connection: the handshake, the request head, the page, close_notify.
fn answer(sock: TcpStream, config: Arc<ServerConfig>, body: &str) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 || head.len() > 65536 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

impl Drop for Https {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() blocks; a connection of our own wakes it to see the flag.
        // Should that fail, the thread is left to stop at the next one.
        let wake = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(5));
        if let (Ok(_), Some(t)) = (wake, self.thread.take()) {
            let _ = t.join();
        }
    }
}

/// Ok when the client succeeded and the page holds the marker; else Err with
/// the client's words.
fn outcome((ok, text): (bool, String), marker: &str) -> Result<(), String> {
    let page = format!("<p id=\"m\">{marker}</p>");
    if ok && text.contains(&page) {
        Ok(())
    } else if ok {
        Err(format!("succeeded but no marker in: {text}"))
    } else {
        Err(text)
    }
}

/// A panic, not an Err: an Err would read as the client refusing.
fn unsupported(client: &str, trust: Trust) -> ! {
    panic!("the {client} probe does not support {trust:?}")
}

/// The HTTP request the probes that speak raw TLS send.
fn request(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// `openssl s_client`: verification failures end the handshake
/// (-verify_return_error), and the host name is checked (-verify_hostname).
pub fn openssl_s_client(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let mut cmd = Command::new("openssl");
    let connect = format!("127.0.0.1:{port}");
    cmd.args(["s_client", "-connect", &connect, "-servername", host, "-verify_hostname", host]);
    cmd.arg("-verify_return_error");
    match trust {
        Trust::CaFile(ca) => cmd.arg("-CAfile").arg(ca),
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported("openssl", trust),
    };
    outcome(run_with_input(&mut cmd, Some(request(host).as_bytes()), 30), marker)
}

/// `gnutls-cli`: it verifies the chain, and the name given by
/// --verify-hostname, unless told --insecure.
pub fn gnutls(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let mut cmd = Command::new("gnutls-cli");
    cmd.args(["--port", &port.to_string(), "--sni-hostname", host, "--verify-hostname", host]);
    match trust {
        Trust::CaFile(ca) => cmd.arg("--x509cafile").arg(ca),
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported("gnutls", trust),
    };
    cmd.arg("127.0.0.1");
    outcome(run_with_input(&mut cmd, Some(request(host).as_bytes()), 30), marker)
}

/// target/interop-bin, where the probes' programs are built once per test
/// process: first under a name of this process, then renamed into place,
/// so that test binaries running at once never run a half-written file.
fn build(cmd: &mut Command, tmp: &Path, artifact: &Path) -> Result<PathBuf, String> {
    let (ok, text) = run_bounded(cmd, 300);
    if !ok {
        return Err(text);
    }
    std::fs::create_dir_all(artifact.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::rename(tmp, artifact).map_err(|e| e.to_string())?;
    Ok(artifact.to_path_buf())
}

fn bin_dir() -> PathBuf {
    let dir = manifest().join("target/interop-bin");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Go's net/http (tests/interop/https_get.go), built once.
pub fn go(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let tmp = bin_dir().join(format!("https_get.{}", std::process::id()));
        let mut cmd = Command::new("go");
        cmd.env("GOCACHE", manifest().join("target/go-cache")).args(["build", "-o"]).arg(&tmp);
        build(cmd.arg(script("https_get.go")), &tmp, &bin_dir().join("https_get"))
    });
    let mut cmd = Command::new(bin.as_ref().unwrap_or_else(|e| panic!("go build https_get.go: {e}")));
    cmd.args([host, &port.to_string()]);
    match trust {
        Trust::CaFile(ca) => cmd.arg(ca),
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported("go", trust),
    };
    outcome(run_bounded(&mut cmd, 30), marker)
}

/// Python's ssl module (tests/interop/https_get.py).
pub fn python(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    script_client("python3", "https_get.py", host, port, trust, marker)
}

/// Node's https module (tests/interop/https_get.js).
pub fn node(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    script_client("node", "https_get.js", host, port, trust, marker)
}

/// `PROGRAM tests/interop/FILE HOST PORT [CAFILE]`.
fn script_client(program: &str, file: &str, host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.arg(script(file)).args([host, &port.to_string()]);
    match trust {
        Trust::CaFile(ca) => cmd.arg(ca),
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported(program, trust),
    };
    outcome(run_bounded(&mut cmd, 30), marker)
}

/// curl, with --resolve so that `host` goes to 127.0.0.1.
pub fn curl(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let mut cmd = Command::new("curl");
    let resolve = format!("{host}:{port}:127.0.0.1");
    cmd.args(["-sS", "--fail", "--noproxy", "*", "--max-time", "20", "--resolve", &resolve]);
    match trust {
        Trust::CaFile(ca) => cmd.arg("--cacert").arg(ca),
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported("curl", trust),
    };
    cmd.arg(format!("https://{host}:{port}/"));
    outcome(run_bounded(&mut cmd, 30), marker)
}

/// Java's JSSE (tests/interop/HttpsGet.java, compiled once). A CA file
/// becomes a PKCS12 truststore (keytool), passed as javax.net.ssl.trustStore.
pub fn java(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    static CLASS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let class = CLASS.get_or_init(|| {
        let tmp = bin_dir().join(format!("java.{}", std::process::id()));
        let mut cmd = Command::new("javac");
        cmd.arg("-d").arg(&tmp).arg(script("HttpsGet.java"));
        let class = build(&mut cmd, &tmp.join("HttpsGet.class"), &bin_dir().join("java/HttpsGet.class"));
        let _ = std::fs::remove_dir(&tmp);
        class
    });
    let class = class.as_ref().unwrap_or_else(|e| panic!("javac HttpsGet.java: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("java");
    match trust {
        Trust::CaFile(ca) => {
            let store = tmp.path().join("trust.p12");
            let mut keytool = Command::new("keytool");
            keytool.args(["-importcert", "-noprompt", "-storetype", "PKCS12", "-storepass", "changeit"]);
            keytool.args(["-alias", "ca", "-file"]).arg(ca).arg("-keystore").arg(&store);
            let (ok, text) = run_bounded(&mut keytool, 60);
            assert!(ok, "keytool: {text}");
            cmd.arg(format!("-Djavax.net.ssl.trustStore={}", store.display()));
            cmd.args(["-Djavax.net.ssl.trustStorePassword=changeit", "-Djavax.net.ssl.trustStoreType=PKCS12"])
        }
        Trust::System => &mut cmd,
        Trust::NssHome(_) => unsupported("java", trust),
    };
    cmd.arg("-cp").arg(class.parent().unwrap()).args(["HttpsGet", host, &port.to_string()]);
    outcome(run_bounded(&mut cmd, 60), marker)
}

/// Makes `home/.pki/nssdb`, the NSS database Chromium on Linux reads, with
/// `ca` trusted for TLS servers (`-t C,,`).
pub fn nss_home(home: &Path, ca: &Path, nickname: &str) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let (ok, text) = run_bounded(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]), 30);
    assert!(ok, "certutil -N: {text}");
    let mut add = Command::new("certutil");
    add.args(["-A", "-d", &db, "-t", "C,,", "-n", nickname, "-i"]).arg(ca);
    let (ok, text) = run_bounded(&mut add, 30);
    assert!(ok, "certutil -A: {text}");
}

/// Headless Chromium loading the page (--dump-dom). It exits 0 whether the
/// page loaded or not, so the marker in the DOM is the verdict, and its
/// "Page load failed: net::ERR_…" line the error. Every host resolves to
/// 127.0.0.1 (--host-resolver-rules). Trust::CaFile gets an NSS home made
/// on the fly; Trust::System is the caller's HOME.
pub fn chromium(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let home = match trust {
        Trust::NssHome(home) => Some(home.to_path_buf()),
        Trust::CaFile(ca) => {
            let home = tmp.path().join("home");
            nss_home(&home, ca, "probe CA");
            Some(home)
        }
        Trust::System => None,
    };
    let mut cmd = Command::new("chromium");
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    // --no-sandbox: its sandbox does not run as root. A profile of its own
    // per run (--user-data-dir), so that runs at once share no lock.
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--no-first-run"]);
    cmd.args([
        "--disable-background-networking",
        "--disable-component-update",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * 127.0.0.1",
    ]);
    cmd.arg(format!("--user-data-dir={}", tmp.path().join("profile").display()));
    cmd.arg(format!("https://{host}:{port}/"));
    let (ok, text) = run_bounded(&mut cmd, 60);
    let page = format!("<p id=\"m\">{marker}</p>");
    if ok && text.contains(&page) {
        return Ok(());
    }
    // The page's failure, not the browser's chatter about D-Bus and the like.
    let failed: Vec<&str> =
        text.lines().filter(|l| l.contains("Page load failed") || l.contains("timed out")).collect();
    Err(if failed.is_empty() { text } else { failed.join("\n") })
}

/// rustls in this process, with webpki's verification: the roots from the
/// CA file, or for Trust::System Debian's bundle (what rustls-native-certs
/// finds there).
pub fn rustls(host: &str, port: u16, trust: Trust, marker: &str) -> Result<(), String> {
    let ca = match trust {
        Trust::CaFile(ca) => ca,
        Trust::System => Path::new("/etc/ssl/certs/ca-certificates.crt"),
        Trust::NssHome(_) => unsupported("rustls", trust),
    };
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(pem_blocks(ca, "CERTIFICATE").into_iter().map(CertificateDer::from));
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(request(host).as_bytes()).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).map_err(|e| e.to_string())?;
    outcome((true, String::from_utf8_lossy(&response).into_owned()), marker)
}
