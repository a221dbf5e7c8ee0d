//! Bad input gets a clear error naming the problem, and nothing changes:
//! every row runs one bad command against a populated depot and compares
//! every file around it, byte for byte and mode for mode, before and after.

mod common;

use common::{snapshot, Env};

/// A depot with the blog workflow, an encrypted CA, a CA whose key is not
/// its own, an unsigned request and some bad input files beside it.
fn populated() -> Env {
    let env = Env::new();
    env.blog_workflow();
    env.ok(&["init", "--cn", "Locked CA", "--passphrase", "right"]);
    env.ok(&["init", "--cn", "Mis CA"]);
    std::fs::copy(env.file("localhost.key"), env.file("Mis_CA.key")).unwrap();
    env.ok(&["request-cert", "--cn", "pending"]);
    env.ok(&["init", "--cn", "Old CA", "--not-before", "2020-01-01T00:00:00Z", "--not-after", "2021-01-01T00:00:00Z"]);
    let t = env.tmp.path();
    std::fs::write(t.join("garbage.csr"), "this is not a CSR\n").unwrap();
    std::fs::write(t.join("der-garbage.csr"), [0x30u8, 0x82, 0x01, 0x00, 0x02, 0x01]).unwrap();
    std::fs::copy(env.file("localhost.crt"), t.join("wronglabel.csr")).unwrap();
    // A tampered CSR: the CN "pending" becomes "Pending" after signing.
    let pem_bytes = std::fs::read(env.file("pending.csr")).unwrap();
    let mut der = pem::parse(&pem_bytes).unwrap().into_contents();
    let at = der.windows(7).position(|w| w == b"pending").unwrap();
    der[at] = b'P';
    std::fs::write(t.join("tampered.csr"), pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))).unwrap();
    let d = env.depot();
    let sh = |args: &[&str]| {
        assert!(
            std::process::Command::new("openssl").current_dir(t).args(args).output().unwrap().status.success(),
            "{args:?}"
        )
    };
    // A CSR on a curve no TLS stack here accepts, a PBES1 (3DES) key, a
    // certificate in DER where a CSR belongs, and a 100 MB input file.
    sh(&["ecparam", "-name", "brainpoolP256r1", "-genkey", "-noout", "-out", "bp.key"]);
    sh(&["req", "-new", "-key", "bp.key", "-subj", "/CN=bp", "-out", "brainpool.csr"]);
    sh(&[
        "pkcs8",
        "-topk8",
        "-v1",
        "PBE-SHA1-3DES",
        "-in",
        d.join("localhost.key").to_str().unwrap(),
        "-out",
        "pbes1.key",
        "-passout",
        "pass:pw",
    ]);
    sh(&["x509", "-in", d.join("localhost.crt").to_str().unwrap(), "-outform", "DER", "-out", "cert.der"]);
    let csr_text = std::fs::read_to_string(env.file("pending.csr")).unwrap();
    std::fs::write(t.join("truncated.csr"), &csr_text[..csr_text.len() / 2]).unwrap();
    env
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let env = populated();
    let t = env.tmp.path().to_str().unwrap().to_string();
    let p = |f: &str| format!("{t}/{f}");
    // Outside the snapshot, which would otherwise read it for every row.
    let huge_dir = tempfile::tempdir().unwrap();
    let huge = huge_dir.path().join("huge.csr");
    std::fs::File::create(&huge).unwrap().set_len(100 << 20).unwrap();
    // (arguments, exit code, words the message must contain)
    let rows: Vec<(Vec<String>, i32, &[&str])> = vec![
        (s(&["request-cert", "--ip", "300.1.1.1"]), 2, &["300.1.1.1", "IPv4"]),
        (s(&["request-cert", "--ip", "fe80::1%eth0"]), 2, &["zone"]),
        (s(&["request-cert", "--domain", "bad host"]), 2, &["bad host"]),
        (s(&["request-cert", "--domain", "a..example.com"]), 2, &["empty label"]),
        (s(&["request-cert", "--domain", "foo.*.example.com"]), 2, &["leftmost"]),
        (s(&["request-cert", "--domain", "*.com"]), 2, &["*.com"]),
        (s(&["request-cert", "--uri", "example.org/x"]), 2, &["scheme"]),
        (s(&["request-cert", "--email", "nobody"]), 2, &["@"]),
        (s(&["request-cert", "--cn", "x", "--country", "USA"]), 2, &["two-letter"]),
        (s(&["request-cert"]), 2, &["--common-name"]),
        (s(&["request-cert", "--cn", "x", "--curve", "P-224"]), 2, &["P-224"]),
        (s(&["request-cert", "--cn", "x", "--key-bits", "1024"]), 2, &["1024"]),
        (s(&["request-cert", "--cn", "x", "--key-type", "ed25519", "--key-bits", "2048"]), 2, &["--key-bits"]),
        (s(&["request-cert", "--domain", "localhost"]), 1, &["localhost.key", "already exists"]),
        (s(&["request-cert", "--cn", "x", "--key", &p("missing.key")]), 1, &["missing.key"]),
        (s(&["request-cert", "--cn", "x", "--passphrase-file", &p("missing.txt")]), 1, &["missing.txt"]),
        (s(&["init", "--cn", "gRPC Root CA"]), 1, &["already exists"]),
        (s(&["init", "--cn", "../escaped"]), 2, &["../escaped", "hidden"]),
        (s(&["init", "--cn", "..."]), 2, &["letter or digit"]),
        (s(&["init", "--cn", "New", "--expires", "two years"]), 2, &["two years", "--expires"]),
        (s(&["init", "--cn", "New", "--expires", "0 days"]), 2, &["nothing"]),
        (
            s(&["init", "--cn", "New", "--not-before", "2026-01-02T00:00:00Z", "--not-after", "2026-01-01T00:00:00Z"]),
            2,
            &["not after"],
        ),
        (s(&["init", "--cn", "New", "--not-after", "next week"]), 2, &["RFC 3339"]),
        (s(&["init", "--cn", "New", "--permit-domain", "bad domain"]), 2, &["--permit-domain"]),
        (s(&["sign", "pending", "--CA", "No Such CA"]), 1, &["No_Such_CA.crt", "init"]),
        (s(&["sign", "nothing-here", "--CA", "gRPC Root CA"]), 1, &["nothing-here.csr", "request-cert"]),
        (s(&["sign", "pending", "--CA", "localhost"]), 1, &["not a CA"]),
        (s(&["sign", "pending", "--CA", "Mis CA"]), 1, &["does not belong"]),
        (s(&["sign", "pending", "--CA", "Locked CA"]), 1, &["encrypted", "--passphrase"]),
        (s(&["sign", "pending", "--CA", "Locked CA", "--passphrase", "wrong"]), 1, &["wrong passphrase"]),
        (s(&["sign", "pending", "--CA", "Old CA"]), 1, &["expired"]),
        (s(&["sign", "pending", "--CA", "gRPC Root CA", "--expires", "soon"]), 2, &["soon"]),
        (s(&["sign", "localhost", "--CA", "gRPC Root CA"]), 1, &["localhost.crt", "already exists"]),
        (
            s(&["sign", "garbage", "--CA", "gRPC Root CA", "--csr", &p("garbage.csr")]),
            1,
            &["garbage.csr", "not a certificate signing request"],
        ),
        (s(&["sign", "derg", "--CA", "gRPC Root CA", "--csr", &p("der-garbage.csr")]), 1, &["der-garbage.csr"]),
        (s(&["sign", "trunc", "--CA", "gRPC Root CA", "--csr", &p("truncated.csr")]), 1, &["truncated.csr"]),
        (s(&["sign", "wl", "--CA", "gRPC Root CA", "--csr", &p("wronglabel.csr")]), 1, &["CERTIFICATE PEM block"]),
        (s(&["sign", "tampered", "--CA", "gRPC Root CA", "--csr", &p("tampered.csr")]), 1, &["signature"]),
        (
            s(&["sign", "pending", "--CA", "gRPC Root CA", "--profile", "server", "--intermediate"]),
            2,
            &["--intermediate"],
        ),
        (s(&["sign", "pending", "--CA", "gRPC Root CA", "--profile", "admin"]), 2, &["admin"]),
        (s(&["revoke", "--CN", "nobody", "--CA", "gRPC Root CA"]), 1, &["nobody.crt"]),
        (s(&["revoke", "--CN", "localhost", "--CA", "gRPC Root CA", "--reason", "bored"]), 2, &["bored"]),
        (s(&["revoke", "--CN", "localhost"]), 2, &["--CA"]),
        (s(&["frobnicate"]), 2, &["frobnicate"]),
        (s(&["init", "--cn", "/"]), 2, &["letter or digit"]),
        (s(&["init", "--cn", &"n".repeat(300)]), 2, &["300 bytes", "limit"]),
        (s(&["init", "--cn", "日本語"]), 2, &["letter or digit"]),
        (s(&["request-cert", "--cn", "bell\u{7}name"]), 2, &["control character"]),
        (s(&["request-cert", "--domain", "a..b.example.com"]), 2, &["empty label"]),
        (s(&["sign", "bp", "--CA", "gRPC Root CA", "--csr", &p("brainpool.csr")]), 1, &["brainpool.csr", "curve"]),
        (
            s(&["sign", "der", "--CA", "gRPC Root CA", "--csr", &p("cert.der")]),
            1,
            &["cert.der", "not a certificate signing request"],
        ),
        (s(&["sign", "huge", "--CA", "gRPC Root CA", "--csr", huge.to_str().unwrap()]), 1, &["huge.csr", "MiB"]),
        (s(&["request-cert", "--cn", "y", "--key", &p("pbes1.key"), "--passphrase", "pw"]), 1, &["pbes1.key", "PBES1"]),
        (s(&["init", "--cn", "New", "--not-before", "2026-01-02T00:00:00Z", "--expires", "0 hours"]), 2, &["nothing"]),
        (s(&["request-cert", "--cn", "z", "--uri", "no scheme here"]), 2, &["scheme"]),
        // A key named where a certificate belongs is a mistake in the call.
        (s(&["verify", "localhost.key"]), 2, &["localhost.key holds no certificate"]),
        (s(&["lint", "localhost.key"]), 2, &["localhost.key holds no certificate"]),
    ];
    assert!(rows.len() >= 40, "the table has {} rows", rows.len());
    let before = snapshot(env.tmp.path());
    for (args, code, words) in &rows {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = env.fails(&refs, *code);
        for w in *words {
            assert!(err.contains(w), "{args:?}: message should mention {w:?}:\n{err}");
        }
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        let after = snapshot(env.tmp.path());
        assert!(before == after, "{args:?} changed files: {:?}", diff(&before, &after));
    }
    assert!(!env.tmp.path().join("escaped.crt").exists());
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn diff(
    a: &std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, u32)>,
    b: &std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, u32)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in b {
        if a.get(k) != Some(v) {
            out.push(format!("changed/added {}", k.display()));
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            out.push(format!("removed {}", k.display()));
        }
    }
    out
}

#[test]
fn a_failed_request_leaves_no_orphan_key() {
    let env = Env::new();
    env.ok(&["request-cert", "--cn", "taken"]);
    // The CSR target exists but the key does not: the run must fail before
    // writing a key that would then have no request.
    std::fs::remove_file(env.file("taken.key")).unwrap();
    let before = env.snapshot();
    let err = env.fails(&["request-cert", "--cn", "taken"], 1);
    assert!(err.contains("taken.csr"), "{err}");
    assert_eq!(before, env.snapshot());
    assert!(!env.file("taken.key").exists());
}

#[test]
fn a_symlinked_target_is_never_written_through() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    env.ok(&["request-cert", "--cn", "victim"]);
    let outside = env.tmp.path().join("outside.txt");
    std::fs::write(&outside, "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, env.file("victim.crt")).unwrap();
    let err = env.fails(&["sign", "victim", "--CA", "CA"], 1);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
}

#[test]
fn an_unwritable_depot_fails_cleanly() {
    if nix_is_root() {
        // root ignores directory permissions; the row is meaningful only for
        // an ordinary user, so check the same thing through a file in the
        // way: a depot path that is a regular file.
        let env = Env::new();
        std::fs::write(env.depot(), "not a directory").unwrap();
        let err = env.fails(&["init", "--cn", "CA"], 1);
        assert!(err.contains("certs"), "{err}");
        assert_eq!(std::fs::read_to_string(env.depot()).unwrap(), "not a directory");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    std::fs::create_dir(env.depot()).unwrap();
    std::fs::set_permissions(env.depot(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let err = env.fails(&["init", "--cn", "CA"], 1);
    assert!(err.contains("certs"), "{err}");
    assert_eq!(std::fs::read_dir(env.depot()).unwrap().count(), 0);
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
