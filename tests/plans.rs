//! One-file PKI plans (idempotent, checked whole, with count),
//! deterministic fixtures, quickstart, and the library API.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::Path;

use common::{openssl, openssl_ok, openssl_verify_as, openssl_verify_server, snapshot, with_cert, Env};

const PLAN: &str = r#"
[[ca]]
name = "Test Root"

[[intermediate]]
name = "Issuing"
issuer = "Test Root"

[[leaf]]
name = "api"
issuer = "Issuing"
profile = "server"
domains = ["api.test"]
ips = ["127.0.0.1"]

[[leaf]]
name = "worker-{n}"
count = 3
issuer = "Test Root"
profile = "client"
"#;

fn write_plan(env: &Env, text: &str) -> String {
    let p = env.tmp.path().join("plan.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_plan_applies_idempotently_and_reissues_only_what_changed() {
    let env = Env::new();
    let plan = write_plan(&env, PLAN);
    let out = env.ok(&["apply", &plan]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("made 6, kept 0, re-issued 0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = env.depot();
    openssl_verify_server(&d, "Test_Root.crt", Some("Issuing.crt"), "api.crt");
    openssl_verify_as(&d, "sslclient", "Test_Root.crt", None, &["worker-1.crt", "worker-2.crt", "worker-3.crt"]);
    assert!(d.join("Test_Root.crl").is_file() && d.join("Issuing.crl").is_file());

    let before = snapshot(&d);
    let out = env.ok(&["apply", &plan]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(before, snapshot(&d), "an unchanged plan writes nothing");

    let changed = PLAN.replace("domains = [\"api.test\"]", "domains = [\"api.test\", \"api2.test\"]");
    let plan = write_plan(&env, &changed);
    let out = env.ok(&["apply", &plan, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reissued"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["reissued"][0]["name"], "api");
    assert!(v["reissued"][0]["reason"].as_str().unwrap().contains("SANs"));
    assert_eq!(v["kept"].as_array().unwrap().len(), 5);
    let after = snapshot(&d);
    for (path, content) in &before {
        let name = path.file_name().unwrap().to_string_lossy();
        if !name.starts_with("api.") {
            assert_eq!(after.get(path), Some(content), "{name} must be untouched");
        }
    }
    assert_eq!(std::fs::read_dir(d.join("archive")).unwrap().count(), 1, "the old api.crt is archived");
    with_cert(&d.join("api.crt"), |c| assert!(common::sans(c).len() == 3));
}

#[test]
fn dry_run_writes_nothing_and_renew_within_reissues_what_is_due() {
    let env = Env::new();
    let plan = write_plan(&env, "[[ca]]\nname = \"R\"\n[[leaf]]\nname = \"short\"\nissuer = \"R\"\nvalidity = \"10 days\"\n[[leaf]]\nname = \"long\"\nissuer = \"R\"\n");
    let out = env.ok(&["apply", &plan, "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("would make"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!env.depot().exists() || snapshot(&env.depot()).is_empty());
    env.ok(&["apply", &plan]);
    let out = env.ok(&["apply", &plan, "--renew-within", "30d", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["reissued"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["short"], "{v}");
}

/// A dry run said "made 1" for what it would make; every count says
/// "would" now.
#[test]
fn a_dry_run_says_what_it_would_do_in_every_count() {
    let env = Env::new();
    let plan = write_plan(&env, PLAN);
    let out = env.ok(&["apply", &plan, "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dry run, nothing written: would make 6, would keep 0, would re-issue 0"), "{err}");
    assert!(!err.contains("made") && !err.contains("kept") && !err.contains("re-issued"), "{err}");
    env.ok(&["apply", &plan]);
    let changed = write_plan(&env, &PLAN.replace("ips = [\"127.0.0.1\"]", ""));
    let err = String::from_utf8_lossy(&env.ok(&["apply", &changed, "--dry-run"]).stderr).into_owned();
    assert!(
        err.contains("would re-issue api: its SANs") && err.contains("would make 0, would keep 5, would re-issue 1"),
        "{err}"
    );
}

/// With a smaller `count`, the certificates now outside the plan were kept
/// without a word. They are still kept, and named in text and JSON with the
/// `rm` command that removes them, which works as printed.
#[test]
fn a_smaller_count_names_what_is_left_outside_the_plan_and_how_to_remove_it() {
    let env = Env::new();
    env.ok(&["apply", &write_plan(&env, PLAN)]);
    let smaller = write_plan(&env, &PLAN.replace("count = 3", "count = 1"));
    let out = env.ok(&["apply", &smaller, "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["outside_plan"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["worker-2", "worker-3"], "{v}");
    let files: Vec<&str> =
        v["outside_plan"][0]["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let depot = env.depot();
    let d = depot.to_str().unwrap();
    assert_eq!(files, [format!("{d}/worker-2.crt"), format!("{d}/worker-2.key")], "{v}");

    let out = env.ok(&["apply", &smaller]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kept 2 certificate(s) the plan does not name: worker-2, worker-3"), "{err}");
    assert!(env.file("worker-2.crt").is_file() && env.file("worker-3.key").is_file(), "kept: {err}");
    let rm = err.lines().find_map(|l| l.trim().strip_prefix("to remove them: ")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(Some(rm), v["remove_outside_plan"].as_str(), "text and JSON give the same command");
    let st = std::process::Command::new("sh").current_dir(env.tmp.path()).args(["-c", rm]).status().unwrap();
    assert!(st.success(), "{rm}");
    let mut left: Vec<String> = std::fs::read_dir(&depot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("worker"))
        .collect();
    left.sort();
    assert_eq!(left, ["worker-1.crt", "worker-1.key"], "only the plan's worker is left");
    let out = env.ok(&["apply", &smaller, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("outside_plan").is_none() && v.get("remove_outside_plan").is_none(), "{v}");
    assert!(!String::from_utf8_lossy(&env.ok(&["apply", &smaller]).stderr).contains("does not name"));
}

#[test]
fn plan_errors_name_their_line_and_nothing_is_written() {
    let env = Env::new();
    let cases = [
        ("[[ca]]\nname = \"A\"\n\n[[leaf]]\nname = \"x\"\nissuer = \"Nobody\"\n", ":6:", "unknown issuer"),
        ("[[ca]]\nname = \"A\"\n[[ca]]\nname = \"A\"\n", ":4:", "twice"),
        ("[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\ndomains = [\"bad host\"]\n", ":6:", "bad host"),
        (
            "[[intermediate]]\nname = \"I\"\nissuer = \"J\"\n[[intermediate]]\nname = \"J\"\nissuer = \"I\"\n",
            ":1:",
            "cycle",
        ),
        ("[[ca]]\nname = \"A\"\nvalidty = \"1 year\"\n", ":3:", "validty"),
        (
            "[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\ncrl_url = \"http://ca/x.crl\"\n",
            ":6:",
            "crl_url",
        ),
        ("[[ca]]\nname = \"A\"\ncrl_url = \"ldap://ca/a.crl\"\n", ":3:", "http"),
    ];
    for (text, line, word) in cases {
        let plan = write_plan(&env, text);
        let err = env.fails(&["apply", &plan], 2);
        assert!(err.contains(&format!("plan.toml{line}")) && err.contains(word), "{text}\n{err}");
        assert!(!env.depot().exists(), "nothing written for {text}");
    }
}

#[test]
fn deterministic_mode_gives_identical_bytes_and_a_new_seed_new_keys() {
    let (a, b, c) = (Env::new(), Env::new(), Env::new());
    let args = |seed: &str| {
        vec![
            "quickstart".to_string(),
            "--deterministic-seed".into(),
            seed.into(),
            "--not-before".into(),
            "2025-01-01T00:00:00Z".into(),
            "-q".into(),
        ]
    };
    let run = |env: &Env, seed: &str| {
        let v = args(seed);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        env.ok(&refs)
    };
    run(&a, "fixture-seed");
    run(&b, "fixture-seed");
    run(&c, "another-seed");
    let strip = |env: &Env| {
        snapshot(&env.depot())
            .into_iter()
            .map(|(p, v)| (p.file_name().unwrap().to_owned(), v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(strip(&a), strip(&b), "same plan, seed and notBefore: byte-identical");
    assert_eq!(strip(&a).len(), 7);
    assert_ne!(strip(&a).get(std::ffi::OsStr::new("ca.key")), strip(&c).get(std::ffi::OsStr::new("ca.key")));
    openssl_ok(&a.depot(), &["verify", "-x509_strict", "-CAfile", "ca.crt", "-purpose", "sslserver", "server.crt"]);
    let (_, text) = openssl(&a.depot(), &["x509", "-in", "server.crt", "-noout", "-startdate"]);
    assert!(text.contains("Jan  1 00:00:00 2025"), "{text}");
    run(&a, "fixture-seed");
    assert_eq!(strip(&a), strip(&b), "a second run keeps everything");
    let err = a.fails(
        &["quickstart", "--deterministic-seed", "s", "--not-before", "2025-01-01T00:00:00Z", "--passphrase", "pw"],
        2,
    );
    assert!(err.contains("--passphrase"), "{err}");
    let err = a.fails(&["quickstart", "--deterministic-seed", "s"], 2);
    assert!(err.contains("--not-before"), "{err}");
}

#[test]
fn quickstart_certs_carry_a_mutual_tls_handshake() {
    let env = Env::new();
    let out = env.ok(&["quickstart", "--host", "grpc.internal", "--ip", "10.0.0.5"]);
    let usage = String::from_utf8_lossy(&out.stdout);
    for w in [
        "ssl_server_credentials",
        "ssl_channel_credentials",
        "ClientCAs",
        "RootCAs",
        "ServerCredentials",
        "ChannelCredentials",
        "ServerTlsConfig",
        "ClientTlsConfig",
        "DNS:grpc.internal",
        "IP:10.0.0.5",
    ] {
        assert!(usage.contains(w), "{w} missing:\n{usage}");
    }
    let d = env.depot();
    for f in ["ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"] {
        assert!(d.join(f).is_file(), "{f}");
    }
    let cfg = tls::server_config(
        &d.join("server.crt"),
        &d.join("server.key"),
        Some(&d.join("ca.crt")),
        rustls::DEFAULT_VERSIONS,
    );
    let port = tls::serve(cfg, 2);
    let addr = format!("127.0.0.1:{port}");
    let out = env.run(&["probe", &addr, "--servername", "grpc.internal", "--cert", "client", "--key", "client.key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let py = std::env::var_os("CERTFORGE_INTEROP_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python"));
    let has_grpc = std::process::Command::new(&py).args(["-c", "import grpc"]).status().is_ok_and(|s| s.success());
    if has_grpc {
        let f = |n: &str| d.join(n).into_os_string();
        let o = std::process::Command::new(&py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/grpc_mtls.py"))
            .args([f("ca.crt"), f("server.crt"), f("server.key"), f("client.crt"), f("client.key")])
            .arg("localhost")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "grpcio: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        assert!(std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(), "grpcio is required here");
        eprintln!("SKIPPED: grpcio is not installed; .ci/run installs it");
    }
    let out = env.ok(&["quickstart", "--print-env"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for var in ["TLS_SERVER_CERT", "TLS_SERVER_KEY", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY", "TLS_ROOT_CA"] {
        assert!(text.contains(&format!("export {var}='-----BEGIN")), "{var}:\n{text}");
    }
}

/// `certforge …` as a shell runs a printed line: through `sh -c`, with
/// the test build first on PATH, as `certforge`.
fn shell(env: &Env, line: &str) -> std::process::Output {
    let dir = env.tmp.path().join("bin");
    if !dir.join("certforge").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("certforge"), dir.join("certforge")).unwrap();
    }
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    std::process::Command::new("sh")
        .args(["-c", line])
        .current_dir(env.tmp.path())
        .env("PATH", path)
        .env_remove("CERTFORGE_DEPOT_PATH")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh")
}

/// As `export` does, --print-env refuses a terminal (util-linux `script`
/// gives it one) before making anything; --force, a pipe or `$(...)` print.
#[test]
fn quickstart_print_env_keeps_private_keys_off_a_terminal() {
    let env = Env::new();
    let bin = assert_cmd::cargo::cargo_bin("certforge");
    let line =
        |extra: &str| format!("{} --depot-path {} quickstart --print-env{extra}", bin.display(), env.depot().display());
    let at_terminal = |c: String| {
        std::process::Command::new("script")
            .args(["-qec", &c, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux) gives a terminal")
    };
    let out = at_terminal(line(""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("holds the private key") && text.contains("--force"), "{text}");
    assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    assert!(!env.file("server.key").exists(), "refused before anything was made");

    let out = at_terminal(line(" --force"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("export TLS_SERVER_KEY='-----BEGIN PRIVATE KEY"));

    // Through $(...), the way the help says to use it: the variables hold the files.
    let out = shell(&env, &format!("eval \"$({})\" && printf %s \"$TLS_SERVER_KEY\"", line("")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = std::fs::read_to_string(env.file("server.key")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), key.trim_end());
}

/// A second quickstart without the first one's --host/--ip re-issues
/// server.crt without them; it says which names went, and the command it
/// prints puts them back when run as printed.
#[test]
fn a_second_quickstart_without_host_names_the_dropped_sans_and_how_to_keep_them() {
    let env = Env::new();
    let sans = || with_cert(&env.file("server.crt"), certforge::pki::san::of_cert);
    let extra = [certforge::pki::san::San::Dns("api.test".into()), certforge::pki::san::San::Ip([10, 0, 0, 5].into())];
    env.ok(&["quickstart", "--host", "api.test", "--ip", "10.0.0.5"]);
    assert!(extra.iter().all(|s| sans().contains(s)));

    let out = env.ok(&["quickstart", "--ip", "10.0.0.6"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("warning: server.crt was re-issued without api.test, 10.0.0.5"))
        .unwrap_or_else(|| panic!("no warning naming the dropped names:\n{err}"));
    let keep = line.split_once("pass them again: ").expect("the command that keeps them").1;
    assert!(keep.contains("--host api.test") && keep.contains("--ip 10.0.0.6 --ip 10.0.0.5"), "{keep}");
    assert!(!sans().contains(&extra[0]), "this run dropped them");

    let out = shell(&env, keep);
    assert!(out.status.success(), "{keep}: {}", String::from_utf8_lossy(&out.stderr));
    let now = sans();
    assert!(extra.iter().all(|s| now.contains(s)) && now.contains(&certforge::pki::san::San::Ip([10, 0, 0, 6].into())));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning: server.crt"), "nothing dropped this time");
}

#[test]
fn a_plan_of_a_thousand_leaves_makes_a_thousand_distinct_verifying_certs() {
    let env = Env::new();
    let plan = write_plan(&env, "[[ca]]\nname = \"Bulk CA\"\n\n[[leaf]]\nname = \"svc-{n}\"\ncount = 1000\nissuer = \"Bulk CA\"\nprofile = \"server\"\ndomains = [\"svc-{n}.test\"]\n");
    env.ok(&["apply", &plan, "-q"]);
    let d = env.depot();
    let mut serials = std::collections::HashSet::new();
    let mut files = Vec::new();
    for n in 1..=1000 {
        let f = format!("svc-{n}.crt");
        let serial = with_cert(&d.join(&f), |c| {
            let names = common::sans(c);
            assert_eq!(names, [format!("DNSName(svc-{n}.test)")]);
            c.raw_serial().to_vec()
        });
        assert!(serials.insert(serial), "serials are distinct");
        files.push(f);
    }
    let mut args = vec!["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "Bulk_CA.crt"];
    args.extend(files.iter().map(String::as_str));
    let out = openssl_ok(&d, &args);
    assert_eq!(out.matches(": OK").count(), 1000);
}

#[test]
fn the_library_api_makes_fixtures_in_memory_that_rustls_accepts() {
    use certforge::{Ca, Leaf};
    let root = Ca::new("Lib Root").unwrap();
    let issuing = root.intermediate("Lib Issuing").unwrap();
    let server = issuing.issue(Leaf::server(["localhost", "127.0.0.1"])).unwrap();
    let client = root.issue(Leaf::client("lib-client")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    root.write_to(dir.path(), "root").unwrap();
    server.write_to(dir.path(), "server").unwrap();
    client.write_to(dir.path(), "client").unwrap();
    assert_eq!(common::mode(&dir.path().join("server.key")), 0o600);
    assert_eq!(server.chain_pem().matches("BEGIN CERTIFICATE").count(), 2, "leaf + intermediate");
    assert!(server.write_to(dir.path(), "server").is_err(), "never overwrites");
    openssl_ok(
        dir.path(),
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.crt",
            "-untrusted",
            "server.crt",
            "server.crt",
        ],
    );
    // A real mTLS handshake with the in-memory fixtures.
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        pem::parse_many(server.chain_pem()).unwrap().into_iter().map(|p| p.into_contents().into()).collect();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.cert_der().to_vec().into()).unwrap();
    let roots = std::sync::Arc::new(roots);
    let server_cfg = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), tls::provider())
                .build()
                .unwrap(),
        )
        .with_single_cert(certs, rustls::pki_types::PrivateKeyDer::try_from(server.key_der().to_vec()).unwrap())
        .unwrap();
    let port = tls::serve(server_cfg, 1);
    let env = Env::new();
    std::fs::create_dir_all(env.depot()).unwrap();
    for f in ["root.crt", "client.crt", "client.key"] {
        std::fs::copy(dir.path().join(f), env.file(f)).unwrap();
    }
    let out = env.run(&[
        "probe",
        &format!("127.0.0.1:{port}"),
        "--servername",
        "localhost",
        "--ca",
        "root.crt",
        "--cert",
        "client.crt",
        "--key",
        "client.key",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn plan_entries_can_use_templates_by_name_or_file() {
    let env = Env::new();
    std::fs::write(env.tmp.path().join("signing.toml"), "kind = \"leaf\"\nkey_usage = [\"digitalSignature\"]\nextended_key_usage = [\"codeSigning\"]\nvalidity = \"30 days\"\n").unwrap();
    let plan = write_plan(&env, "[[ca]]\nname = \"R\"\ntemplate = \"ca\"\n[[leaf]]\nname = \"signer\"\nissuer = \"R\"\ntemplate = \"signing.toml\"\n");
    env.ok(&["apply", &plan]);
    with_cert(&env.file("signer.crt"), |c| {
        let e = c.extended_key_usage().unwrap().unwrap().value;
        assert!(e.code_signing && !e.server_auth);
    });
    let out = env.ok(&["apply", &plan]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stderr));
    let bad =
        write_plan(&env, "[[ca]]\nname = \"R\"\n[[leaf]]\nname = \"x\"\nissuer = \"R\"\ntemplate = \"missing.toml\"\n");
    let err = env.fails(&["apply", &bad], 2);
    assert!(err.contains(":6:") && err.contains("missing.toml"), "{err}");
}

/// A leaf under a plan's intermediate gets the same
/// NAME.chain.crt / NAME.fullchain.crt that `sign` writes, and a second run
/// of the unchanged plan writes nothing.
#[test]
fn apply_writes_chain_files_like_sign() {
    let env = Env::new();
    let plan = write_plan(&env, PLAN);
    env.ok(&["apply", &plan]);
    let d = env.depot();
    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    assert_eq!(read("api.chain.crt"), read("api.crt") + &read("Issuing.crt"));
    assert_eq!(read("api.fullchain.crt"), read("api.crt") + &read("Issuing.crt") + &read("Test_Root.crt"));
    assert!(!d.join("worker-1.chain.crt").exists(), "a leaf under the root needs no chain file");
    openssl_verify_server(&d, "Test_Root.crt", Some("api.chain.crt"), "api.crt");

    // The same files `sign` writes for a leaf under the same intermediate.
    env.ok(&["request-cert", "--domain", "signed.test"]);
    env.ok(&["sign", "signed.test", "--CA", "Issuing", "--profile", "server"]);
    assert_eq!(read("signed.test.chain.crt"), read("signed.test.crt") + &read("Issuing.crt"));

    let before = snapshot(&d);
    let out = env.ok(&["apply", &plan]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
    assert_eq!(snapshot(&d), before, "an unchanged plan writes nothing");

    // A chain file lost (or made by an older certforge) comes back.
    std::fs::remove_file(d.join("api.chain.crt")).unwrap();
    env.ok(&["apply", &plan]);
    assert_eq!(snapshot(&d), before);
}

/// `crl_url` on a plan CA (and a CA template) works as `init --crl-url`:
/// what the CA issues, by the plan or by `sign` afterwards, carries the CRL
/// Distribution Point (RFC 5280 §4.2.1.13).
#[test]
fn a_plan_ca_crl_url_reaches_every_certificate_it_issues() {
    let env = Env::new();
    let url = "http://ca.example.internal/crl/Plan_Root.crl";
    let plan = write_plan(
        &env,
        &format!("[[ca]]\nname = \"Plan Root\"\ncrl_url = \"{url}\"\n[[leaf]]\nname = \"web\"\nissuer = \"Plan Root\"\ndomains = [\"web.test\"]\n"),
    );
    env.ok(&["apply", &plan]);
    assert_eq!(std::fs::read_to_string(env.file("Plan_Root.crl-url")).unwrap().trim(), url);
    env.ok(&["request-cert", "--cn", "later", "--domain", "later.test", "--passphrase", ""]);
    env.ok(&["sign", "--CA", "Plan Root", "later"]);
    for leaf in ["web.crt", "later.crt"] {
        let text = openssl_ok(&env.depot(), &["x509", "-in", leaf, "-noout", "-ext", "crlDistributionPoints"]);
        assert!(text.contains(&format!("URI:{url}")), "{leaf}: {text}");
    }
    let root = openssl_ok(&env.depot(), &["x509", "-in", "Plan_Root.crt", "-noout", "-text"]);
    assert!(!root.contains("CRL Distribution"), "the root itself has none: {root}");
    let out = env.ok(&["apply", &plan, "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"), "a second run keeps everything");

    let template = env.tmp.path().join("ca.toml");
    std::fs::write(
        &template,
        format!("kind = \"ca\"\nkey_usage = [\"keyCertSign\", \"cRLSign\"]\ncrl_url = \"{url}\"\n"),
    )
    .unwrap();
    env.ok(&["init", "--cn", "Templated", "--passphrase", "", "--template", &template.display().to_string()]);
    assert_eq!(std::fs::read_to_string(env.file("Templated.crl-url")).unwrap().trim(), url);
}
