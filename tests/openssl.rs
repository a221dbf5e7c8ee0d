//! Interop with the openssl CLI and Python's ssl module: real peers, not
//! our own parser. openssl verifies what certforge writes, reads its keys
//! and CRLs, and hands it CSRs and keys of its own making.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Command;

use common::{free_port, openssl, openssl_ec_csr, openssl_ok, printed_command, with_cert, Env};

fn verify(dir: &Path, purpose: &str, ca: &str, untrusted: Option<&str>, leaf: &str) -> (bool, String) {
    let mut args = vec!["verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push(leaf);
    openssl(dir, &args)
}

#[test]
fn blog_workflow_certs_pass_openssl_verify_x509_strict() {
    let env = Env::new();
    env.blog_workflow();
    let d = env.depot();
    for (purpose, leaf) in
        [("sslserver", "localhost.crt"), ("sslclient", "grpc_client.crt"), ("sslclient", "localhost.crt")]
    {
        let (ok, out) = verify(&d, purpose, "gRPC_Root_CA.crt", None, leaf);
        assert!(ok && out.contains("OK"), "{purpose} {leaf}: {out}");
    }
    openssl_ok(&d, &["verify", "-x509_strict", "-check_ss_sig", "-CAfile", "gRPC_Root_CA.crt", "gRPC_Root_CA.crt"]);
    let (ok, out) = openssl(
        &d,
        &["verify", "-x509_strict", "-verify_hostname", "localhost", "-CAfile", "gRPC_Root_CA.crt", "localhost.crt"],
    );
    assert!(ok, "{out}");
    let (ok, _) = openssl(
        &d,
        &[
            "verify",
            "-x509_strict",
            "-verify_hostname",
            "grpc.example.com",
            "-CAfile",
            "gRPC_Root_CA.crt",
            "localhost.crt",
        ],
    );
    assert!(!ok, "a host not in the SANs must fail");
}

#[test]
fn profiles_restrict_purpose_as_openssl_sees_it() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&["request-cert", "--domain", "srv.example.com"]);
    env.ok(&["sign", "srv.example.com", "--CA", "CA", "--profile", "server"]);
    env.ok(&["request-cert", "--cn", "cli"]);
    env.ok(&["sign", "cli", "--CA", "CA", "--profile", "client"]);
    let d = env.depot();
    assert!(verify(&d, "sslserver", "CA.crt", None, "srv.example.com.crt").0);
    assert!(!verify(&d, "sslclient", "CA.crt", None, "srv.example.com.crt").0, "server profile is not a client cert");
    assert!(verify(&d, "sslclient", "CA.crt", None, "cli.crt").0);
    assert!(!verify(&d, "sslserver", "CA.crt", None, "cli.crt").0, "client profile is not a server cert");
}

#[test]
fn every_key_type_is_read_by_openssl_and_every_csr_verifies() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA", "--key-type", "ed25519"]);
    let d = env.depot();
    for (name, flags) in [
        ("p256", vec![]),
        ("p384", vec!["--key-type", "ecdsa-p384"]),
        ("p521", vec!["--curve", "P-521"]),
        ("ed", vec!["--key-type", "ed25519"]),
        ("rsa", vec!["--key-bits", "2048"]),
    ] {
        let mut args = vec!["request-cert", "--cn", name, "--domain", "h.example.com"];
        args.extend(flags);
        env.ok(&args);
        openssl_ok(&d, &["req", "-verify", "-noout", "-in", &format!("{name}.csr")]);
        let text = std::fs::read_to_string(d.join(format!("{name}.key"))).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM for {name}");
        openssl_ok(&d, &["pkey", "-in", &format!("{name}.key"), "-noout"]);
        env.ok(&["sign", name, "--CA", "CA"]);
        let key_pub = openssl_ok(&d, &["pkey", "-in", &format!("{name}.key"), "-pubout"]);
        let crt_pub = openssl_ok(&d, &["x509", "-in", &format!("{name}.crt"), "-noout", "-pubkey"]);
        assert_eq!(key_pub, crt_pub, "{name}: key and certificate match");
        assert!(verify(&d, "sslserver", "CA.crt", None, &format!("{name}.crt")).0, "{name}");
    }
}

#[test]
fn encrypted_keys_open_in_openssl_with_the_passphrase_only() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA", "--passphrase", "s3cret", "--key-type", "rsa", "--key-bits", "2048"]);
    env.ok(&["request-cert", "--cn", "e", "--key-type", "ed25519", "--passphrase", "s3cret"]);
    let d = env.depot();
    for key in ["CA.key", "e.key"] {
        let text = openssl_ok(&d, &["asn1parse", "-in", key]);
        assert!(text.contains("PBES2") && text.contains("PBKDF2") && text.contains("aes-256-cbc"), "{key}: {text}");
        openssl_ok(&d, &["pkey", "-in", key, "-passin", "pass:s3cret", "-noout"]);
        assert!(
            !openssl(&d, &["pkey", "-in", key, "-passin", "pass:wrong", "-noout"]).0,
            "{key}: wrong passphrase must fail"
        );
    }
}

#[test]
fn an_openssl_p384_csr_signed_with_sha256_keeps_its_p384_key() {
    // rcgen issue 448: such a CSR came out as a cert claiming a P-256 key.
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let t = env.tmp.path();
    openssl_ok(t, &["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384.key"]);
    openssl_ok(
        t,
        &[
            "req",
            "-new",
            "-sha256",
            "-key",
            "p384.key",
            "-subj",
            "/CN=p384.example.com",
            "-addext",
            "subjectAltName=DNS:p384.example.com",
            "-out",
            "p384.csr",
        ],
    );
    env.ok(&["sign", "p384", "--CA", "CA", "--csr", t.join("p384.csr").to_str().unwrap()]);
    let crt = env.file("p384.crt");
    let key_pub = openssl_ok(t, &["pkey", "-in", "p384.key", "-pubout"]);
    let crt_pub = openssl_ok(t, &["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(key_pub, crt_pub);
    assert!(verify(t, "sslserver", env.file("CA.crt").to_str().unwrap(), None, crt.to_str().unwrap()).0);
}

#[test]
fn the_grpc_guide_openssl_csr_is_signed_with_its_subject_and_every_san() {
    let env = Env::new();
    env.ok(&["init", "--cn", "MyCA"]);
    let t = env.tmp.path();
    std::fs::write(
        t.join("server.cnf"),
        "[req]\ndistinguished_name = req_distinguished_name\nreq_extensions = v3_req\nprompt = no\n\n[req_distinguished_name]\nC = US\nST = CA\nO = MyOrg\nCN = localhost\n\n[v3_req]\nkeyUsage = keyEncipherment, dataEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = @alt_names\n\n[alt_names]\nDNS.1 = localhost\nDNS.2 = *.example.com\nDNS.3 = grpc-server\nIP.1 = 127.0.0.1\nIP.2 = 0.0.0.0\n",
    )
    .unwrap();
    openssl_ok(t, &["genrsa", "-out", "server.key", "2048"]);
    openssl_ok(t, &["req", "-new", "-key", "server.key", "-config", "server.cnf", "-out", "server.csr"]);
    let out = env.ok(&[
        "sign",
        "server",
        "--CA",
        "MyCA",
        "--profile",
        "server",
        "--csr",
        t.join("server.csr").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ignored the CSR's requested keyUsage, extendedKeyUsage"), "{err}");
    let csr_subject = openssl_ok(t, &["req", "-in", "server.csr", "-noout", "-subject", "-nameopt", "RFC2253"]);
    let crt_subject = openssl_ok(
        t,
        &["x509", "-in", env.file("server.crt").to_str().unwrap(), "-noout", "-subject", "-nameopt", "RFC2253"],
    );
    assert_eq!(csr_subject, crt_subject);
    let text = openssl_ok(
        t,
        &["x509", "-in", env.file("server.crt").to_str().unwrap(), "-noout", "-ext", "subjectAltName,keyUsage"],
    );
    for want in [
        "DNS:localhost",
        "DNS:*.example.com",
        "DNS:grpc-server",
        "IP Address:127.0.0.1",
        "IP Address:0.0.0.0",
        "Digital Signature, Key Encipherment",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("Data Encipherment"), "the profile, not the CSR, decides key usage:\n{text}");
    assert!(
        verify(t, "sslserver", env.file("MyCA.crt").to_str().unwrap(), None, env.file("server.crt").to_str().unwrap())
            .0
    );
}

#[test]
fn a_csr_asking_for_ca_true_gets_ca_false() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let t = env.tmp.path();
    openssl_ec_csr(t, "sneaky", "/CN=sneaky", &["-addext", "basicConstraints=critical,CA:TRUE"]);
    env.ok(&["sign", "sneaky", "--CA", "CA", "--csr", t.join("sneaky.csr").to_str().unwrap()]);
    with_cert(&env.file("sneaky.crt"), |c| assert!(!c.basic_constraints().unwrap().unwrap().value.ca));
}

#[test]
fn openssl_keys_of_every_format_can_be_reused_and_are_stored_as_pkcs8() {
    let env = Env::new();
    let t = env.tmp.path();
    openssl_ok(t, &["genrsa", "-traditional", "-out", "pkcs1.key", "2048"]);
    openssl_ok(t, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sec1.key"]);
    openssl_ok(t, &["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    openssl_ok(
        t,
        &[
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-aes-256-cbc",
            "-pass",
            "pass:pw",
            "-out",
            "enc.key",
        ],
    );
    openssl_ok(t, &["genrsa", "-traditional", "-aes256", "-passout", "pass:pw", "-out", "legacy.key", "2048"]);
    env.ok(&["init", "--cn", "CA", "--key", t.join("pkcs1.key").to_str().unwrap()]);
    for (name, extra) in [("sec1", vec![]), ("ed", vec![]), ("enc", vec!["--passphrase", "pw"])] {
        let key = t.join(format!("{name}.key"));
        let mut args = vec!["request-cert", "--cn", name, "--key", key.to_str().unwrap()];
        args.extend(extra.iter().copied());
        env.ok(&args);
        env.ok(&["sign", name, "--CA", "CA"]);
        let a = openssl_ok(t, &["pkey", "-in", key.to_str().unwrap(), "-passin", "pass:pw", "-pubout"]);
        let b =
            openssl_ok(t, &["x509", "-in", env.file(&format!("{name}.crt")).to_str().unwrap(), "-noout", "-pubkey"]);
        assert_eq!(a, b, "{name}");
    }
    let stored = std::fs::read_to_string(env.file("CA.key")).unwrap();
    assert!(stored.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#1 input is stored as PKCS#8");
    let err = env.fails(
        &["request-cert", "--cn", "legacy", "--key", t.join("legacy.key").to_str().unwrap(), "--passphrase", "pw"],
        1,
    );
    assert!(err.contains("legacy PEM encryption") && err.contains("openssl pkcs8 -topk8"), "{err}");
}

#[test]
fn intermediate_chains_verify_in_openssl() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Root"]);
    env.ok(&["request-cert", "--cn", "Inter", "--key-type", "ecdsa-p384"]);
    env.ok(&["sign", "Inter", "--CA", "Root", "--intermediate"]);
    env.ok(&["request-cert", "--cn", "Inter2"]);
    env.ok(&["sign", "Inter2", "--CA", "Inter", "--intermediate"]);
    env.ok(&["request-cert", "--domain", "deep.example.com"]);
    env.ok(&["sign", "deep.example.com", "--CA", "Inter2"]);
    let d = env.depot();
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d.join("Inter.crt")).unwrap(),
        std::fs::read_to_string(d.join("Inter2.crt")).unwrap()
    );
    std::fs::write(d.join("../untrusted.pem"), chain).unwrap();
    let (ok, out) = verify(&d, "sslserver", "Root.crt", Some("../untrusted.pem"), "deep.example.com.crt");
    assert!(ok, "{out}");
}

#[test]
fn crls_verify_and_revocation_is_seen_by_openssl() {
    let env = Env::new();
    env.blog_workflow();
    let d = env.depot();
    openssl_ok(&d, &["crl", "-in", "gRPC_Root_CA.crl", "-CAfile", "gRPC_Root_CA.crt", "-noout"]);
    let check = |env: &Env| {
        openssl(
            &env.depot(),
            &[
                "verify",
                "-x509_strict",
                "-crl_check",
                "-CRLfile",
                "gRPC_Root_CA.crl",
                "-CAfile",
                "gRPC_Root_CA.crt",
                "localhost.crt",
            ],
        )
    };
    assert!(check(&env).0, "{}", check(&env).1);
    env.ok(&["revoke", "--CN", "localhost", "--CA", "gRPC Root CA"]);
    let (ok, out) = check(&env);
    assert!(!ok && out.contains("revoked"), "{out}");
    let text = openssl_ok(&d, &["crl", "-in", "gRPC_Root_CA.crl", "-CAfile", "gRPC_Root_CA.crt", "-noout", "-text"]);
    assert!(text.contains("CRL Number") && text.contains("Authority Key Identifier"), "{text}");
}

#[test]
fn openssl_s_server_and_s_client_complete_a_mutual_tls_handshake() {
    let env = Env::new();
    env.blog_workflow();
    let d = env.depot();
    let port = free_port().to_string();
    let mut server = Command::new("openssl")
        .current_dir(&d)
        .args([
            "s_server",
            "-accept",
            &port,
            "-naccept",
            "1",
            "-cert",
            "localhost.crt",
            "-key",
            "localhost.key",
            "-CAfile",
            "gRPC_Root_CA.crt",
            "-Verify",
            "1",
            "-verify_return_error",
            "-x509_strict",
            "-quiet",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = None;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let o = Command::new("openssl")
            .current_dir(&d)
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
                "-verify_hostname",
                "localhost",
                "-verify_return_error",
                "-x509_strict",
                "-CAfile",
                "gRPC_Root_CA.crt",
                "-cert",
                "grpc_client.crt",
                "-key",
                "grpc_client.key",
                "-brief",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        if text.contains("connect:errno") || text.contains("Connection refused") {
            continue;
        }
        out = Some(text);
        break;
    }
    let _ = server.kill();
    let server_out = server.wait_with_output().unwrap();
    let text = out.expect("s_server never listened");
    assert!(
        text.contains("Verification: OK") || text.contains("Verify return code: 0"),
        "client:\n{text}\nserver:\n{}",
        String::from_utf8_lossy(&server_out.stderr)
    );
}

fn python_mtls(dir: &Path, ca: &str, srv: &str, cli: &str, host: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/py_mtls.py");
    let o = Command::new("python3")
        .current_dir(dir)
        .arg(script)
        .args([ca, &format!("{srv}.crt"), &format!("{srv}.key"), &format!("{cli}.crt"), &format!("{cli}.key"), host])
        .output()
        .expect("python3 is installed");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn python_ssl_with_verify_x509_strict_accepts_the_blog_certs() {
    let env = Env::new();
    env.blog_workflow();
    let d = env.depot();
    let (ok, out) = python_mtls(&d, "gRPC_Root_CA.crt", "localhost", "grpc_client", "localhost");
    assert!(ok, "{out}");
    let (ok, out) = python_mtls(&d, "gRPC_Root_CA.crt", "localhost", "grpc_client", "grpc.example.com");
    assert!(!ok && out.contains("CERTIFICATE_VERIFY_FAILED"), "a host outside the SANs must fail: {out}");
}

#[test]
fn a_csr_that_names_nothing_is_refused() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let t = env.tmp.path();
    openssl_ec_csr(t, "anon", "/", &[]);
    let before = env.snapshot();
    let err = env.fails(&["sign", "anon", "--CA", "CA", "--csr", t.join("anon.csr").to_str().unwrap()], 1);
    assert!(err.contains("empty subject and no SANs"), "{err}");
    assert_eq!(before, env.snapshot());
}

/// The SANs of a certificate file, written `DNS:name` and `IP:address`.
fn sans_of(path: &Path) -> Vec<String> {
    with_cert(path, certforge::pki::san::of_cert).iter().map(ToString::to_string).collect()
}

/// `openssl req -subj /CN=api.test` makes a request with a CN and no SANs.
/// Signed as a server (or peer) certificate, its host-like CN becomes its
/// SAN, said in one line, so that clients that never read the CN (rustls
/// here; Go, Python and Chrome alike) accept it for that host, and `lint`
/// finds nothing to say. Before, the certificate had no SANs at all.
#[test]
fn sign_server_of_a_cn_only_request_puts_the_host_like_cn_in_the_sans() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let d = env.depot();
    openssl_ec_csr(&d, "api.test", "/CN=api.test", &[]);
    openssl_ec_csr(&d, "10.0.0.7", "/CN=10.0.0.7", &[]);
    for (name, profile, san, check) in [
        ("api.test", "server", "DNS:api.test", ["-verify_hostname", "api.test"]),
        ("10.0.0.7", "peer", "IP:10.0.0.7", ["-verify_ip", "10.0.0.7"]),
    ] {
        let out = env.ok(&["sign", name, "--CA", "CA", "--profile", profile]);
        let err = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = err.lines().filter(|l| l.contains("its CN went in as")).collect();
        assert_eq!(said.len(), 1, "one line says so: {err}");
        assert!(said[0].contains(san), "{err}");
        assert!(!err.contains("--profile client"), "a server certificate is not advised to be a client's: {err}");
        let crt = d.join(format!("{name}.crt"));
        assert_eq!(sans_of(&crt), [san]);
        let (ok, text) = verify(&d, "sslserver", "CA.crt", None, &format!("{name}.crt"));
        assert!(ok, "{text}");
        let mut args = vec!["verify", "-x509_strict", "-purpose", "sslserver"];
        args.extend(check);
        args.extend(["-CAfile", "CA.crt", crt.to_str().unwrap()]);
        let (ok, text) = openssl(&d, &args);
        assert!(ok, "openssl {check:?}: {text}");
        let host = san.split_once(':').unwrap().1;
        tls::server_cert_valid_for(&d.join("CA.crt"), &crt, host).unwrap_or_else(|e| panic!("rustls, {host}: {e}"));
        assert!(tls::server_cert_valid_for(&d.join("CA.crt"), &crt, "other.test").is_err(), "and for no other host");
        let lint = env.run(&["lint", name, "--strict"]);
        assert_eq!(lint.status.code(), Some(0), "{}", String::from_utf8_lossy(&lint.stdout));
    }
    // certstrap's default leaf (both EKUs) serves TLS too, so it gets it as well.
    openssl_ec_csr(&d, "web.test", "/CN=web.test", &[]);
    env.ok(&["sign", "web.test", "--CA", "CA"]);
    assert_eq!(sans_of(&d.join("web.test.crt")), ["DNS:web.test"]);
}

/// A request that names no host (`/CN=My Service`, no SANs) is refused
/// for --profile server and peer, nothing is written, and the error gives
/// the command that works, which does.
#[test]
fn sign_server_refuses_a_request_that_names_no_host_with_the_command_that_works() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let d = env.depot();
    openssl_ec_csr(&d, "My_Service", "/CN=My Service", &[]);
    let before = env.snapshot();
    for profile in ["server", "peer"] {
        let err = env.fails(&["sign", "My Service", "--CA", "CA", "--profile", profile], 1);
        assert!(err.contains("is not a host name or IP address") && err.contains("Nothing was signed"), "{err}");
        assert!(err.contains("request-cert --domain <host>"), "{err}");
        assert_eq!(env.snapshot(), before, "--profile {profile} changed the depot");
    }
    let err = env.fails(&["sign", "My Service", "--CA", "CA", "--profile", "server"], 1);
    let client = printed_command(&err[err.find("For a client certificate").unwrap()..], "certforge --depot-path");
    let out = env.run_printed(&client);
    assert!(out.status.success(), "{client}: {}", String::from_utf8_lossy(&out.stderr));
    let (ok, text) = verify(&d, "sslclient", "CA.crt", None, "My_Service.crt");
    assert!(ok, "{text}");

    // An email SAN names no host either: the same refusal, as lint would
    // call the certificate an error.
    openssl_ec_csr(&d, "mailer", "/CN=My Mailer", &["-addext", "subjectAltName=email:a@b.test"]);
    let before = env.snapshot();
    let err = env.fails(&["sign", "mailer", "--CA", "CA", "--profile", "server"], 1);
    assert!(err.contains("names no host (no DNS or IP SAN)") && err.contains("Nothing was signed"), "{err}");
    assert_eq!(env.snapshot(), before, "an email-only request changed the depot");
}
