//! Helpers shared by the integration tests: run the real binary against a
//! throw-away depot, run openssl, and snapshot a depot byte for byte.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

/// A temporary directory holding a depot at `<tmp>/certs`, and the
/// certforge binary that runs on it.
pub struct Env {
    pub tmp: tempfile::TempDir,
    /// None: the binary of this test build.
    bin: Option<PathBuf>,
}

impl Env {
    pub fn new() -> Env {
        Env { tmp: tempfile::tempdir().expect("tempdir"), bin: None }
    }

    /// An Env whose commands run `bin` (the one a package installs)
    /// instead of this test build's binary.
    pub fn with_binary(bin: &Path) -> Env {
        Env { bin: Some(bin.to_path_buf()), ..Env::new() }
    }

    /// The depot directory.
    pub fn depot(&self) -> PathBuf {
        self.tmp.path().join("certs")
    }

    /// A path in the depot.
    pub fn file(&self, name: &str) -> PathBuf {
        self.depot().join(name)
    }

    /// `certforge --depot-path <depot> ARGS...`, run in the temp dir with no
    /// stdin and without the caller's CERTFORGE_* environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match &self.bin {
            Some(bin) => Command::new(bin),
            None => Command::cargo_bin("certforge").expect("binary"),
        };
        c.current_dir(self.tmp.path())
            .env_remove("CERTFORGE_DEPOT_PATH")
            .env_remove("CERTFORGE_PASSPHRASE")
            .stdin(std::process::Stdio::null())
            .arg("--depot-path")
            .arg(self.depot())
            .args(args);
        c
    }

    /// Runs certforge and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run certforge")
    }

    /// Runs certforge and panics, showing stderr, unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "certforge {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Runs certforge, expects exit code `code`, and returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "certforge {args:?}: expected exit {code}, stderr:\n{err}");
        err
    }

    /// The certstrap blog workflow: a CA, a localhost server and a client.
    pub fn blog_workflow(&self) {
        self.ok(&["init", "--common-name", "gRPC Root CA"]);
        self.ok(&["request-cert", "--domain", "localhost"]);
        self.ok(&["request-cert", "--cn", "grpc_client"]);
        self.ok(&["sign", "--CA", "gRPC Root CA", "localhost"]);
        self.ok(&["sign", "--CA", "gRPC Root CA", "grpc_client"]);
    }

    /// A second CA, "Other CA", and a client certificate "intruder" it
    /// signed: what a server trusting only the blog CA must refuse.
    pub fn intruder(&self) {
        self.ok(&["init", "--cn", "Other CA"]);
        self.ok(&["request-cert", "--cn", "intruder"]);
        self.ok(&["sign", "intruder", "--CA", "Other CA", "--profile", "client"]);
    }

    /// Every file under the depot with its bytes and mode.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        snapshot(&self.depot())
    }

    /// Runs a command line that certforge printed, as a user pastes it into
    /// sh in the temp dir, with this build as `certforge`: what certforge
    /// prints must work as printed.
    pub fn run_printed(&self, line: &str) -> Output {
        let bin = assert_cmd::cargo::cargo_bin("certforge");
        let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        Command::new("sh")
            .current_dir(self.tmp.path())
            .env("PATH", path)
            .env_remove("CERTFORGE_DEPOT_PATH")
            .env_remove("CERTFORGE_PASSPHRASE")
            .stdin(std::process::Stdio::null())
            .args(["-c", line])
            .output()
            .expect("run sh")
    }
}

/// The command line in `text` that starts with `start` (e.g. "certforge
/// --depot-path"), up to where the prose resumes: " (", "; ", ", or " or
/// the end of the line. Panics, showing `text`, when there is none.
pub fn printed_command(text: &str, start: &str) -> String {
    let at = text.find(start).unwrap_or_else(|| panic!("no `{start}…` in: {text}"));
    let rest = &text[at..];
    let end = [" (", "; ", ", or ", "\n"].iter().filter_map(|stop| rest.find(stop)).min().unwrap_or(rest.len());
    rest[..end].trim_end_matches('.').to_string()
}

/// Every file under `dir` (hidden ones included) with its bytes and mode.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.insert(p.clone(), (std::fs::read(&p).unwrap_or_default(), meta.permissions().mode() & 0o7777));
            }
        }
    }
    out
}

/// Runs openssl with ARGS in `dir`; returns (success, stdout+stderr).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs openssl and panics unless it succeeds.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

/// Parses a PEM certificate file and calls `f` with it.
pub fn with_cert<T>(path: &Path, f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let block = pem::parse(&bytes).expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("certificate parses");
    f(&cert)
}

/// The mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A certificate's SANs as x509-parser writes them (`DNSName(x)`,
/// `IPAddress(…)`, `RFC822Name(x)`), in the certificate's order.
pub fn sans(c: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    c.subject_alternative_name()
        .unwrap()
        .map(|s| s.value.general_names.iter().map(|g| format!("{g}")).collect())
        .unwrap_or_default()
}

/// A port free on 127.0.0.1 for a peer to listen on (bound, then let go).
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct ports free on 127.0.0.1: all bound at once (so no two are
/// the same), then let go, for servers a test starts a moment later.
///
/// They are picked at random below the kernel's ephemeral range
/// (net.ipv4.ip_local_port_range, 32768 and up by default). Every outgoing
/// connection takes its local port from that range (haproxy's health
/// checks, clients of PostgreSQL, of other tests' servers), so a port
/// picked there with bind(0) can be taken by one of them before the server
/// binds it: a fleet test once failed so ("Address already in use" on its
/// --crl-listen port). At random, so that tests running at once seldom try
/// the same port.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u64 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(LOW);
    let mut held: Vec<std::net::TcpListener> = Vec::new();
    // A few tries per port; on a machine whose ephemeral range starts low,
    // or that holds most of these ports, bind(0) as before.
    for _ in 0..(N * 50) {
        if held.len() == N || span < 1_000 {
            break;
        }
        // RandomState: std's per-process random keys, a new one each call.
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = u16::try_from(LOW + random % span).expect("below the ephemeral range");
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    while held.len() < N {
        held.push(std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"));
    }
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// The rustls crypto provider every test client and server uses.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Signs `csr` with the CA `ca` (`ca.crt` + `ca.key`, paths relative to
/// `dir`) the way hand-written openssl scripts do, with the extensions in
/// `ext` (an extfile body). certforge refuses to make some broken
/// certificates; this makes them for the tests that must recognise them.
pub fn openssl_sign(dir: &Path, csr: &str, ca: &str, ext: &str, out: &str, extra: &[&str]) {
    let ext_file = format!("{out}.ext");
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext_file,
        "-out",
        out,
    ];
    if !extra.contains(&"-days") {
        args.extend(["-days", "30"]);
    }
    args.extend_from_slice(extra);
    openssl_ok(dir, &args);
    std::fs::remove_file(dir.join(&ext_file)).unwrap();
}

/// Extensions of a CA certificate made by openssl.
pub const OPENSSL_CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

/// The CA of the gRPC guide's openssl script: `openssl req -x509`, RSA, no keyUsage.
pub fn openssl_guide_ca(dir: &Path) {
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-sha256",
            "-subj",
            "/C=US/ST=CA/O=MyOrg/CN=MyCA",
            "-days",
            "365",
            "-out",
            "ca.crt",
        ],
    );
}

/// Makes `<stem>.key` (P-256) and `<stem>.csr` in `dir` with openssl, for
/// subject `subj`, with `extra` arguments to `openssl req` (e.g. -addext).
pub fn openssl_ec_csr(dir: &Path, stem: &str, subj: &str, extra: &[&str]) {
    let (key, csr) = (format!("{stem}.key"), format!("{stem}.csr"));
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        subj,
        "-out",
        &csr,
    ];
    args.extend_from_slice(extra);
    openssl_ok(dir, &args);
}

/// `openssl verify -x509_strict -purpose sslserver` of `cert` under `ca`,
/// with `untrusted` intermediates; panics with openssl's words unless it
/// verifies.
pub fn openssl_verify_server(dir: &Path, ca: &str, untrusted: Option<&str>, cert: &str) {
    openssl_verify_as(dir, "sslserver", ca, untrusted, &[cert]);
}

/// `openssl verify -x509_strict -purpose PURPOSE` of each of `certs`, which must pass.
pub fn openssl_verify_as(dir: &Path, purpose: &str, ca: &str, untrusted: Option<&str>, certs: &[&str]) {
    let mut args = vec!["verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.extend(certs);
    openssl_ok(dir, &args);
}

/// The extensions of a TLS server leaf, for `openssl x509 -extfile`.
pub const SERVER_LEAF_EXT: &str =
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";

/// A server leaf that openssl makes and signs with the key of `ca` (a depot
/// stem), bypassing certforge's checks: what a leaked CA key could sign.
/// Writes STEM.{key,csr,crt} and STEM.chain.crt (leaf + `ca`'s certificate,
/// what a server sends) into `dir`, and returns the chain's path.
pub fn openssl_leaked_leaf(dir: &Path, stem: &str, subject: &str, san: Option<&str>, ca: &str) -> PathBuf {
    openssl_ec_csr(dir, stem, subject, &[]);
    let ext = match san {
        Some(san) => format!("{SERVER_LEAF_EXT}subjectAltName={san}\n"),
        None => SERVER_LEAF_EXT.to_string(),
    };
    let crt = format!("{stem}.crt");
    openssl_sign(dir, &format!("{stem}.csr"), ca, &ext, &crt, &[]);
    let mut chain = std::fs::read(dir.join(&crt)).unwrap();
    chain.extend(std::fs::read(dir.join(format!("{ca}.crt"))).unwrap());
    let path = dir.join(format!("{stem}.chain.crt"));
    std::fs::write(&path, chain).unwrap();
    path
}

/// What [`run_group`] gave: the exit status (None when it could not be
/// reaped), both outputs, and whether the deadline struck first.
pub struct GroupRun {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// Runs `cmd` for at most `secs` seconds as the leader of a process group
/// of its own, and kills the whole group at the end, so nothing it started
/// outlives the test (Chromium leaves helpers behind). Output goes to
/// files, not pipes, so a helper that keeps them open blocks nothing.
/// `input` is written to stdin, which stays open until the child exits
/// (openssl s_client and gnutls-cli end the connection at EOF on stdin).
/// Err when the program cannot be started.
pub fn run_group(cmd: &mut Command, input: Option<&[u8]>, secs: u64) -> std::io::Result<GroupRun> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::process::CommandExt;
    let out = tempfile::tempfile()?;
    let err = tempfile::tempfile()?;
    cmd.stdin(if input.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .process_group(0);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().map(|mut s| {
        let _ = s.write_all(input.unwrap_or_default());
        s
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut timed_out = false;
    while !exited(child.id()) {
        if std::time::Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(stdin);
    // SAFETY: kill(2) on the process group this child leads; it is not yet
    // reaped, so its pid (the group's id) is not another process's.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let status = child.wait().ok();
    let read = |mut f: std::fs::File| {
        let mut v = Vec::new();
        let _ = f.rewind().and_then(|()| f.read_to_end(&mut v));
        v
    };
    Ok(GroupRun { status, stdout: read(out), stderr: read(err), timed_out })
}

/// True once `pid` has exited; the zombie is left for `wait` to reap.
fn exited(pid: u32) -> bool {
    // SAFETY: waitid only writes the siginfo_t it is given.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_PID, pid, &mut info, flags) != 0 || info.si_pid() != 0
    }
}

/// The Python that has grpcio and pkilint (.ci/run makes the venv).
pub fn interop_python() -> PathBuf {
    std::env::var_os("CERTFORGE_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python"))
}

/// A program of tests/interop.
pub fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// Whether a missing peer or package fails the test (under .ci/run, which
/// sets CERTFORGE_REQUIRE_PEERS) or skips it.
pub fn required() -> bool {
    std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_some()
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// True when `tool` is there; otherwise fails under .ci/run, else says
/// SKIPPED and why.
pub fn need(tool: &str, package: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(!required(), "{tool} is missing: .ci/run installs the Debian package {package}");
    eprintln!("SKIPPED: {tool} is not installed (apt-get install {package})");
    false
}

/// The .deb that `bash pkg/build-deb.sh` made: CERTFORGE_DEB (.ci/run
/// builds it first and says where), else one under target/debian. Under
/// .ci/run the variable must be set; elsewhere a missing package skips,
/// saying SKIPPED and how to build it.
pub fn the_deb() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CERTFORGE_DEB") {
        return Some(PathBuf::from(p));
    }
    assert!(!required(), ".ci/run builds the .deb and sets CERTFORGE_DEB");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let found =
        std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb"));
    if found.is_none() {
        eprintln!("SKIPPED: no .deb under target/debian; build it with `bash pkg/build-deb.sh`");
    }
    found
}

/// `dpkg-deb -x DEB ROOT`: the package's files under `root`, as
/// installing it would put them under /.
pub fn extract_deb(deb: &Path, root: &Path) {
    let ok = Command::new("dpkg-deb").arg("-x").arg(deb).arg(root).status().expect("dpkg-deb is installed");
    assert!(ok.success(), "dpkg-deb -x {}", deb.display());
}

/// A process in a mount namespace of its own, running
/// tests/interop/SCRIPT WORKDIR (under `unshare -m`), which prints "ready"
/// once its mounts are in place and then waits for stdin to close. Dropping
/// it closes stdin, so the namespace and its mounts end, and the workdir
/// is deleted.
pub struct Namespace {
    child: std::process::Child,
    work: tempfile::TempDir,
}

impl Namespace {
    /// Starts the script and waits at most `ready` for its "ready".
    pub fn start(script: &str, ready: std::time::Duration) -> Namespace {
        use std::io::BufRead;
        use std::process::Stdio;
        let work = tempfile::tempdir().unwrap();
        let mut child = Command::new("unshare")
            .args(["-m", "bash"])
            .arg(interop_script(script))
            .arg(work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(ready).unwrap_or_default();
        // Built before the check, so that its Drop stops the process either way.
        let ns = Namespace { child, work };
        assert_eq!(line.trim(), "ready", "the private namespace of {script} did not come up");
        ns
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory the script was given.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// A path as this namespace sees it, read from outside.
    pub fn view(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary `cargo install --locked --path .` installed: .ci/run
/// installs into a temporary root and says where in CERTFORGE_INSTALLED.
/// Without it the test skips, saying SKIPPED, except under .ci/run.
pub fn the_installed_binary() -> Option<PathBuf> {
    path_from_ci("CERTFORGE_INSTALLED", "runs `cargo install --locked --path .`")
}

/// The release binary `bash pkg/build-dist.sh` built and printed: .ci/run
/// says where in CERTFORGE_DIST. Without it the test skips, saying
/// SKIPPED, except under .ci/run.
pub fn the_dist_binary() -> Option<PathBuf> {
    path_from_ci("CERTFORGE_DIST", "builds the release binary with `bash pkg/build-dist.sh`")
}

/// The path in `var`, which .ci/run sets after it `does` something;
/// without it None and SKIPPED, or a failure under .ci/run.
fn path_from_ci(var: &str, does: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(var) else {
        assert!(!required(), ".ci/run {does} and sets {var}");
        eprintln!("SKIPPED: {var} is not set (.ci/run {does} and sets it)");
        return None;
    };
    Some(PathBuf::from(path))
}
