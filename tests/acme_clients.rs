//! `certforge serve` with the ACME clients people run, as Debian ships them:
//! lego (http-01, tls-alpn-01, dns-01, renew, revoke), certbot (standalone
//! http-01, renew, revoke by account and by certificate key), Caddy (as
//! the start-up banner tells it), and openssl fetching the CRL the server
//! publishes. Every challenge is checked for real over loopback: the
//! clients answer on ports picked free on 127.0.0.1, and names other than
//! localhost resolve through pebble-challtestsrv, the DNS server the
//! dns-01 checks also ask. Clients run without the machine's CA-bundle
//! variables (`clients::clean`), each given only the one it reads.

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acme_server::Server;
use clients::{clean, require, run_bounded};
use common::{free_ports, openssl_ok, openssl_verify_server, Env};

// ---------------------------------------------------------------------------
// Clients, processes and ports

/// (program, probe arguments, how to install it).
type Program = (&'static str, &'static [&'static str], &'static str);
const LEGO: Program = ("lego", &["--version"], "apt-get install lego");
const CERTBOT: Program = ("certbot", &["--version"], "apt-get install certbot");
const CADDY: Program = ("caddy", &["version"], "apt-get install caddy");
const CHALLTESTSRV: Program = ("pebble-challtestsrv", &["-h"], "apt-get install pebble");
const CURL: Program = ("curl", &["--version"], "apt-get install curl");

/// Whether every program runs (else the test skips, or fails in CI).
fn have(programs: &[Program]) -> bool {
    programs.iter().all(|(program, probe, install)| require(program, probe, install))
}

/// A CI machine may export these; every client here talks to loopback
/// only, and a proxy would carry those requests elsewhere.
const PROXY_ENV: [&str; 6] = ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"];

/// `program` without proxy settings (run_bounded and [`Daemon`] also take
/// away the CA-bundle variables).
fn client(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in PROXY_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` for at most `secs` seconds and returns its output; panics
/// with it unless the command succeeds.
fn must(cmd: &mut Command, secs: u64) -> String {
    let (ok, out) = run_bounded(cmd, secs);
    assert!(ok, "{:?} {:?} failed:\n{out}", cmd.get_program(), cmd.get_args().collect::<Vec<_>>());
    out
}

/// Polls `probe` every 100 ms until it gives a value; panics after `secs`
/// seconds with `what` and whatever `context` says then.
fn wait_until<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// A client that runs until stopped (Caddy, challtestsrv): a process group
/// of its own, its output in a file, and the whole group killed on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(cmd: &mut Command, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        clean(cmd).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group our unreaped child leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// curl for `url`, trusting the CA file `ca` alone: Debian's curl searches
/// /etc/ssl/certs as well, even with --cacert, unless --capath names
/// another directory, here an empty one under `env`. `extra` goes first.
fn curl(env: &Env, ca: &Path, extra: &[&str], url: &str) -> Command {
    let empty = env.tmp.path().join("empty-capath");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = client("curl");
    cmd.args(["-sS", "--fail", "--max-time", "10"]).args(extra);
    cmd.arg("--cacert").arg(ca).arg("--capath").arg(empty).arg(url);
    cmd
}

// ---------------------------------------------------------------------------
// The servers

/// A depot with the self-signed CA "ACME CA" (its CRL: ACME_CA.crl).
fn root_ca() -> Env {
    let env = Env::new();
    env.ok(&["init", "--cn", "ACME CA", "--passphrase", ""]);
    env
}

/// `certforge serve --CA CA --listen 127.0.0.1:0 EXTRA...`.
fn serve(env: &Env, ca: &str, extra: &[&str]) -> Server {
    Server::start(env, &[&["--CA", ca, "--listen", "127.0.0.1:0"], extra].concat())
}

/// SIGTERM, which must end the server with exit 0: it survived the client.
fn stop(mut server: Server) {
    let status = server.stop();
    assert!(status.success(), "serve exited with {status}:\n{}", server.lines().join("\n"));
}

/// pebble-challtestsrv as the DNS server of a test: every A query answers
/// 127.0.0.1 (so any name reaches the clients here), AAAA nothing, and
/// TXT records are set over its management API. Its HTTP challenge
/// servers stay off: the clients answer those themselves.
struct Dns {
    _daemon: Daemon,
    /// The DNS port (UDP and TCP) on 127.0.0.1.
    port: u16,
    management: u16,
}

impl Dns {
    fn start(env: &Env) -> Dns {
        let [port, management] = free_ports();
        let mut cmd = client("pebble-challtestsrv");
        cmd.args(["-dns01", &format!("127.0.0.1:{port}"), "-management", &format!("127.0.0.1:{management}")]);
        cmd.args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let daemon = Daemon::start(&mut cmd, env.tmp.path().join("challtestsrv.log"));
        wait_until(
            "pebble-challtestsrv listening",
            15,
            || (listening(port) && listening(management)).then_some(()),
            || daemon.log(),
        );
        Dns { _daemon: daemon, port, management }
    }

    /// "127.0.0.1:PORT", for --dns-resolver and lego's --dns.resolvers.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A script for lego's `exec` DNS provider, which calls it as
    /// `SCRIPT present|cleanup FQDN VALUE`: it sets or clears the TXT record.
    fn lego_hook(&self, dir: &Path) -> PathBuf {
        const HOOK: &str = r#"#!/bin/sh
case "$1" in
  present) path=set-txt body="{\"host\":\"$2\",\"value\":\"$3\"}" ;;
  cleanup) path=clear-txt body="{\"host\":\"$2\"}" ;;
  *) exit 1 ;;
esac
exec curl -sS --fail --noproxy '*' --max-time 10 -d "$body" "API/$path"
"#;
        let script = HOOK.replace("API", &format!("http://127.0.0.1:{}", self.management));
        let path = dir.join("lego-dns-hook.sh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------
// The clients

/// lego against a server, its account and certificates under `path`.
struct Lego {
    directory: String,
    ca: PathBuf,
    path: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Lego {
    fn new(env: &Env, server: &Server) -> Lego {
        let path = env.tmp.path().join("lego");
        Lego { directory: server.directory.clone(), ca: server.ca_file.clone(), path, env: Vec::new() }
    }

    /// `lego GLOBAL... FLAGS... COMMAND...`: FLAGS name the certificate and
    /// how to prove it (--domains, --http...); lego wants them again for
    /// renew and revoke. It trusts the server through
    /// LEGO_CA_CERTIFICATES, as the banner says.
    fn run(&self, flags: &[&str], command: &[&str]) -> (bool, String) {
        let mut cmd = client("lego");
        cmd.env("LEGO_CA_CERTIFICATES", &self.ca).envs(self.env.iter().cloned());
        cmd.args(["--server", &self.directory, "--accept-tos", "--email", "a@example.com", "--path"]).arg(&self.path);
        run_bounded(cmd.args(flags).args(command), 120)
    }

    fn ok(&self, flags: &[&str], command: &[&str]) -> String {
        let (ok, out) = self.run(flags, command);
        assert!(ok, "lego {flags:?} {command:?} failed:\n{out}");
        out
    }

    /// Where lego keeps the certificate (leaf, then any intermediates) for
    /// its first domain `name`.
    fn cert(&self, name: &str) -> PathBuf {
        self.path.join("certificates").join(format!("{name}.crt"))
    }
}

/// certbot against a server, with its config, work and log directories
/// under `dir` (never /etc/letsencrypt).
struct Certbot {
    directory: String,
    ca: PathBuf,
    dir: PathBuf,
}

impl Certbot {
    fn new(env: &Env, server: &Server) -> Certbot {
        Certbot { directory: server.directory.clone(), ca: server.ca_file.clone(), dir: env.tmp.path().join("certbot") }
    }

    /// `certbot --config-dir ... --non-interactive ARGS...`, trusting the
    /// server through REQUESTS_CA_BUNDLE. run_bounded takes that variable
    /// away with the machine's other CA variables, so `env` sets it inside.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = client("env");
        cmd.arg(format!("REQUESTS_CA_BUNDLE={}", self.ca.display())).arg("certbot");
        for (flag, sub) in [("--config-dir", "config"), ("--work-dir", "work"), ("--logs-dir", "logs")] {
            cmd.arg(flag).arg(self.dir.join(sub));
        }
        run_bounded(cmd.arg("--non-interactive").args(args), 180)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args);
        assert!(ok, "certbot {args:?} failed:\n{out}");
        out
    }

    /// `certbot certonly` for localhost, answering http-01 on 127.0.0.1:`port`.
    fn certonly(&self, port: u16) -> (bool, String) {
        let port = port.to_string();
        self.run(&[
            "certonly",
            "--standalone",
            "--http-01-port",
            &port,
            "--http-01-address",
            "127.0.0.1",
            "--server",
            &self.directory,
            "--agree-tos",
            "--register-unsafely-without-email",
            "-d",
            "localhost",
        ])
    }

    /// A file of certbot's for "localhost", e.g. ("live", "cert.pem").
    fn file(&self, dir: &str, name: &str) -> PathBuf {
        self.dir.join("config").join(dir).join("localhost").join(name)
    }
}

// ---------------------------------------------------------------------------
// Checks

/// `openssl verify -x509_strict -purpose sslserver` of `cert` under the
/// server's CA file, with `chain` as the intermediates.
fn verify(env: &Env, server: &Server, cert: &Path, chain: Option<&Path>) {
    let chain = chain.map(|c| c.display().to_string());
    let ca = server.ca_file.display().to_string();
    openssl_verify_server(env.tmp.path(), &ca, chain.as_deref(), &cert.display().to_string());
}

/// The first certificate in a PEM file, DER.
fn leaf_der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let blocks = pem::parse_many(bytes).unwrap();
    let leaf = blocks.into_iter().find(|b| b.tag() == "CERTIFICATE");
    leaf.unwrap_or_else(|| panic!("no certificate in {}", path.display())).into_contents()
}

/// The serial of the first certificate in `cert`, as openssl prints serials
/// (also in CRLs).
fn serial(env: &Env, cert: &Path) -> String {
    let out = openssl_ok(env.tmp.path(), &["x509", "-in", &cert.display().to_string(), "-noout", "-serial"]);
    out.trim().trim_start_matches("serial=").to_string()
}

/// The extension `name` of the first certificate in `cert`, as openssl shows it.
fn ext(env: &Env, cert: &Path, name: &str) -> String {
    openssl_ok(env.tmp.path(), &["x509", "-in", &cert.display().to_string(), "-noout", "-ext", name])
}

/// The `certforge list` line of the depot entry holding the certificate
/// that `cert` starts with; panics when no entry holds it.
fn listed(env: &Env, cert: &Path) -> String {
    let leaf = leaf_der(cert);
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    list.lines()
        .find(|line| {
            let name = line.split_whitespace().next().unwrap_or("");
            let file = env.file(&format!("{name}.crt"));
            file.is_file() && leaf_der(&file) == leaf
        })
        .unwrap_or_else(|| panic!("{} is not in `certforge list`:\n{list}", cert.display()))
        .to_string()
}

/// The depot CRL `crl` (e.g. "ACME_CA.crl") as `openssl crl -text` shows it.
fn crl_text(env: &Env, crl: &str) -> String {
    openssl_ok(env.tmp.path(), &["crl", "-in", &env.file(crl).display().to_string(), "-noout", "-text"])
}

/// The CRL's entry for `cert` (its serial line and the lines after it, up
/// to the next entry), if the certificate is revoked.
fn crl_entry(env: &Env, crl: &str, cert: &Path) -> Option<String> {
    let text = crl_text(env, crl);
    let start = text.find(&format!("Serial Number: {}", serial(env, cert)))?;
    let rest = &text[start..];
    let end = rest[1..].find("Serial Number:").map_or(rest.len(), |i| i + 1);
    Some(rest[..end].to_string())
}

// ---------------------------------------------------------------------------
// lego

#[test]
fn lego_http01_gets_a_certificate_renews_it_and_revokes_it_into_the_crl() {
    if !have(&[LEGO]) {
        return;
    }
    let env = root_ca();
    let [port] = free_ports();
    let server = serve(&env, "ACME CA", &["--http01-port", &port.to_string()]);
    let lego = Lego::new(&env, &server);
    // "localhost" reaches lego's challenge server on 127.0.0.1.
    let flags = ["--domains", "localhost", "--http", "--http.port", &format!("127.0.0.1:{port}")];
    let out = lego.ok(&flags, &["run"]);
    assert!(out.contains("use http-01 solver") && out.contains("The server validated our request"), "{out}");
    let first = env.tmp.path().join("first.crt");
    std::fs::copy(lego.cert("localhost"), &first).unwrap();
    verify(&env, &server, &first, None);
    assert!(listed(&env, &first).starts_with("localhost.acme-"));

    // --days 90 is more than the 45 days the server issues for, so lego
    // renews now; without --no-random-sleep it would wait minutes first.
    lego.ok(&flags, &["renew", "--days", "90", "--no-random-sleep"]);
    let renewed = lego.cert("localhost");
    verify(&env, &server, &renewed, None);
    assert_ne!(serial(&env, &first), serial(&env, &renewed), "a new certificate");
    let (first_line, renewed_line) = (listed(&env, &first), listed(&env, &renewed));
    assert_ne!(first_line, renewed_line, "two depot entries");

    // lego revokes with its account key; reason 4 is superseded. --keep
    // leaves the file where this test reads it.
    lego.ok(&flags, &["revoke", "--keep", "--reason", "4"]);
    let entry = crl_entry(&env, "ACME_CA.crl", &renewed).expect("the revoked serial is in the CRL");
    assert!(entry.contains("Superseded"), "the reason is kept: {entry}");
    assert!(crl_entry(&env, "ACME_CA.crl", &first).is_none(), "only the revoked certificate is listed");
    assert!(listed(&env, &renewed).contains("revoked") && listed(&env, &first).ends_with("ok"));
    stop(server);
}

#[test]
fn lego_tls_alpn01_gets_a_certificate() {
    if !have(&[LEGO]) {
        return;
    }
    let env = root_ca();
    let [port] = free_ports();
    let server = serve(&env, "ACME CA", &["--tlsalpn01-port", &port.to_string()]);
    let lego = Lego::new(&env, &server);
    let out = lego.ok(&["--domains", "localhost", "--tls", "--tls.port", &format!("127.0.0.1:{port}")], &["run"]);
    assert!(out.contains("use tls-alpn-01 solver") && out.contains("The server validated our request"), "{out}");
    verify(&env, &server, &lego.cert("localhost"), None);
    assert!(listed(&env, &lego.cert("localhost")).starts_with("localhost.acme-"));
    stop(server);
}

/// lego for `domains`, names only challtestsrv knows, proved by dns-01
/// through lego's `exec` provider; checks the certificate names them all.
/// The exec provider works one name at a time, waiting
/// EXEC_SEQUENCE_INTERVAL (60 s unless told) between names;
/// --dns.disable-cp stops lego from also asking the zone's authoritative
/// servers, which challtestsrv does not pretend to have (lego still checks
/// the record at --dns.resolvers).
fn lego_dns01(domains: &[&str]) {
    if !have(&[LEGO, CHALLTESTSRV, CURL]) {
        return;
    }
    let env = root_ca();
    let dns = Dns::start(&env);
    let server = serve(&env, "ACME CA", &["--dns-resolver", &dns.addr()]);
    let mut lego = Lego::new(&env, &server);
    let hook = dns.lego_hook(env.tmp.path()).display().to_string();
    for (var, value) in [("EXEC_PATH", hook.as_str()), ("EXEC_SEQUENCE_INTERVAL", "1"), ("EXEC_POLLING_INTERVAL", "1")]
    {
        lego.env.push((var, value.to_string()));
    }
    let mut flags: Vec<&str> = domains.iter().flat_map(|d| ["--domains", *d]).collect();
    let resolver = dns.addr();
    flags.extend(["--dns", "exec", "--dns.disable-cp", "--dns.resolvers", &resolver]);
    let out = lego.ok(&flags, &["run"]);
    assert!(out.contains("use dns-01 solver"), "{out}");
    // lego names the files after the first domain.
    let cert = lego.cert(domains[0]);
    verify(&env, &server, &cert, None);
    let sans: Vec<String> = domains.iter().map(|d| format!("DNS:{d}")).collect();
    let text = ext(&env, &cert, "subjectAltName");
    assert!(text.contains(&sans.join(", ")), "{text}");
    assert!(listed(&env, &cert).starts_with(&format!("{}.acme-", domains[0])));
    stop(server);
}

#[test]
fn lego_dns01_through_challtestsrv_gets_a_certificate() {
    lego_dns01(&["example.com", "www.example.com"]);
}

/// RFC 8555 §7.1.4: the authorization for "*.example.com" names
/// "example.com" and says `"wildcard": true`. lego builds the TXT record's
/// name from the authorization's identifier, so it proves the wildcard at
/// _acme-challenge.example.com, where the server looks.
#[test]
fn lego_dns01_gets_a_wildcard_certificate() {
    lego_dns01(&["example.com", "*.example.com"]);
}

/// lego 4.9 has no IP identifiers: `--domains 127.0.0.1` goes out as a DNS
/// identifier, and with `--csr` an IP SAN stays in the CSR but not in the
/// order. The server refuses both and says why, instead of certifying an
/// address nobody proved as an IP (tests/acme.rs gets one with instant-acme).
#[test]
fn lego_cannot_order_an_ip_address_and_is_told_why() {
    if !have(&[LEGO]) {
        return;
    }
    let env = root_ca();
    let [port] = free_ports();
    let server = serve(&env, "ACME CA", &["--http01-port", &port.to_string()]);
    let lego = Lego::new(&env, &server);
    let http = ["--http", "--http.port", &format!("127.0.0.1:{port}")];

    let (ok, out) = lego.run(&[&["--domains", "127.0.0.1"][..], &http[..]].concat(), &["run"]);
    assert!(!ok && out.contains(r#""127.0.0.1" is an IP address; send it as type "ip" (RFC 8738)"#), "{out}");

    common::openssl_ec_csr(
        env.tmp.path(),
        "ip",
        "/CN=localhost",
        &["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    );
    let csr = env.tmp.path().join("ip.csr").display().to_string();
    let (ok, out) = lego.run(&[&["--csr", &csr][..], &http[..]].concat(), &["run"]);
    assert!(!ok && out.contains("badCSR") && out.contains(r#"extra ["IP:127.0.0.1"]"#), "{out}");
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    assert!(!list.contains(".acme-"), "nothing issued:\n{list}");
    stop(server);
}

// ---------------------------------------------------------------------------
// certbot

/// certbot takes the chain after the leaf from the server's answer and
/// wants at least one certificate there, so this CA issues through an
/// intermediate: `init --local` makes "Local CA" (the root clients trust)
/// and "Local CA Issuing", which signs, and whose CRL is Local_CA_Issuing.crl.
#[test]
fn certbot_gets_renews_and_revokes_by_account_and_by_certificate_key() {
    if !have(&[CERTBOT]) {
        return;
    }
    let env = Env::new();
    env.ok(&["init", "--local", "--cn", "Local CA", "--passphrase", ""]);
    let [port] = free_ports();
    let server = serve(&env, "Local CA", &["--http01-port", &port.to_string()]);
    let certbot = Certbot::new(&env, &server);
    let (ok, out) = certbot.certonly(port);
    assert!(ok, "certbot certonly failed:\n{out}");
    let (cert, chain) = (certbot.file("live", "cert.pem"), certbot.file("live", "chain.pem"));
    verify(&env, &server, &cert, Some(&chain));
    assert_eq!(leaf_der(&chain), leaf_der(&env.file("Local_CA_Issuing.crt")), "the intermediate is the chain");
    assert!(listed(&env, &cert).starts_with("localhost.acme-"));

    // Without --no-random-sleep-on-renew, certbot renew run without a
    // terminal first sleeps up to 8 minutes.
    certbot.ok(&["renew", "--force-renewal", "--no-random-sleep-on-renew"]);
    let (first, renewed) = (certbot.file("archive", "cert1.pem"), certbot.file("archive", "cert2.pem"));
    verify(&env, &server, &renewed, Some(&chain));
    assert_ne!(listed(&env, &first), listed(&env, &renewed), "two depot entries");

    // The renewed certificate revoked with the account key, the first with
    // its own key (the JWS then carries that key, RFC 8555 §7.6).
    let server_url = server.directory.clone();
    let revoke = |cert: &Path, extra: &[&str]| {
        let cert = cert.display().to_string();
        let args = [&["revoke", "--cert-path", &cert, "--server", &server_url, "--no-delete-after-revoke"][..], extra];
        certbot.ok(&args.concat())
    };
    revoke(&renewed, &["--reason", "superseded"]);
    let key1 = certbot.file("archive", "privkey1.pem").display().to_string();
    revoke(&first, &["--key-path", &key1]);
    let entry = crl_entry(&env, "Local_CA_Issuing.crl", &renewed).expect("the renewed certificate is revoked");
    assert!(entry.contains("Superseded"), "{entry}");
    assert!(crl_entry(&env, "Local_CA_Issuing.crl", &first).is_some(), "revoked by its own key");
    assert!(listed(&env, &first).contains("revoked") && listed(&env, &renewed).contains("revoked"));
    stop(server);
}

/// The banner's certbot line with the depot's usual CA, a root that signs
/// leaves itself: certbot needs the issuer after the leaf (it stops with
/// "less than 2 certificates in chain" otherwise), so the server must send
/// the root there when there is no intermediate.
#[test]
fn certbot_gets_a_certificate_from_a_root_that_signs_leaves_itself() {
    if !have(&[CERTBOT]) {
        return;
    }
    let env = root_ca();
    let [port] = free_ports();
    let server = serve(&env, "ACME CA", &["--http01-port", &port.to_string()]);
    let certbot = Certbot::new(&env, &server);
    let (ok, out) = certbot.certonly(port);
    assert!(ok, "certbot certonly failed:\n{out}");
    verify(&env, &server, &certbot.file("live", "cert.pem"), None);
    assert!(listed(&env, &certbot.file("live", "cert.pem")).starts_with("localhost.acme-"));
    stop(server);
}

// ---------------------------------------------------------------------------
// Caddy

/// The names in the host's trust directories: Caddy installs its own root
/// there unless told not to, and no test may change them.
fn host_trust() -> Vec<String> {
    let mut names: Vec<String> = ["/usr/local/share/ca-certificates", "/etc/ssl/certs"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.flatten().map(|e| e.path().display().to_string()))
        .collect();
    names.sort();
    names
}

/// Caddy 2.6 with the banner's global options (acme_ca, acme_ca_root) for
/// caddy.example.com, and an explicit ACME issuer for localhost: Caddy
/// treats localhost as an internal name and takes its certificate from its
/// own local CA otherwise, whatever acme_ca says. The server checks either
/// challenge Caddy picks (it picks at random): http-01 on http_port,
/// tls-alpn-01 on https_port; challtestsrv resolves caddy.example.com to
/// 127.0.0.1 for those checks.
#[test]
fn caddy_gets_its_certificates_from_the_server_and_serves_them() {
    if !have(&[CADDY, CHALLTESTSRV, CURL]) {
        return;
    }
    let env = root_ca();
    let trust_before = host_trust();
    let dns = Dns::start(&env);
    let [http, https] = free_ports();
    let ports = ["--http01-port", &http.to_string(), "--tlsalpn01-port", &https.to_string()];
    let server = serve(&env, "ACME CA", &[&ports[..], &["--dns-resolver", &dns.addr()]].concat());
    let (dir, ca, tmp) = (&server.directory, server.ca_file.display(), env.tmp.path().display());
    // The banner's global options as printed (the CA, the challenge ports,
    // default_bind on loopback), then this test's own: storage under the
    // test's directory; skip_install_trust keeps Caddy's local CA out of the
    // host's trust stores (it would install it as root); h1 and h2 only, so
    // it opens no UDP port for HTTP/3.
    let options = caddy_options(&server);
    for want in [format!("acme_ca {dir}"), format!("http_port {http}"), format!("https_port {https}")] {
        assert!(options.contains(&format!("\t{want}\n")), "{want:?} in the banner's options:\n{options}");
    }
    let caddyfile = format!(
        "{{
{options}	storage file_system {tmp}/caddy-data
	admin off
	skip_install_trust
	servers {{
		protocols h1 h2
	}}
}}
caddy.example.com {{
	respond \"hello\"
}}
localhost {{
	tls {{
		issuer acme {{
			dir {dir}
			trusted_roots {ca}
		}}
	}}
	respond \"hello\"
}}
"
    );
    let config = env.tmp.path().join("Caddyfile");
    std::fs::write(&config, caddyfile).unwrap();
    let mut cmd = client("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config"]).arg(&config);
    for (var, sub) in
        [("HOME", "caddy-home"), ("XDG_DATA_HOME", "caddy-xdg-data"), ("XDG_CONFIG_HOME", "caddy-xdg-config")]
    {
        cmd.env(var, env.tmp.path().join(sub));
    }
    let caddy = Daemon::start(&mut cmd, env.tmp.path().join("caddy.log"));

    for name in ["caddy.example.com", "localhost"] {
        let url = format!("https://{name}:{https}/");
        let mut get = curl(&env, &server.ca_file, &["--resolve", &format!("{name}:{https}:127.0.0.1")], &url);
        wait_until(
            &format!("Caddy serving {url}"),
            60,
            || (run_bounded(&mut get, 15).1.trim() == "hello").then_some(()),
            || format!("{}\n{}", caddy.log(), server.lines().join("\n")),
        );

        // What Caddy serves: verified under the CA file alone, and a depot entry.
        let mut s_client = client("openssl");
        s_client.args(["s_client", "-connect", &format!("127.0.0.1:{https}"), "-servername", name]);
        s_client.args(["-verify_hostname", name, "-verify_return_error", "-CAfile"]).arg(&server.ca_file);
        let shown = must(&mut s_client, 30);
        let begin = shown.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
        let end = shown.find("-----END CERTIFICATE-----").expect("a certificate") + "-----END CERTIFICATE-----".len();
        let served = env.tmp.path().join(format!("served-{name}.pem"));
        std::fs::write(&served, &shown[begin..end]).unwrap();
        assert!(listed(&env, &served).starts_with(&format!("{name}.acme-")));
    }
    drop(caddy);
    assert_eq!(host_trust(), trust_before, "the host's trust stores are unchanged");
    stop(server);
}

/// The lines inside the banner's Caddy block `{ … }`, each as a Caddyfile
/// line (tab-indented).
fn caddy_options(server: &Server) -> String {
    let lines = server.lines();
    let block: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .skip_while(|l| !l.starts_with("Caddy "))
        .skip_while(|l| *l != "{")
        .skip(1)
        .take_while(|l| *l != "}")
        .collect();
    assert!(!block.is_empty(), "no Caddy block in the banner:\n{}", lines.join("\n"));
    block.iter().map(|l| format!("\t{l}\n")).collect()
}

// ---------------------------------------------------------------------------
// The banner's lines, run as printed

/// The banner's command for `label` ("lego", "certbot"): the text after the
/// label, with only its domain placeholder NAME replaced by `name`.
fn banner_command(server: &Server, label: &str, name: &str) -> String {
    let lines = server.lines();
    let line = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {label} line in the banner:\n{}", lines.join("\n")))
        .trim();
    assert_eq!(line.split(' ').filter(|w| *w == "NAME").count(), 1, "one NAME placeholder: {line}");
    line.split(' ').map(|w| if w == "NAME" { name } else { w }).collect::<Vec<_>>().join(" ")
}

/// `line` run by sh in `dir` for at most `secs` seconds, without the
/// machine's CA-bundle or proxy variables (only what the line sets), as
/// the user `as_user` (a setpriv prefix) makes it, with HOME `home`.
fn run_line(line: &str, dir: &Path, secs: u64, as_user: &[&str], home: Option<&Path>) -> (bool, String) {
    std::fs::create_dir_all(dir).unwrap();
    let argv: Vec<&str> = as_user.iter().copied().chain(["sh", "-c", line]).collect();
    let mut cmd = client(argv[0]);
    cmd.args(&argv[1..]).current_dir(dir);
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    run_bounded(&mut cmd, secs)
}

/// With --http01-port and --tlsalpn01-port given, the banner's lego line
/// and its tls-alpn-01 variant get a certificate as printed: each listens
/// where the server checks, on the loopback address it serves.
#[test]
fn the_banners_lego_lines_get_certificates_as_printed() {
    if !have(&[LEGO]) {
        return;
    }
    let env = root_ca();
    let [http, tls] = free_ports();
    let server = serve(&env, "ACME CA", &["--http01-port", &http.to_string(), "--tlsalpn01-port", &tls.to_string()]);
    let line = banner_command(&server, "lego", "localhost");
    let cwd = env.tmp.path().join("lego-cwd");
    let (ok, out) = run_line(&line, &cwd, 120, &[], None);
    assert!(ok && out.contains("use http-01 solver"), "{line}\n{out}");
    let cert = cwd.join(".lego/certificates/localhost.crt");
    verify(&env, &server, &cert, None);
    let first = serial(&env, &cert);

    // "(tls-alpn-01: FLAGS instead of --http --http.port …)"
    let lines = server.lines();
    let alt = lines.iter().find_map(|l| l.trim().strip_prefix("(tls-alpn-01: ")).expect("a tls-alpn-01 line");
    let (tls_flags, _) = alt.split_once(" instead of ").expect(alt);
    let http_flags = format!("--http --http.port 127.0.0.1:{http}");
    assert!(line.contains(&http_flags), "{line}");
    let line = line.replace(&http_flags, tls_flags);
    let (ok, out) = run_line(&line, &cwd, 120, &[], None);
    assert!(ok && out.contains("use tls-alpn-01 solver"), "{line}\n{out}");
    verify(&env, &server, &cert, None);
    assert_ne!(serial(&env, &cert), first, "a second certificate");
    stop(server);
}

/// Gives `path` and everything under it to nobody (65534).
fn give_to_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            give_to_nobody(&e.unwrap().path());
        }
    }
}

/// Run by someone who is not root (nobody, when the tests run as root),
/// the banner's certbot line is non-interactive, agrees to the terms, keeps
/// its files under ~/.certbot instead of root's /etc/letsencrypt, and gets
/// a certificate as printed.
#[test]
fn the_banners_certbot_line_gets_a_certificate_as_printed_without_root() {
    let root = unsafe { libc::geteuid() } == 0;
    if !have(&[CERTBOT]) || (root && !require("setpriv", &["--version"], "apt-get install util-linux")) {
        return;
    }
    let env = root_ca();
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let nobody: &[&str] =
        if root { &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] } else { &[] };
    if root {
        give_to_nobody(env.tmp.path());
    }
    let [port] = free_ports();
    let certforge = env.cmd(&[]).get_program().to_owned();
    let argv: Vec<&std::ffi::OsStr> = nobody.iter().map(|a| a.as_ref()).chain([certforge.as_os_str()]).collect();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).arg("--depot-path").arg(env.depot());
    cmd.args(["serve", "--CA", "ACME CA", "--listen", "127.0.0.1:0"]);
    cmd.args(["--http01-port", &port.to_string()]).env("HOME", &home).current_dir(env.tmp.path());
    cmd.env_remove("CERTFORGE_DEPOT_PATH").env_remove("CERTFORGE_PASSPHRASE").stdin(Stdio::null());
    let server = Server::start_cmd(&env, cmd);

    let line = banner_command(&server, "certbot", "localhost");
    let dirs = home.join(".certbot");
    for want in [
        "--non-interactive".to_string(),
        "--agree-tos".to_string(),
        format!("--http-01-port {port} --http-01-address 127.0.0.1"),
        format!("--config-dir {}", dirs.join("config").display()),
        format!("--work-dir {}", dirs.join("work").display()),
        format!("--logs-dir {}", dirs.join("logs").display()),
    ] {
        assert!(line.contains(&want), "{want:?} in {line}");
    }
    let (ok, out) = run_line(&line, env.tmp.path(), 180, nobody, Some(&home));
    assert!(ok, "{line}\n{out}\n{}", server.lines().join("\n"));
    let cert = dirs.join("config/live/localhost/cert.pem");
    verify(&env, &server, &cert, None);
    assert!(listed(&env, &cert).starts_with("localhost.acme-"));
    stop(server);
}

// ---------------------------------------------------------------------------
// CRLs over HTTP

#[test]
fn openssl_fetches_the_served_crl_and_sees_a_lego_revocation() {
    if !have(&[LEGO]) {
        return;
    }
    let env = Env::new();
    let [crl_port, http] = free_ports();
    let crl_url = format!("http://127.0.0.1:{crl_port}/crl/CRL_CA.crl");
    env.ok(&["init", "--cn", "CRL CA", "--passphrase", "", "--crl-url", &crl_url]);
    let crl_listen = format!("127.0.0.1:{crl_port}");
    let server = serve(&env, "CRL CA", &["--crl-listen", &crl_listen, "--http01-port", &http.to_string()]);
    assert!(server.lines().iter().any(|l| l.contains(&format!("CRL          {crl_url} (plain HTTP)"))));
    let lego = Lego::new(&env, &server);
    let flags = ["--domains", "localhost", "--http", "--http.port", &format!("127.0.0.1:{http}")];
    lego.ok(&flags, &["run"]);
    let cert = lego.cert("localhost");
    let text = ext(&env, &cert, "crlDistributionPoints");
    assert!(text.contains(&crl_url), "{text}");

    // openssl downloads the CRL from the distribution point in the
    // certificate, from the server, each time.
    let check = || {
        let mut cmd = client("openssl");
        cmd.args(["verify", "-crl_download", "-crl_check", "-CAfile"]).arg(&server.ca_file).arg(&cert);
        run_bounded(&mut cmd, 30)
    };
    let (ok, out) = check();
    assert!(ok, "valid before the revocation:\n{out}");
    lego.ok(&flags, &["revoke", "--keep"]);
    let (ok, out) = check();
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    stop(server);
}

// ---------------------------------------------------------------------------
// What serve says and how it stops

/// The banner: the directory URL and, for the same URL and CA file, the
/// lines for certbot, lego and Caddy, each trusting the CA its own way.
/// Then the JSON log, /health on both listen addresses, and SIGTERM.
#[test]
fn serve_prints_the_client_lines_logs_json_answers_health_on_both_addresses_and_stops_on_sigterm() {
    if !have(&[CURL]) {
        return;
    }
    let env = root_ca();
    let mut server = serve(&env, "ACME CA", &["--listen", "[::1]:0", "--log-format", "json"]);
    let (dir, ca) = (server.directory.clone(), server.ca_file.display().to_string());
    assert!(dir.starts_with("https://127.0.0.1:") && dir.ends_with("/directory"), "{dir}");
    let banner = server.lines().join("\n");
    for expected in [
        format!("REQUESTS_CA_BUNDLE={ca} certbot certonly --standalone --non-interactive --agree-tos "),
        format!(" --server {dir} --http-01-port 80 --http-01-address 127.0.0.1"),
        format!("LEGO_CA_CERTIFICATES={ca} lego --server {dir} "),
        " --http --http.port 127.0.0.1:80 run".to_string(),
        format!("acme_ca {dir}\n"),
        format!("acme_ca_root {ca}\n"),
        "default_bind 127.0.0.1\n".to_string(),
    ] {
        assert!(banner.contains(&expected), "{expected:?} in:\n{banner}");
    }

    let listening = server.lines().into_iter().find_map(|l| l.trim().strip_prefix("listening").map(str::to_string));
    let addrs: Vec<String> = listening.expect("a listening line").split(',').map(|a| a.trim().to_string()).collect();
    assert!(addrs.len() == 2 && addrs[1].starts_with("[::1]:"), "{addrs:?}");
    for addr in &addrs {
        let body = must(&mut curl(&env, &server.ca_file, &[], &format!("https://{addr}/health")), 20);
        assert_eq!(body.trim(), r#"{"status":"ok"}"#, "/health at {addr}");
    }

    let status = server.stop();
    assert!(status.success(), "SIGTERM ends serve with exit 0, not {status}");
    // The banner is for people; every log event after it is one JSON object.
    let events: Vec<serde_json::Value> = wait_until(
        "the \"stopped\" event",
        10,
        || {
            let lines = server.lines();
            let events: Vec<serde_json::Value> = lines
                .iter()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
            events.iter().any(|e| e["msg"] == "stopped").then_some(events)
        },
        || server.lines().join("\n"),
    );
    let health = events.iter().filter(|e| e["msg"] == "request" && e["path"] == "/health" && e["status"] == 200);
    assert_eq!(health.count(), 2, "{events:?}");
    let text_events = server.lines().into_iter().filter(|l| l.starts_with("20") && l.contains(" INFO ")).count();
    assert_eq!(text_events, 0, "no text log lines with --log-format json");
}

#[test]
fn skip_validation_on_a_non_loopback_address_needs_the_flag_twice() {
    if !have(&[CURL]) {
        return;
    }
    let env = root_ca();
    let open = ["serve", "--CA", "ACME CA", "--listen", "0.0.0.0:0", "--hostname", "acme.test", "--skip-validation"];
    let err = env.fails(&open, 2);
    assert!(err.contains("refused on a non-loopback --listen") && err.contains("give it twice"), "{err}");

    // Twice, it starts. It listens on every address for these moments, so
    // --require-eab with no EAB key made: nobody can open an account.
    let server = Server::start(&env, &[&open[1..], &["--skip-validation", "--require-eab"]].concat());
    assert!(server.directory.starts_with("https://acme.test:"), "{}", server.directory);
    assert!(server.lines().iter().any(|l| l.contains("challenges are NOT checked")), "{:?}", server.lines());
    // Its directory, under the --hostname its own certificate names.
    let port = server.port();
    let resolve = format!("acme.test:{port}:127.0.0.1");
    let directory = must(&mut curl(&env, &server.ca_file, &["--resolve", &resolve], &server.directory), 20);
    assert!(directory.contains(&format!("\"https://acme.test:{port}/new-order\"")), "{directory}");
    stop(server);
}
