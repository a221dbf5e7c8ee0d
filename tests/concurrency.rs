//! Concurrent use and crash safety: parallel processes on one CA lose no
//! CRL entry and tear no file; a race on one name has one winner; a process
//! killed at any point leaves whole files only.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::Env;

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.cmd(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn crl_serials(env: &Env, ca: &str) -> (String, usize) {
    let bytes = std::fs::read(env.file(&format!("{ca}.crl"))).unwrap();
    let der = pem::parse(&bytes).unwrap().into_contents();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    (crl.crl_number().unwrap().to_string(), crl.iter_revoked_certificates().count())
}

/// Every certificate, key, CSR and CRL in the depot parses.
fn all_whole(env: &Env) {
    for (path, (bytes, _)) in env.snapshot() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temporary file of a killed process: never a depot entry
        }
        let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{name} is not text"));
        let blocks = pem::parse_many(&text).unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        assert!(!blocks.is_empty(), "{name} is empty");
    }
}

#[test]
fn eight_parallel_revokes_lose_no_crl_entry() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    for i in 0..8 {
        env.ok(&["request-cert", "--cn", &format!("leaf{i}")]);
        env.ok(&["sign", &format!("leaf{i}"), "--CA", "CA"]);
    }
    let children: Vec<Child> =
        (0..8).map(|i| spawn(&env, &["revoke", "--CN", &format!("leaf{i}"), "--CA", "CA"])).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(crl_serials(&env, "CA"), ("9".to_string(), 8), "CRL number 1 + 8 revocations, 8 entries");
}

#[test]
fn mixed_parallel_commands_on_one_ca_all_land_whole() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA"]);
    for i in 0..4 {
        env.ok(&["request-cert", "--cn", &format!("r{i}")]);
        env.ok(&["sign", &format!("r{i}"), "--CA", "CA"]);
        env.ok(&["request-cert", "--cn", &format!("s{i}")]);
    }
    std::fs::write(
        env.tmp.path().join("plan.toml"),
        "[[ca]]\nname = \"CA\"\n[[leaf]]\nname = \"p-{n}\"\ncount = 20\nissuer = \"CA\"\n",
    )
    .unwrap();
    let plan = env.tmp.path().join("plan.toml");
    let mut children = Vec::new();
    for i in 0..4 {
        children.push(spawn(&env, &["revoke", "--CN", &format!("r{i}"), "--CA", "CA"]));
        children.push(spawn(&env, &["sign", &format!("s{i}"), "--CA", "CA"]));
    }
    children.push(spawn(&env, &["renew", "r0"]));
    children.push(spawn(&env, &["apply", plan.to_str().unwrap(), "-q"]));
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(crl_serials(&env, "CA").1, 4, "every revocation is in the CRL");
    all_whole(&env);
    env.ok(&["verify", "s3", "--purpose", "server"]);
    env.ok(&["verify", "p-20"]);
}

#[test]
fn two_requests_for_one_name_have_one_winner() {
    for round in 0..5 {
        let env = Env::new();
        std::fs::create_dir_all(env.depot()).unwrap();
        let a = spawn(&env, &["request-cert", "--cn", "same"]);
        let b = spawn(&env, &["request-cert", "--cn", "same"]);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert_eq!(a.status.success() as u8 + b.status.success() as u8, 1, "round {round}: exactly one wins");
        let loser = if a.status.success() { b } else { a };
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("already exists"),
            "{}",
            String::from_utf8_lossy(&loser.stderr)
        );
        // The winner's key and CSR belong together.
        let d = env.depot();
        // openssl_ok asserts each exit status: two unreadable files would
        // otherwise compare equal (both empty).
        let key = common::openssl_ok(&d, &["pkey", "-in", "same.key", "-pubout"]);
        let csr = common::openssl_ok(&d, &["req", "-in", "same.csr", "-noout", "-pubkey"]);
        assert!(key.starts_with("-----BEGIN PUBLIC KEY-----"), "{key}");
        assert_eq!(key, csr);
    }
}

#[test]
fn a_process_killed_at_any_point_leaves_whole_files() {
    let env = Env::new();
    std::fs::write(
        env.tmp.path().join("plan.toml"),
        "[[ca]]\nname = \"CA\"\n[[leaf]]\nname = \"k-{n}\"\ncount = 200\nissuer = \"CA\"\n",
    )
    .unwrap();
    let plan = env.tmp.path().join("plan.toml");
    for i in 0..25u64 {
        let mut child = env
            .cmd(&["apply", plan.to_str().unwrap(), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3 + (i * 7) % 60));
        let _ = child.kill();
        let _ = child.wait();
        all_whole(&env);
        // Never a key without its certificate.
        for (path, _) in env.snapshot() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".key").filter(|_| !name.starts_with('.')) {
                assert!(env.file(&format!("{stem}.crt")).exists(), "round {i}: {name} has no certificate");
            }
        }
    }
    // Whatever the kills left, the next run completes the plan.
    env.ok(&["apply", plan.to_str().unwrap(), "-q"]);
    all_whole(&env);
    let out = env.ok(&["apply", plan.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn secrets_stay_secret() {
    let env = Env::new();
    env.ok(&["init", "--cn", "CA", "--passphrase", "hunter2-secret"]);
    env.ok(&["request-cert", "--cn", "x"]);
    let err = env.fails(&["sign", "x", "--CA", "CA", "--passphrase", "wrong-hunter3"], 1);
    assert!(!err.contains("hunter"), "no passphrase in errors: {err}");
    let out = env.ok(&["inspect", "CA.key", "--json", "--passphrase", "hunter2-secret"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"), "no passphrase in JSON");
    // A CA key readable by others is called out.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.file("CA.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.ok(&["sign", "x", "--CA", "CA", "--passphrase", "hunter2-secret"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by others") && err.contains("chmod 600"), "{err}");
}
