//! Name constraints that mean what they say. A DNS-only
//! `--permit-domain` also constrains IP addresses (loopback by default),
//! `sign` refuses any SAN outside the CA's constraints, and OpenSSL, the
//! real peer, refuses what a leaked key signs outside them.

mod common;

use common::{openssl, openssl_ec_csr, openssl_leaked_leaf, openssl_verify_server, Env};

#[test]
fn a_dns_only_constraint_also_confines_ip_addresses() {
    let env = Env::new();
    let out = env.ok(&["init", "--cn", "Local CA", "--permit-domain", "localhost,test"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("IP:127.0.0.0/8") && said.contains("IP:::1/128") && said.contains("were added"), "{said}");

    // certforge signs what is inside, and openssl accepts it.
    env.ok(&["request-cert", "--domain", "localhost,api.test", "--ip", "127.0.0.1,::1"]);
    env.ok(&["sign", "localhost", "--CA", "Local CA", "--profile", "server"]);
    openssl_verify_server(&env.depot(), "Local_CA.crt", None, "localhost.crt");

    // ... and refuses what is outside, naming the SAN and the constraint.
    let before = env.snapshot();
    for (cn, flags, shown) in [
        ("ip8", vec!["--ip", "8.8.8.8"], "IP:8.8.8.8 is outside"),
        ("ip6", vec!["--ip", "2606:4700::1111"], "IP:2606:4700::1111 is outside"),
        ("web", vec!["--domain", "www.example.com"], "DNS:www.example.com is outside"),
    ] {
        let mut args = vec!["request-cert", "--cn", cn];
        args.extend(flags);
        env.ok(&args);
        let snap = env.snapshot();
        let err = env.fails(&["sign", cn, "--CA", "Local CA"], 1);
        assert!(err.contains(shown) && err.contains("nothing was signed"), "{err}");
        assert_eq!(env.snapshot(), snap, "a refused sign writes nothing");
    }
    // A CN alone is checked as OpenSSL checks it when there is no DNS SAN.
    env.ok(&["request-cert", "--cn", "www.example.org"]);
    let err = env.fails(&["sign", "www.example.org", "--CA", "Local CA"], 1);
    assert!(err.contains("DNS:www.example.org is outside"), "{err}");
    assert!(env.snapshot().len() > before.len());

    // A leaked key signing outside the constraints (openssl, bypassing
    // certforge): OpenSSL refuses it, and `verify` says why in words.
    let d = env.depot();
    for (stem, san) in [("leak-ip", "IP:8.8.8.8"), ("leak-dns", "DNS:www.example.com")] {
        openssl_leaked_leaf(&d, stem, &format!("/CN={stem}"), Some(san), "Local_CA");
        let (ok, text) = openssl(&d, &["verify", "-CAfile", "Local_CA.crt", &format!("{stem}.crt")]);
        assert!(!ok && text.contains("permitted subtree violation"), "openssl must refuse {san}: {text}");
        let out = env.run(&["verify", d.join(format!("{stem}.crt")).to_str().unwrap(), "--ca", "Local CA"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(&format!("{san} is outside the names the CA may issue for")), "{said}");
        assert!(said.contains("RFC 5280") && !said.contains("NameConstraintViolation"), "in words: {said}");
        let out = env.run(&["lint", stem]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(&format!("{san} is outside")) && said.contains("'Local CA'"), "lint says it too: {said}");
    }
    // A CA made elsewhere with DNS-only constraints: lint says what it leaves open.
    // `req -x509` makes the certificate where the helper would write a CSR.
    openssl_ec_csr(
        &d,
        "Other",
        "/CN=Other",
        &[
            "-x509",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "nameConstraints=critical,permitted;DNS:test",
        ],
    );
    std::fs::rename(d.join("Other.csr"), d.join("Other.crt")).unwrap();
    let out = env.run(&["lint", "Other"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("IP addresses unconstrained"), "{said}");
}

#[test]
fn permit_domain_takes_ip_ranges_and_names_a_bad_one() {
    let env = Env::new();
    let out = env.ok(&["init", "--cn", "LAN CA", "--permit-domain", "home.arpa,10.0.0.0/8,fc00::/7"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("IP:10.0.0.0/8") && !said.contains("were added"), "explicit ranges are kept alone: {said}");
    env.ok(&["request-cert", "--domain", "nas.home.arpa", "--ip", "10.1.2.3,fd00::5"]);
    env.ok(&["sign", "nas.home.arpa", "--CA", "LAN CA", "--profile", "server"]);
    openssl_verify_server(&env.depot(), "LAN_CA.crt", None, "nas.home.arpa.crt");
    env.ok(&["request-cert", "--cn", "loop", "--ip", "127.0.0.1"]);
    let err = env.fails(&["sign", "loop", "--CA", "LAN CA"], 1);
    assert!(err.contains("IP:127.0.0.1 is outside"), "loopback is not in an explicit list: {err}");

    let before = env.snapshot();
    for (bad, why) in
        [("10.0.0.1/8", "write 10.0.0.0/8"), ("10.0.0.0/40", "prefix length"), ("*.example.com", "wildcard")]
    {
        let err = env.fails(&["init", "--cn", "Bad", "--permit-domain", bad], 2);
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_plan_cannot_issue_outside_its_cas_constraints() {
    let env = Env::new();
    let plan = env.depot().parent().unwrap().join("plan.toml");
    let ca = "[[ca]]\nname = \"Lab CA\"\npermit_domains = [\"lab.test\"]\n\n";
    std::fs::write(
        &plan,
        format!(
            "{ca}[[leaf]]\nname = \"web\"\nissuer = \"Lab CA\"\ndomains = [\"web.lab.test\", \"www.example.com\"]\n"
        ),
    )
    .unwrap();
    let err = env.fails(&["apply", plan.to_str().unwrap()], 1);
    assert!(err.contains("\"web\"") && err.contains("DNS:www.example.com is outside"), "{err}");
    assert!(!env.depot().exists(), "nothing written, not even the CA");
    // An IP under a DNS-only constraint is outside too (loopback was added).
    std::fs::write(&plan, format!("{ca}[[leaf]]\nname = \"web\"\nissuer = \"Lab CA\"\nips = [\"10.0.0.1\"]\n"))
        .unwrap();
    let err = env.fails(&["apply", plan.to_str().unwrap()], 1);
    assert!(err.contains("IP:10.0.0.1 is outside"), "{err}");
    std::fs::write(
        &plan,
        format!(
            "{ca}[[leaf]]\nname = \"web\"\nissuer = \"Lab CA\"\ndomains = [\"web.lab.test\"]\nips = [\"127.0.0.1\"]\n"
        ),
    )
    .unwrap();
    env.ok(&["apply", plan.to_str().unwrap()]);
    openssl_verify_server(&env.depot(), "Lab_CA.crt", None, "web.crt");
}
