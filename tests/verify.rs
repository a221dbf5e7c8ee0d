//! `verify` names the cause of a failed handshake: a table of broken
//! situations, each made with the CLI itself (and openssl where certforge
//! rightly refuses to make it), with the reason `verify` must give.

mod common;

use common::{openssl_sign, Env, OPENSSL_CA_EXT};

/// A depot holding every situation of the table.
fn situations() -> Env {
    let env = Env::new();
    env.blog_workflow();
    env.intruder();
    let ok = |args: &[&str]| {
        env.ok(args);
    };
    ok(&["request-cert", "--domain", "grpc.example.com", "--ip", "10.1.2.3,::1"]);
    ok(&["sign", "grpc.example.com", "--CA", "gRPC Root CA", "--profile", "server"]);
    ok(&["request-cert", "--domain", "*.apps.example.com"]);
    ok(&["sign", "*.apps.example.com", "--CA", "gRPC Root CA", "--profile", "server"]);
    ok(&["request-cert", "--domain", "old.example.com"]);
    ok(&[
        "sign",
        "old.example.com",
        "--CA",
        "gRPC Root CA",
        "--not-before",
        "2020-01-01T00:00:00Z",
        "--not-after",
        "2021-01-01T00:00:00Z",
    ]);
    ok(&["request-cert", "--domain", "future.example.com"]);
    ok(&[
        "sign",
        "future.example.com",
        "--CA",
        "gRPC Root CA",
        "--not-before",
        "2030-01-01T00:00:00Z",
        "--not-after",
        "2031-01-01T00:00:00Z",
    ]);
    ok(&["request-cert", "--domain", "gone.example.com"]);
    ok(&["sign", "gone.example.com", "--CA", "gRPC Root CA"]);
    ok(&["revoke", "--CN", "gone.example.com", "--CA", "gRPC Root CA", "--reason", "keyCompromise"]);
    // A two-level chain: Root2 -> Issuing -> deep.example.com.
    ok(&["init", "--cn", "Root2"]);
    ok(&["request-cert", "--cn", "Issuing"]);
    ok(&["sign", "Issuing", "--CA", "Root2", "--intermediate"]);
    ok(&["request-cert", "--domain", "deep.example.com"]);
    ok(&["sign", "deep.example.com", "--CA", "Issuing"]);
    // A CA with pathLen 0 that (through openssl, since certforge refuses)
    // issued an intermediate, which issued a leaf.
    ok(&["init", "--cn", "Tight", "--path-length", "0"]);
    ok(&["request-cert", "--cn", "Sneaky"]);
    let d = env.depot();
    openssl_sign(&d, "Sneaky.csr", "Tight", OPENSSL_CA_EXT, "Sneaky.crt", &[]);
    ok(&["request-cert", "--domain", "pl.example.com"]);
    ok(&["sign", "pl.example.com", "--CA", "Sneaky"]);
    // A name-constrained CA that (through openssl) signed a name outside.
    ok(&["init", "--cn", "Scoped", "--permit-domain", "example.com"]);
    ok(&["request-cert", "--domain", "evil.test"]);
    let leaf_ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:evil.test\n";
    openssl_sign(&d, "evil.test.csr", "Scoped", leaf_ext, "evil.test.crt", &[]);
    env
}

#[test]
fn verify_names_the_cause_of_every_broken_situation() {
    let env = situations();
    // (arguments after `verify`, the code and words the reason must hold)
    let bad: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        (
            vec!["localhost", "--host", "grpc.example.com"],
            "name_mismatch",
            vec![
                "localhost.crt is not valid for grpc.example.com",
                "its SANs are DNS:localhost",
                "re-issue with --domain grpc.example.com",
            ],
        ),
        (vec!["grpc.example.com", "--host", "10.9.9.9"], "name_mismatch", vec!["IP:10.1.2.3", "--ip 10.9.9.9"]),
        (
            vec!["grpc_client", "--host", "grpc_client", "--purpose", "server"],
            "no_sans",
            vec!["no DNS or IP SANs", "never its CN"],
        ),
        (vec!["*.apps.example.com", "--host", "a.b.apps.example.com"], "name_mismatch", vec!["*.apps.example.com"]),
        (
            vec!["localhost", "--ca", "Other CA"],
            "unknown_issuer",
            vec!["issued by 'gRPC Root CA', not by the CA you gave ('Other CA')"],
        ),
        (vec!["old.example.com"], "expired", vec!["expired", "days ago", "renew"]),
        (vec!["future.example.com"], "not_yet_valid", vec!["not valid until 2030-01-01"]),
        (
            vec!["grpc.example.com", "--purpose", "client"],
            "wrong_purpose",
            vec!["no clientAuth in EKU (profile server): sign with --profile client or peer"],
        ),
        (vec!["intruder", "--purpose", "server"], "wrong_purpose", vec!["no serverAuth in EKU (profile client)"]),
        (vec!["localhost", "--key", "grpc_client.key"], "key_mismatch", vec!["key does not match certificate"]),
        (vec!["gone.example.com", "--crl", "auto"], "revoked", vec!["revoked on", "keyCompromise"]),
        (vec!["deep.example.com", "--ca", "Root2"], "unknown_issuer", vec!["'Issuing'", "--chain"]),
        (
            vec!["pl.example.com", "--ca", "Tight", "--chain", "Sneaky.crt"],
            "path_len",
            vec!["'Tight' has pathLen 0", "'Sneaky'"],
        ),
        (vec!["evil.test", "--ca", "Scoped"], "name_constraints", vec!["DNS:evil.test", "example.com"]),
        (vec!["gRPC Root CA", "--purpose", "server"], "ca_as_leaf", vec!["is a CA certificate"]),
        (vec!["localhost", "--at", "2040-01-01T00:00:00Z"], "ca_expired", vec!["the CA 'gRPC Root CA' expired"]),
    ];
    for (args, code, words) in &bad {
        let mut full = vec!["verify"];
        full.extend(args.iter().copied());
        let out = env.run(&full);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?} must fail:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        for w in words {
            assert!(text.contains(w), "{args:?}: {w:?} missing in:\n{text}");
        }
        let mut json_args = full.clone();
        json_args.push("--json");
        let out = env.run(&json_args);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: JSON: {e}"));
        assert_eq!(v["valid"], false);
        let codes: Vec<&str> = v["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
        assert!(codes.contains(code), "{args:?}: expected {code} in {codes:?}");
    }
}

#[test]
fn verify_passes_good_certificates_including_ip_sans_wildcards_and_chains() {
    let env = situations();
    let good: Vec<Vec<&str>> = vec![
        vec!["localhost", "--host", "localhost", "--purpose", "server"],
        vec!["localhost", "--ca", "gRPC Root CA", "--key", "localhost.key", "--crl", "auto"],
        vec!["grpc_client", "--purpose", "client"],
        vec!["grpc.example.com", "--host", "10.1.2.3", "--host", "::1", "--host", "grpc.example.com"],
        vec!["*.apps.example.com", "--host", "api.apps.example.com"],
        vec!["deep.example.com", "--ca", "Root2", "--chain", "Issuing.crt", "--host", "deep.example.com"],
        vec!["deep.example.com"],
        vec!["future.example.com", "--at", "2030-06-01T00:00:00Z"],
    ];
    for args in &good {
        let mut full = vec!["verify"];
        full.extend(args.iter().copied());
        let out = env.run(&full);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?} must pass:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(": OK"), "{text}");
    }
    let out = env.ok(&["verify", "deep.example.com", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["path"], serde_json::json!(["deep.example.com", "Issuing", "Root2"]));
}

#[test]
fn verify_lists_every_reason_not_just_the_first() {
    let env = situations();
    let out = env.run(&[
        "verify",
        "old.example.com",
        "--host",
        "new.example.com",
        "--purpose",
        "client",
        "--key",
        "localhost.key",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(3 problems)") || text.contains("(4 problems)"), "{text}");
    for w in ["expired", "not valid for new.example.com", "key does not match"] {
        assert!(text.contains(w), "{w} missing:\n{text}");
    }
}

#[test]
fn verify_refuses_bad_usage_with_exit_2() {
    let env = situations();
    let err = env.fails(&["verify", "nothing-here"], 1);
    assert!(err.contains("nothing-here"), "{err}");
    let err = env.fails(&["verify", "localhost", "--at", "yesterday"], 2);
    assert!(err.contains("--at"), "{err}");
    let err = env.fails(&["verify", "localhost", "--purpose", "both"], 2);
    assert!(err.contains("both"), "{err}");
    let empty = Env::new();
    empty.ok(&["request-cert", "--cn", "x"]);
    let err = empty.fails(&["verify", "x.csr"], 2);
    assert!(err.contains("no certificate"), "{err}");
}
