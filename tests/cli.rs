//! CLI tests of the core workflow and of every flag of init, request-cert,
//! sign and revoke. Results are checked by parsing the certificates back.

mod common;

use common::{mode, sans, with_cert, Env};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

fn ekus(c: &X509Certificate<'_>) -> (bool, bool, bool) {
    let e = c.extended_key_usage().unwrap().expect("EKU present").value;
    (e.server_auth, e.client_auth, e.code_signing)
}

fn path_len(c: &X509Certificate<'_>) -> (bool, Option<u32>) {
    let bc = c.basic_constraints().unwrap().expect("basicConstraints");
    assert!(bc.critical, "basicConstraints must be critical");
    (bc.value.ca, bc.value.path_len_constraint)
}

#[test]
fn blog_workflow_writes_the_files_certstrap_wrote() {
    let env = Env::new();
    env.blog_workflow();
    for f in [
        "gRPC_Root_CA.key",
        "gRPC_Root_CA.crt",
        "gRPC_Root_CA.crl",
        "localhost.key",
        "localhost.csr",
        "localhost.crt",
        "grpc_client.key",
        "grpc_client.csr",
        "grpc_client.crt",
    ] {
        assert!(env.file(f).is_file(), "{f} missing");
        let want = if f.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&env.file(f)), want, "{f} mode");
    }
    let names: Vec<String> = std::fs::read_dir(env.depot())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 9, "no stray files in the depot: {names:?}");
}

#[test]
fn ca_has_critical_constraints_no_pathlen_and_a_random_serial() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Root A"]);
    env.ok(&["init", "--cn", "Root B"]);
    let serial_a = with_cert(&env.file("Root_A.crt"), |c| {
        assert_eq!(path_len(c), (true, None));
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign() && ku.value.digital_signature());
        assert!(c.iter_extensions().any(|e| matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(_))));
        let days = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400;
        assert!((3650..=3654).contains(&days), "CA default is 10 years, got {days} days");
        c.raw_serial().to_vec()
    });
    let serial_b = with_cert(&env.file("Root_B.crt"), |c| c.raw_serial().to_vec());
    assert_ne!(serial_a, serial_b);
    assert!(serial_a.len() >= 8 && serial_a[0] & 0x80 == 0, "positive serial of at least 64 bits");
}

#[test]
fn leaves_get_profile_ekus_ski_aki_and_backdated_not_before() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    for (name, profile) in [("srv", "server"), ("cli", "client"), ("both", "peer")] {
        env.ok(&["request-cert", "--cn", name, "--domain", "x.example.com"]);
        env.ok(&["sign", name, "--CA", "CA", "--profile", profile]);
    }
    env.ok(&["request-cert", "--cn", "dflt"]);
    env.ok(&["sign", "dflt", "--ca", "CA"]);
    with_cert(&env.file("srv.crt"), |c| assert_eq!(ekus(c), (true, false, false)));
    with_cert(&env.file("cli.crt"), |c| assert_eq!(ekus(c), (false, true, false)));
    with_cert(&env.file("both.crt"), |c| assert_eq!(ekus(c), (true, true, false)));
    with_cert(&env.file("dflt.crt"), |c| {
        assert_eq!(ekus(c), (true, true, false), "peer is the default");
        assert_eq!(path_len(c), (false, None));
        let ku = c.key_usage().unwrap().unwrap();
        assert!(
            ku.critical && ku.value.digital_signature() && !ku.value.key_encipherment() && !ku.value.key_agreement()
        );
        let has = |f: fn(&ParsedExtension<'_>) -> bool| c.iter_extensions().any(|e| f(e.parsed_extension()));
        assert!(has(|e| matches!(e, ParsedExtension::SubjectKeyIdentifier(_))));
        assert!(has(|e| matches!(e, ParsedExtension::AuthorityKeyIdentifier(_))));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let nb = c.validity().not_before.timestamp();
        assert!(now - nb >= 5 * 60 && now - nb <= 15 * 60, "notBefore backdated a few minutes");
        let days = (c.validity().not_after.timestamp() - now) / 86_400;
        assert!((729..=731).contains(&days), "leaf default is 2 years, got {days}");
    });
}

#[test]
fn codesigning_adds_the_eku() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&["request-cert", "--cn", "signer"]);
    env.ok(&["sign", "signer", "--CA", "CA", "--codesigning"]);
    with_cert(&env.file("signer.crt"), |c| assert_eq!(ekus(c), (true, true, true)));
}

#[test]
fn sans_of_every_kind_take_comma_lists_and_repeat() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&[
        "request-cert",
        "--domain",
        "a.example.com,b.example.com",
        "--domain",
        "*.svc.example.com",
        "--ip",
        "127.0.0.1,::1",
        "--ip",
        "10.0.0.1",
        "--uri",
        "spiffe://example.org/api",
        "--email",
        "ops@example.com",
        "--domain",
        "192.168.1.1",
    ]);
    env.ok(&["sign", "a.example.com", "--CA", "CA"]);
    let got = with_cert(&env.file("a.example.com.crt"), sans);
    for want in [
        "DNSName(a.example.com)",
        "DNSName(b.example.com)",
        "DNSName(*.svc.example.com)",
        "IPAddress(7f:00:00:01)",
        "IPAddress(00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01)",
        "IPAddress(0a:00:00:01)",
        "URI(spiffe://example.org/api)",
        "RFC822Name(ops@example.com)",
        "IPAddress(c0:a8:01:01)",
    ] {
        assert!(got.contains(&want.to_string()), "missing {want} in {got:?}");
    }
    with_cert(&env.file("a.example.com.crt"), |c| {
        assert!(c
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .any(|g| matches!(g, GeneralName::IPAddress(b) if b.len() == 16)));
    });
}

#[test]
fn request_cert_names_files_after_cn_then_domain_then_uri_then_ip() {
    let env = Env::new();
    env.ok(&["request-cert", "--cn", "my client", "--domain", "d.example.com"]);
    env.ok(&["request-cert", "--domain", "first.example.com,second.example.com"]);
    env.ok(&["request-cert", "--uri", "spiffe://example.org/x", "--ip", "10.1.1.1"]);
    env.ok(&["request-cert", "--ip", "10.2.2.2"]);
    for f in ["my_client.csr", "first.example.com.csr", "spiffe_example.org_x.csr", "10.2.2.2.csr"] {
        assert!(env.file(f).is_file(), "{f}");
    }
}

#[test]
fn one_naming_rule_lets_sign_find_what_request_cert_wrote() {
    let env = Env::new();
    env.ok(&["init", "--cn", "My CA/1"]);
    env.ok(&["request-cert", "--cn", "web server*1"]);
    assert!(env.file("web_server_1.csr").is_file());
    env.ok(&["sign", "web server*1", "--CA", "My CA/1"]);
    assert!(env.file("web_server_1.crt").is_file());
    env.ok(&["revoke", "--CN", "web server*1", "--CA", "My CA/1"]);
}

#[test]
fn depot_path_goes_before_or_after_the_subcommand_and_comes_from_the_environment() {
    let env = Env::new();
    let elsewhere = env.tmp.path().join("elsewhere");
    let mut c = env.cmd(&["init", "--cn", "A", "--depot-path", elsewhere.to_str().unwrap()]);
    assert!(c.output().unwrap().status.success());
    assert!(elsewhere.join("A.crt").is_file());

    let via_env = env.tmp.path().join("from-env");
    let mut c = assert_cmd::Command::cargo_bin("certforge").unwrap();
    c.current_dir(env.tmp.path()).env("CERTFORGE_DEPOT_PATH", &via_env).args(["init", "--cn", "B"]).assert().success();
    assert!(via_env.join("B.crt").is_file());

    let mut c = assert_cmd::Command::cargo_bin("certforge").unwrap();
    c.current_dir(env.tmp.path()).env_remove("CERTFORGE_DEPOT_PATH").args(["init", "--cn", "C"]).assert().success();
    assert!(env.tmp.path().join("out/C.crt").is_file(), "default depot is ./out");
}

#[test]
fn flags_may_follow_the_positional_name_and_take_certstrap_single_dash_forms() {
    let env = Env::new();
    env.ok(&["init", "-common-name", "CA", "-o", "Org", "-c", "US", "--st", "CA", "-l", "Town", "--ou", "Unit"]);
    with_cert(&env.file("CA.crt"), |c| {
        let s = c.subject().to_string();
        for part in ["C=US", "ST=CA", "L=Town", "O=Org", "OU=Unit", "CN=CA"] {
            assert!(s.contains(part), "{part} not in {s}");
        }
    });
    env.ok(&[
        "request-cert",
        "-cn",
        "n1",
        "--organization",
        "O2",
        "--country",
        "DE",
        "--province",
        "P",
        "--locality",
        "L",
        "--organizational-unit",
        "U",
    ]);
    env.ok(&["sign", "n1", "-CA", "CA", "--expires", "30 days"]);
    with_cert(&env.file("n1.crt"), |c| assert!(c.subject().to_string().contains("C=DE")));
}

#[test]
fn key_type_curve_and_key_bits_choose_the_key() {
    let env = Env::new();
    let cases: [(&[&str], &str, &str); 9] = [
        (&[], "n0", "1.2.840.10045.3.1.7"),
        (&["--key-type", "ecdsa-p384"], "n1", "1.3.132.0.34"),
        (&["--curve", "P-521"], "n2", "1.3.132.0.35"),
        (&["--key-type", "ecdsa-p256"], "n3", "1.2.840.10045.3.1.7"),
        (&["--curve", "P-384"], "n7", "1.3.132.0.34"),
        (&["--curve", "P-256"], "n8", "1.2.840.10045.3.1.7"),
        (&["--key-type", "ed25519"], "n4", "ed25519"),
        (&["--curve", "Ed25519"], "n5", "ed25519"),
        (&["--key-bits", "2048"], "n6", "rsa2048"),
    ];
    env.ok(&["init", "--cn", "CA"]);
    for (flags, name, want) in cases {
        let mut args = vec!["request-cert", "--cn", name];
        args.extend_from_slice(flags);
        env.ok(&args);
        env.ok(&["sign", name, "--CA", "CA"]);
        with_cert(&env.file(&format!("{name}.crt")), |c| {
            let spki = c.public_key();
            let got = match spki.parsed().unwrap() {
                x509_parser::public_key::PublicKey::RSA(r) => format!("rsa{}", r.key_size()),
                x509_parser::public_key::PublicKey::EC(_) => {
                    spki.algorithm.parameters.as_ref().unwrap().as_oid().unwrap().to_id_string()
                }
                _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "ed25519".into(),
                other => format!("{other:?}"),
            };
            assert_eq!(got, want, "{flags:?}");
            if want.starts_with("rsa") {
                assert!(c.key_usage().unwrap().unwrap().value.key_encipherment(), "RSA leaves get keyEncipherment");
            }
        });
    }
    env.ok(&["init", "--cn", "RSA CA", "--key-type", "rsa", "--key-bits", "3072"]);
    with_cert(&env.file("RSA_CA.crt"), |c| match c.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(r) => assert_eq!(r.key_size(), 3072),
        _ => panic!("expected RSA"),
    });
    env.fails(&["request-cert", "--cn", "bad", "--key-type", "ed25519", "--key-bits", "2048"], 2);
    env.fails(&["request-cert", "--cn", "bad", "--curve", "P-224"], 2);
    env.fails(&["request-cert", "--cn", "bad", "--key-bits", "1024"], 2);
    assert!(!env.file("bad.key").exists());
}

#[test]
fn expires_not_before_and_not_after_set_validity() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA", "--expires", "1 year 6 months"]);
    with_cert(&env.file("CA.crt"), |c| {
        let days = (c.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        assert!((545..=548).contains(&days), "18 months, got {days} days");
    });
    env.ok(&["request-cert", "--cn", "short"]);
    env.ok(&["sign", "short", "--CA", "CA", "--expires", "12 hours"]);
    with_cert(&env.file("short.crt"), |c| {
        let hours = (c.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 3600;
        assert!((11..=12).contains(&hours), "{hours}");
    });
    env.ok(&["request-cert", "--cn", "expired"]);
    env.ok(&[
        "sign",
        "expired",
        "--CA",
        "CA",
        "--not-before",
        "2024-01-01T00:00:00Z",
        "--not-after",
        "2024-01-02T00:00:00Z",
    ]);
    with_cert(&env.file("expired.crt"), |c| {
        assert_eq!(c.validity().not_before.timestamp(), 1_704_067_200);
        assert_eq!(c.validity().not_after.timestamp(), 1_704_153_600);
    });
    let out = env.ok(&["request-cert", "--cn", "long"]);
    drop(out);
    let out = env.ok(&["sign", "long", "--CA", "CA", "--expires", "5 years"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capped"), "capping warns: {err}");
    let ca_end = with_cert(&env.file("CA.crt"), |c| c.validity().not_after.timestamp());
    with_cert(&env.file("long.crt"), |c| assert_eq!(c.validity().not_after.timestamp(), ca_end));
    env.ok(&["request-cert", "--cn", "yrs"]);
    env.ok(&["sign", "yrs", "--CA", "CA", "--years", "1"]);
}

#[test]
fn intermediates_verify_by_default_and_honour_path_length() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Root"]);
    env.ok(&["request-cert", "--cn", "Issuing CA"]);
    env.ok(&["sign", "Issuing CA", "--CA", "Root", "--intermediate"]);
    with_cert(&env.file("Issuing_CA.crt"), |c| {
        assert_eq!(path_len(c), (true, None));
        assert!(c.key_usage().unwrap().unwrap().value.key_cert_sign());
        assert!(c.extended_key_usage().unwrap().is_none());
    });
    env.ok(&["request-cert", "--domain", "leaf.example.com"]);
    env.ok(&["sign", "leaf.example.com", "--CA", "Issuing CA"]);
    env.ok(&["request-cert", "--cn", "Sub CA"]);
    env.ok(&["sign", "Sub CA", "--CA", "Issuing CA", "--intermediate", "--path-length", "0"]);
    with_cert(&env.file("Sub_CA.crt"), |c| assert_eq!(path_len(c), (true, Some(0))));
    env.ok(&["request-cert", "--cn", "Sub Sub"]);
    let err = env.fails(&["sign", "Sub Sub", "--CA", "Sub CA", "--intermediate"], 1);
    assert!(err.contains("pathLen 0"), "{err}");
    env.ok(&["request-cert", "--cn", "X"]);
    env.ok(&["sign", "X", "--CA", "Root", "--intermediate", "--exclude-path-length"]);
    with_cert(&env.file("X.crt"), |c| assert_eq!(path_len(c), (true, None)));
}

#[test]
fn init_path_length_and_exclude_path_length() {
    let env = Env::new();
    env.ok(&["init", "--cn", "P1", "--path-length", "1"]);
    with_cert(&env.file("P1.crt"), |c| assert_eq!(path_len(c), (true, Some(1))));
    env.ok(&["init", "--cn", "P0", "--exclude-path-length"]);
    with_cert(&env.file("P0.crt"), |c| assert_eq!(path_len(c), (true, None)));
    env.ok(&["request-cert", "--cn", "I"]);
    env.ok(&["sign", "I", "--CA", "P1", "--intermediate"]);
    with_cert(&env.file("I.crt"), |c| assert_eq!(path_len(c), (true, Some(0))));
    env.ok(&["request-cert", "--cn", "J"]);
    assert!(env.fails(&["sign", "J", "--CA", "P1", "--intermediate", "--path-length", "3"], 2).contains("at most 0"));
}

#[test]
fn permit_domain_writes_name_constraints_and_sign_refuses_names_outside() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Scoped", "--permit-domain", "example.com,example.org", "--permit-domain", "internal"]);
    with_cert(&env.file("Scoped.crt"), |c| {
        let nc = c.name_constraints().unwrap().expect("nameConstraints");
        assert!(nc.critical);
        let bases: Vec<String> =
            nc.value.permitted_subtrees.as_ref().unwrap().iter().map(|s| format!("{}", s.base)).collect();
        // Three DNS subtrees, and the loopback ranges, so that a
        // DNS-only constraint does not leave IP addresses unconstrained.
        assert_eq!(bases.len(), 5, "{bases:?}");
        assert_eq!(bases.iter().filter(|b| b.starts_with("IPAddress")).count(), 2, "{bases:?}");
    });
    env.ok(&["request-cert", "--domain", "api.example.com"]);
    env.ok(&["sign", "api.example.com", "--CA", "Scoped"]);
    env.ok(&["request-cert", "--domain", "evil.test"]);
    let err = env.fails(&["sign", "evil.test", "--CA", "Scoped"], 1);
    assert!(err.contains("evil.test") && err.contains("example.com"), "{err}");
    assert!(!env.file("evil.test.crt").exists());
}

#[test]
fn key_flag_reuses_an_existing_key() {
    let env = Env::new();
    env.ok(&["request-cert", "--cn", "first"]);
    let key = env.file("first.key");
    env.ok(&["request-cert", "--cn", "second", "--key", key.to_str().unwrap()]);
    env.ok(&["init", "--cn", "CA", "--key", key.to_str().unwrap()]);
    env.ok(&["sign", "second", "--CA", "CA"]);
    let spki = |f: &str| with_cert(&env.file(f), |c| c.public_key().raw.to_vec());
    assert_eq!(spki("second.crt"), spki("CA.crt"));
    assert_eq!(mode(&env.file("second.key")), 0o600);
    let err = env.fails(&["request-cert", "--cn", "third", "--key", key.to_str().unwrap(), "--key-type", "rsa"], 2);
    assert!(err.contains("--key"), "{err}");
}

#[test]
fn csr_and_cert_flags_read_and_write_explicit_paths() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    let csr = env.tmp.path().join("outside.csr");
    env.ok(&["request-cert", "--cn", "ext", "--csr", csr.to_str().unwrap()]);
    assert!(csr.is_file() && !env.file("ext.csr").exists() && env.file("ext.key").is_file());
    let crt = env.tmp.path().join("outside.crt");
    env.ok(&["sign", "ext", "--CA", "CA", "--csr", csr.to_str().unwrap(), "--cert", crt.to_str().unwrap()]);
    assert!(crt.is_file() && !env.file("ext.crt").exists());
    with_cert(&crt, |c| assert!(c.subject().to_string().contains("CN=ext")));
    let err =
        env.fails(&["sign", "ext", "--CA", "CA", "--csr", csr.to_str().unwrap(), "--cert", crt.to_str().unwrap()], 1);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn stdout_prints_the_pem_and_still_writes_the_file() {
    let env = Env::new();
    let out = env.ok(&["init", "--cn", "CA", "--stdout"]);
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, std::fs::read_to_string(env.file("CA.crt")).unwrap());
    let out = env.ok(&["request-cert", "--cn", "s", "--stdout"]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let out = env.ok(&["sign", "s", "--CA", "CA", "--stdout"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(env.file("s.crt")).unwrap());
}

#[test]
fn stdout_into_a_closed_pipe_is_not_a_crash() {
    let env = Env::new();
    let mut child = env
        .cmd(&["init", "--cn", "CA", "--stdout"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    assert!(env.file("CA.crt").is_file());
}

#[test]
fn success_messages_say_what_where_and_when() {
    let env = Env::new();
    let err = String::from_utf8(env.ok(&["init", "--cn", "gRPC Root CA"]).stderr).unwrap();
    assert!(
        err.contains("Created CA \"gRPC Root CA\"") && err.contains("gRPC_Root_CA.crt") && err.contains("expires"),
        "{err}"
    );
    let err =
        String::from_utf8(env.ok(&["request-cert", "--domain", "localhost", "--ip", "127.0.0.1"]).stderr).unwrap();
    assert!(err.contains("DNS:localhost, IP:127.0.0.1") && err.contains("localhost.key"), "{err}");
    let err = String::from_utf8(env.ok(&["sign", "--CA", "gRPC Root CA", "localhost"]).stderr).unwrap();
    assert!(
        err.contains("DNS:localhost")
            && err.contains("localhost.crt")
            && err.contains("expires")
            && err.contains("in 7"),
        "{err}"
    );
}

#[test]
fn passphrase_flag_file_and_environment_encrypt_and_unlock_keys() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA", "--passphrase", "ca-secret"]);
    assert!(std::fs::read_to_string(env.file("CA.key")).unwrap().starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let pass_file = env.tmp.path().join("pass.txt");
    std::fs::write(&pass_file, "ca-secret\n").unwrap();
    env.ok(&["request-cert", "--cn", "a", "--passphrase", ""]);
    assert!(
        std::fs::read_to_string(env.file("a.key")).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"),
        "--passphrase \"\" means none"
    );
    env.ok(&["sign", "a", "--CA", "CA", "--passphrase-file", pass_file.to_str().unwrap()]);
    env.ok(&["request-cert", "--cn", "b"]);
    let mut c = env.cmd(&["sign", "b", "--CA", "CA"]);
    assert!(c.env("CERTFORGE_PASSPHRASE", "ca-secret").output().unwrap().status.success());
    env.ok(&["request-cert", "--cn", "c"]);
    let err = env.fails(&["sign", "c", "--CA", "CA"], 1);
    assert!(err.contains("encrypted") && err.contains("--passphrase-file"), "no prompt without a terminal: {err}");
    let err = env.fails(&["sign", "c", "--CA", "CA", "--passphrase", "wrong"], 1);
    assert!(err.contains("wrong passphrase") && !err.contains("wrong\""), "{err}");
    assert!(!env.file("c.crt").exists());
}

#[test]
fn revoke_lists_a_serial_once_and_counts_crl_numbers() {
    let env = Env::new();
    env.blog_workflow();
    let crl = |env: &Env| {
        let bytes = std::fs::read(env.file("gRPC_Root_CA.crl")).unwrap();
        let block = pem::parse(&bytes).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(block.contents()).unwrap();
        let number = crl.crl_number().unwrap().to_string();
        let serials: Vec<Vec<u8>> = crl.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()).collect();
        let next = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
        (number, serials, next)
    };
    assert_eq!(crl(&env).0, "1");
    assert!(crl(&env).1.is_empty());
    env.ok(&["revoke", "--CN", "localhost", "--CA", "gRPC Root CA", "--reason", "keyCompromise"]);
    let (n, serials, next) = crl(&env);
    assert_eq!((n.as_str(), serials.len()), ("2", 1));
    assert!(next > 7 * 86_400, "nextUpdate leaves time to re-sign: {next}");
    let out = env.ok(&["revoke", "--cn", "localhost", "--ca", "gRPC Root CA"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    assert_eq!(crl(&env).1.len(), 1, "a serial is listed once");
    env.ok(&["revoke", "--CN", "grpc_client", "--CA", "gRPC Root CA", "--reason", "superseded"]);
    let (n, serials, _) = crl(&env);
    assert_eq!((n.as_str(), serials.len()), ("3", 2));
}

#[test]
fn revoke_refuses_a_certificate_from_another_ca() {
    let env = Env::new();
    env.ok(&["init", "--cn", "A"]);
    env.ok(&["init", "--cn", "B"]);
    env.ok(&["request-cert", "--cn", "x"]);
    env.ok(&["sign", "x", "--CA", "A"]);
    let before = env.snapshot();
    let err = env.fails(&["revoke", "--CN", "x", "--CA", "B"], 1);
    assert!(err.contains("not issued by"), "{err}");
    assert_eq!(before, env.snapshot());
}

#[test]
fn version_and_help_with_examples_on_every_command() {
    let env = Env::new();
    let out = env.ok(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("certforge "));
    for sub in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["request-cert", "--help"],
        vec!["sign", "--help"],
        vec!["revoke", "--help"],
    ] {
        let out = env.ok(&sub);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{sub:?} help has an example:\n{text}");
    }
}

/// certforge's own `error:` lines were plain where clap's are bold red.
/// At a terminal (script(1) gives one) both start alike, coloured; with
/// NO_COLOR, or into a pipe, neither is.
#[test]
fn errors_are_coloured_as_claps_only_at_a_terminal() {
    let env = Env::new();
    env.ok(&["init", "--cn", "X"]);
    let bin = assert_cmd::cargo::cargo_bin("certforge");
    let at_terminal = |args: &str, no_color: bool| -> String {
        let line = format!("{} --depot-path {} {args}", bin.display(), env.depot().display());
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &line, "/dev/null"]).env("TERM", "xterm");
        for v in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
            c.env_remove(v);
        }
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().expect("script (util-linux) gives a terminal");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first word: `error:` with its escape sequences.
    let prefix = |s: &str| s.split(' ').next().unwrap_or_default().to_string();
    let ours = at_terminal("sign --CA X nothing", false);
    let claps = at_terminal("sign --no-such-flag", false);
    assert!(claps.contains("unexpected argument") && prefix(&claps).contains('\x1b'), "clap colours: {claps:?}");
    assert!(ours.contains("\"nothing\""), "certforge's own error: {ours:?}");
    assert_eq!(prefix(&ours), prefix(&claps), "the same `error:` as clap's: {ours:?}");
    let plain = at_terminal("sign --CA X nothing", true);
    assert!(plain.starts_with("error: ") && plain.contains("\"nothing\""), "NO_COLOR: {plain:?}");
    let piped = env.fails(&["sign", "--CA", "X", "nothing"], 1);
    assert!(piped.starts_with("error: ") && !piped.contains('\x1b'), "into a pipe: {piped:?}");
}
