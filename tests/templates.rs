//! Templates: the built-ins are shown and copyable, a user's own template
//! changes what init, request-cert and sign make, and a bad one is refused
//! with the line at fault.

mod common;

use common::{openssl_ok, with_cert, Env};

#[test]
fn templates_list_and_show_print_the_builtins() {
    let env = Env::new();
    let out = env.ok(&["templates", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for n in ["ca", "intermediate", "server", "client", "peer"] {
        assert!(text.contains(n), "{n} in:\n{text}");
    }
    let out = env.ok(&["templates", "show", "server"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), include_str!("../templates/profiles/server.toml"));
    let err = env.fails(&["templates", "show", "nope"], 2);
    assert!(err.contains("nope") && err.contains("server"), "{err}");
}

#[test]
fn a_copy_of_a_builtin_template_gives_the_same_certificate_shape() {
    let env = Env::new();
    let t = env.tmp.path();
    std::fs::write(t.join("server.toml"), env.ok(&["templates", "show", "server"]).stdout).unwrap();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&["request-cert", "--domain", "a.example.com"]);
    env.ok(&["sign", "a.example.com", "--CA", "CA", "--template", t.join("server.toml").to_str().unwrap()]);
    env.ok(&["request-cert", "--domain", "b.example.com"]);
    env.ok(&["sign", "b.example.com", "--CA", "CA", "--profile", "server"]);
    let shape = |f: &str| {
        with_cert(&env.file(f), |c| {
            let ku = c.key_usage().unwrap().unwrap();
            let eku = c.extended_key_usage().unwrap().unwrap();
            (
                ku.critical,
                ku.value.flags,
                eku.value.server_auth,
                eku.value.client_auth,
                c.basic_constraints().unwrap().unwrap().value.ca,
            )
        })
    };
    assert_eq!(shape("a.example.com.crt"), shape("b.example.com.crt"));
}

#[test]
fn a_user_template_sets_ekus_validity_key_type_and_subject_defaults() {
    let env = Env::new();
    let t = env.tmp.path();
    std::fs::write(
        t.join("ca.toml"),
        "kind = \"ca\"\nkey_type = \"ecdsa-p384\"\nvalidity = \"3 years\"\nkey_usage = [\"digitalSignature\", \"keyCertSign\", \"cRLSign\"]\npath_len = 1\npermit_domains = [\"example.com\"]\n[subject]\norganization = \"Example Corp\"\ncountry = \"DE\"\n",
    )
    .unwrap();
    std::fs::write(
        t.join("svc.toml"),
        "description = \"internal service\"\nkind = \"leaf\"\nkey_type = \"ed25519\"\nvalidity = \"90 days\"\nkey_usage = [\"digitalSignature\"]\nextended_key_usage = [\"serverAuth\", \"clientAuth\", \"codeSigning\"]\n[subject]\norganizational_unit = \"Services\"\n",
    )
    .unwrap();
    env.ok(&["init", "--cn", "Corp CA", "--template", t.join("ca.toml").to_str().unwrap()]);
    with_cert(&env.file("Corp_CA.crt"), |c| {
        assert!(c.subject().to_string().contains("O=Example Corp") && c.subject().to_string().contains("C=DE"));
        assert_eq!(c.basic_constraints().unwrap().unwrap().value.path_len_constraint, Some(1));
        assert!(c.name_constraints().unwrap().is_some());
        let days = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400;
        assert!((1095..=1097).contains(&days), "{days}");
        assert!(matches!(c.public_key().parsed().unwrap(), x509_parser::public_key::PublicKey::EC(_)));
    });
    env.ok(&["request-cert", "--domain", "svc.example.com", "--template", t.join("svc.toml").to_str().unwrap()]);
    env.ok(&["sign", "svc.example.com", "--CA", "Corp CA", "--template", t.join("svc.toml").to_str().unwrap()]);
    with_cert(&env.file("svc.example.com.crt"), |c| {
        assert!(c.subject().to_string().contains("OU=Services"), "{}", c.subject());
        let e = c.extended_key_usage().unwrap().unwrap().value;
        assert!(e.server_auth && e.client_auth && e.code_signing);
        let days = (c.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        assert!((89..=90).contains(&days), "{days}");
        assert_eq!(c.public_key().algorithm.algorithm.to_id_string(), "1.3.101.112", "Ed25519 from the template");
    });
    openssl_ok(
        &env.depot(),
        &["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "Corp_CA.crt", "svc.example.com.crt"],
    );
}

#[test]
fn a_bad_template_is_refused_with_its_line_and_nothing_is_written() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&["request-cert", "--cn", "x"]);
    let t = env.tmp.path();
    let cases = [
        (
            "typo.toml",
            "kind = \"leaf\"\nkey_usage = [\"digitalSignature\"]\nextended_key_usgae = [\"serverAuth\"]\n",
            ":3:",
        ),
        ("eku.toml", "kind = \"leaf\"\nextended_key_usage = [\"serverAuth\",\n  \"webAuth\"]\n", ":3:"),
        ("valid.toml", "kind = \"leaf\"\nvalidity = \"a while\"\n", ":2:"),
        ("syntax.toml", "kind = \"leaf\"\nkey_usage = [\n", ":"),
        ("kind.toml", "kind = \"ca\"\nkey_usage = [\"keyCertSign\"]\n", "kind"),
    ];
    let before = env.snapshot();
    for (file, text, want) in cases {
        std::fs::write(t.join(file), text).unwrap();
        let err = env.fails(&["sign", "x", "--CA", "CA", "--template", t.join(file).to_str().unwrap()], 2);
        assert!(err.contains(file) && err.contains(want), "{file}: {err}");
        assert_eq!(before, env.snapshot(), "{file} changed the depot");
    }
}
