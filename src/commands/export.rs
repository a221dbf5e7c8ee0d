//! `certforge export`: hand a certificate to what runs it. PKCS#12 for Java
//! and .NET (modern PBES2/AES-256 by default, 3DES/SHA-1 with --legacy), a
//! Java truststore, PEM bundles, shell environment variables (services
//! configured like the Go/Python mTLS blog's read TLS_* variables), and a Kubernetes TLS Secret.

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use zeroize::Zeroizing;

use super::common::{read_key, refuse_key_on_terminal, usage};
use super::inputs::{not_found, read_certs};
use crate::authority::listing::{depot_certs, Wanted};
use crate::cli::{ExportArgs, ExportFormat};
use crate::depot::{self, read_file, Depot, Write1, KEY_MODE, PUBLIC_MODE};
use crate::pki::chain::{build, Chain};
use crate::pki::names::EntryName;
use crate::pki::names::{sh_quote, shell_word};
use crate::pki::to_pem;

/// What export produces: bytes, and whether they hold a private key.
struct Output {
    bytes: Zeroizing<Vec<u8>>,
    secret: bool,
    binary: bool,
}

/// Runs `export`.
pub fn run(depot: &Depot, args: &ExportArgs) -> Result<()> {
    let name = EntryName::new(&args.name).map_err(|e| usage(format!("{:?}: {e}", args.name)))?;
    let cert_path = depot.path(&name, "crt");
    if !cert_path.is_file() {
        return Err(not_found(depot, &args.name, Wanted::Certificate, ""));
    }
    let cert = read_certs(&cert_path)?.remove(0);
    let pool: Vec<Vec<u8>> = depot_certs(depot)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| x509_parser::parse_x509_certificate(d).is_ok_and(|(_, c)| c.is_ca()))
        .collect();
    let chain = build(&cert, &pool);
    let out = match args.format {
        ExportFormat::Pkcs12 => pkcs12(depot, &name, &cert, &chain, args)?,
        ExportFormat::Truststore => truststore(&cert, &chain, args)?,
        ExportFormat::Bundle => bundle(depot, &name, &cert, &chain, args)?,
        ExportFormat::Env => env(depot, &name, &chain, args)?,
        ExportFormat::K8s => k8s(depot, &name, &cert, &chain, args)?,
    };
    emit(out, args)
}

fn emit(out: Output, args: &ExportArgs) -> Result<()> {
    if let Some(path) = &args.out {
        let mode = if out.secret { KEY_MODE } else { PUBLIC_MODE };
        depot::write_all(&[Write1 { path: path.clone(), bytes: (out.bytes.to_vec()).into(), mode, replace: false }])?;
        eprintln!(
            "Wrote {} ({} bytes{})",
            path.display(),
            out.bytes.len(),
            if out.secret { ", mode 0600: it holds the private key" } else { "" }
        );
        return Ok(());
    }
    if out.binary && std::io::stdout().is_terminal() {
        return Err(usage("this format is binary; write it with --out FILE (or redirect stdout to a file)"));
    }
    if out.secret {
        refuse_key_on_terminal(args.force, "the output", "write it with --out FILE, ")?;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out.bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn password(args: &ExportArgs) -> Result<Zeroizing<String>> {
    let pw = match (&args.password, &args.password_file) {
        (Some(p), _) => Zeroizing::new(p.clone()),
        (None, Some(f)) => {
            let bytes = Zeroizing::new(read_file(f)?);
            Zeroizing::new(String::from_utf8_lossy(&bytes).lines().next().unwrap_or("").to_string())
        }
        (None, None) => return Err(usage("PKCS#12 needs a password: give --password-file FILE, --password or CERTFORGE_P12_PASSWORD (Java keytool refuses an empty one)")),
    };
    if pw.is_empty() {
        return Err(usage("the PKCS#12 password is empty; Java keytool refuses empty passwords, so give one"));
    }
    Ok(pw)
}

fn p12_cert(der: &[u8]) -> Result<p12_keystore::Certificate> {
    p12_keystore::Certificate::from_der(der).map_err(|e| anyhow!("cannot put the certificate in PKCS#12: {e}"))
}

fn writer_bytes(store: &p12_keystore::KeyStore, pw: &str, legacy: bool) -> Result<Vec<u8>> {
    let w = store.writer(pw);
    let w = if legacy {
        // What Java before 8u301 and macOS Keychain read (OpenSSL 3 needs -legacy for it).
        w.encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha1)
    } else {
        w
    };
    w.write().map_err(|e| anyhow!("cannot write PKCS#12: {e}"))
}

fn load_key(depot: &Depot, name: &EntryName, args: &ExportArgs) -> Result<crate::pki::keys::PrivateKey> {
    read_key(&key_file(depot, name, "this format needs it")?, &mut args.pass.source()?)
}

/// The entry's key file, or why a format carrying the key cannot be made:
/// no key, or a key that lives on a PKCS#11 token and never leaves it.
fn key_file(depot: &Depot, name: &EntryName, why: &str) -> Result<std::path::PathBuf> {
    let path = depot.path(name, "key");
    if path.is_file() {
        return Ok(path);
    }
    let uri = depot.path(name, super::pkcs11::URI_EXT);
    if uri.is_file() {
        bail!(
            "the key of {name} is on a PKCS#11 token ({}) and never leaves it, so it cannot be exported; {why}. Export the certificate and its chain without the key: certforge --depot-path {} export {} --format bundle",
            uri.display(),
            shell_word(&depot.root().display().to_string()),
            shell_word(name.as_str())
        );
    }
    bail!("{} does not exist, so the key cannot be exported; {why}", path.display())
}

fn pkcs12(depot: &Depot, name: &EntryName, cert: &[u8], chain: &Chain, args: &ExportArgs) -> Result<Output> {
    let pw = password(args)?;
    let key = load_key(depot, name, args)?;
    let mut certs = vec![p12_cert(cert)?];
    for c in chain.intermediates.iter().chain(chain.root.iter()) {
        certs.push(p12_cert(c)?);
    }
    let local_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert).as_ref().to_vec();
    let pk = p12_keystore::PrivateKey::from_der(key.pkcs8_der())
        .map_err(|e| anyhow!("cannot put the key in PKCS#12: {e}"))?;
    let mut store = p12_keystore::KeyStore::new();
    let alias = args.alias.clone().unwrap_or_else(|| name.as_str().to_string());
    store.add_entry(
        &alias,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(local_id, pk, certs)),
    );
    Ok(Output { bytes: Zeroizing::new(writer_bytes(&store, &pw, args.legacy)?), secret: true, binary: true })
}

fn truststore(cert: &[u8], chain: &Chain, args: &ExportArgs) -> Result<Output> {
    let pw = password(args)?;
    let mut cas: Vec<&Vec<u8>> = chain.intermediates.iter().chain(chain.root.iter()).collect();
    let own = cert.to_vec();
    if x509_parser::parse_x509_certificate(cert).is_ok_and(|(_, c)| c.is_ca()) {
        cas.insert(0, &own);
    }
    if cas.is_empty() {
        bail!("{} is a leaf whose CA is not in the depot, so there is no CA certificate to trust", args.name);
    }
    let mut store = p12_keystore::KeyStore::new();
    for (i, der) in cas.iter().enumerate() {
        let c = p12_cert(der)?;
        let alias = match (&args.alias, i) {
            (Some(a), 0) => a.clone(),
            (Some(a), n) => format!("{a}-{n}"),
            (None, _) => crate::pki::inspect::display_name_of(c.subject()).to_lowercase().replace(' ', "-"),
        };
        store.add_entry(&alias, p12_keystore::KeyStoreEntry::Certificate(c));
    }
    Ok(Output { bytes: Zeroizing::new(writer_bytes(&store, &pw, args.legacy)?), secret: false, binary: true })
}

fn bundle(depot: &Depot, name: &EntryName, cert: &[u8], chain: &Chain, args: &ExportArgs) -> Result<Output> {
    let mut pem = to_pem("CERTIFICATE", cert);
    for c in &chain.intermediates {
        pem.push_str(&to_pem("CERTIFICATE", c));
    }
    let mut bytes = Zeroizing::new(pem.into_bytes());
    if args.with_key {
        bytes.extend_from_slice(&Zeroizing::new(read_file(&key_file(depot, name, "--with-key needs it")?)?));
    }
    Ok(Output { bytes, secret: args.with_key, binary: false })
}

fn env(depot: &Depot, name: &EntryName, chain: &Chain, args: &ExportArgs) -> Result<Output> {
    let p = &args.prefix;
    if p.is_empty()
        || !p.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        || p.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(usage(format!(
            "--prefix {p:?} is not a shell variable prefix; use capitals, digits and _, e.g. TLS_SERVER"
        )));
    }
    let text = |path: &std::path::Path| -> Result<Zeroizing<String>> {
        let bytes = read_file(path)?;
        String::from_utf8(bytes).map(Zeroizing::new).map_err(|_| anyhow!("{} is not text", path.display()))
    };
    let mut out = String::new();
    out.push_str(&format!("export {p}_CERT={}\n", sh_quote(&text(&depot.path(name, "crt"))?)));
    let chain_file = depot.path(name, "chain.crt");
    if !chain.intermediates.is_empty() && chain_file.is_file() {
        out.push_str(&format!("export {p}_CERT_CHAIN={}\n", sh_quote(&text(&chain_file)?)));
    }
    let key_path = key_file(depot, name, "the env format carries the key")?;
    out.push_str(&format!("export {p}_KEY={}\n", sh_quote(&text(&key_path)?)));
    if let Some(root) = &chain.root {
        let root_path = depot_certs(depot)
            .into_iter()
            .find(|(_, d)| d == root)
            .map(|(p, _)| p)
            .ok_or_else(|| anyhow!("root CA file not found"))?;
        out.push_str(&format!("export {p}_ROOT_CA={}\n", sh_quote(&text(&root_path)?)));
    }
    Ok(Output { bytes: Zeroizing::new(out.into_bytes()), secret: true, binary: false })
}

/// A Kubernetes object name: a DNS-1123 subdomain (lower case, digits,
/// '-' and '.', at most 253 characters).
fn k8s_name(raw: &str) -> String {
    let mut s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    s.truncate(253);
    s
}

fn k8s(depot: &Depot, name: &EntryName, cert: &[u8], chain: &Chain, args: &ExportArgs) -> Result<Output> {
    let secret_name = match &args.secret_name {
        Some(n) if k8s_name(n) == *n && !n.is_empty() => n.clone(),
        Some(n) => {
            return Err(usage(format!(
                "--name {n:?} is not a Kubernetes name: use lower case letters, digits, '-' and '.', e.g. {:?}",
                k8s_name(n)
            )))
        }
        None => k8s_name(name.as_str()),
    };
    if let Some(ns) = &args.namespace {
        if ns.is_empty()
            || ns.len() > 63
            || !ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || ns.starts_with('-')
            || ns.ends_with('-')
        {
            return Err(usage(format!("--namespace {ns:?} is not a Kubernetes namespace (a DNS-1123 label: lower case letters, digits and '-')")));
        }
    }
    // tls.crt carries the intermediates after the leaf, as ingress
    // controllers serve it; the key must be unencrypted for them.
    let mut crt = to_pem("CERTIFICATE", cert);
    for c in &chain.intermediates {
        crt.push_str(&to_pem("CERTIFICATE", c));
    }
    let key = load_key(depot, name, args)?;
    let key_pem = key.to_pem(None)?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut y = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n");
    y.push_str(&format!("  name: {secret_name}\n"));
    if let Some(ns) = &args.namespace {
        y.push_str(&format!("  namespace: {ns}\n"));
    }
    y.push_str("type: kubernetes.io/tls\ndata:\n");
    y.push_str(&format!("  tls.crt: {}\n", b64(crt.as_bytes())));
    y.push_str(&format!("  tls.key: {}\n", b64(key_pem.as_bytes())));
    if let Some(root) = &chain.root {
        y.push_str(&format!("  ca.crt: {}\n", b64(to_pem("CERTIFICATE", root).as_bytes())));
    } else if x509_parser::parse_x509_certificate(cert)
        .is_ok_and(|(_, c)| c.is_ca() && c.subject().as_raw() == c.issuer().as_raw())
    {
        y.push_str(&format!("  ca.crt: {}\n", b64(to_pem("CERTIFICATE", cert).as_bytes())));
    }
    Ok(Output { bytes: Zeroizing::new(y.into_bytes()), secret: true, binary: false })
}
