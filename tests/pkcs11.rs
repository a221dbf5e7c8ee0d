//! CA keys on a PKCS#11 token, against SoftHSM2: the lifecycle
//! for each key type checked by openssl, mutual TLS with Go crypto/tls and
//! Python grpcio under a token CA, the key's protection as pkcs11-tool
//! reports it, a depot without key material, each failure leaving the
//! depot as it was, parallel signing, a token intermediate, the URI's
//! module-path and pin-source, a key that takes its PIN at every
//! signature, and the binaries the .deb and `cargo install` ship.
//!
//! Each test has a token directory of its own (tests/common/hsm.rs) and
//! names the module with --pkcs11-module, except where the defaults or the
//! URI are what is tested. Without SoftHSM2 the tests skip, saying
//! SKIPPED, unless CERTFORGE_REQUIRE_PEERS is set.

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;
#[path = "common/hsm.rs"]
mod hsm;

use std::path::{Path, PathBuf};
use std::process::Command;

use acme_server::{Answers, Server};
use hsm::{Hsm, MODULE, PIN};
use instant_acme::{Identifier, RevocationRequest};

const CA: &str = "Staging CA";
const CA_STEM: &str = "Staging_CA";
const CA_URI: &str = "pkcs11:token=certforge;object=staging-ca";

/// `openssl x509 -noout -serial` of a depot certificate: the hex digits.
fn serial(hsm: &Hsm, cert: &str) -> String {
    let out = hsm.openssl_ok(&["x509", "-noout", "-serial", "-in", cert]);
    out.trim().strip_prefix("serial=").unwrap_or_else(|| panic!("no serial in {out}")).to_string()
}

/// The SubjectPublicKeyInfo of a depot certificate, PEM.
fn cert_spki(hsm: &Hsm, cert: &str) -> String {
    hsm.openssl_ok(&["x509", "-noout", "-pubkey", "-in", cert])
}

/// `openssl verify -x509_strict -CAfile CA [-untrusted U] CERT` must pass.
fn verify(hsm: &Hsm, ca: &str, untrusted: Option<&str>, cert: &str) {
    let mut args = vec!["verify", "-x509_strict", "-CAfile", ca];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push(cert);
    let out = hsm.openssl_ok(&args);
    assert!(out.contains(&format!("{cert}: OK")), "openssl verify {cert}: {out}");
}

/// The CRL verifies under `ca` and lists each of `serials`.
fn crl_lists(hsm: &Hsm, crl: &str, ca: &str, serials: &[&str]) {
    let out = hsm.openssl_ok(&["crl", "-in", crl, "-CAfile", ca, "-noout"]);
    assert!(out.contains("verify OK"), "openssl crl -CAfile {ca}: {out}");
    let listing = hsm.openssl_ok(&["crl", "-in", crl, "-noout", "-text"]);
    for s in serials {
        assert!(listing.contains(&format!("Serial Number: {s}")), "{crl} does not list {s}:\n{listing}");
    }
}

/// The private key `label` on the token: private (absent from a listing
/// without login), sensitive, always sensitive, never extractable, usable
/// to sign only; its public half to verify only.
fn assert_key_protected(hsm: &Hsm, label: &str) {
    let keys = hsm.private_keys();
    let key = keys
        .iter()
        .find(|o| o.get("label") == Some(label))
        .unwrap_or_else(|| panic!("no private key {label:?} on the token: {keys:?}"));
    let access = key.words("Access");
    for flag in ["sensitive", "always sensitive", "never extractable"] {
        assert!(access.iter().any(|a| a == flag), "{label}: Access lacks {flag:?}: {access:?}");
    }
    assert!(!access.iter().any(|a| a == "extractable"), "{label}: extractable: {access:?}");
    assert_eq!(key.words("Usage"), ["sign"], "{label}: the private key's usage");
    let public: Vec<_> = hsm.objects(false);
    assert!(
        !public.iter().any(|o| o.kind.starts_with("Private Key Object")),
        "a private key is listed without logging in: {public:?}"
    );
    let pubkey = public
        .iter()
        .find(|o| o.kind.starts_with("Public Key Object") && o.get("label") == Some(label))
        .unwrap_or_else(|| panic!("no public key {label:?} visible without login: {public:?}"));
    assert_eq!(pubkey.words("Usage"), ["verify"], "{label}: the public key's usage");
}

/// The lifecycle of a token CA of one key type: init (key made on the
/// token), request-cert + sign, revoke, renew, each checked by openssl.
/// `key_args` are init's key flags, `text` what `openssl x509 -text` shows
/// of such a key.
fn lifecycle(key_args: &[&str], text: &[&str]) {
    let Some(hsm) = Hsm::new() else { return };
    let mut init = vec!["init", "--cn", CA, "--key", CA_URI];
    init.extend(key_args);
    let out = hsm.ok(&init);
    assert!(out.contains("made on the token now"), "{out}");
    assert!(!hsm.env.file(&format!("{CA_STEM}.key")).exists(), "a key file was written");
    let ca_crt = format!("{CA_STEM}.crt");
    let ca_text = hsm.openssl_ok(&["x509", "-noout", "-text", "-in", &ca_crt]);
    for t in text {
        assert!(ca_text.contains(t), "the CA certificate should show {t:?}:\n{ca_text}");
    }
    assert_key_protected(&hsm, "staging-ca");

    // sign, the PIN from CERTFORGE_PKCS11_PIN and the module from
    // CERTFORGE_PKCS11_MODULE this time.
    hsm.ok(&["request-cert", "--domain", "localhost", "--ip", "127.0.0.1"]);
    let mut sign = hsm.bare(&["sign", "localhost", "--CA", CA]);
    sign.env("CERTFORGE_PKCS11_PIN", PIN).env("CERTFORGE_PKCS11_MODULE", MODULE);
    hsm.ok_cmd(sign);
    verify(&hsm, &ca_crt, None, "localhost.crt");
    let leaf_serial = serial(&hsm, "localhost.crt");

    hsm.ok(&["revoke", "--CN", "localhost", "--CA", CA]);
    let crl = format!("{CA_STEM}.crl");
    crl_lists(&hsm, &crl, &ca_crt, &[&leaf_serial]);
    let (ok, out) =
        hsm.openssl(&["verify", "-x509_strict", "-crl_check", "-CRLfile", &crl, "-CAfile", &ca_crt, "localhost.crt"]);
    assert!(!ok && out.contains("certificate revoked"), "the revoked leaf under -crl_check: {out}");

    let (old_serial, old_spki) = (serial(&hsm, &ca_crt), cert_spki(&hsm, &ca_crt));
    hsm.ok(&["renew", CA_STEM]);
    assert_ne!(serial(&hsm, &ca_crt), old_serial, "renew made no new CA certificate");
    assert_eq!(cert_spki(&hsm, &ca_crt), old_spki, "renew changed the CA key");
    assert!(hsm.env.file(&format!("archive/{CA_STEM}.{old_serial}.crt")).exists(), "the old CA certificate is kept");
    verify(&hsm, &ca_crt, None, "localhost.crt");
    crl_lists(&hsm, &crl, &ca_crt, &[&leaf_serial]);

    // The renewed CA signs: a second leaf passes the CRL check the first fails.
    hsm.ok(&["request-cert", "--domain", "after.example"]);
    hsm.ok(&["sign", "after.example", "--CA", CA]);
    hsm.openssl_ok(&[
        "verify",
        "-x509_strict",
        "-crl_check",
        "-CRLfile",
        &crl,
        "-CAfile",
        &ca_crt,
        "after.example.crt",
    ]);
    // ...and revokes: the CRL it signs lists both, and verifies.
    let after_serial = serial(&hsm, "after.example.crt");
    hsm.ok(&["revoke", "--CN", "after.example", "--CA", CA]);
    crl_lists(&hsm, &crl, &ca_crt, &[&leaf_serial, &after_serial]);
    assert_eq!(hsm.private_keys().len(), 1, "the token should hold the one CA key");
}

#[test]
fn ecdsa_p256_ca_on_token_signs_revokes_and_renews() {
    lifecycle(&["--key-type", "ecdsa-p256"], &["id-ecPublicKey", "P-256", "ecdsa-with-SHA256"]);
}

#[test]
fn ecdsa_p384_ca_on_token_signs_revokes_and_renews() {
    lifecycle(&["--key-type", "ecdsa-p384"], &["id-ecPublicKey", "P-384", "ecdsa-with-SHA384"]);
}

#[test]
fn rsa_2048_ca_on_token_signs_revokes_and_renews() {
    lifecycle(
        &["--key-type", "rsa", "--key-bits", "2048"],
        &["rsaEncryption", "(2048 bit)", "sha256WithRSAEncryption"],
    );
}

#[test]
fn rsa_3072_ca_on_token_signs_revokes_and_renews() {
    lifecycle(
        &["--key-type", "rsa", "--key-bits", "3072"],
        &["rsaEncryption", "(3072 bit)", "sha256WithRSAEncryption"],
    );
}

#[test]
fn ed25519_ca_on_token_signs_revokes_and_renews() {
    lifecycle(&["--key-type", "ed25519"], &["Public Key Algorithm: ED25519", "Signature Algorithm: ED25519"]);
}

// ---------------------------------------------------------------------------
// gRPC peers

use common::{interop_python, interop_script as script};

/// A depot with two token CAs, P-256 and RSA 2048, each with a server
/// certificate for localhost (--profile server) and a client certificate
/// (--profile client).
fn peer_depot() -> Option<Hsm> {
    let hsm = Hsm::new()?;
    for (ca, object, key) in [
        ("EC Token CA", "ec-ca", &["--key-type", "ecdsa-p256"][..]),
        ("RSA Token CA", "rsa-ca", &["--key-type", "rsa", "--key-bits", "2048"][..]),
    ] {
        let uri = format!("pkcs11:token=certforge;object={object}");
        let mut init = vec!["init", "--cn", ca, "--key", &uri];
        init.extend(key);
        hsm.ok(&init);
        let stem = ca.replace(' ', "_");
        let (server, client) = (format!("{stem}-server"), format!("{stem}-client"));
        hsm.ok(&["request-cert", "--cn", &server, "--domain", "localhost", "--ip", "127.0.0.1"]);
        hsm.ok(&["sign", &server, "--CA", ca, "--profile", "server"]);
        hsm.ok(&["request-cert", "--cn", &client]);
        hsm.ok(&["sign", &client, "--CA", ca, "--profile", "client"]);
    }
    Some(hsm)
}

/// Runs a handshake script as tests/peers.rs does: PROGRAM LEAD... CA
/// SERVER.crt SERVER.key CLIENT.crt CLIENT.key NAME, without the CA-bundle
/// variables, bounded.
fn mtls(hsm: &Hsm, program: &Path, lead: &[&Path], ca_stem: &str, name: &str) -> (bool, String) {
    let d = hsm.env.depot();
    let f = |n: String| d.join(n).into_os_string();
    let mut cmd = Command::new(program);
    cmd.current_dir(hsm.env.tmp.path())
        .env("GOCACHE", Path::new(env!("CARGO_MANIFEST_DIR")).join("target/go-cache"))
        .args(lead)
        .args([
            f(format!("{ca_stem}.crt")),
            f(format!("{ca_stem}-server.crt")),
            f(format!("{ca_stem}-server.key")),
            f(format!("{ca_stem}-client.crt")),
            f(format!("{ca_stem}-client.key")),
        ])
        .arg(name);
    // The first `go run` compiles; later ones take a second.
    clients::run_bounded(&mut cmd, 300)
}

#[test]
fn go_crypto_tls_accepts_mtls_with_token_signed_certificates() {
    if !clients::require("go", &["version"], "apt-get install golang-go") {
        return;
    }
    let Some(hsm) = peer_depot() else { return };
    let go = PathBuf::from("go");
    let run = |ca: &str, name: &str| mtls(&hsm, &go, &[Path::new("run"), &script("go_mtls.go")], ca, name);
    for ca in ["EC_Token_CA", "RSA_Token_CA"] {
        let (ok, out) = run(ca, "localhost");
        assert!(ok && out.contains("ok"), "{ca}: Go mTLS handshake: {out}");
        let (ok, out) = run(ca, "127.0.0.1");
        assert!(ok && out.contains("ok"), "{ca}: Go mTLS to the IP SAN: {out}");
        // The same run refuses a name the certificate lacks: it checks.
        let (ok, out) = run(ca, "grpc.example.com");
        assert!(!ok && out.contains("not grpc.example.com"), "{ca}: a wrong host name: {out}");
    }
}

#[test]
fn python_grpcio_accepts_mtls_with_token_signed_certificates() {
    let py = interop_python();
    if !clients::require(
        py.to_str().unwrap(),
        &["-c", "import grpc"],
        "python3 -m venv target/interop-venv && target/interop-venv/bin/pip install grpcio",
    ) {
        return;
    }
    let Some(hsm) = peer_depot() else { return };
    let s = script("grpc_mtls.py");
    for ca in ["EC_Token_CA", "RSA_Token_CA"] {
        let (ok, out) = mtls(&hsm, &py, &[&s], ca, "localhost");
        assert!(ok && out.contains("ok"), "{ca}: grpcio mTLS call: {out}");
        let (ok, out) = mtls(&hsm, &py, &[&s], ca, "grpc.example.com");
        assert!(!ok && out.contains("UNAVAILABLE"), "{ca}: a name outside the SANs: {out}");
    }
}

// ---------------------------------------------------------------------------
// The key on the token, and what the depot holds

#[test]
fn token_key_is_private_sensitive_never_extractable_and_signs_only() {
    let Some(hsm) = Hsm::new() else { return };
    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    assert_key_protected(&hsm, "staging-ca");
    // The same as pkcs11-tool prints it, word for word.
    let listing = hsm.pkcs11_tool(&["--list-objects", "--login", "--pin", PIN]);
    assert!(listing.contains("Access:     sensitive, always sensitive, never extractable, local"), "{listing}");
    let anonymous = hsm.pkcs11_tool(&["--list-objects"]);
    assert!(!anonymous.contains("Private Key Object"), "{anonymous}");
    assert!(anonymous.contains("Public Key Object"), "{anonymous}");
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = common::snapshot(dir)
        .into_keys()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn depot_holds_no_private_key_material() {
    let Some(hsm) = Hsm::new() else { return };
    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    // The leaf's key is made outside the depot, so the depot gets no key
    // from anyone: only the CSR is handed in.
    let outside = hsm.path("outside");
    std::fs::create_dir(&outside).unwrap();
    common::openssl_ec_csr(&outside, "svc", "/CN=svc.example", &["-addext", "subjectAltName=DNS:svc.example"]);
    std::fs::copy(outside.join("svc.csr"), hsm.env.file("svc.csr")).unwrap();
    hsm.ok(&["sign", "svc", "--CA", CA]);
    let old = serial(&hsm, &format!("{CA_STEM}.crt"));
    hsm.ok(&["revoke", "--CN", "svc", "--CA", CA]);
    hsm.ok(&["renew", CA_STEM]);
    verify(&hsm, &format!("{CA_STEM}.crt"), None, "svc.crt");

    let depot = hsm.env.depot();
    let mut want = vec![
        format!("{CA_STEM}.crl"),
        format!("{CA_STEM}.crt"),
        format!("{CA_STEM}.key.uri"),
        format!("archive/{CA_STEM}.{old}.crt"),
        "svc.crt".to_string(),
        "svc.csr".to_string(),
    ];
    want.sort();
    assert_eq!(files(&depot), want);
    for (path, (bytes, _)) in common::snapshot(&depot) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("PRIVATE KEY"), "{} holds a private key:\n{text}", path.display());
    }
    let uri = std::fs::read_to_string(hsm.env.file(&format!("{CA_STEM}.key.uri"))).unwrap();
    assert!(uri.starts_with("pkcs11:"), "{uri}");
    assert!(uri.contains("token=certforge") && uri.contains("object=staging-ca"), "{uri}");
    assert!(!uri.contains("pin-value") && !uri.contains(PIN), "the URI file holds a PIN: {uri}");
    assert_eq!(uri.lines().count(), 1, "{uri}");
    assert_eq!(common::mode(&hsm.env.file(&format!("{CA_STEM}.key.uri"))) & 0o022, 0, "the URI file is world-writable");
}

// ---------------------------------------------------------------------------
// Failures: a message that says what to do, and the depot as it was

/// A depot with the token CA and a request, leaf.example, waiting to be signed.
fn ready_depot() -> Option<Hsm> {
    let hsm = Hsm::new()?;
    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    hsm.ok(&["request-cert", "--domain", "leaf.example"]);
    Some(hsm)
}

/// Runs a command that must fail, and checks that stderr holds every phrase and
/// that the depot is byte for byte what it was.
fn fails_unchanged(hsm: &Hsm, cmd: Command, phrases: &[&str]) -> String {
    let before = hsm.env.snapshot();
    let err = hsm.fails_cmd(cmd);
    for p in phrases {
        assert!(err.contains(p), "the message should say {p:?}:\n{err}");
    }
    assert!(hsm.env.snapshot() == before, "the depot changed:\n{err}");
    err
}

#[test]
fn module_not_found() {
    let Some(hsm) = ready_depot() else { return };
    let bad = |args: &[&str]| {
        let mut c = hsm.bare(args);
        c.args(["--pkcs11-module", "/nonexistent.so", "--pin-file"]).arg(&hsm.pin_file);
        c
    };
    let phrases = ["/nonexistent.so", "no such file", "--pkcs11-module"];
    fails_unchanged(&hsm, bad(&["sign", "leaf.example", "--CA", CA]), &phrases);
    fails_unchanged(&hsm, bad(&["init", "--cn", "Other CA", "--key", "pkcs11:token=certforge;object=other"]), &phrases);
    // The variable, named as such.
    let mut env_var = hsm.bare(&["sign", "leaf.example", "--CA", CA, "--pin-file"]);
    env_var.arg(&hsm.pin_file).env("CERTFORGE_PKCS11_MODULE", "/nonexistent.so");
    fails_unchanged(&hsm, env_var, &["/nonexistent.so", "CERTFORGE_PKCS11_MODULE"]);
}

#[test]
fn token_not_present() {
    let Some(hsm) = ready_depot() else { return };
    let err = fails_unchanged(
        &hsm,
        hsm.cmd(&["init", "--cn", "Other CA", "--key", "pkcs11:token=nope;object=other"]),
        &["no token matching", "token=\"nope\"", "\"certforge\"", "--list-token-slots", MODULE],
    );
    // SoftHSM's empty slot (an uninitialized token) is no candidate.
    assert!(!err.contains("\"\""), "an uninitialized token is offered as a label: {err}");
}

#[test]
fn wrong_pin() {
    let Some(hsm) = ready_depot() else { return };
    let wrong = hsm.write("wrong-pin", &format!("{}\n", hsm::WRONG_PIN));
    let mut sign = hsm.bare(&["sign", "leaf.example", "--CA", CA, "--pkcs11-module", MODULE, "--pin-file"]);
    sign.arg(&wrong);
    fails_unchanged(&hsm, sign, &["token \"certforge\"", "wrong PIN", "tries", "nothing was signed"]);
    let mut init = hsm.bare(&["init", "--cn", "Other CA", "--key", "pkcs11:token=certforge;object=other"]);
    init.args(["--pkcs11-module", MODULE]).env("CERTFORGE_PKCS11_PIN", hsm::WRONG_PIN);
    fails_unchanged(&hsm, init, &["wrong PIN", "tries"]);
    assert_eq!(hsm.private_keys().len(), 1, "a key was made without a login");
    // The right PIN still works: one wrong try does not lock SoftHSM.
    hsm.ok(&["sign", "leaf.example", "--CA", CA]);
    verify(&hsm, &format!("{CA_STEM}.crt"), None, "leaf.example.crt");
}

#[test]
fn key_not_found_on_token() {
    let Some(hsm) = ready_depot() else { return };
    hsm.ok(&["sign", "leaf.example", "--CA", CA]);
    hsm.ok(&["request-cert", "--domain", "second.example"]);
    hsm.pkcs11_tool(&["--login", "--pin", PIN, "--delete-object", "--type", "privkey", "--label", "staging-ca"]);
    assert!(hsm.private_keys().is_empty());
    let phrases = ["no private key \"staging-ca\"", "token \"certforge\"", &format!("{CA_STEM}.key.uri")];
    let err = fails_unchanged(&hsm, hsm.cmd(&["sign", "second.example", "--CA", CA]), &phrases);
    fails_unchanged(&hsm, hsm.cmd(&["revoke", "--CN", "leaf.example", "--CA", CA]), &phrases);
    fails_unchanged(&hsm, hsm.cmd(&["renew", CA_STEM]), &phrases);
    // The CA certificate names that key: making a new one under the same
    // URI would not bring the CA back, so the message must not suggest it.
    assert!(!err.contains("to make one"), "{err}");
}

#[test]
fn wrong_key_type_for_an_existing_key() {
    let Some(hsm) = ready_depot() else { return };
    fails_unchanged(
        &hsm,
        hsm.cmd(&["init", "--cn", "Other CA", "--key", CA_URI, "--key-type", "rsa", "--key-bits", "2048"]),
        &["\"staging-ca\"", "is ECDSA P-256", "RSA 2048 was asked for", "drop --key-type"],
    );
    assert_eq!(hsm.private_keys().len(), 1, "a second key was made");
    // Without a key type the existing key is taken as it is.
    let out = hsm.ok(&["init", "--cn", "Other CA", "--key", CA_URI]);
    assert!(out.contains("the key already on the token"), "{out}");
    assert_eq!(cert_spki(&hsm, "Other_CA.crt"), cert_spki(&hsm, &format!("{CA_STEM}.crt")));
}

/// tests/interop/p11_filter.c built into the test's temp dir.
fn filter_module(hsm: &Hsm) -> PathBuf {
    let so = hsm.path("filter.so");
    let mut gcc = Command::new("gcc");
    gcc.args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"]).arg(&so).arg(script("p11_filter.c"));
    gcc.arg("-ldl");
    let out = hsm::bounded(&mut gcc, hsm::LIMIT);
    assert!(out.status.success(), "gcc p11_filter.c: {}", hsm::text(&out));
    so
}

#[test]
fn mechanism_not_supported() {
    if !clients::require("gcc", &["--version"], "apt-get install gcc") {
        return;
    }
    let Some(hsm) = ready_depot() else { return };
    let filter = filter_module(&hsm);
    let through_filter = |args: &[&str], keep_list: bool| {
        let mut c = hsm.bare(args);
        c.arg("--pkcs11-module").arg(&filter).arg("--pin-file").arg(&hsm.pin_file).env("P11_FILTER_REAL", MODULE);
        if keep_list {
            c.env("P11_FILTER_KEEP_LIST", "1");
        }
        c
    };
    let filter_path = filter.display().to_string();
    // A new P-256 key: refused before it is made.
    let init =
        through_filter(&["init", "--cn", "Filtered CA", "--key", "pkcs11:token=certforge;object=filtered"], false);
    fails_unchanged(&hsm, init, &["CKM_ECDSA", "ECDSA P-256", "--list-mechanisms", &filter_path]);
    assert!(
        !hsm.private_keys().iter().any(|k| k.get("label") == Some("filtered")),
        "a key was made that the token cannot sign with"
    );
    // The existing P-256 CA key, before anything is signed.
    let sign = through_filter(&["sign", "leaf.example", "--CA", CA], false);
    fails_unchanged(&hsm, sign, &["CKM_ECDSA", &format!("{CA_STEM}.key.uri")]);
    // A module that lists CKM_ECDSA but refuses it at C_SignInit.
    let sign = through_filter(&["sign", "leaf.example", "--CA", CA], true);
    fails_unchanged(&hsm, sign, &["CKM_ECDSA", "could not sign"]);
    // The filter passes everything else: an Ed25519 CA works through it.
    let ed = through_filter(
        &["init", "--cn", "Ed CA", "--key", "pkcs11:token=certforge;object=ed", "--key-type", "ed25519"],
        false,
    );
    hsm.ok_cmd(ed);
    hsm.ok_cmd(through_filter(&["sign", "leaf.example", "--CA", "Ed CA"], false));
    verify(&hsm, "Ed_CA.crt", None, "leaf.example.crt");
}

#[test]
fn no_pin_and_no_terminal() {
    let Some(hsm) = ready_depot() else { return };
    let phrases = ["token \"certforge\" needs its PIN", "--pin-file", "CERTFORGE_PKCS11_PIN", "pin-source=file:"];
    // stdin is /dev/null (Env::cmd), so there is no terminal to ask at.
    fails_unchanged(&hsm, hsm.bare(&["sign", "leaf.example", "--CA", CA, "--pkcs11-module", MODULE]), &phrases);
    fails_unchanged(
        &hsm,
        hsm.bare(&[
            "init",
            "--cn",
            "Other CA",
            "--key",
            "pkcs11:token=certforge;object=other",
            "--pkcs11-module",
            MODULE,
        ]),
        &phrases,
    );
}

// ---------------------------------------------------------------------------
// Parallel signing, intermediates, module search and the URI's query

#[test]
fn eight_parallel_signs_on_one_token_ca() {
    let Some(hsm) = Hsm::new() else { return };
    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    let names: Vec<String> = (0..8).map(|i| format!("svc{i}.example")).collect();
    for n in &names {
        hsm.ok(&["request-cert", "--domain", n]);
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = names
            .iter()
            .map(|n| {
                let cmd = hsm.cmd(&["sign", n, "--CA", CA]);
                s.spawn(move || {
                    let mut cmd = cmd;
                    hsm::bounded(&mut cmd, hsm::LIMIT)
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, out) in names.iter().zip(&results) {
        assert!(out.status.success(), "sign {n}: {}", hsm::text(out));
    }
    let ca_crt = format!("{CA_STEM}.crt");
    let mut serials: Vec<String> = Vec::new();
    for n in &names {
        verify(&hsm, &ca_crt, None, &format!("{n}.crt"));
        serials.push(serial(&hsm, &format!("{n}.crt")));
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 8, "serials repeat: {serials:?}");
    // The token is left as it should be: listed, logged into, signing.
    let slots = hsm.tool_run("softhsm2-util", &["--show-slots"]);
    assert!(slots.status.success() && hsm::text(&slots).contains("certforge"), "{}", hsm::text(&slots));
    assert_key_protected(&hsm, "staging-ca");
    hsm.ok(&["request-cert", "--domain", "after.example"]);
    hsm.ok(&["sign", "after.example", "--CA", CA]);
    verify(&hsm, &ca_crt, None, "after.example.crt");
}

#[test]
fn intermediate_ca_on_token() {
    let Some(hsm) = Hsm::new() else { return };
    hsm.ok(&["init", "--cn", "Token Root", "--key", "pkcs11:token=certforge;object=root"]);
    hsm.ok(&["request-cert", "--cn", "Token Issuing", "--key", "pkcs11:token=certforge;object=issuing"]);
    assert!(hsm.env.file("Token_Issuing.key.uri").exists());
    assert!(!hsm.env.file("Token_Issuing.key").exists(), "the intermediate got a key file");
    hsm.ok(&["sign", "Token Issuing", "--CA", "Token Root", "--intermediate"]);
    hsm.ok(&["request-cert", "--domain", "localhost"]);
    hsm.ok(&["sign", "localhost", "--CA", "Token Issuing"]);
    verify(&hsm, "Token_Root.crt", Some("Token_Issuing.crt"), "localhost.crt");
    // Without the intermediate the leaf does not verify: it is its issuer.
    let (ok, out) = hsm.openssl(&["verify", "-x509_strict", "-CAfile", "Token_Root.crt", "localhost.crt"]);
    assert!(!ok, "{out}");
    // The intermediate's certificate holds the key on the token.
    let der = hsm.path("issuing.pub.der");
    let der_arg = der.display().to_string();
    hsm.pkcs11_tool(&["--read-object", "--type", "pubkey", "--label", "issuing", "-o", &der_arg]);
    let token_pub = hsm.openssl_ok(&["pkey", "-pubin", "-inform", "DER", "-in", &der_arg]);
    assert_eq!(cert_spki(&hsm, "Token_Issuing.crt"), token_pub);
    assert_eq!(hsm.private_keys().len(), 2);
    // The intermediate revokes, and its CRL verifies under it.
    let leaf_serial = serial(&hsm, "localhost.crt");
    hsm.ok(&["revoke", "--CN", "localhost", "--CA", "Token Issuing"]);
    crl_lists(&hsm, "Token_Issuing.crl", "Token_Issuing.crt", &[&leaf_serial]);
}

#[test]
fn default_module_search_finds_the_token() {
    let Some(hsm) = Hsm::new() else { return };
    // No --pkcs11-module, no CERTFORGE_PKCS11_MODULE, no module-path:
    // p11-kit-proxy (which reaches SoftHSM where p11-kit registers it), then
    // OpenSC, then SoftHSM itself.
    let with_pin = |args: &[&str]| {
        let mut c = hsm.bare(args);
        c.arg("--pin-file").arg(&hsm.pin_file);
        c
    };
    hsm.ok_cmd(with_pin(&["init", "--cn", CA, "--key", CA_URI]));
    let uri = std::fs::read_to_string(hsm.env.file(&format!("{CA_STEM}.key.uri"))).unwrap();
    assert!(!uri.contains("module-path"), "{uri}");
    hsm.ok_cmd(hsm.bare(&["request-cert", "--domain", "localhost"]));
    hsm.ok_cmd(with_pin(&["sign", "localhost", "--CA", CA]));
    verify(&hsm, &format!("{CA_STEM}.crt"), None, "localhost.crt");
    assert_key_protected(&hsm, "staging-ca");
}

#[test]
fn uri_without_token_attribute_finds_the_one_token() {
    let Some(hsm) = Hsm::new() else { return };
    // SoftHSM always shows a free slot with an uninitialized token beside
    // the initialized one; only the latter can hold the key.
    hsm.ok(&["init", "--cn", CA, "--key", "pkcs11:object=staging-ca"]);
    hsm.ok(&["request-cert", "--domain", "localhost"]);
    hsm.ok(&["sign", "localhost", "--CA", CA]);
    verify(&hsm, &format!("{CA_STEM}.crt"), None, "localhost.crt");
    // With two initialized tokens the URI must say which.
    hsm.init_token("second");
    let err = hsm.fails(&["init", "--cn", "Other CA", "--key", "pkcs11:object=other"]);
    assert!(err.contains("2 tokens match") && err.contains("add token=LABEL"), "{err}");
}

#[test]
fn uri_module_path_and_pin_source() {
    let Some(hsm) = Hsm::new() else { return };
    let pin = hsm.pin_file.display().to_string();
    let uri = format!("pkcs11:token=certforge;object=staging-ca?module-path={MODULE}&pin-source=file:{pin}");
    // Neither --pkcs11-module nor --pin-file, in any command.
    let out = hsm.ok_cmd(hsm.bare(&["init", "--cn", CA, "--key", &uri]));
    assert!(out.contains("made on the token now"), "{out}");
    let stored = std::fs::read_to_string(hsm.env.file(&format!("{CA_STEM}.key.uri"))).unwrap();
    assert!(stored.contains(&format!("module-path={MODULE}")), "{stored}");
    assert!(stored.contains(&format!("pin-source=file:{pin}")), "{stored}");
    assert!(!stored.contains("pin-value"), "{stored}");
    hsm.ok_cmd(hsm.bare(&["request-cert", "--domain", "localhost"]));
    hsm.ok_cmd(hsm.bare(&["sign", "localhost", "--CA", CA]));
    verify(&hsm, &format!("{CA_STEM}.crt"), None, "localhost.crt");
    hsm.ok_cmd(hsm.bare(&["revoke", "--CN", "localhost", "--CA", CA]));
    crl_lists(&hsm, &format!("{CA_STEM}.crl"), &format!("{CA_STEM}.crt"), &[&serial(&hsm, "localhost.crt")]);

    // Both are really read: a module-path that is not there, and a
    // pin-source with the wrong PIN, fail saying where they came from.
    let wrong = hsm.write("wrong-pin", &format!("{}\n", hsm::WRONG_PIN)).display().to_string();
    let missing_module =
        format!("pkcs11:token=certforge;object=other?module-path=/nonexistent/lib.so&pin-source=file:{pin}");
    fails_unchanged(
        &hsm,
        hsm.bare(&["init", "--cn", "Other CA", "--key", &missing_module]),
        &["/nonexistent/lib.so", "the URI's module-path"],
    );
    let wrong_pin = format!("pkcs11:token=certforge;object=other?module-path={MODULE}&pin-source=file:{wrong}");
    fails_unchanged(&hsm, hsm.bare(&["init", "--cn", "Other CA", "--key", &wrong_pin]), &["wrong PIN"]);
    // --pin-file outranks the URI's pin-source.
    let mut init = hsm.bare(&["init", "--cn", "Other CA", "--key", &wrong_pin, "--pin-file"]);
    init.arg(&hsm.pin_file);
    hsm.ok_cmd(init);
}

// ---------------------------------------------------------------------------
// The other commands: inspect, list, verify --key, apply, export

/// `inspect` and `list` show where a token CA's key is and whether the token
/// answers, without a PIN; `inspect` of the URI file or the URI finds the
/// certificate carrying its public key.
#[test]
fn inspect_and_list_show_the_token_key_and_whether_it_answers() {
    let Some(hsm) = ready_depot() else { return };
    let no_pin = |args: &[&str]| {
        let mut c = hsm.bare(args);
        c.arg("--pkcs11-module").arg(MODULE);
        hsm.ok_cmd(c)
    };
    let place = "PKCS#11: token \"certforge\", object \"staging-ca\" (token reachable through";
    let out = no_pin(&["inspect", CA_STEM]);
    assert!(out.contains("CA key") && out.contains(place), "{out}");
    for target in [format!("{CA_STEM}.key.uri"), CA_URI.to_string()] {
        let out = no_pin(&["inspect", &target]);
        assert!(out.contains("private key on a PKCS#11 token") && out.contains("ECDSA P-256"), "{target}: {out}");
        assert!(out.contains(&format!("{CA_STEM}.crt")), "{target}: belongs to the CA certificate: {out}");
    }
    let out = no_pin(&["list"]);
    assert!(out.contains("CA keys on PKCS#11 tokens:") && out.contains(&format!("{CA_STEM}: {place}")), "{out}");
    let json: serde_json::Value = serde_json::from_str(&no_pin(&["list", "--json"])).unwrap_or_else(|e| panic!("{e}"));
    let ca_row = json.as_array().unwrap().iter().find(|r| r["name"] == CA_STEM).expect("the CA row");
    assert!(ca_row["token_key"].as_str().unwrap().contains(place), "{ca_row}");

    // With the token gone (another SoftHSM configuration), they say so and
    // still succeed: nothing needs the token to be listed.
    let gone = hsm.write("empty.conf", &format!("directories.tokendir = {}\n", hsm.path("no-tokens").display()));
    std::fs::create_dir(hsm.path("no-tokens")).unwrap();
    let mut c = hsm.bare(&["inspect", CA_STEM]);
    c.env("SOFTHSM2_CONF", &gone).arg("--pkcs11-module").arg(MODULE);
    let out = hsm.ok_cmd(c);
    assert!(out.contains("token NOT reachable") && out.contains("no token matching token=\"certforge\""), "{out}");
}

/// `verify --key` takes the CA's depot name (its .key.uri) or a URI, and a
/// different key on the token is reported as not matching.
#[test]
fn verify_key_reads_the_public_key_from_the_token() {
    let Some(hsm) = ready_depot() else { return };
    hsm.ok(&["sign", "leaf.example", "--CA", CA]);
    // A leaf certificate for the CA's own public key cannot be made, so the
    // CA certificate is checked against its key: verify's only complaint is
    // that a CA is not an end entity, never the key.
    for key in [CA_STEM, CA_URI] {
        let out = hsm.cmd(&["verify", CA_STEM, "--key", key]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("key does not match"), "{key}: {text}");
    }
    hsm.ok(&["init", "--cn", "Other CA", "--key", "pkcs11:token=certforge;object=other"]);
    let out = hsm.cmd(&["verify", CA_STEM, "--key", "pkcs11:token=certforge;object=other"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("key does not match"), "{text}");
}

/// A plan's root and intermediate on the token: apply makes both keys there,
/// keeps their URIs, signs a leaf that openssl accepts, and a second apply
/// changes nothing.
#[test]
fn apply_keeps_a_plans_ca_and_intermediate_on_the_token() {
    let Some(hsm) = Hsm::new() else { return };
    let plan = hsm.write(
        "plan.toml",
        "[[ca]]\nname = \"Plan Root\"\nkey_uri = \"pkcs11:token=certforge;object=plan-root\"\n\n\
         [[intermediate]]\nname = \"Plan Issuing\"\nissuer = \"Plan Root\"\nkey_type = \"ecdsa-p384\"\n\
         key_uri = \"pkcs11:token=certforge;object=plan-issuing\"\n\n\
         [[leaf]]\nname = \"svc\"\nissuer = \"Plan Issuing\"\nprofile = \"server\"\ndomains = [\"svc.test\"]\n",
    );
    let plan = plan.display().to_string();
    let out = hsm.ok(&["apply", &plan]);
    assert!(out.contains("made 3"), "{out}");
    verify(&hsm, "Plan_Root.crt", Some("Plan_Issuing.crt"), "svc.crt");
    for stem in ["Plan_Root", "Plan_Issuing"] {
        assert!(!hsm.env.file(&format!("{stem}.key")).exists(), "{stem}: a key file was written");
        let uri = std::fs::read_to_string(hsm.env.file(&format!("{stem}.key.uri"))).unwrap();
        assert!(uri.starts_with("pkcs11:token=certforge;id=%"), "{stem}: {uri}");
    }
    let issuing = hsm.openssl_ok(&["x509", "-noout", "-text", "-in", "Plan_Issuing.crt"]);
    assert!(issuing.contains("384 bit"), "the intermediate is P-384: {issuing}");
    assert_eq!(hsm.private_keys().len(), 2, "one key on the token per CA");
    let before = hsm.env.snapshot();
    let out = hsm.ok(&["apply", &plan]);
    assert!(out.contains("nothing to do"), "{out}");
    assert!(hsm.env.snapshot() == before, "a second apply changed the depot");
}

/// What cannot be done with a token key is refused with the reason:
/// exporting it, or "encrypting" it with a passphrase.
#[test]
fn a_token_key_is_never_exported_nor_given_a_passphrase() {
    let Some(hsm) = Hsm::new() else { return };
    let before = hsm.env.snapshot();
    let err = hsm.fails(&["init", "--cn", CA, "--key", CA_URI, "--passphrase", "secret"]);
    assert!(err.contains("PIN") && err.contains("passphrase"), "{err}");
    assert!(hsm.env.snapshot() == before && hsm.private_keys().is_empty(), "nothing is made");

    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    hsm.ok(&["request-cert", "--cn", "svc", "--domain", "svc.test", "--key", "pkcs11:token=certforge;object=svc"]);
    hsm.ok(&["sign", "svc", "--CA", CA]);
    let before = hsm.env.snapshot();
    for format in ["pkcs12", "env"] {
        let err = hsm.fails(&["export", "svc", "--format", format, "--out", "svc.out", "--password", "changeit"]);
        assert!(err.contains("on a PKCS#11 token") && err.contains("never leaves it"), "{format}: {err}");
    }
    assert!(hsm.env.snapshot() == before);
}

/// The CA's export of a format that would carry the key names a format
/// that exists, and the command it prints works as printed.
#[test]
fn export_of_a_token_ca_suggests_a_bundle_that_works_as_printed() {
    let Some(hsm) = Hsm::new() else { return };
    hsm.ok(&["init", "--cn", CA, "--key", CA_URI]);
    let ca_der = pem::parse(std::fs::read(hsm.env.file(&format!("{CA_STEM}.crt"))).unwrap()).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_certforge")).parent().unwrap();
    for format in ["pkcs12", "env", "k8s"] {
        let err = hsm.fails(&["export", CA_STEM, "--format", format, "--password", "changeit"]);
        let line = err
            .split_once("without the key: ")
            .unwrap_or_else(|| panic!("{format}: no command to export without the key:\n{err}"))
            .1
            .trim();
        assert!(line.starts_with("certforge ") && line.ends_with("--format bundle"), "{format}: {line}");
        let out = hsm::bounded(
            Command::new("sh").arg("-c").arg(line).env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display())),
            hsm::LIMIT,
        );
        assert!(out.status.success(), "{format}: `{line}` as printed: {}", hsm::text(&out));
        let certs = pem::parse_many(&out.stdout).unwrap();
        assert_eq!(certs.first().map(|c| c.contents()), Some(ca_der.contents()), "{format}: `{line}` gives the CA");
    }
}

// ---------------------------------------------------------------------------
// The shipped binaries, and a key that takes its PIN at every signature

/// `openssl x509 -noout -serial` of a certificate outside the depot.
fn serial_of(hsm: &Hsm, path: &Path) -> String {
    serial(hsm, &path.display().to_string())
}

/// What a token CA does, with the key `uri` names (made by init, or taken
/// as it is on the token): init, request-cert + sign, revoke, then serve,
/// where an ACME order is signed on the token and a revokeCert re-signs
/// the CRL there. Every certificate passes `openssl verify -x509_strict`
/// under the CA, and the CRL verifies under it and lists what was revoked.
async fn init_sign_revoke_serve(hsm: &Hsm, uri: &str) {
    hsm.ok(&["init", "--cn", CA, "--key", uri]);
    let (ca_crt, crl) = (format!("{CA_STEM}.crt"), format!("{CA_STEM}.crl"));
    hsm.ok(&["request-cert", "--domain", "localhost", "--ip", "127.0.0.1"]);
    hsm.ok(&["sign", "localhost", "--CA", CA]);
    verify(hsm, &ca_crt, None, "localhost.crt");
    let leaf = serial(hsm, "localhost.crt");
    hsm.ok(&["revoke", "--CN", "localhost", "--CA", CA]);
    crl_lists(hsm, &crl, &ca_crt, &[&leaf]);

    let serve = hsm.cmd(&["serve", "--CA", CA, "--listen", "127.0.0.1:0", "--skip-validation"]);
    let mut server = Server::start_cmd(&hsm.env, serve);
    let account = acme_server::account(&server, None).await;
    let ids = [Identifier::Dns("svc.test".into())];
    let (chain, _key) = acme_server::obtain(&account, &ids, &Answers::default()).await;
    let svc = hsm.path("svc.pem");
    std::fs::write(&svc, &chain).unwrap();
    verify(hsm, &ca_crt, None, &svc.display().to_string());
    let cert = acme_server::first_der(&chain);
    account.revoke(&RevocationRequest { certificate: &cert, reason: None }).await.expect("revokeCert");
    crl_lists(hsm, &crl, &ca_crt, &[&leaf, &serial_of(hsm, &svc)]);
    assert!(server.stop().success(), "serve:\n{}", server.lines().join("\n"));
}

/// The binary the .deb ships (extracted as installing it would place it)
/// loads the PKCS#11 module: a statically linked glibc program cannot, and
/// crashed on the first command that opened the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_binary_runs_a_token_ca() {
    let Some(deb) = common::the_deb() else { return };
    let root = tempfile::tempdir().unwrap();
    common::extract_deb(&deb, root.path());
    let Some(hsm) = Hsm::with_binary(&root.path().join("usr/bin/certforge")) else { return };
    init_sign_revoke_serve(&hsm, CA_URI).await;
}

/// The same with the binary `cargo install` builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cargo_installed_binary_runs_a_token_ca() {
    let Some(bin) = common::the_installed_binary() else { return };
    let Some(hsm) = Hsm::with_binary(&bin) else { return };
    init_sign_revoke_serve(&hsm, CA_URI).await;
}

/// The label of a key made with CKA_ALWAYS_AUTHENTICATE.
const PIN_EACH_TIME: &str = "pin-each-time";

/// A P-256 key that asks for the PIN at every signature, as PIV's slot 9c
/// on a YubiKey does, made by pkcs11-tool and checked to be so.
fn make_always_authenticate_key(hsm: &Hsm) {
    hsm.pkcs11_tool(&[
        "--login",
        "--pin",
        PIN,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        PIN_EACH_TIME,
        "--id",
        "9c",
        "--usage-sign",
        "--always-auth",
    ]);
    let keys = hsm.private_keys();
    let key = keys.iter().find(|k| k.get("label") == Some(PIN_EACH_TIME)).expect("the key pkcs11-tool made");
    assert!(key.words("Access").iter().any(|a| a == "always authenticate"), "{key:?}");
}

/// PKCS#11 takes the per-signature PIN between C_SignInit and C_Sign; a
/// login before C_SignInit is refused (CKR_OPERATION_NOT_INITIALIZED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_asks_for_the_pin_at_every_signature_signs_revokes_and_serves() {
    let Some(hsm) = Hsm::new() else { return };
    make_always_authenticate_key(&hsm);
    init_sign_revoke_serve(&hsm, &format!("pkcs11:token=certforge;object={PIN_EACH_TIME}")).await;
    // The CA certificate holds that key.
    let der = hsm.path("pub.der").display().to_string();
    hsm.pkcs11_tool(&["--read-object", "--type", "pubkey", "--label", PIN_EACH_TIME, "-o", &der]);
    let token_pub = hsm.openssl_ok(&["pkey", "-pubin", "-inform", "DER", "-in", &der]);
    assert_eq!(cert_spki(&hsm, &format!("{CA_STEM}.crt")), token_pub);
}

/// p11-kit-proxy gives each caller an instance of its own, so the
/// module's C_Sign that the per-signature PIN needs cannot be reached
/// through it: certforge says so before signing anything, and names the
/// fix, which then works.
#[test]
fn a_per_signature_pin_through_p11_kit_proxy_names_the_module_to_use() {
    let proxy = ["/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so", "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so"];
    if !proxy.iter().any(|p| Path::new(p).exists()) {
        assert!(!common::required(), "p11-kit-proxy is missing: .ci/run installs p11-kit-modules");
        eprintln!("SKIPPED: p11-kit-proxy is not installed (apt-get install p11-kit-modules)");
        return;
    }
    let Some(hsm) = Hsm::new() else { return };
    make_always_authenticate_key(&hsm);
    let uri = format!("pkcs11:token=certforge;object={PIN_EACH_TIME}");
    // No --pkcs11-module: the default search reaches SoftHSM through p11-kit-proxy.
    let mut init = hsm.bare(&["init", "--cn", CA, "--key", &uri, "--pin-file"]);
    init.arg(&hsm.pin_file);
    fails_unchanged(
        &hsm,
        init,
        &["CKA_ALWAYS_AUTHENTICATE", "p11-kit-proxy", "--pkcs11-module", MODULE, "nothing was signed"],
    );
    hsm.ok(&["init", "--cn", CA, "--key", &uri]);
    verify(&hsm, &format!("{CA_STEM}.crt"), None, &format!("{CA_STEM}.crt"));
}
