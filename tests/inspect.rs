//! `inspect` shows what certificates, CSRs, CRLs and keys hold, for files
//! made by certforge and by openssl, as text and as JSON parsed back.

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::{openssl_guide_ca, openssl_ok, Env};
use serde_json::Value;

fn json(env: &Env, args: &[&str]) -> Value {
    let mut full = vec!["inspect"];
    full.extend_from_slice(args);
    full.push("--json");
    let out = env.ok(&full);
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

#[test]
fn inspect_shows_a_certforge_leaf_in_full() {
    let env = Env::new();
    env.ok(&["init", "--cn", "gRPC Root CA", "--permit-domain", "example.com,localhost"]);
    env.ok(&[
        "request-cert",
        "--domain",
        "localhost,api.example.com",
        "--ip",
        "127.0.0.1",
        "--uri",
        "spiffe://example.com/api",
        "--email",
        "ops@example.com",
    ]);
    env.ok(&["sign", "localhost", "--CA", "gRPC Root CA", "--profile", "server", "--expires", "90 days"]);
    let v = json(&env, &["localhost"]);
    let c = &v[0]["objects"][0];
    assert_eq!(c["type"], "certificate");
    assert_eq!(c["subject"], "CN=localhost");
    assert_eq!(c["issuer"], "CN=gRPC Root CA");
    assert_eq!(c["sans"]["dns"], serde_json::json!(["localhost", "api.example.com"]));
    assert_eq!(c["sans"]["ip"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(c["sans"]["uri"], serde_json::json!(["spiffe://example.com/api"]));
    assert_eq!(c["sans"]["email"], serde_json::json!(["ops@example.com"]));
    assert_eq!(c["profile"], "server");
    assert_eq!(c["extended_key_usage"], serde_json::json!(["serverAuth"]));
    assert_eq!(c["key_usage"], serde_json::json!(["digitalSignature"]));
    assert_eq!(c["key"]["description"], "ECDSA P-256");
    assert_eq!(c["is_ca"], false);
    assert!((89..=90).contains(&c["days_left"].as_i64().unwrap()));
    assert_eq!(c["fingerprints"]["sha256"].as_str().unwrap().len(), 32 * 3 - 1);
    let openssl_fp = openssl_ok(&env.depot(), &["x509", "-in", "localhost.crt", "-noout", "-fingerprint", "-sha256"]);
    assert!(openssl_fp.contains(c["fingerprints"]["sha256"].as_str().unwrap()), "{openssl_fp}");
    assert!(c["subject_key_id"].is_string() && c["authority_key_id"].is_string());
    let ca = &json(&env, &["gRPC Root CA"])[0]["objects"][0];
    assert_eq!(ca["is_ca"], true);
    assert_eq!(ca["path_len"], Value::Null);
    // The two DNS names given, and the loopback ranges a DNS-only list gets.
    assert_eq!(ca["name_constraints"]["permitted"].as_array().unwrap().len(), 4, "{}", ca["name_constraints"]);
    assert!(ca["subject_key_id"].is_string());
    assert_eq!(ca["authority_key_id"], Value::Null, "a self-signed root carries no AKI");

    let out = env.ok(&["inspect", "localhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for w in [
        "localhost.crt: certificate",
        "CN=gRPC Root CA",
        "days left",
        "SANs DNS         localhost, api.example.com",
        "SANs IP          127.0.0.1",
        "profile server",
        "SHA-256",
    ] {
        assert!(text.contains(w), "{w} missing:\n{text}");
    }
}

#[test]
fn inspect_reads_openssl_certificates_csrs_and_der() {
    let env = Env::new();
    let t = env.tmp.path();
    openssl_guide_ca(t);
    openssl_ok(
        t,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "srv.key",
            "-subj",
            "/CN=srv",
            "-addext",
            "subjectAltName=DNS:srv.example.com,IP:0.0.0.0",
            "-out",
            "srv.csr",
        ],
    );
    openssl_ok(t, &["x509", "-in", "ca.crt", "-outform", "DER", "-out", "ca.der"]);
    let v = json(
        &env,
        &[t.join("ca.crt").to_str().unwrap(), t.join("srv.csr").to_str().unwrap(), t.join("ca.der").to_str().unwrap()],
    );
    let ca = &v[0]["objects"][0];
    assert_eq!(ca["subject"], "C=US, ST=CA, O=MyOrg, CN=MyCA");
    assert_eq!(ca["key"]["description"], "RSA 2048");
    assert_eq!(ca["self_signed"], true);
    assert_eq!(ca["key_usage"], serde_json::json!([]), "openssl req -x509 sets no keyUsage");
    let csr = &v[1]["objects"][0];
    assert_eq!(csr["type"], "csr");
    assert_eq!(csr["key"]["description"], "ECDSA P-384");
    assert_eq!(csr["signature_valid"], true);
    assert_eq!(csr["sans"]["ip"], serde_json::json!(["0.0.0.0"]));
    assert_eq!(v[2]["objects"][0]["fingerprints"], ca["fingerprints"], "DER and PEM of one certificate agree");
}

#[test]
fn inspect_shows_bundles_crls_and_keys_without_their_secrets() {
    let env = Env::new();
    env.blog_workflow();
    env.ok(&["revoke", "--CN", "localhost", "--CA", "gRPC Root CA", "--reason", "superseded"]);
    env.ok(&["request-cert", "--cn", "locked", "--passphrase", "pw"]);
    let d = env.depot();
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(d.join("localhost.crt")).unwrap(),
        std::fs::read_to_string(d.join("gRPC_Root_CA.crt")).unwrap()
    );
    std::fs::write(env.tmp.path().join("bundle.pem"), bundle).unwrap();
    let v = json(
        &env,
        &[env.tmp.path().join("bundle.pem").to_str().unwrap(), "gRPC_Root_CA.crl", "localhost.key", "locked.key"],
    );
    assert_eq!(v[0]["objects"].as_array().unwrap().len(), 2, "both certificates of the bundle");
    let crl = &v[1]["objects"][0];
    assert_eq!(crl["type"], "crl");
    assert_eq!(crl["crl_number"], "2");
    assert_eq!(crl["entries"][0]["reason"], "superseded");
    assert!(crl["days_to_next_update"].as_i64().unwrap() > 300);
    let key = &v[2]["objects"][0];
    assert_eq!(key["type"], "key");
    assert_eq!(key["key"]["description"], "ECDSA P-256");
    assert_eq!(key["encrypted"], false);
    assert!(key["belongs_to"][0].as_str().unwrap().ends_with("localhost.crt"));
    let locked = &v[3]["objects"][0];
    assert_eq!(locked["encrypted"], true);
    assert!(locked["problem"].as_str().unwrap().contains("--passphrase"));
    let out = env.ok(&["inspect", "localhost.key", "locked.key", "--passphrase", "pw"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("belongs to") && !text.contains("BEGIN"), "no secret is printed:\n{text}");
    let all = serde_json::to_string(&v).unwrap();
    assert!(!all.contains("PRIVATE KEY"));
}

#[test]
fn inspect_names_what_it_cannot_read() {
    let env = Env::new();
    std::fs::write(env.tmp.path().join("junk.txt"), "hello").unwrap();
    let err = env.fails(&["inspect", env.tmp.path().join("junk.txt").to_str().unwrap()], 1);
    assert!(err.contains("junk.txt") && err.contains("neither PEM"), "{err}");
    let err = env.fails(&["inspect", "no-such-thing"], 1);
    assert!(err.contains("no-such-thing"), "{err}");
}

/// `list --json` gave SANs as one string ("DNS:a", or "none"), which a
/// script had to parse again; `list` and `probe` give them typed, as
/// `[{"type": "dns", "value": "a"}]`, the text output unchanged.
#[test]
fn list_and_probe_json_give_sans_as_typed_entries() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Root"]);
    env.ok(&["request-cert", "--cn", "api", "--domain", "localhost,api.test", "--ip", "127.0.0.1,::1"]);
    env.ok(&["request-cert", "--cn", "svc", "--uri", "spiffe://test/svc", "--email", "ops@example.com"]);
    env.ok(&["request-cert", "--cn", "pending", "--domain", "later.test"]);
    env.ok(&["sign", "api", "--CA", "Root"]);
    env.ok(&["sign", "svc", "--CA", "Root", "--profile", "client"]);
    let out = env.ok(&["list", "--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sans = |name: &str| rows.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["sans"].clone();
    let typed = |pairs: &[(&str, &str)]| {
        Value::Array(pairs.iter().map(|(t, v)| serde_json::json!({"type": t, "value": v})).collect())
    };
    assert_eq!(
        sans("api"),
        typed(&[("dns", "localhost"), ("dns", "api.test"), ("ip", "127.0.0.1"), ("ip", "::1")]),
        "{rows}"
    );
    assert_eq!(sans("svc"), typed(&[("uri", "spiffe://test/svc"), ("email", "ops@example.com")]));
    assert_eq!(sans("Root"), typed(&[]), "a CA without SANs has none, not \"none\"");
    assert_eq!(sans("pending"), typed(&[]), "a CSR not signed yet");
    let tree: Value = serde_json::from_slice(&env.ok(&["list", "--tree", "--json"]).stdout).unwrap();
    let api = tree[0]["children"].as_array().unwrap().iter().find(|r| r["name"] == "api").unwrap();
    assert_eq!(api["sans"], sans("api"), "the tree gives the same shape");
    let text = String::from_utf8_lossy(&env.ok(&["list"]).stdout).into_owned();
    assert!(text.contains("DNS:localhost, DNS:api.test, IP:127.0.0.1") && text.contains("  none  "), "{text}");
    assert!(text.contains("URI:spiffe://test/svc, email:ops@example.com"), "{text}");

    let cfg = tls::server_config(&env.file("api.crt"), &env.file("api.key"), None, &[&rustls::version::TLS13]);
    let port = tls::serve(cfg, 1);
    let out = env.run(&["probe", &format!("127.0.0.1:{port}"), "--servername", "localhost", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["chain"][0]["sans"], sans("api"), "{v}");
}
