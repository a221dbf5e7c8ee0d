//! `certforge trust`. Outside a private mount namespace
//! these tests only ever change NSS databases under a throwaway HOME; the
//! system store and Java's cacerts are changed only inside `unshare -m`,
//! over copies, and the host's files are hashed before and after.

#[path = "common/clients.rs"]
mod clients;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clients::{require, Trust};
use common::{openssl_leaked_leaf, snapshot, Env, Namespace};

const MARKER: &str = "certforge-trust-page";

/// A local CA "Dev CA" and its localhost server certificate; returns the
/// server's (chain, key).
fn local_ca_with_server(env: &Env) -> (PathBuf, PathBuf) {
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    env.ok(&["request-cert", "--domain", "localhost", "--ip", "127.0.0.1,::1"]);
    env.ok(&["sign", "localhost", "--CA", "Dev CA", "--profile", "server"]);
    (env.file("localhost.chain.crt"), env.file("localhost.key"))
}

/// The host files `trust` could change, hashed (contents, mode) — the
/// system store, its bundle, and Java's cacerts.
fn host_stores() -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut all = BTreeMap::new();
    for dir in ["/usr/local/share/ca-certificates", "/etc/ssl/certs/java"] {
        if Path::new(dir).is_dir() {
            all.extend(snapshot(Path::new(dir)));
        }
    }
    for f in ["/etc/ssl/certs/ca-certificates.crt", "/etc/ca-certificates.conf"] {
        if let Ok(bytes) = std::fs::read(f) {
            all.insert(PathBuf::from(f), (bytes, 0));
        }
    }
    all
}

/// certforge with HOME at `home` (its NSS databases live there).
fn at_home(env: &Env, home: &Path, args: &[&str]) -> std::process::Output {
    env.cmd(args).env("HOME", home).env_remove("JAVA_HOME").output().expect("run certforge")
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn status_and_dry_run_change_nothing_and_say_what_would() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (host, depot) = (host_stores(), env.snapshot());

    let out = at_home(&env, &home, &["trust", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("not trusted") && said.contains(".pki/nssdb (Chromium)"), "{said}");
    assert!(
        said.contains("export NODE_EXTRA_CA_CERTS=") && said.contains("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH="),
        "{said}"
    );
    assert_eq!(env.snapshot(), depot, "a plain status only reads the depot");
    // The eval line it offers works as printed, from another directory:
    // it names the depot and the CA.
    let eval = said.lines().find_map(|l| l.split_once("eval \"$(")).map(|(_, rest)| rest).expect("an eval line");
    let eval = eval.strip_suffix(")\")").expect("eval \"$(…)\"");
    assert!(eval.starts_with("certforge --depot-path ") && eval.contains(" --CA "), "{eval}");
    let bin = assert_cmd::cargo::cargo_bin("certforge");
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(eval)
        .current_dir(&home)
        .env("PATH", path)
        .env("HOME", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("export NODE_EXTRA_CA_CERTS="),
        "{eval}: {}",
        text(&out)
    );

    let out = at_home(&env, &home, &["trust", "install", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("would install") && said.contains("certutil -N") && said.contains("-t C,,"), "{said}");
    assert!(said.contains("Dry run: nothing was changed."), "{said}");
    let out = at_home(&env, &home, &["trust", "uninstall", "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["dry_run"], true);
    assert!(v["stores"].as_array().unwrap().iter().any(|s| s["store"] == "nss" && s["state"] == "not-there"), "{v}");

    // --print-env is one line for eval: the CA for Node, and for the
    // variables that replace a runtime's roots, while the system store does
    // not hold the CA, the depot's bundle of the system's roots and the CA.
    let out = at_home(&env, &home, &["trust", "status", "--print-env", "--store", "nss"]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let (ca, bundle) = (env.file("Dev_CA.crt"), env.file("Dev_CA.bundle.pem"));
    assert_eq!(
        line,
        format!(
            "export NODE_EXTRA_CA_CERTS={} REQUESTS_CA_BUNDLE={1} GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={1}\n",
            ca.display(),
            bundle.display()
        )
    );

    assert!(!home.join(".pki").exists(), "a dry run made no NSS database");
    assert_eq!(host_stores(), host, "the host's stores are byte-identical");
    // status wrote that bundle, and nothing else, into the depot.
    let mut now = env.snapshot();
    assert!(now.remove(&bundle).is_some(), "{}", bundle.display());
    assert_eq!(now, depot);
}

/// The certificates (DER) in a PEM file.
fn certs_in(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pem::parse_many(bytes)
        .unwrap()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect()
}

/// After `trust install --store nss`, the system bundle lacks the CA, and
/// REQUESTS_CA_BUNDLE and GRPC_DEFAULT_SSL_ROOTS_FILE_PATH *replace* the
/// roots of requests and gRPC: they must name a file with the system's
/// roots (public sites keep working) and the CA, which Python's ssl loads
/// and with which it reaches a server of the CA; NODE_EXTRA_CA_CERTS adds,
/// so it names the CA alone.
#[test]
fn print_env_after_an_nss_only_install_names_the_system_roots_plus_the_ca() {
    const SYSTEM: &str = "/etc/ssl/certs/ca-certificates.crt";
    if !Path::new(SYSTEM).is_file() {
        assert!(std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(), "{SYSTEM} (ca-certificates) is needed here");
        eprintln!("SKIPPED: no {SYSTEM}");
        return;
    }
    if !require("certutil", &["--build-flags"], "apt-get install libnss3-tools")
        || !require("python3", &["--version"], "apt-get install python3")
    {
        return;
    }
    let env = Env::new();
    let (chain, key) = local_ca_with_server(&env);
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = at_home(&env, &home, &["trust", "install", "--store", "nss"]);
    assert!(out.status.success() && text(&out).contains("installed       NSS database"), "{}", text(&out));

    let out = at_home(&env, &home, &["trust", "status", "--print-env"]);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let vars: BTreeMap<&str, &str> =
        line.trim_end().strip_prefix("export ").expect(&line).split(' ').filter_map(|w| w.split_once('=')).collect();
    let ca_file = env.file("Dev_CA.crt");
    assert_eq!(vars["NODE_EXTRA_CA_CERTS"], ca_file.display().to_string(), "Node adds to its roots: the CA alone");
    let bundle = PathBuf::from(vars["REQUESTS_CA_BUNDLE"]);
    assert_eq!(vars["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"], vars["REQUESTS_CA_BUNDLE"], "{line}");
    assert!(bundle.starts_with(env.depot()) && bundle != ca_file, "{line}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the system's"), "it says so: {}", text(&out));

    // The system's roots and the CA (by its SHA-256 fingerprint).
    let (system, printed) = (certs_in(Path::new(SYSTEM)), certs_in(&bundle));
    assert!(system.len() > 10, "a real system bundle");
    assert_eq!(printed.len(), system.len() + 1, "every system root and the CA");
    assert!(system.iter().all(|r| printed.contains(r)), "every system root is kept");
    let sha = |d: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, d).as_ref().to_vec();
    let ca_sha = sha(&certs_in(&ca_file)[0]);
    assert!(printed.iter().any(|d| sha(d) == ca_sha), "the CA's fingerprint is in {}", bundle.display());

    // Python's ssl loads the file (with the machine's CA variables unset)…
    let mut py = Command::new("python3");
    py.args([
        "-c",
        "import ssl, sys; c = ssl.create_default_context(cafile=sys.argv[1]); print(len(c.get_ca_certs()))",
    ]);
    let (ok, said) = clients::run_bounded(py.arg(&bundle), 30);
    assert!(ok, "{said}");
    let loaded: usize = said.trim().parse().unwrap_or_else(|_| panic!("{said}"));
    assert!(loaded > system.len() / 2, "Python loaded {loaded} roots of {}", printed.len());
    // …and reaches a server of the CA with it.
    let server = clients::serve(&chain, &key, MARKER);
    clients::python("localhost", server.port, Trust::CaFile(&bundle), MARKER).expect("Python trusts the CA through it");

    // Run again, it rewrites nothing (same bytes); a dry run writes nothing.
    let before = std::fs::metadata(&bundle).unwrap().modified().unwrap();
    assert!(at_home(&env, &home, &["trust", "status", "--print-env"]).status.success());
    assert_eq!(std::fs::metadata(&bundle).unwrap().modified().unwrap(), before);
    assert!(at_home(&env, &home, &["trust", "uninstall", "--store", "nss"]).status.success());
}

#[test]
fn the_ca_to_trust_is_chosen_and_explained() {
    let env = Env::new();
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str], code: i32| {
        let out = at_home(&env, &home, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        text(&out)
    };
    assert!(run(&["trust", "status"], 2).contains("no CA to trust"));

    // An unconstrained CA with its key in the depot: trusted only after a
    // one-line warning naming the risk and `init --local`.
    env.ok(&["init", "--cn", "Team CA"]);
    let said = run(&["trust", "install", "--store", "nss", "--dry-run"], 0);
    assert!(
        said.contains("no name constraints") && said.contains("Team_CA.key") && said.contains("init --local"),
        "{said}"
    );

    // Two roots: name one. An intermediate: trust its root instead.
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    let said = run(&["trust", "status"], 0);
    assert!(said.contains("\"Dev CA\"") && said.contains("the depot's local CA"), "{said}");
    env.ok(&["init", "--cn", "Other CA", "--local"]);
    let said = run(&["trust", "status"], 2);
    assert!(said.contains("several root CAs") && said.contains("--CA"), "{said}");
    let said = run(&["trust", "install", "--CA", "Dev CA Issuing", "--store", "nss"], 2);
    assert!(said.contains("intermediate") && said.contains("trust install --CA Dev_CA"), "{said}");
    let said = run(&["trust", "status", "--CA", "Dev CAA"], 1);
    assert!(said.contains("Did you mean"), "{said}");
    let said = run(&["trust", "status", "--CA", "Dev CA", "--store", "keychain"], 2);
    assert!(said.contains("system") && said.contains("nss") && said.contains("java"), "{said}");
    assert!(!home.join(".pki").exists());
}

#[test]
fn chromium_trusts_the_ca_after_trust_install_and_not_after_uninstall() {
    if !require("chromium", &["--version"], "apt-get install chromium")
        || !require("certutil", &["--build-flags"], "apt-get install libnss3-tools")
    {
        return;
    }
    let env = Env::new();
    let (chain, key) = local_ca_with_server(&env);
    let server = clients::serve(&chain, &key, MARKER);
    // A fresh HOME without ~/.pki/nssdb, as headless Chromium leaves it.
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let browse = |host: &str, port: u16| clients::chromium(host, port, Trust::NssHome(&home), MARKER);
    assert!(browse("localhost", server.port).is_err(), "not trusted before install");

    let out = at_home(&env, &home, &["trust", "install", "--store", "nss"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("installed       NSS database"), "{}", text(&out));
    browse("localhost", server.port).expect("Chromium trusts the CA after trust install");
    let out = at_home(&env, &home, &["trust", "install", "--store", "nss"]);
    assert!(text(&out).contains("already trusted"), "install is idempotent: {}", text(&out));

    // A leaf for another site, signed with the intermediate's key by openssl
    // (certforge refuses): Chromium refuses it, trusted root or not.
    let d = env.depot();
    let evil_chain =
        openssl_leaked_leaf(&d, "evil", "/CN=www.example.com", Some("DNS:www.example.com"), "Dev_CA_Issuing");
    let evil = clients::serve(&evil_chain, &d.join("evil.key"), MARKER);
    let refused =
        browse("www.example.com", evil.port).expect_err("a leaked intermediate key cannot serve another site");
    assert!(refused.contains("ERR_CERT"), "{refused}");

    // A regenerated CA of the same name (another depot) is trusted beside it,
    // and uninstalling the first never removes the second (mkcert #208).
    let other = Env::new();
    other.ok(&["init", "--cn", "Dev CA", "--local"]);
    assert!(at_home(&other, &home, &["trust", "install", "--store", "nss"]).status.success());
    let out = at_home(&env, &home, &["trust", "uninstall", "--store", "nss"]);
    assert!(text(&out).contains("removed         NSS database"), "{}", text(&out));
    let err = browse("localhost", server.port).expect_err("not trusted after uninstall");
    assert!(err.contains("ERR_CERT_AUTHORITY_INVALID"), "{err}");
    let still = at_home(&other, &home, &["trust", "status", "--store", "nss"]);
    assert!(String::from_utf8_lossy(&still.stdout).contains("  trusted "), "{}", text(&still));

    // Firefox profiles, classic and XDG (mkcert #668), each get the CA.
    for parent in [".mozilla/firefox/ab12.default-release", ".config/mozilla/firefox/cd34.default"] {
        let dir = home.join(parent);
        std::fs::create_dir_all(&dir).unwrap();
        let (ok, said) = clients::run_bounded(
            Command::new("certutil").args(["-N", "--empty-password", "-d"]).arg(format!("sql:{}", dir.display())),
            30,
        );
        assert!(ok, "{said}");
    }
    let out = at_home(&env, &home, &["trust", "install", "--store", "nss", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let installed: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "installed")
        .map(|s| s["place"].as_str().unwrap())
        .collect();
    assert_eq!(installed.len(), 3, "Chromium's db and both Firefox profiles: {v}");
    assert!(installed.iter().any(|p| p.contains("Firefox profile ab12.default-release")), "{v}");
    assert!(installed.iter().any(|p| p.contains("Firefox profile cd34.default")), "{v}");
    let out = at_home(&env, &home, &["trust", "uninstall", "--store", "nss"]);
    assert_eq!(text(&out).matches("removed ").count(), 3, "{}", text(&out));
}

/// The host files the Debian hook and dpkg triggers touch, beyond the stores.
fn host_dpkg() -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut all = BTreeMap::new();
    for f in ["/var/lib/dpkg/status", "/var/log/dpkg.log", "/var/lib/ca-certificates-java/pending"] {
        if let Ok(bytes) = std::fs::read(f) {
            all.insert(PathBuf::from(f), (bytes, 0));
        }
    }
    if Path::new("/var/lib/dpkg/triggers").is_dir() {
        all.extend(snapshot(Path::new("/var/lib/dpkg/triggers")));
    }
    all
}

#[test]
fn the_system_store_and_java_trust_the_ca_in_a_private_namespace() {
    let root = unsafe { libc::geteuid() } == 0;
    let debian = Path::new("/usr/sbin/update-ca-certificates").exists();
    if !root || !debian || !require("unshare", &["--version"], "apt-get install util-linux") {
        assert!(
            std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
            "the system store test needs root (for unshare -m) and Debian's update-ca-certificates"
        );
        eprintln!("SKIPPED: the system store test needs root and update-ca-certificates");
        return;
    }
    for (program, probe, install) in [
        ("curl", &["--version"][..], "apt-get install curl"),
        ("go", &["version"][..], "apt-get install golang-go"),
        ("javac", &["-version"][..], "apt-get install openjdk-17-jdk-headless"),
        ("keytool", &["-help"][..], "apt-get install openjdk-17-jre-headless"),
    ] {
        if !require(program, probe, install) {
            return;
        }
    }
    let (host, dpkg) = (host_stores(), host_dpkg());
    let env = Env::new();
    let (chain, key) = local_ca_with_server(&env);
    let server = clients::serve(&chain, &key, MARKER);
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Private copies of the system store's files (tests/interop/private_stores.sh);
    // copying /var/lib/dpkg takes a moment.
    let ns = Namespace::start("private_stores.sh", Duration::from_secs(120));
    let certforge = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("HOME", &home).env_remove("JAVA_HOME");
        let out = clients::nsenter(ns.pid(), &cmd).output().expect("certforge in the namespace");
        (out.status.success(), text(&out))
    };
    type Probe = fn(&str, u16, Trust, &str) -> Result<(), String>;
    let system_clients: [(&str, Probe); 3] =
        [("curl", clients::curl), ("python", clients::python), ("go", clients::go)];
    let port = server.port;
    let all = |want: bool| {
        clients::inside(ns.pid(), || {
            for (name, probe) in system_clients {
                let r = probe("localhost", port, Trust::System, MARKER);
                assert_eq!(r.is_ok(), want, "{name} with no CA flag: {r:?}");
            }
        })
    };
    let java = || clients::inside(ns.pid(), || clients::java("localhost", port, Trust::System, MARKER));
    let stores = || {
        let mut all = BTreeMap::new();
        for dir in ["/usr/local/share/ca-certificates", "/etc/ssl/certs"] {
            all.extend(snapshot(&ns.view(dir)));
        }
        all
    };
    all(false);
    assert!(java().is_err());

    // status and --dry-run change nothing, in the real (private) store.
    let before = stores();
    let (ok, said) = certforge(&["trust", "status", "--store", "system,java"]);
    assert!(ok && said.matches("not trusted").count() == 2, "{said}");
    let (ok, said) = certforge(&["trust", "install", "--store", "system,java", "--dry-run"]);
    assert!(ok && said.contains("update-ca-certificates") && said.contains("keytool -importcert"), "{said}");
    assert_eq!(stores(), before, "status and --dry-run changed the store");

    // Install: curl, Python ssl and Go trust it with no CA flag, and Java
    // through Debian's hook.
    let (ok, said) = certforge(&["trust", "install", "--store", "system"]);
    assert!(ok && said.contains("installed       Debian/Ubuntu system store"), "{said}");
    assert!(ns
        .view("/usr/local/share/ca-certificates")
        .read_dir()
        .unwrap()
        .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with("certforge-Dev_CA-") }));
    all(true);
    java().expect("Java trusts it through Debian's hook");
    let (ok, said) = certforge(&["trust", "status", "--store", "system,java", "--print-env"]);
    assert!(ok && said.contains("REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt"), "{said}");
    let (_, said) = certforge(&["trust", "install", "--store", "system"]);
    assert!(said.contains("already trusted"), "{said}");

    // Uninstall: gone for all of them, the hook's Java entry too.
    let (ok, said) = certforge(&["trust", "uninstall", "--store", "system"]);
    assert!(ok && said.contains("removed") && said.contains("Debian's Java copy debian:certforge-dev_ca-"), "{said}");
    all(false);
    assert!(java().is_err(), "Java still trusts it after uninstall");

    // The Java store alone: keytool into cacerts, and out again.
    let (ok, said) = certforge(&["trust", "install", "--store", "java"]);
    assert!(ok && said.contains("installed       Java cacerts"), "{said}");
    java().expect("Java trusts it after install --store java");
    let (ok, said) = certforge(&["trust", "uninstall", "--store", "java"]);
    assert!(ok && said.contains("removed         Java cacerts"), "{said}");
    assert!(java().is_err(), "Java still trusts it after uninstall --store java");
    let (ok, said) = certforge(&["trust", "status", "--store", "system,java"]);
    assert!(ok && said.matches("not trusted").count() == 2, "{said}");

    drop(ns);
    assert_eq!(host_stores(), host, "the host's system store and cacerts are byte-identical");
    assert_eq!(host_dpkg(), dpkg, "the host's dpkg state is byte-identical");
}

#[test]
fn a_missing_or_broken_java_never_stops_the_other_stores() {
    if !require("certutil", &["--build-flags"], "apt-get install libnss3-tools") {
        return;
    }
    let env = Env::new();
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    let home = env.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let with_java = |java_home: &Path, args: &[&str]| {
        let out = env.cmd(args).env("HOME", &home).env("JAVA_HOME", java_home).output().unwrap();
        (out.status.code(), text(&out))
    };
    // No JDK there: Java is skipped with the reason, NSS is done, exit 0.
    let (code, said) = with_java(&env.tmp.path().join("no-jdk"), &["trust", "install", "--store", "nss,java"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("installed       NSS database")
            && said.contains("skipped")
            && said.contains("is JAVA_HOME a JDK?"),
        "{said}"
    );

    // A JDK whose keytool fails (mkcert #472): its line says why, the others
    // are still done, and the exit status is 1.
    let jdk = env.tmp.path().join("broken-jdk");
    std::fs::create_dir_all(jdk.join("lib/security")).unwrap();
    std::fs::create_dir_all(jdk.join("bin")).unwrap();
    std::fs::write(jdk.join("lib/security/cacerts"), b"not a keystore").unwrap();
    let keytool = jdk.join("bin/keytool");
    std::fs::write(
        &keytool,
        "#!/bin/sh\necho 'keytool error: java.io.IOException: Invalid keystore format' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&keytool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, said) = with_java(&jdk, &["trust", "uninstall", "--store", "java,nss"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("FAILED") && said.contains("Invalid keystore format"), "{said}");
    assert!(said.contains("removed         NSS database"), "NSS was still cleaned: {said}");
}

#[test]
fn without_root_or_a_terminal_the_commands_are_printed_not_run() {
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/usr/sbin/update-ca-certificates").exists() {
        assert!(
            std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
            "this test needs root (to become nobody) and Debian's update-ca-certificates"
        );
        eprintln!("SKIPPED: needs root (to become nobody) and update-ca-certificates");
        return;
    }
    if !require("setpriv", &["--version"], "apt-get install util-linux") {
        return;
    }
    let env = Env::new();
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    // nobody must be able to read the depot's certificate (not its key).
    for dir in [env.tmp.path(), env.depot().as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let host = host_stores();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(env.cmd(&[]).get_program());
    cmd.arg("--depot-path").arg(env.depot()).args(["trust", "install", "--store", "system"]);
    cmd.env("HOME", env.tmp.path()).stdin(Stdio::null());
    let out = cmd.output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("needs root") && said.contains("no terminal"), "{said}");
    assert!(
        said.contains("$ sudo install -m 0644 ") && said.contains("/usr/local/share/ca-certificates/certforge-Dev_CA-"),
        "{said}"
    );
    assert!(said.contains("$ sudo /usr/sbin/update-ca-certificates"), "{said}");
    assert_eq!(host_stores(), host);
}
