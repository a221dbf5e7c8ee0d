//! `certforge serve` with instant-acme, a real ACME client, in process:
//! challenges checked for real over loopback, certificates that openssl
//! accepts, depot entries, revocation into the CRL, ARI, EAB, and a
//! restart that loses nothing.

#[path = "common/acme.rs"]
mod acme_server;
mod common;
#[path = "common/hsm.rs"]
mod hsm;

use std::sync::Arc;

use acme_server::{account, first_der, obtain, Answers, Server};
use common::{openssl_ok, Env};
use instant_acme::{
    Account, CertificateIdentifier, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy, RevocationRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves http-01 answers on 127.0.0.1 until the test's runtime ends.
async fn http01_responder() -> (u16, Answers) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers: Answers = Arc::default();
    let served = answers.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let answers = served.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await;
                let Ok(Ok(n)) = n else { return };
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let token = path.strip_prefix("/.well-known/acme-challenge/").unwrap_or("");
                let answer = answers.lock().unwrap().get(token).cloned();
                let reply = match answer {
                    Some(body) => {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_acme_gets_checked_certificates_for_a_name_and_an_ip_then_revokes_them() {
    let env = Env::new();
    env.ok(&["init", "--cn", "ACME CA", "--passphrase", ""]);
    let (port, answers) = http01_responder().await;
    let server =
        Server::start(&env, &["--CA", "ACME CA", "--listen", "127.0.0.1:0", "--http01-port", &port.to_string()]);
    let account = account(&server, None).await;

    // "localhost" resolves to 127.0.0.1, where the responder listens; the IP
    // identifier (RFC 8738) is checked there too.
    let ids = [Identifier::Dns("localhost".into()), Identifier::Ip("127.0.0.1".parse().unwrap())];
    let (chain, _key) = obtain(&account, &ids, &answers).await;
    let dir = env.tmp.path();
    std::fs::write(dir.join("got.pem"), &chain).unwrap();
    let ca = server.ca_file.display().to_string();
    openssl_ok(dir, &["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", &ca, "got.pem"]);
    let text = openssl_ok(dir, &["x509", "-in", "got.pem", "-noout", "-ext", "subjectAltName,extendedKeyUsage"]);
    assert!(text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(text.contains("TLS Web Server Authentication") && !text.contains("Client"), "server profile: {text}");

    // A depot entry like any other.
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    let entry = list.lines().find(|l| l.starts_with("localhost.acme-")).unwrap_or_else(|| panic!("{list}"));
    let name = entry.split_whitespace().next().unwrap().to_string();
    // The depot holds the leaf; the chain served adds the root after it
    // (certbot refuses a chain of one certificate).
    let leaf = std::fs::read_to_string(env.file(&format!("{name}.crt"))).unwrap();
    assert_eq!(pem::parse_many(&chain).unwrap().len(), 2);
    assert!(chain.starts_with(&leaf) && chain.ends_with(&std::fs::read_to_string(&server.ca_file).unwrap()));

    // ARI: a window ahead; then revoked, and the window is now.
    let cert = first_der(&chain);
    let id = CertificateIdentifier::try_from(&cert).unwrap();
    let (info, _) = account.renewal_info(&id).await.expect("renewal info");
    assert!(info.suggested_window.start > time::OffsetDateTime::now_utc() + time::Duration::days(20));
    account.revoke(&RevocationRequest { certificate: &cert, reason: None }).await.expect("revoke");
    let (info, _) = account.renewal_info(&id).await.unwrap();
    assert!(info.suggested_window.end <= time::OffsetDateTime::now_utc());
    let crl = openssl_ok(dir, &["crl", "-in", &env.file("ACME_CA.crl").display().to_string(), "-noout", "-text"]);
    let serial = openssl_ok(dir, &["x509", "-in", "got.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(crl.to_uppercase().contains(&serial.to_uppercase()), "serial {serial} in the CRL:\n{crl}");
    // Revoking twice is the RFC's alreadyRevoked.
    let again = account.revoke(&RevocationRequest { certificate: &cert, reason: None }).await.unwrap_err();
    assert!(again.to_string().contains("alreadyRevoked"), "{again}");

    // A challenge nobody answers fails with the check's own reason.
    let mut order = account.new_order(&NewOrder::new(&[Identifier::Dns("localhost".into())])).await.unwrap();
    {
        let mut authzs = order.authorizations();
        let mut authz = authzs.next().await.unwrap().unwrap();
        // Checked while the request waits: the answer is already the failure.
        let failed = authz.challenge(ChallengeType::Http01).unwrap().set_ready().await.unwrap_err().to_string();
        assert!(failed.contains("unauthorized") && failed.contains("answered 404"), "{failed}");
    }
    let status = order.poll_ready(&RetryPolicy::default()).await.unwrap();
    assert_eq!(status, OrderStatus::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_eab_only_bound_accounts_are_made() {
    let env = Env::new();
    env.ok(&["init", "--cn", "EAB CA", "--passphrase", ""]);
    let out = env.ok(&["acme", "eab", "add", "staging-ingress"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (kid, hmac) = stdout.trim().split_once(' ').expect("KID HMAC on stdout");
    let list = String::from_utf8(env.ok(&["acme", "eab", "list"]).stdout).unwrap();
    assert!(list.contains(kid) && list.contains("staging-ingress") && !list.contains(hmac), "{list}");
    let err = env.fails(&["acme", "eab", "add", "staging-ingress"], 1);
    assert!(err.contains("exists already"), "{err}");

    let server =
        Server::start(&env, &["--CA", "EAB CA", "--listen", "127.0.0.1:0", "--skip-validation", "--require-eab"]);
    assert!(!server.lines().iter().any(|l| l.contains("anyone who can reach")), "no open-door warning with EAB");
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let refused =
        Account::builder_with_root(&server.ca_file).unwrap().create(&new, server.directory.clone(), None).await;
    let refused = refused.err().expect("refused without EAB").to_string();
    assert!(refused.contains("externalAccountRequired"), "{refused}");

    use base64::Engine as _;
    let wrong = ExternalAccountKey::new(kid.to_string(), &[7u8; 32]);
    let refused =
        Account::builder_with_root(&server.ca_file).unwrap().create(&new, server.directory.clone(), Some(&wrong)).await;
    assert!(refused.err().expect("wrong MAC key").to_string().contains("unauthorized"));
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(hmac).unwrap();
    let eab = ExternalAccountKey::new(kid.to_string(), &key);
    let account = account(&server, Some(&eab)).await;
    let (chain, _) = obtain(&account, &[Identifier::Dns("eab.example.com".into())], &Answers::default()).await;
    assert!(chain.contains("BEGIN CERTIFICATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_survives_kill_9_between_new_order_and_finalize() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Restart CA", "--passphrase", ""]);
    let args = ["--CA", "Restart CA", "--listen", "127.0.0.1:0", "--skip-validation"];
    let mut server = Server::start(&env, &args);
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = Account::builder_with_root(&server.ca_file)
        .unwrap()
        .create(&new, server.directory.clone(), None)
        .await
        .unwrap();
    let ids = [Identifier::Dns("restart.example.com".into())];
    let order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let order_url = order.url().to_string();
    server.kill9();

    // The same port again, so the URLs the client holds still work.
    let port = order_url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&env, &["--CA", "Restart CA", "--listen", &listen, "--skip-validation"]);
    let account = Account::builder_with_root(&server.ca_file).unwrap().from_credentials(credentials).await.unwrap();
    let mut order = account.order(order_url).await.expect("the order survived the restart");
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.unwrap();
        authz.challenge(ChallengeType::Http01).unwrap().set_ready().await.unwrap();
    }
    assert_eq!(order.poll_ready(&RetryPolicy::default()).await.unwrap(), OrderStatus::Ready);
    order.finalize().await.unwrap();
    let chain = order.poll_certificate(&RetryPolicy::default()).await.unwrap();
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    assert!(list.contains("restart.example.com.acme-"), "{list}");
    assert!(chain.contains("BEGIN CERTIFICATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_peer_profile_lifetime_capped_at_the_ca_and_allow() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Short CA", "--passphrase", "", "--expires", "20 days"]);
    let args = ["--CA", "Short CA", "--listen", "127.0.0.1:0", "--skip-validation", "--profile", "peer"];
    let server = Server::start(&env, &[&args[..], &["--cert-lifetime", "90 days", "--allow", "example.com"]].concat());
    let account = account(&server, None).await;
    let (chain, _) = obtain(&account, &[Identifier::Dns("api.example.com".into())], &Answers::default()).await;
    std::fs::write(env.tmp.path().join("peer.pem"), &chain).unwrap();
    let dir = env.tmp.path();
    let text = openssl_ok(dir, &["x509", "-in", "peer.pem", "-noout", "-enddate", "-ext", "extendedKeyUsage"]);
    assert!(text.contains("TLS Web Server Authentication") && text.contains("TLS Web Client Authentication"), "{text}");
    let ca_end = openssl_ok(dir, &["x509", "-in", &server.ca_file.display().to_string(), "-noout", "-enddate"]);
    assert_eq!(text.lines().find(|l| l.starts_with("notAfter")), ca_end.lines().next(), "capped at the CA");

    // --allow example.com: another domain is refused, naming it.
    let refused = account.new_order(&NewOrder::new(&[Identifier::Dns("www.example.org".into())])).await;
    let refused = refused.err().expect("outside --allow").to_string();
    assert!(refused.contains("rejectedIdentifier") && refused.contains("www.example.org"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_depot_one_checking_one_skipping() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Shared CA", "--passphrase", ""]);
    let (port, answers) = http01_responder().await;
    let checking =
        Server::start(&env, &["--CA", "Shared CA", "--listen", "127.0.0.1:0", "--http01-port", &port.to_string()]);
    let skipping = Server::start(&env, &["--CA", "Shared CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    assert_ne!(checking.port(), skipping.port());
    let (a, b) = tokio::join!(account(&checking, None), account(&skipping, None));
    let ids_a = [Identifier::Dns("localhost".into())];
    let ids_b = [Identifier::Dns("ci.example.com".into())];
    let unused = Answers::default();
    let (chain_a, chain_b) = tokio::join!(obtain(&a, &ids_a, &answers), obtain(&b, &ids_b, &unused));
    assert_ne!(chain_a, chain_b);
    let loud = |l: &str| l.contains("challenge NOT checked") && l.contains("ci.example.com");
    skipping.wait_line("line for the skipped check", loud);
    assert!(!checking.lines().iter().any(|l| loud(l)), "a skipped check in the checking server's log");
    // A CLI command takes the depot lock beside them.
    env.ok(&["request-cert", "--cn", "beside", "--passphrase", ""]);
    env.ok(&["sign", "--CA", "Shared CA", "beside"]);
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    assert!(
        list.contains("localhost.acme-") && list.contains("ci.example.com.acme-") && list.contains("beside"),
        "{list}"
    );
}

#[test]
fn a_constrained_ca_serves_under_its_hostname_and_says_so_before_announcing_anything() {
    let env = Env::new();
    // An IP range of its own, so the loopback addresses are outside too.
    env.ok(&["init", "--cn", "Example CA", "--passphrase", "", "--permit-domain", "example.com,10.0.0.0/8"]);
    let err = acme_server::refused(&env, &["--CA", "Example CA", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("--hostname") && !err.contains("directory"), "{err}");
    let server =
        Server::start(&env, &["--CA", "Example CA", "--listen", "127.0.0.1:0", "--hostname", "acme.example.com"]);
    assert!(server.directory.starts_with("https://acme.example.com:"), "{}", server.directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certforge_revoke_beside_the_server_makes_the_renewal_window_now() {
    let env = Env::new();
    env.ok(&["init", "--cn", "ARI CA", "--passphrase", ""]);
    let server = Server::start(&env, &["--CA", "ARI CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let account = account(&server, None).await;
    let (chain, _) = obtain(&account, &[Identifier::Dns("ari.example.com".into())], &Answers::default()).await;
    let cert = first_der(&chain);
    let id = CertificateIdentifier::try_from(&cert).unwrap();
    let (info, _) = account.renewal_info(&id).await.unwrap();
    assert!(info.suggested_window.start > time::OffsetDateTime::now_utc());

    // The operator revokes the depot entry with the CLI, not through ACME.
    let list = String::from_utf8(env.ok(&["list"]).stdout).unwrap();
    let name =
        list.lines().find_map(|l| l.split_whitespace().next().filter(|n| n.starts_with("ari.example.com.acme-")));
    env.ok(&["revoke", "--CN", name.expect("the ACME entry"), "--CA", "ARI CA", "--reason", "keyCompromise"]);
    let (info, _) = account.renewal_info(&id).await.unwrap();
    assert!(info.suggested_window.end <= time::OffsetDateTime::now_utc(), "renew now: {:?}", info.suggested_window);
}

/// `serve` under a CA whose key is on a PKCS#11 token (SoftHSM): its own
/// HTTPS certificate and every ACME certificate are signed on the token,
/// and a revokeCert re-signs the CRL there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_on_a_pkcs11_token_serves_acme() {
    let Some(hsm) = hsm::Hsm::new() else { return };
    hsm.ok(&["init", "--cn", "Token CA", "--key", "pkcs11:token=certforge;object=acme-ca"]);
    let serve = hsm.cmd(&["serve", "--CA", "Token CA", "--listen", "127.0.0.1:0", "--skip-validation"]);
    let mut server = Server::start_cmd(&hsm.env, serve);
    assert!(
        server
            .lines()
            .iter()
            .any(|l| l.contains("CA key") && l.contains("PKCS#11: token \"certforge\", object \"acme-ca\"")),
        "the banner names the token key:\n{}",
        server.lines().join("\n")
    );
    let account = account(&server, None).await;
    let (chain, key) = obtain(&account, &[Identifier::Dns("svc.test".into())], &Answers::default()).await;
    let dir = hsm.env.tmp.path();
    std::fs::write(dir.join("svc.pem"), &chain).unwrap();
    let ca = server.ca_file.display().to_string();
    let out = openssl_ok(dir, &["verify", "-x509_strict", "-CAfile", &ca, "svc.pem"]);
    assert!(out.contains("svc.pem: OK"), "{out}");
    account.revoke(&RevocationRequest { certificate: &first_der(&chain), reason: None }).await.expect("revokeCert");
    let crl = hsm.env.file("Token_CA.crl").display().to_string();
    let listing = openssl_ok(dir, &["crl", "-in", &crl, "-CAfile", &ca, "-noout", "-text"]);
    assert!(listing.contains("Revoked Certificates") && !listing.contains("No Revoked"), "{listing}");
    assert!(!key.is_empty());
    assert!(server.stop().success());
    assert!(!hsm.env.file("Token_CA.key").exists(), "no key file beside the token CA");
}

/// `--database` takes PostgreSQL only, and `--external-url` a bare
/// https://HOST[:PORT]: anything else stops the start with exit 2 before
/// a socket is bound, the database URL's password never echoed.
#[test]
fn serve_refuses_a_database_that_is_not_postgres_and_an_external_url_that_is_not_bare() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Flags CA", "--passphrase", ""]);
    let base = ["--CA", "Flags CA", "--listen", "127.0.0.1:0"];
    let err = acme_server::refused(&env, &[&base[..], &["--database", "mysql://ops:hunter2@db/acme"]].concat());
    assert!(
        err.contains("postgres://") && err.contains("the depot's acme.sqlite") && !err.contains("hunter2"),
        "{err}"
    );
    for (url, why) in [
        ("https://acme.example.com/acme", "no path"),
        ("http://acme.example.com", "HTTPS only"),
        ("https://ops@acme.example.com", "user name"),
    ] {
        let err = acme_server::refused(&env, &[&base[..], &["--external-url", url]].concat());
        assert!(err.contains(&format!("--external-url {url:?}")) && err.contains(why), "{url}: {err}");
    }
    // A bare one names the directory, whatever the instance listens on.
    let server = Server::start(&env, &[&base[..], &["--external-url", "https://acme.example.com:8443"]].concat());
    assert_eq!(server.directory, "https://acme.example.com:8443/directory");
}

/// A port that cannot be had stops the start saying why in terms of what
/// to do, and naming the flag that asked for it: another server on it, a
/// low port without the right to it, an address this machine lacks.
#[test]
fn a_port_that_cannot_be_had_is_refused_saying_why_and_with_which_flag() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Ports CA", "--passphrase", ""]);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let taken = format!("127.0.0.1:{port}");
    let base = ["serve", "--CA", "Ports CA"];
    let err = env.fails(&[&base[..], &["--listen", &taken]].concat(), 1);
    assert!(
        err.contains(&format!("cannot listen on {taken}"))
            && err.contains("another server is on that port; choose another with --listen"),
        "{err}"
    );
    let err = env.fails(&[&base[..], &["--listen", "127.0.0.1:0", "--metrics-listen", &port]].concat(), 1);
    assert!(err.contains("choose another with --metrics-listen"), "a port alone is loopback's: {err}");
    let err = env.fails(&[&base[..], &["--listen", "192.0.2.1:14000"]].concat(), 1);
    assert!(err.contains("no interface of this machine has that address"), "{err}");
    // Port 444 as a user without CAP_NET_BIND_SERVICE (root drops to
    // nobody for it, as the unit's user would be without the capability).
    let mut low = env.cmd(&[&base[..], &["--listen", "127.0.0.1:444"]].concat());
    // SAFETY: geteuid(2) only reads the process's credentials.
    if unsafe { libc::geteuid() } == 0 {
        let mut nobody = std::process::Command::new("setpriv");
        nobody.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(low.get_program()).args(low.get_args());
        nobody.current_dir(env.tmp.path()).env_remove("CERTFORGE_DEPOT_PATH");
        low = nobody;
    }
    let out = low.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"), "{err}");
    drop(busy);
}

/// Behind a TCP-mode balancer the peer is the balancer; with
/// `--proxy-protocol` the PROXY v2 header names the client, which the
/// request log (and the per-address limit) then sees. A connection that
/// does not start with the header is closed unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_proxy_protocol_the_header_names_the_client_and_a_bare_connection_is_closed() {
    let env = Env::new();
    env.ok(&["init", "--cn", "Proxy CA", "--passphrase", ""]);
    let server = Server::start(
        &env,
        &["--CA", "Proxy CA", "--listen", "127.0.0.1:0", "--crl-listen", "127.0.0.1:0", "--proxy-protocol"],
    );
    let crl = server.lines().iter().find_map(|l| {
        l.trim_start().strip_prefix("CRL          http://").and_then(|r| r.split('/').next()).map(str::to_string)
    });
    let crl = crl.expect("the plain CRL address in the banner");
    let get = b"GET /health HTTP/1.1\r\nHost: certforge\r\nConnection: close\r\n\r\n";
    let exchange = |first: Vec<u8>| {
        let crl = crl.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&crl).await.unwrap();
            s.write_all(&first).await.unwrap();
            let mut got = Vec::new();
            let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut got)).await;
            read.expect("the server answers or closes within 10 s").ok();
            String::from_utf8_lossy(&got).into_owned()
        }
    };
    // PROXY v2: signature, v2 + PROXY, TCP over IPv4, 12 bytes of
    // addresses: from 192.0.2.7:50000 to 127.0.0.1:443.
    let mut header = vec![0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12];
    header.extend_from_slice(&[192, 0, 2, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x01, 0xBB]);
    let answered = exchange([&header[..], &get[..]].concat()).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    server.wait_line("request line from the proxied client", |l| {
        l.contains("path=/health") && l.contains("client=192.0.2.7 ")
    });
    let bare = exchange(get.to_vec()).await;
    assert_eq!(bare, "", "a connection without the header gets no answer");
    server.wait_line("refusal of the connection without a header", |l| l.contains("PROXY header refused"));
}
