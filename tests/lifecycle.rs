//! List and expiry checks, renewal, chain files, and exports for
//! Java (PKCS#12, truststore), env-configured services and Kubernetes.

mod common;

use std::process::Command;

use common::{mode, openssl, openssl_ok, openssl_verify_server, printed_command, with_cert, Env};
use serde_json::Value;

/// A depot with a valid, a soon-expiring, an expired and a revoked leaf, a
/// pending request, and a leaf under an intermediate.
fn depot() -> Env {
    let env = Env::new();
    env.blog_workflow();
    env.ok(&["request-cert", "--domain", "soon.example.com"]);
    env.ok(&["sign", "soon.example.com", "--CA", "gRPC Root CA", "--expires", "10 days"]);
    env.ok(&["request-cert", "--domain", "old.example.com"]);
    env.ok(&[
        "sign",
        "old.example.com",
        "--CA",
        "gRPC Root CA",
        "--not-before",
        "2026-01-01T00:00:00Z",
        "--not-after",
        "2026-02-01T00:00:00Z",
    ]);
    env.ok(&["request-cert", "--domain", "gone.example.com"]);
    env.ok(&["sign", "gone.example.com", "--CA", "gRPC Root CA"]);
    env.ok(&["revoke", "--CN", "gone.example.com", "--CA", "gRPC Root CA"]);
    env.ok(&["request-cert", "--cn", "pending"]);
    env.ok(&["request-cert", "--cn", "Issuing CA"]);
    env.ok(&["sign", "Issuing CA", "--CA", "gRPC Root CA", "--intermediate"]);
    env.ok(&["request-cert", "--domain", "deep.example.com"]);
    env.ok(&["sign", "deep.example.com", "--CA", "Issuing CA", "--profile", "server"]);
    env
}

fn list_json(env: &Env, args: &[&str]) -> (Option<i32>, Value) {
    let mut full = vec!["list", "--json"];
    full.extend_from_slice(args);
    let out = env.run(&full);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr))),
    )
}

#[test]
fn list_shows_kinds_statuses_and_sorts_by_expiry() {
    let env = depot();
    let (code, v) = list_json(&env, &[]);
    assert_eq!(code, Some(0));
    let rows = v.as_array().unwrap();
    let by = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("{n} missing in {v}"));
    assert_eq!(by("gRPC_Root_CA")["kind"], "CA");
    assert_eq!(by("Issuing_CA")["kind"], "intermediate");
    assert_eq!(by("deep.example.com")["kind"], "server");
    assert_eq!(by("deep.example.com")["issuer"], "Issuing CA");
    assert_eq!(by("localhost")["kind"], "peer");
    assert_eq!(by("localhost")["sans"], serde_json::json!([{"type": "dns", "value": "localhost"}]));
    assert_eq!(by("soon.example.com")["status"], "expiring");
    assert_eq!(by("old.example.com")["status"], "expired");
    assert_eq!(by("gone.example.com")["status"], "revoked");
    assert_eq!(by("pending")["kind"], "CSR only");
    assert!(rows.iter().all(|r| !r["name"].as_str().unwrap().contains("chain")), "chain files are not entries");
    let days: Vec<i64> = rows.iter().filter_map(|r| r["days_left"].as_i64()).collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "sorted by expiry: {days:?}");
    let out = env.ok(&["list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("NAME") && !text.contains('\x1b'), "a table without colour when not a terminal:\n{text}");
}

#[test]
fn list_tree_draws_the_hierarchy() {
    let env = depot();
    let out = env.ok(&["list", "--tree"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().starts_with("gRPC_Root_CA (CA"), "{text}");
    assert!(text.contains("└── Issuing_CA (intermediate") || text.contains("├── Issuing_CA (intermediate"), "{text}");
    assert!(text.contains("    └── deep.example.com (server"), "{text}");
    let (_, v) = list_json(&env, &["--tree"]);
    let root = v.as_array().unwrap().iter().find(|r| r["name"] == "gRPC_Root_CA").unwrap();
    let issuing = root["children"].as_array().unwrap().iter().find(|r| r["name"] == "Issuing_CA").unwrap();
    assert_eq!(issuing["children"][0]["name"], "deep.example.com");
}

#[test]
fn expiring_within_lists_due_and_expired_entries_and_fails_ci() {
    let env = depot();
    let (code, v) = list_json(&env, &["--expiring-within", "30d"]);
    assert_eq!(code, Some(1));
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["old.example.com", "soon.example.com"]);
    let fresh = Env::new();
    fresh.blog_workflow();
    let out = fresh.run(&["list", "--expiring-within", "30 days"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing expires within 30 days"));
    let err = fresh.fails(&["list", "--expiring-within", "soon"], 2);
    assert!(err.contains("--expiring-within"), "{err}");
}

#[test]
fn renew_keeps_names_profile_and_key_and_archives_the_old_cert() {
    let env = depot();
    let old = std::fs::read(env.file("deep.example.com.crt")).unwrap();
    let (old_serial, old_spki) =
        with_cert(&env.file("deep.example.com.crt"), |c| (c.raw_serial().to_vec(), c.public_key().raw.to_vec()));
    env.ok(&["renew", "deep.example.com", "--expires", "90 days"]);
    with_cert(&env.file("deep.example.com.crt"), |c| {
        assert_ne!(c.raw_serial(), old_serial.as_slice());
        assert_eq!(c.public_key().raw, old_spki.as_slice(), "key kept");
        assert!(common::sans(c).iter().any(|g| g.contains("deep.example.com")));
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth, "profile server kept");
        let days = (c.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        assert!((89..=90).contains(&days));
    });
    let archived: Vec<_> = std::fs::read_dir(env.file("archive")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(std::fs::read(&archived[0]).unwrap(), old, "the old certificate is kept byte for byte");
    let d = env.depot();
    openssl_verify_server(&d, "gRPC_Root_CA.crt", Some("Issuing_CA.crt"), "deep.example.com.crt");
    let chain = std::fs::read_to_string(env.file("deep.example.com.chain.crt")).unwrap();
    assert!(
        chain.starts_with(&std::fs::read_to_string(env.file("deep.example.com.crt")).unwrap()),
        "chain file follows the renewal"
    );

    let old_spki = with_cert(&env.file("localhost.crt"), |c| c.public_key().raw.to_vec());
    env.ok(&["renew", "localhost", "--rekey"]);
    assert_ne!(
        with_cert(&env.file("localhost.crt"), |c| c.public_key().raw.to_vec()),
        old_spki,
        "--rekey makes a new key"
    );
    let key_pub = openssl_ok(&d, &["pkey", "-in", "localhost.key", "-pubout"]);
    let crt_pub = openssl_ok(&d, &["x509", "-in", "localhost.crt", "-noout", "-pubkey"]);
    assert_eq!(key_pub, crt_pub, "the new key matches the renewed cert");
    assert_eq!(mode(&env.file("localhost.key")), 0o600);
    assert!(
        std::fs::read_dir(env.file("archive")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".key")),
        "old key archived"
    );
}

#[test]
fn renewing_a_ca_keeps_its_key_so_old_leaves_still_verify() {
    let env = depot();
    env.ok(&["renew", "gRPC Root CA"]);
    let d = env.depot();
    let (ok, out) = openssl(
        &d,
        &["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "gRPC_Root_CA.crt", "localhost.crt"],
    );
    assert!(ok, "a leaf signed before the renewal verifies under the new root: {out}");
    let err = env.fails(&["renew", "gRPC Root CA", "--rekey"], 2);
    assert!(err.contains("keeps its key"), "{err}");
    env.ok(&["verify", "gone.example.com"]);
}

#[test]
fn renew_all_renews_only_what_is_due() {
    let env = depot();
    let before = |n: &str| with_cert(&env.file(&format!("{n}.crt")), |c| c.raw_serial().to_vec());
    let (soon, old, local) = (before("soon.example.com"), before("old.example.com"), before("localhost"));
    env.ok(&["renew", "--all", "--expiring-within", "30d", "--expires", "1 year"]);
    assert_ne!(before("soon.example.com"), soon);
    assert_ne!(before("old.example.com"), old);
    assert_eq!(before("localhost"), local, "not due, not renewed");
    let (code, _) = list_json(&env, &["--expiring-within", "30d"]);
    assert_eq!(code, Some(0), "nothing is due after renewal");
    env.fails(&["renew", "--all"], 2);
    let err = env.fails(&["renew", "nope"], 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn pkcs12_is_read_by_openssl_3_without_legacy_and_by_keytool() {
    let env = depot();
    let t = env.tmp.path();
    std::fs::write(t.join("pw.txt"), "s3cret\n").unwrap();
    env.ok(&[
        "export",
        "deep.example.com",
        "--format",
        "pkcs12",
        "--password-file",
        t.join("pw.txt").to_str().unwrap(),
        "--out",
        t.join("deep.p12").to_str().unwrap(),
    ]);
    assert_eq!(mode(&t.join("deep.p12")), 0o600);
    let info = openssl_ok(t, &["pkcs12", "-info", "-noout", "-in", "deep.p12", "-passin", "pass:s3cret"]);
    assert!(info.contains("AES-256-CBC") || info.contains("aes-256-cbc"), "{info}");
    let pem = openssl_ok(t, &["pkcs12", "-in", "deep.p12", "-passin", "pass:s3cret", "-nodes"]);
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 3, "leaf, intermediate and root:\n{pem}");
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    std::fs::write(t.join("back.pem"), &pem).unwrap();
    let a = openssl_ok(t, &["pkey", "-in", "back.pem", "-pubout"]);
    let b = openssl_ok(&env.depot(), &["pkey", "-in", "deep.example.com.key", "-pubout"]);
    assert_eq!(a, b, "the key reads back");
    assert!(!openssl(t, &["pkcs12", "-info", "-noout", "-in", "deep.p12", "-passin", "pass:wrong"]).0);

    env.ok(&[
        "export",
        "localhost",
        "--format",
        "p12",
        "--password",
        "s3cret",
        "--legacy",
        "--alias",
        "grpc-server",
        "--out",
        t.join("legacy.p12").to_str().unwrap(),
    ]);
    let info = openssl_ok(t, &["pkcs12", "-info", "-noout", "-legacy", "-in", "legacy.p12", "-passin", "pass:s3cret"]);
    assert!(info.contains("3-KeyTripleDES") || info.contains("des-ede3"), "{info}");

    env.ok(&[
        "export",
        "gRPC Root CA",
        "--format",
        "truststore",
        "--password",
        "changeit",
        "--out",
        t.join("trust.p12").to_str().unwrap(),
    ]);
    assert_eq!(mode(&t.join("trust.p12")), 0o644, "a truststore holds no secret");
    if keytool() {
        let list = |file: &str, pass: &str| {
            let ks = Command::new("keytool")
                .args([
                    "-list",
                    "-storetype",
                    "PKCS12",
                    "-keystore",
                    t.join(file).to_str().unwrap(),
                    "-storepass",
                    pass,
                ])
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&ks.stdout), String::from_utf8_lossy(&ks.stderr));
            assert!(ks.status.success(), "keytool -list {file}: {text}");
            text
        };
        assert!(list("deep.p12", "s3cret").contains("PrivateKeyEntry"));
        assert!(list("trust.p12", "changeit").contains("trustedCertEntry"));
        assert!(list("legacy.p12", "s3cret").contains("grpc-server"), "the alias is kept");
    }
    let err = env.fails(&["export", "localhost", "--format", "pkcs12", "--out", t.join("x.p12").to_str().unwrap()], 2);
    assert!(err.contains("password"), "{err}");
}

fn keytool() -> bool {
    let ok = Command::new("keytool").arg("-help").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
            "keytool is required here: apt-get install openjdk-17-jre-headless"
        );
        eprintln!("SKIPPED: keytool is not installed (apt-get install openjdk-17-jre-headless)");
    }
    ok
}

#[test]
fn env_export_round_trips_through_eval_byte_for_byte() {
    let env = depot();
    let out = env.ok(&["export", "deep.example.com", "--format", "env", "--prefix", "TLS_SERVER"]);
    std::fs::write(env.tmp.path().join("vars.sh"), &out.stdout).unwrap();
    let script = "set -e; eval \"$(cat vars.sh)\"; printf %s \"$TLS_SERVER_CERT\" > c.pem; printf %s \"$TLS_SERVER_KEY\" > k.pem; printf %s \"$TLS_SERVER_ROOT_CA\" > r.pem; printf %s \"$TLS_SERVER_CERT_CHAIN\" > ch.pem";
    let st = Command::new("sh").current_dir(env.tmp.path()).args(["-c", script]).status().unwrap();
    assert!(st.success());
    let same = |a: &str, b: &str| {
        assert_eq!(std::fs::read(env.tmp.path().join(a)).unwrap(), std::fs::read(env.file(b)).unwrap(), "{a} vs {b}")
    };
    same("c.pem", "deep.example.com.crt");
    same("k.pem", "deep.example.com.key");
    same("r.pem", "gRPC_Root_CA.crt");
    same("ch.pem", "deep.example.com.chain.crt");
    let err = env.fails(&["export", "localhost", "--format", "env", "--prefix", "bad prefix"], 2);
    assert!(err.contains("--prefix"), "{err}");
}

#[test]
fn k8s_secret_parses_back_with_the_right_contents() {
    let env = depot();
    let out =
        env.ok(&["export", "deep.example.com", "--format", "k8s", "--name", "grpc-server", "--namespace", "prod"]);
    let y: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(y["kind"].as_str(), Some("Secret"));
    assert_eq!(y["type"].as_str(), Some("kubernetes.io/tls"));
    assert_eq!(y["metadata"]["name"].as_str(), Some("grpc-server"));
    assert_eq!(y["metadata"]["namespace"].as_str(), Some("prod"));
    use base64::Engine;
    let dec = |k: &str| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(y["data"][k].as_str().unwrap()).unwrap())
            .unwrap()
    };
    assert!(dec("tls.crt").starts_with(&std::fs::read_to_string(env.file("deep.example.com.crt")).unwrap()));
    assert_eq!(dec("tls.crt").matches("BEGIN CERTIFICATE").count(), 2, "leaf + intermediate");
    assert_eq!(dec("ca.crt"), std::fs::read_to_string(env.file("gRPC_Root_CA.crt")).unwrap());
    assert!(dec("tls.key").starts_with("-----BEGIN PRIVATE KEY-----"));
    let out = env.ok(&["export", "grpc_client", "--format", "k8s"]);
    let y: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(y["metadata"]["name"].as_str(), Some("grpc-client"), "a DNS-1123 name by default");
    env.fails(&["export", "localhost", "--format", "k8s", "--name", "Bad_Name"], 2);
}

#[test]
fn keys_never_go_to_a_terminal_without_force() {
    let env = depot();
    let bin = assert_cmd::cargo::cargo_bin("certforge");
    let cmd = |extra: &str| {
        format!("{} --depot-path {} export localhost --format env{extra}", bin.display(), env.depot().display())
    };
    let run = |c: String| {
        Command::new("script").args(["-qec", &c, "/dev/null"]).output().expect("script (util-linux) gives a terminal")
    };
    let out = run(cmd(""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("holds the private key") && !text.contains("PRIVATE KEY-----"), "{text}");
    let out = run(cmd(" --force"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN PRIVATE KEY"));
}

#[test]
fn bundle_export_and_chain_files() {
    let env = depot();
    let out = env.ok(&["export", "deep.example.com", "--format", "bundle"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!text.contains("PRIVATE KEY"));
    let out = env.ok(&["export", "deep.example.com", "--format", "bundle", "--with-key"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));
    assert_eq!(
        std::fs::read_to_string(env.file("deep.example.com.fullchain.crt"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        3
    );
    assert!(!env.file("localhost.chain.crt").exists(), "a leaf of the root needs no chain file");
    let d = env.depot();
    openssl_ok(
        &d,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "gRPC_Root_CA.crt",
            "-untrusted",
            "deep.example.com.chain.crt",
            "deep.example.com.crt",
        ],
    );
}

/// A renewal is never due again under the window that
/// selected it, so the README's `list || renew --all` pipeline converges.
#[test]
fn renew_never_leaves_a_certificate_due_under_its_window() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Short CA", "--expires", "20 days"]);
    env.ok(&["request-cert", "--domain", "ten.example.com"]);
    env.ok(&["sign", "ten.example.com", "--CA", "Short CA", "--expires", "10d"]);
    env.ok(&["request-cert", "--domain", "fixed.example.com"]);
    env.ok(&["sign", "fixed.example.com", "--CA", "Short CA", "--expires", "10d"]);
    let days_left = |n: &str| {
        with_cert(&env.file(&format!("{n}.crt")), |c| {
            (c.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400
        })
    };

    // A plain `renew NAME` checks against 30 days; the CA, itself due, is
    // named as what to renew first, and nothing changes.
    let before = env.snapshot();
    let err = env.fails(&["renew", "ten.example.com"], 1);
    assert!(err.contains("renew the CA first") && err.contains("Short_CA"), "{err}");
    assert_eq!(env.snapshot(), before, "a refused renewal writes nothing");

    // The README's pipeline: list fails, renew --all renews the CA first and
    // then the leaves, and the next list passes.
    env.fails(&["list", "--expiring-within", "30d"], 1);
    let out = env.ok(&["renew", "--all", "--expiring-within", "30d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("default of 10 years") && err.contains("default of 2 years"), "says why, in one line: {err}");
    assert!(days_left("ten.example.com") > 700, "the profile's lifetime, not 10 days again");
    assert!(days_left("Short_CA") > 3600);
    let (code, _) = list_json(&env, &["--expiring-within", "30d"]);
    assert_eq!(code, Some(0), "nothing is due after `renew --all`");
    openssl_verify_server(&env.depot(), "Short_CA.crt", None, "ten.example.com.crt");

    // A wider window for one name, and --expires still wins (with a warning).
    let before = env.snapshot();
    let err = env.fails(&["renew", "fixed.example.com", "--expiring-within", "3 years"], 2);
    assert!(err.contains("default of 2 years") && err.contains("--expires"), "{err}");
    assert_eq!(env.snapshot(), before);
    env.ok(&["renew", "fixed.example.com", "--expiring-within", "3 years", "--expires", "4 years"]);
    assert!(days_left("fixed.example.com") > 4 * 365 - 2);
    let out = env.ok(&["renew", "fixed.example.com", "--expires", "10d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("due again at once"));
    assert!((9..=10).contains(&days_left("fixed.example.com")), "--expires wins");
}

/// `sign --intermediate` gives the new CA an empty CRL,
/// as `init` and `apply` do, so `openssl verify -crl_check_all` works at
/// once for what it signs.
#[test]
fn sign_intermediate_writes_its_crl() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Root"]);
    env.ok(&["request-cert", "--cn", "Issuing CA"]);
    let out = env.ok(&["sign", "Issuing CA", "--CA", "Root", "--intermediate"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Issuing_CA.crl"), "the CRL is reported");
    env.ok(&["request-cert", "--domain", "svc.example.com"]);
    env.ok(&["sign", "svc.example.com", "--CA", "Issuing CA", "--profile", "server"]);
    let d = env.depot();
    openssl_ok(&d, &["crl", "-in", "Issuing_CA.crl", "-CAfile", "Issuing_CA.crt", "-noout"]);
    let crls = format!("{}", d.join("all.crl").display());
    let mut all = std::fs::read(d.join("Root.crl")).unwrap();
    all.extend(std::fs::read(d.join("Issuing_CA.crl")).unwrap());
    std::fs::write(&crls, all).unwrap();
    openssl_ok(
        &d,
        &[
            "verify",
            "-x509_strict",
            "-crl_check_all",
            "-CRLfile",
            &crls,
            "-CAfile",
            "Root.crt",
            "-untrusted",
            "Issuing_CA.crt",
            "svc.example.com.crt",
        ],
    );
    std::fs::remove_file(&crls).unwrap();
    env.ok(&["revoke", "--CN", "svc.example.com", "--CA", "Issuing CA"]);
    let (_, listed) = list_json(&env, &[]);
    let svc = listed.as_array().unwrap().iter().find(|r| r["name"] == "svc.example.com").unwrap().clone();
    assert!(!svc["revoked"].is_null(), "the revocation lands in the CRL sign wrote: {svc}");

    // An old NAME.crl is never overwritten: refused before anything is made.
    env.ok(&["request-cert", "--cn", "Second CA"]);
    std::fs::write(env.file("Second_CA.crl"), "left over").unwrap();
    let before = env.snapshot();
    let err = env.fails(&["sign", "Second CA", "--CA", "Root", "--intermediate"], 1);
    assert!(err.contains("Second_CA.crl already exists"), "{err}");
    assert_eq!(env.snapshot(), before);
}

/// Signing over an existing certificate points to `renew` (and `--rekey`,
/// which a revoked one needs) with the depot path, and the printed line
/// works as printed; before, it said "Revoke or move the old one aside",
/// and after `revoke` the same again.
#[test]
fn sign_over_an_existing_certificate_points_to_renew_which_works_as_printed() {
    let env = Env::new();
    env.blog_workflow();
    let spki = |env: &Env| with_cert(&env.file("localhost.crt"), |c| c.public_key().raw.to_vec());
    let before = env.snapshot();
    let err = env.fails(&["sign", "localhost", "--CA", "gRPC Root CA"], 1);
    assert_eq!(env.snapshot(), before);
    assert!(!err.contains("Revoke or move"), "{err}");
    let depot = env.depot().display().to_string();
    let renew = printed_command(&err, "certforge --depot-path");
    assert_eq!(renew, format!("certforge --depot-path {depot} renew localhost"), "{err}");
    assert!(err.contains(&format!("{renew} --rekey")), "{err}");
    let old_key = spki(&env);
    let out = env.run_printed(&renew);
    assert!(out.status.success(), "{renew}: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(spki(&env), old_key, "renew keeps the key");

    env.ok(&["revoke", "--CN", "localhost", "--CA", "gRPC Root CA"]);
    let err = env.fails(&["sign", "localhost", "--CA", "gRPC Root CA"], 1);
    assert!(err.contains("revoked"), "{err}");
    let rekey = printed_command(&err, "certforge --depot-path");
    assert_eq!(rekey, format!("certforge --depot-path {depot} renew localhost --rekey"), "{err}");
    let out = env.run_printed(&rekey);
    assert!(out.status.success(), "{rekey}: {}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(spki(&env), old_key, "a revoked certificate gets a new key");
    openssl_verify_server(&env.depot(), "gRPC_Root_CA.crt", None, "localhost.crt");
}

/// `renew --rekey` makes a key of the old key's type and size. certforge
/// makes RSA 2048, 3072 and 4096 only, so for an RSA 8192 entry (a CSR made
/// by openssl, signed by certforge) it refuses, naming the key, and writes
/// nothing, where it once made an RSA 2048 key without a word. The
/// openssl line it prints instead makes and signs an RSA 8192 key as printed.
#[test]
fn rekey_of_a_key_certforge_cannot_make_refuses_and_changes_nothing() {
    let env = Env::new();
    env.ok(&["init", "--common-name", "Big CA"]);
    openssl_ok(
        &env.depot(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:8192",
            "-nodes",
            "-keyout",
            "big.example.com.key",
            "-subj",
            "/O=Big Org/CN=big.example.com",
            "-addext",
            "subjectAltName=DNS:big.example.com,IP:127.0.0.1",
            "-out",
            "big.example.com.csr",
        ],
    );
    env.ok(&["sign", "big.example.com", "--CA", "Big CA", "--profile", "server"]);
    let key = |name: &str| with_cert(&env.file(name), |c| certforge::pki::keys::KeySpec::from_spki(c.public_key().raw));
    assert_eq!(key("big.example.com.crt"), Ok(certforge::pki::keys::KeySpec::Rsa(8192)));

    let before = env.snapshot();
    let err = env.fails(&["renew", "--rekey", "big.example.com"], 2);
    assert!(err.contains("big.example.com has an RSA 8192 key, which certforge cannot generate"), "{err}");
    assert!(err.contains("drop --rekey"), "{err}");
    assert_eq!(env.snapshot(), before, "a refused --rekey writes nothing");

    let line = printed_command(&err, "openssl genpkey");
    let out = env.run_printed(&line);
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(key("big.example.com-rekeyed.crt"), Ok(certforge::pki::keys::KeySpec::Rsa(8192)));
    assert_eq!(mode(&env.file("big.example.com-rekeyed.key")), 0o600, "openssl writes a new key owner-only");
    assert_ne!(
        with_cert(&env.file("big.example.com-rekeyed.crt"), |c| c.public_key().raw.to_vec()),
        with_cert(&env.file("big.example.com.crt"), |c| c.public_key().raw.to_vec()),
        "a new key"
    );
    let sans = |name: &str| with_cert(&env.file(name), |c| format!("{:?}", c.subject_alternative_name().unwrap()));
    assert_eq!(sans("big.example.com-rekeyed.crt"), sans("big.example.com.crt"));
    let subject = |name: &str| with_cert(&env.file(name), |c| c.subject().to_string());
    assert_eq!(subject("big.example.com-rekeyed.crt"), "O=Big Org, CN=big.example.com");
    openssl_verify_server(&env.depot(), "Big_CA.crt", None, "big.example.com-rekeyed.crt");
}
