//! `init --local`, a CA safe to trust. A root and "NAME
//! Issuing", both name-constrained; the root's key never reaches the disk;
//! `sign --CA NAME` signs with the intermediate.

mod common;

use common::{
    openssl, openssl_ec_csr, openssl_leaked_leaf, openssl_ok, openssl_sign, openssl_verify_as, openssl_verify_server,
    with_cert, Env, SERVER_LEAF_EXT,
};

#[test]
fn a_local_ca_is_constrained_sealed_and_signs_through_its_intermediate() {
    let env = Env::new();
    let out = env.ok(&["init", "--cn", "Dev CA", "--local"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("could sign certificates for localhost, test, 127.0.0.0/8, ::1/128 only"), "{said}");

    // No key for the root anywhere in the depot; the intermediate's is 0600.
    let d = env.depot();
    assert!(!d.join("Dev_CA.key").exists());
    let keys: Vec<String> = env
        .snapshot()
        .into_iter()
        .filter(|(_, (bytes, _))| String::from_utf8_lossy(bytes).contains("PRIVATE KEY"))
        .map(|(p, (_, mode))| format!("{} {mode:o}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(keys, ["Dev_CA_Issuing.key 600"]);
    assert!(std::fs::read_to_string(d.join("Dev_CA.sealed")).unwrap().contains("issuing: Dev CA Issuing"));
    for (file, path_len) in [("Dev_CA.crt", 1), ("Dev_CA_Issuing.crt", 0)] {
        with_cert(&d.join(file), |c| {
            let bc = c.basic_constraints().unwrap().unwrap().value;
            assert_eq!(bc.path_len_constraint, Some(path_len), "{file}");
            let nc = c.name_constraints().unwrap().expect("constrained");
            assert_eq!(nc.value.permitted_subtrees.as_ref().unwrap().len(), 4, "{file}: the loopback preset");
        });
    }

    // sign --CA "Dev CA" signs with the intermediate; openssl accepts the chain.
    env.ok(&["request-cert", "--domain", "localhost,app.test", "--ip", "127.0.0.1,::1"]);
    let out = env.ok(&["sign", "localhost", "--CA", "Dev CA", "--profile", "server"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"Dev CA Issuing\" signs for it"));
    openssl_verify_server(&d, "Dev_CA.crt", Some("Dev_CA_Issuing.crt"), "localhost.crt");
    assert!(d.join("localhost.chain.crt").exists());
    env.ok(&["request-cert", "--domain", "www.example.com"]);
    let err = env.fails(&["sign", "www.example.com", "--CA", "Dev CA"], 1);
    assert!(err.contains("DNS:www.example.com is outside"), "{err}");

    // What a leaked intermediate key could do, tried with openssl: a leaf
    // for another site and a CA of its own are both refused.
    openssl_leaked_leaf(&d, "evil", "/CN=evil", Some("DNS:www.example.com"), "Dev_CA_Issuing");
    let (ok, text) = openssl(&d, &["verify", "-CAfile", "Dev_CA.crt", "-untrusted", "Dev_CA_Issuing.crt", "evil.crt"]);
    assert!(!ok && text.contains("permitted subtree violation"), "{text}");
    openssl_ec_csr(&d, "subca", "/CN=Sub CA", &[]);
    openssl_sign(
        &d,
        "subca.csr",
        "Dev_CA_Issuing",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n",
        "subca.crt",
        &[],
    );
    openssl_ec_csr(&d, "bank", "/CN=bank", &[]);
    openssl_sign(&d, "bank.csr", "subca", &format!("{SERVER_LEAF_EXT}subjectAltName=DNS:localhost\n"), "bank.crt", &[]);
    let mut chain = std::fs::read(d.join("Dev_CA_Issuing.crt")).unwrap();
    chain.extend(std::fs::read(d.join("subca.crt")).unwrap());
    std::fs::write(d.join("untrusted.pem"), chain).unwrap();
    let (ok, text) = openssl(&d, &["verify", "-CAfile", "Dev_CA.crt", "-untrusted", "untrusted.pem", "bank.crt"]);
    assert!(!ok && text.contains("path length constraint exceeded"), "{text}");

    // Revocation lands in the intermediate's CRL; the sealed root cannot be renewed.
    env.ok(&["revoke", "--CN", "localhost", "--CA", "Dev CA"]);
    openssl_ok(&d, &["crl", "-in", "Dev_CA_Issuing.crl", "-CAfile", "Dev_CA_Issuing.crt", "-noout"]);
    let before = env.snapshot();
    let err = env.fails(&["renew", "Dev CA"], 1);
    assert!(err.contains("sealed local CA"), "{err}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn the_lan_preset_adds_private_networks_and_bad_combinations_are_refused() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Home CA", "--local=lan", "--permit-domain", "example.internal"]);
    env.ok(&["request-cert", "--domain", "nas.home.arpa", "--ip", "192.168.1.10,fd00::10"]);
    env.ok(&["sign", "nas.home.arpa", "--CA", "Home CA", "--profile", "server"]);
    openssl_verify_server(&env.depot(), "Home_CA.crt", Some("Home_CA_Issuing.crt"), "nas.home.arpa.crt");
    env.ok(&["request-cert", "--cn", "public", "--ip", "8.8.8.8"]);
    let err = env.fails(&["sign", "public", "--CA", "Home CA"], 1);
    assert!(err.contains("IP:8.8.8.8 is outside"), "{err}");

    let before = env.snapshot();
    let err = env.fails(&["init", "--cn", "Home CA", "--local"], 1);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(&["init", "--cn", "X", "--local", "--path-length", "2"], 2);
    assert!(err.contains("--path-length"), "{err}");
    let err = env.fails(&["init", "--cn", "X", "--local=everything"], 2);
    assert!(err.contains("loopback") && err.contains("lan"), "{err}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn quickstart_local_makes_the_guide_files_under_a_sealed_local_ca() {
    let env = Env::new();
    let out = env.ok(&["quickstart", "--local"]);
    let (said, usage) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert!(
        said.contains("ca.crt is the root to trust") && said.contains("could sign certificates for localhost"),
        "{said}"
    );
    // The guide's cert_chain parameter gets the chain, since a peer must send "ca Issuing".
    assert!(usage.contains("server.fullchain.crt") && usage.contains("client.fullchain.crt"), "{usage}");
    let d = env.depot();
    assert!(!d.join("ca.key").exists() && d.join("ca.sealed").exists());
    openssl_verify_server(&d, "ca.crt", Some("ca_Issuing.crt"), "server.crt");
    openssl_verify_as(&d, "sslclient", "ca.crt", Some("ca_Issuing.crt"), &["client.crt"]);
    let chain = std::fs::read_to_string(d.join("server.fullchain.crt")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3, "leaf, intermediate, root");

    // A second run keeps everything; a run without --local, a seed, or a
    // name outside the preset is refused and changes nothing.
    let before = env.snapshot();
    let out = env.ok(&["quickstart", "--local"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"));
    let err = env.fails(&["quickstart"], 2);
    assert!(err.contains("run `quickstart --local` again"), "{err}");
    let err =
        env.fails(&["quickstart", "--local", "--deterministic-seed", "x", "--not-before", "2026-01-01T00:00:00Z"], 2);
    assert!(err.contains("do not mix"), "{err}");
    let err = env.fails(&["quickstart", "--local", "--host", "www.example.com"], 2);
    assert!(err.contains("DNS:www.example.com is outside"), "{err}");
    assert_eq!(env.snapshot(), before);

    // A plan can never re-issue the sealed root or sign outside its constraints.
    let plan = d.parent().unwrap().join("plan.toml");
    std::fs::write(&plan, "[[ca]]\nname = \"ca\"\ncn = \"x\"\n").unwrap();
    let err = env.fails(&["apply", plan.to_str().unwrap()], 1);
    assert!(err.contains("sealed local CA"), "{err}");
    assert_eq!(env.snapshot(), before);
}

/// Without --profile, a request whose CN names a host gets it as its SAN,
/// unless the local CA may not name it: `--cn client1` is then signed as
/// before, a client certificate, not refused for a name the user never
/// asked for; `--cn api.test`, inside the constraints, gets DNS:api.test.
#[test]
fn the_default_leaf_under_a_local_ca_takes_its_cn_as_a_san_only_where_allowed() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Dev CA", "--local"]);
    let sans = |name: &str| with_cert(&env.file(&format!("{name}.crt")), |c| common::sans(c).len());
    for (cn, want) in [("client1", 0), ("api.test", 1)] {
        env.ok(&["request-cert", "--cn", cn]);
        env.ok(&["sign", cn, "--CA", "Dev CA"]);
        assert_eq!(sans(cn), want, "{cn}");
    }
    openssl_verify_as(&env.depot(), "sslclient", "Dev_CA.crt", Some("Dev_CA_Issuing.crt"), &["client1.crt"]);
}
