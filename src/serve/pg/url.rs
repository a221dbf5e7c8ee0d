//! The database URL, read as libpq reads it.
//!
//! tokio-postgres parses `postgres://` URLs itself, but knows only three
//! `sslmode`s (disable, prefer, require), refuses `sslrootcert`, and reads
//! no `PG*` environment variable and no password file. An operator who
//! wrote a URL for `psql` expects it to mean the same here, so the TLS
//! keys are taken out of the query first, the password is found where libpq
//! finds it (the URL, then `PGPASSWORD`, then `PGPASSFILE` or `~/.pgpass`),
//! and the rest goes to `tokio_postgres::Config`.
//! (libpq: "Connection Strings", "Environment Variables", "The Password File".)

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Config;

/// How the connection uses TLS: libpq's six `sslmode`s, `allow` read as
/// `prefer` (both take TLS when the server offers it, neither checks it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS if the server offers it, without checking its certificate.
    Prefer,
    /// TLS or no connection, without checking the certificate.
    Require,
    /// TLS with a certificate issued by a CA in this file; any name.
    VerifyCa(PathBuf),
    /// TLS with a certificate issued by a CA in this file, for the host
    /// the URL names.
    VerifyFull(PathBuf),
}

/// A parsed database URL.
pub struct Target {
    pub config: Config,
    pub tls: TlsMode,
    /// The URL with its password replaced by `***`: the only form ever
    /// printed or logged.
    pub shown: String,
    /// Where the password came from ("the URL", "PGPASSWORD", a file), to
    /// say so when the server refuses it.
    pub password_from: Option<String>,
    /// Why a password file was not read (its mode), said when the server
    /// then asks for a password.
    pub notes: Vec<String>,
}

/// A URL certforge cannot use; the message never holds the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

const USAGE: &str = "postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full&sslrootcert=CA.pem";

/// Reads `url`; `env` looks up environment variables and `home` is the
/// user's home directory (both passed in, so that tests set them).
pub fn parse(url: &str, env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Result<Target, UrlError> {
    let shown = redact(url);
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return Err(UrlError(format!("{shown} is not a PostgreSQL URL: write it as {USAGE}")));
    };
    // tokio-postgres ends the credentials at the first '@'; the query
    // starts at the first '?' after them.
    let after_creds = rest.find('@').map_or(0, |i| i + 1);
    let (head, query) = match rest[after_creds..].find('?') {
        Some(i) => (&url[..url.len() - rest.len() + after_creds + i], Some(&rest[after_creds + i + 1..])),
        None => (url, None),
    };
    let (mut sslmode, mut rootcert, mut kept) = (None, None, Vec::new());
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_deref() {
            Some("sslmode") => sslmode = Some(decoded(value, "sslmode", &shown)?),
            Some("sslrootcert") => rootcert = Some(decoded(value, "sslrootcert", &shown)?),
            Some(key @ ("sslcert" | "sslkey" | "sslpassword")) => {
                return Err(UrlError(format!(
                    "{key} in {shown}: client certificates are not supported; authenticate with a password \
                     (PGPASSWORD or ~/.pgpass)"
                )))
            }
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() { head.to_string() } else { format!("{head}?{}", kept.join("&")) };
    let mut config = Config::from_str(&rebuilt)
        .map_err(|e| UrlError(format!("the database URL {shown}: {}", super::error::chain(&e))))?;

    let sslmode = sslmode.or_else(|| env("PGSSLMODE").filter(|v| !v.is_empty()));
    let rootcert = rootcert.or_else(|| env("PGSSLROOTCERT").filter(|v| !v.is_empty())).map(PathBuf::from);
    // libpq's default root file; `require` checks the chain when it exists.
    let default_root = home.map(|h| h.join(".postgresql/root.crt"));
    let tls = match sslmode.as_deref().unwrap_or("prefer") {
        "disable" => TlsMode::Disable,
        "allow" | "prefer" => TlsMode::Prefer,
        "require" => match rootcert.or(default_root.filter(|p| p.exists())) {
            Some(root) => TlsMode::VerifyCa(root),
            None => TlsMode::Require,
        },
        mode @ ("verify-ca" | "verify-full") => {
            let Some(root) = rootcert.or(default_root) else {
                return Err(UrlError(format!(
                    "sslmode={mode} needs the CA that issued the database server's certificate: \
                     add sslrootcert=FILE to {shown} (or set PGSSLROOTCERT)"
                )));
            };
            if mode == "verify-ca" {
                TlsMode::VerifyCa(root)
            } else {
                TlsMode::VerifyFull(root)
            }
        }
        other => {
            return Err(UrlError(format!(
                "sslmode={other} in {shown} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    config.ssl_mode(match tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });

    let mut notes = Vec::new();
    let password_from = if config.get_password().is_some() {
        Some("the URL".to_string())
    } else if let Some(p) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
        config.password(p);
        Some("PGPASSWORD".to_string())
    } else {
        let file = env("PGPASSFILE").filter(|f| !f.is_empty()).map(PathBuf::from).or(home.map(|h| h.join(".pgpass")));
        match file.as_deref().map(|f| (f, read_pgpass(f))) {
            Some((f, Ok(Some(text)))) => {
                let user = config.get_user().map(str::to_string).or_else(|| env("USER")).unwrap_or_default();
                let host = match config.get_hosts().first() {
                    Some(Host::Tcp(h)) => h.clone(),
                    // libpq matches a socket directory as itself, except
                    // the default one (Debian's, or upstream's /tmp), which
                    // is "localhost".
                    Some(Host::Unix(dir))
                        if !["/var/run/postgresql", "/run/postgresql", "/tmp"].iter().any(|d| dir == Path::new(d)) =>
                    {
                        dir.display().to_string()
                    }
                    _ => "localhost".to_string(),
                };
                let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
                let db = config.get_dbname().map_or(user.clone(), str::to_string);
                pgpass_lookup(&text, &host, &port, &db, &user).map(|p| {
                    config.password(p);
                    f.display().to_string()
                })
            }
            Some((_, Ok(None))) | None => None,
            Some((_, Err(note))) => {
                notes.push(note);
                None
            }
        }
    };

    // Bounds so that a dead or unreachable database fails a request in
    // seconds instead of hanging it; the server-side ones stop a statement
    // or a lock wait that would outlive the client's patience. The URL's own
    // values win.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(2));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(5));
    }
    config.keepalives_idle(Duration::from_secs(15));
    if config.get_application_name().is_none() {
        config.application_name("certforge");
    }
    let ours = "-c statement_timeout=5000 -c lock_timeout=3000 -c idle_in_transaction_session_timeout=10000";
    let options = match config.get_options() {
        Some(theirs) if !theirs.is_empty() => format!("{ours} {theirs}"),
        _ => ours.to_string(),
    };
    config.options(options);
    Ok(Target { config, tls, shown, password_from, notes })
}

/// The password file's text, or None when there is none; Err(why it was
/// ignored) when it is readable by others (libpq ignores such a file).
fn read_pgpass(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let mode = crate::sys::mode(&meta) & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} was not read: its mode is {mode:04o}, and a password file must be readable by its owner only \
             (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    std::fs::read_to_string(path).map(Some).map_err(|e| format!("{} was not read: {e}", path.display()))
}

/// The password of the first line of a `.pgpass` file matching
/// `host:port:database:user` (`*` matches anything; `\:` and `\\` are a
/// literal colon and backslash), as libpq reads it.
pub fn pgpass_lookup(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let fields = pgpass_fields(line);
        let [h, p, d, u, pass] = <[String; 5]>::try_from(fields).ok()?;
        let matches = |field: &str, value: &str| field == "*" || field == value;
        (matches(&h, host) && matches(&p, port) && matches(&d, db) && matches(&u, user)).then_some(pass)
    })
}

/// A line's five fields, unescaped; the last takes the rest of the line.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches('\r').chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// `url` with the password, in the user part or as `password=`, replaced
/// by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    let scheme_end = out.find("://").map_or(0, |i| i + 3);
    if let Some(at) = out[scheme_end..].find('@').map(|i| i + scheme_end) {
        if let Some(colon) = out[scheme_end..at].find(':').map(|i| i + scheme_end) {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let query: Vec<String> = out[q + 1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if decode(k).as_deref() == Some("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], query.join("&"));
    }
    out
}

fn decoded(value: &str, key: &str, shown: &str) -> Result<String, UrlError> {
    decode(value).ok_or_else(|| UrlError(format!("{key} in {shown} is not valid percent-encoded UTF-8")))
}

/// Percent-decoding (RFC 3986 §2.1); None for a bad escape or bytes that
/// are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(url: &str, vars: &[(&str, &str)], home: Option<&Path>) -> Result<Target, UrlError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(url, &|k| vars.get(k).cloned(), home)
    }

    #[test]
    fn all_six_sslmodes_and_the_root_file() {
        let none = Path::new("/nonexistent-home");
        let mode = |url: &str| parse_with(url, &[], Some(none)).map(|t| (t.tls, t.config.get_ssl_mode()));
        assert_eq!(mode("postgres://h/db?sslmode=disable").unwrap(), (TlsMode::Disable, SslMode::Disable));
        assert_eq!(mode("postgres://h/db?sslmode=allow").unwrap(), (TlsMode::Prefer, SslMode::Prefer));
        assert_eq!(mode("postgres://h/db").unwrap(), (TlsMode::Prefer, SslMode::Prefer), "libpq's default");
        assert_eq!(mode("postgres://h/db?sslmode=require").unwrap(), (TlsMode::Require, SslMode::Require));
        // libpq: require with a root file checks the chain, as verify-ca.
        assert_eq!(
            mode("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").unwrap(),
            (TlsMode::VerifyCa("/ca.pem".into()), SslMode::Require)
        );
        assert_eq!(
            mode("postgresql://h/db?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-ca").unwrap(),
            (TlsMode::VerifyCa("/etc/ca.pem".into()), SslMode::Require)
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=7").unwrap(),
            (TlsMode::VerifyFull("/ca.pem".into()), SslMode::Require)
        );
        // Without sslrootcert, libpq's default file under the home directory.
        let t = parse_with("postgres://h/db?sslmode=verify-full", &[], Some(Path::new("/home/u"))).unwrap();
        assert_eq!(t.tls, TlsMode::VerifyFull("/home/u/.postgresql/root.crt".into()));
        let e = parse_with("postgres://h/db?sslmode=verify-full", &[], None).err().unwrap().to_string();
        assert!(e.contains("sslrootcert=FILE") && e.contains("PGSSLROOTCERT"), "{e}");
        let e = mode("postgres://h/db?sslmode=verify").err().unwrap().to_string();
        assert!(e.contains("sslmode=verify ") && e.contains("verify-full"), "{e}");
        let e = mode("postgres://h/db?sslcert=/c.pem").err().unwrap().to_string();
        assert!(e.starts_with("sslcert in postgres://h/db?sslcert=/c.pem: client certificates"), "{e}");
        let e = mode("mysql://h/db").err().unwrap().to_string();
        assert!(e.contains("not a PostgreSQL URL") && e.contains("postgres://"), "{e}");
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let env = [("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", "/env-ca.pem"), ("PGPASSWORD", "s3cret")];
        let t = parse_with("postgres://u@h:6543/db", &env, None).unwrap();
        assert_eq!(t.tls, TlsMode::VerifyCa("/env-ca.pem".into()));
        assert_eq!((t.config.get_password(), t.password_from.as_deref()), (Some(&b"s3cret"[..]), Some("PGPASSWORD")));
        assert_eq!((t.config.get_ports(), t.config.get_dbname()), (&[6543][..], Some("db")));
        // The URL's own values win over the environment.
        let t = parse_with("postgres://u:mine@h/db?sslmode=disable", &env, None).unwrap();
        assert_eq!((t.tls, t.config.get_password()), (TlsMode::Disable, Some(&b"mine"[..])));
        assert_eq!(t.password_from.as_deref(), Some("the URL"));
        // Our bounds, and the URL's options kept after ours.
        let t = parse_with("postgres://h/db?options=-c%20work_mem%3D8MB&connect_timeout=9", &[], None).unwrap();
        assert_eq!(t.config.get_connect_timeout(), Some(&Duration::from_secs(9)));
        let options = t.config.get_options().unwrap();
        assert!(options.contains("statement_timeout=5000") && options.ends_with("-c work_mem=8MB"), "{options}");
        assert_eq!(t.config.get_application_name(), Some("certforge"));
    }

    #[test]
    fn pgpass_lines_match_as_libpq_reads_them() {
        let text = "# comment\n\
                    other:5432:*:u:wrong\n\
                    db.example:5432:certs:u:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback:with:colons\n";
        assert_eq!(pgpass_lookup(text, "db.example", "5432", "certs", "u").as_deref(), Some("pa:ss\\word"));
        assert_eq!(pgpass_lookup(text, "db.example", "5433", "certs", "u").as_deref(), Some("fallback:with:colons"));
        assert_eq!(pgpass_lookup("h:5432:d:u\n", "h", "5432", "d", "u"), None, "a line of four fields has no password");
        assert_eq!(pgpass_lookup("h\\:x:5432:d:u:p\n", "h:x", "5432", "d", "u").as_deref(), Some("p"));
    }

    #[test]
    fn a_password_file_is_read_only_when_its_owner_alone_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "h:5432:db:u:from-file\n").unwrap();
        let f = file.to_str().unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = parse_with("postgres://u@h/db", &[("PGPASSFILE", f)], None).unwrap();
        assert_eq!((t.config.get_password(), t.password_from.as_deref()), (Some(&b"from-file"[..]), Some(f)));
        // A socket directory matches as itself, the default one as localhost.
        std::fs::write(&file, "/sock/dir:5432:db:u:by-dir\nlocalhost:5432:db:u:by-localhost\n").unwrap();
        let password =
            |url: &str| parse_with(url, &[("PGPASSFILE", f)], None).unwrap().config.get_password().map(<[u8]>::to_vec);
        assert_eq!(password("postgres://u@%2Fsock%2Fdir/db"), Some(b"by-dir".to_vec()));
        assert_eq!(password("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"), Some(b"by-localhost".to_vec()));
        // ~/.pgpass when PGPASSFILE is unset; the default database is the user.
        std::fs::write(dir.path().join(".pgpass"), "h:5432:u:u:home\n").unwrap();
        std::fs::set_permissions(dir.path().join(".pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = parse_with("postgres://u@h", &[], Some(dir.path())).unwrap();
        assert_eq!(t.config.get_password(), Some(&b"home"[..]));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = parse_with("postgres://u@h/db", &[("PGPASSFILE", f)], None).unwrap();
        assert_eq!((t.config.get_password(), t.password_from), (None, None));
        assert!(t.notes[0].contains("0644") && t.notes[0].contains("chmod 600"), "{:?}", t.notes);
        assert!(!t.notes[0].contains("from-file"));
    }

    #[test]
    fn only_the_redacted_form_is_shown() {
        assert_eq!(
            redact("postgres://u:p%40ss@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redact("postgres://h/db?password=x&sslmode=disable"),
            "postgres://h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let t = parse_with("postgres://u:topsecret@h/db?sslmode=require", &[], None).unwrap();
        assert_eq!(t.shown, "postgres://u:***@h/db?sslmode=require");
        let e = parse_with("postgres://u:topsecret@h/db?sslmode=bogus", &[], None).err().unwrap().to_string();
        assert!(e.contains("u:***@h") && !e.contains("topsecret"), "{e}");
        let e = parse_with("postgres://u:topsecret@h:notaport/db", &[], None).err().unwrap().to_string();
        assert!(!e.contains("topsecret"), "{e}");
    }
}
