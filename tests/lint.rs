//! `lint` warns about what real clients will reject or mishandle. Each bad
//! certificate is made with openssl (certforge will not make them), and the
//! gRPC guide's openssl script's own certificates are linted as a user would.

mod common;

use common::{openssl_guide_ca, openssl_ok, openssl_sign, Env, OPENSSL_CA_EXT};

fn lint_json(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut full = vec!["lint"];
    full.extend_from_slice(args);
    full.push("--json");
    let out = env.run(&full);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr))),
    )
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| format!("{}:{}", f["severity"].as_str().unwrap(), f["code"].as_str().unwrap()))
        })
        .collect()
}

#[test]
fn certforge_output_lints_clean() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    for (n, extra) in [
        ("srv", vec!["--domain", "srv.example.com"]),
        ("rsa", vec!["--domain", "rsa.example.com", "--key-bits", "2048"]),
        ("ed", vec!["--domain", "ed.example.com", "--key-type", "ed25519"]),
    ] {
        let mut a = vec!["request-cert", "--cn", n];
        a.extend(extra);
        env.ok(&a);
        env.ok(&["sign", n, "--CA", "CA", "--profile", "server"]);
    }
    env.ok(&["request-cert", "--cn", "I"]);
    env.ok(&["sign", "I", "--CA", "CA", "--intermediate"]);
    let (code, v) = lint_json(&env, &["--all", "--strict"]);
    assert_eq!(code, Some(0), "{v}");
    assert!(codes(&v).is_empty(), "{:?}", codes(&v));
    assert_eq!(v.as_array().unwrap().len(), 5);
}

#[test]
fn lint_finds_what_clients_reject() {
    let env = Env::new();
    let t = env.tmp.path();
    // The gRPC guide's CA: openssl req -x509 writes no keyUsage (Python 3.13 strict refuses it).
    openssl_guide_ca(t);
    let leaf = |name: &str, key: &[&str], ext: &str, extra: &[&str]| {
        let mut req = vec!["req", "-new", "-nodes", "-keyout"];
        let kf = format!("{name}.key");
        let cf = format!("{name}.csr");
        let of = format!("{name}.crt");
        req.extend([kf.as_str(), "-subj"]);
        let subj = format!("/CN={name}");
        req.push(&subj);
        req.extend_from_slice(key);
        req.extend(["-out", cf.as_str()]);
        openssl_ok(t, &req);
        openssl_sign(t, &cf, "ca", ext, &of, extra);
    };
    let rsa = ["-newkey", "rsa:2048"];
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    leaf("nosan", &ec, "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n", &["-days", "30"]);
    leaf("zeros", &ec, "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example.com,IP:0.0.0.0\n", &["-days", "30"]);
    leaf("ka", &rsa, "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example.com\n", &["-days", "30"]);
    leaf("ke", &ec, "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example.com\n", &["-days", "30"]);
    leaf(
        "long",
        &ec,
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example.com\n",
        &["-days", "1000"],
    );
    leaf(
        "weak",
        &["-newkey", "rsa:1024"],
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        &["-days", "30"],
    );
    leaf("sha1", &ec, "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n", &["-days", "30", "-sha1"]);
    leaf(
        "wild",
        &ec,
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:*.com\n",
        &["-days", "30"],
    );
    leaf("softca", &ec, "basicConstraints=CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n", &["-days", "30"]);
    let cases = [
        ("ca.crt", "error:ca_key_usage"),
        ("nosan.crt", "error:no_sans"),
        ("zeros.crt", "warning:unspecified_ip"),
        ("ka.crt", "error:key_usage_key_type"),
        ("ke.crt", "error:key_usage_key_type"),
        ("long.crt", "warning:apple_825_days"),
        ("weak.crt", "error:weak_key"),
        ("sha1.crt", "error:weak_signature"),
        ("wild.crt", "error:bad_wildcard"),
        ("softca.crt", "error:ca_basic_constraints"),
    ];
    for (file, want) in cases {
        let (code, v) = lint_json(&env, &[t.join(file).to_str().unwrap()]);
        assert!(codes(&v).contains(&want.to_string()), "{file}: want {want}, got {:?}", codes(&v));
        let expect = if want.starts_with("error") { 1 } else { 0 };
        assert_eq!(code, Some(expect), "{file}");
    }
    let (code, _) = lint_json(&env, &[t.join("long.crt").to_str().unwrap(), "--strict"]);
    assert_eq!(code, Some(1), "--strict fails on a warning");
    let out = env.run(&["lint", t.join("nosan.crt").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nosan.crt: error: no DNS or IP SANs, so it is valid for no host"), "{text}");
}

#[test]
fn lint_sees_a_path_len_that_blocks_an_intermediate_in_the_depot() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Tight", "--path-length", "0"]);
    env.ok(&["request-cert", "--cn", "Sneaky"]);
    openssl_sign(&env.depot(), "Sneaky.csr", "Tight", OPENSSL_CA_EXT, "Sneaky.crt", &[]);
    let (code, v) = lint_json(&env, &["--all"]);
    assert_eq!(code, Some(1));
    assert!(codes(&v).contains(&"error:path_len_blocks".to_string()), "{:?}", codes(&v));
}

#[test]
fn lint_without_targets_or_certificates_is_a_usage_error() {
    let env = Env::new();
    env.fails(&["lint"], 2);
    env.ok(&["request-cert", "--cn", "x"]);
    let err = env.fails(&["lint", "--all"], 2);
    assert!(err.contains("no certificates"), "{err}");
}

/// certstrap's walk-through signs `grpc_client` as its leaf with both EKUs
/// and no SANs, still unchanged: lint says it works as a client certificate
/// and needs nothing as one (`--profile client` drops serverAuth), and
/// gives the SAN fix only for serving TLS. Before, it advised --domain/--ip
/// alone and said "ignore the CN, so it is usable as a client certificate".
#[test]
fn lint_tells_a_client_certificate_without_sans_that_it_needs_nothing() {
    let env = Env::new();
    env.blog_workflow();
    common::with_cert(&env.file("grpc_client.crt"), |c| {
        assert!(common::sans(c).is_empty(), "certstrap's client leaf keeps no SANs");
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth, "and both EKUs");
    });
    let (code, v) = lint_json(&env, &["grpc_client"]);
    assert_eq!(code, Some(0), "{v}");
    let findings = v[0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["severity"], "warning");
    let msg = findings[0]["message"].as_str().unwrap();
    assert!(msg.contains("works as a TLS client certificate only"), "{msg}");
    let client_fix = msg.find("--profile client").unwrap_or_else(|| panic!("{msg}"));
    let server_fix = msg.find("request-cert --domain").unwrap_or_else(|| panic!("{msg}"));
    assert!(client_fix < server_fix && msg.contains("needs nothing"), "the client's answer comes first: {msg}");
    assert!(!msg.contains("ignore the CN"), "{msg}");
    // verify shares the words.
    let out = env.run(&["verify", "grpc_client", "--host", "grpc.example.com", "--purpose", "server"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("never its CN") && !said.contains("ignore the CN"), "{said}");
}
