//! What each trust store is, as data: the system store's anchor directory,
//! update command and bundle per Linux family, where NSS databases live, and
//! how to read `certutil -L` and `keytool -list -rfc`. No I/O here, so the
//! table and the parsers are tested on their own.

use std::path::{Path, PathBuf};

/// A Linux family's system trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemStore {
    pub family: &'static str,
    /// Where a local anchor goes; the file name must end in `.crt` on
    /// Debian (update-ca-certificates ignores anything else).
    pub anchors: &'static str,
    /// Rebuilds the bundle after an anchor was added.
    pub update: &'static [&'static str],
    /// Rebuilds it after one was removed (Debian's plain run keeps the
    /// removed CA's symlink in /etc/ssl/certs; --fresh rebuilds them all).
    pub update_after_remove: &'static [&'static str],
    /// The bundle OpenSSL-based clients read: trusted once the CA is in it.
    pub bundle: &'static str,
    /// The Java keystore a ca-certificates hook fills from the anchors, whose
    /// entries `update-ca-certificates --fresh` leaves behind.
    pub java_hook: Option<(&'static str, &'static str)>,
}

const DEBIAN: SystemStore = SystemStore {
    family: "Debian/Ubuntu",
    anchors: "/usr/local/share/ca-certificates",
    update: &["update-ca-certificates"],
    update_after_remove: &["update-ca-certificates", "--fresh"],
    bundle: "/etc/ssl/certs/ca-certificates.crt",
    // ca-certificates-java's hook adds each anchor as "debian:FILE.pem".
    java_hook: Some(("/etc/ssl/certs/java/cacerts", "debian:")),
};
const ALPINE: SystemStore = SystemStore {
    family: "Alpine",
    anchors: "/usr/local/share/ca-certificates",
    update: &["update-ca-certificates"],
    update_after_remove: &["update-ca-certificates"],
    bundle: "/etc/ssl/certs/ca-certificates.crt",
    java_hook: None,
};
const FEDORA: SystemStore = SystemStore {
    family: "RHEL/Fedora",
    anchors: "/etc/pki/ca-trust/source/anchors",
    update: &["update-ca-trust", "extract"],
    update_after_remove: &["update-ca-trust", "extract"],
    bundle: "/etc/pki/tls/certs/ca-bundle.crt",
    java_hook: None,
};
const ARCH: SystemStore = SystemStore {
    family: "Arch",
    anchors: "/etc/ca-certificates/trust-source/anchors",
    update: &["trust", "extract-compat"],
    update_after_remove: &["trust", "extract-compat"],
    bundle: "/etc/ssl/certs/ca-certificates.crt",
    java_hook: None,
};
const SUSE: SystemStore = SystemStore {
    family: "openSUSE/SLES",
    anchors: "/etc/pki/trust/anchors",
    update: &["update-ca-certificates"],
    update_after_remove: &["update-ca-certificates"],
    bundle: "/var/lib/ca-certificates/ca-bundle.pem",
    java_hook: None,
};

/// The system store for the distribution `/etc/os-release` describes, by
/// its ID and then its ID_LIKE words (Ubuntu says ID_LIKE=debian, Rocky
/// says "rhel centos fedora").
pub fn system_store(os_release: &str) -> Option<&'static SystemStore> {
    let field = |key: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let (id, like) = (field("ID"), field("ID_LIKE"));
    std::iter::once(id.as_str()).chain(like.split_whitespace()).find_map(|word| match word {
        "debian" | "ubuntu" => Some(&DEBIAN),
        "alpine" => Some(&ALPINE),
        "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "amzn" => Some(&FEDORA),
        "arch" | "manjaro" | "endeavouros" => Some(&ARCH),
        "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "sles" => Some(&SUSE),
        _ => None,
    })
}

/// The package that holds certutil on this family, for the hint when it is missing.
pub fn certutil_package(os_release: &str) -> &'static str {
    match system_store(os_release).map(|s| s.family) {
        Some("RHEL/Fedora") => "nss-tools",
        Some("Arch") => "nss",
        Some("openSUSE/SLES") => "mozilla-nss-tools",
        Some("Alpine") => "nss-tools",
        _ => "libnss3-tools",
    }
}

/// Where NSS databases may be, under `home`: Chromium's and the snap
/// Chromium's (~/.pki/nssdb), then the parents whose subdirectories are
/// Firefox profiles: classic, XDG (mkcert #668) and snap (mkcert #325).
/// The first is made when missing: headless Chromium does not make it.
pub fn nss_dirs(home: &Path) -> (Labelled, Labelled) {
    let dbs =
        vec![("Chromium", home.join(".pki/nssdb")), ("snap Chromium", home.join("snap/chromium/current/.pki/nssdb"))];
    let profiles = vec![
        ("Firefox", home.join(".mozilla/firefox")),
        ("Firefox", home.join(".config/mozilla/firefox")),
        ("snap Firefox", home.join("snap/firefox/common/.mozilla/firefox")),
    ];
    (dbs, profiles)
}

/// Directories with what they belong to ("Chromium", "Firefox").
pub type Labelled = Vec<(&'static str, PathBuf)>;

/// The system-wide NSS database (Fedora and RHEL read it).
pub const SYSTEM_NSSDB: &str = "/etc/pki/nssdb";

/// One certificate line of `certutil -L`: its nickname and trust flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NssEntry {
    pub nickname: String,
    pub flags: String,
}

impl NssEntry {
    /// Trusted to issue server certificates: "C" in the SSL field, the
    /// first of three. ",," (no trust) is what mkcert #662 tripped on.
    pub fn trusted_for_tls(&self) -> bool {
        self.flags.split(',').next().is_some_and(|ssl| ssl.contains('C'))
    }
}

/// Parses `certutil -L`: a header, then "NICKNAME   FLAGS" lines where
/// the nickname may contain spaces and the flags are the last word.
pub fn parse_certutil_list(text: &str) -> Vec<NssEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let (nick, flags) = l.rsplit_once(char::is_whitespace)?;
            let nick = nick.trim_end();
            (flags.matches(',').count() == 2 && !nick.is_empty() && !l.starts_with("Certificate Nickname"))
                .then(|| NssEntry { nickname: nick.to_string(), flags: flags.to_string() })
        })
        .collect()
}

/// Parses `keytool -list -rfc`: each "Alias name: A" followed by its
/// certificate in PEM. Returns (alias, DER) pairs.
pub fn parse_keytool_list(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut alias: Option<String> = None;
    let mut pem_text = String::new();
    for line in text.lines() {
        if let Some(a) = line.strip_prefix("Alias name: ") {
            alias = Some(a.trim().to_string());
            pem_text.clear();
        } else if line.starts_with("-----BEGIN CERTIFICATE-----") {
            pem_text = format!("{line}\n");
        } else if !pem_text.is_empty() {
            pem_text.push_str(line);
            pem_text.push('\n');
            if line.starts_with("-----END CERTIFICATE-----") {
                if let (Some(a), Ok(p)) = (alias.take(), pem::parse(&pem_text)) {
                    out.push((a, p.into_contents()));
                }
                pem_text.clear();
            }
        }
    }
    out
}

/// The `export` lines for the runtimes that ignore the OS store. Node adds
/// NODE_EXTRA_CA_CERTS to its own roots, so it gets the CA file; requests
/// (certifi) and gRPC core *replace* theirs with the file they are given,
/// so they get `bundle` (public roots and the CA), or the CA alone when
/// there is none.
pub fn env_lines(ca_file: &Path, bundle: Option<&Path>) -> String {
    let quote = |p: &Path| crate::pki::names::shell_word(&p.display().to_string());
    let replacing = quote(bundle.unwrap_or(ca_file));
    format!(
        "export NODE_EXTRA_CA_CERTS={} REQUESTS_CA_BUNDLE={replacing} GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={replacing}\n",
        quote(ca_file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_is_found_by_id_or_id_like() {
        let family = |text: &str| system_store(text).map(|s| s.family);
        assert_eq!(family("ID=debian\n"), Some("Debian/Ubuntu"));
        assert_eq!(family("ID=ubuntu\nID_LIKE=debian\n"), Some("Debian/Ubuntu"));
        assert_eq!(family("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"), Some("RHEL/Fedora"));
        assert_eq!(family("ID=fedora\n"), Some("RHEL/Fedora"));
        assert_eq!(family("ID=alpine\n"), Some("Alpine"));
        assert_eq!(family("ID=endeavouros\nID_LIKE=arch\n"), Some("Arch"));
        assert_eq!(family("ID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n"), Some("openSUSE/SLES"));
        assert_eq!(family("ID=nixos\n"), None);
        assert_eq!(certutil_package("ID=fedora\n"), "nss-tools");
        assert_eq!(certutil_package("ID=debian\n"), "libnss3-tools");
    }

    #[test]
    fn certutil_lines_keep_nicknames_with_spaces() {
        let text = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\ncertforge Dev CA 1a2b3c4d                                    C,,\nsome other CA                                                ,,\n";
        let e = parse_certutil_list(text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].nickname, "certforge Dev CA 1a2b3c4d");
        assert!(e[0].trusted_for_tls());
        assert!(!e[1].trusted_for_tls());
    }

    #[test]
    fn keytool_aliases_pair_with_their_certificates() {
        let pem_block = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        let text = format!("Keystore type: JKS\n\nAlias name: debian:a.pem\nCreation date: x\nEntry type: trustedCertEntry\n\n{pem_block}\n\n*******\nAlias name: b\n{pem_block}");
        let e = parse_keytool_list(&text);
        assert_eq!(e, vec![("debian:a.pem".to_string(), vec![1, 2, 3]), ("b".to_string(), vec![1, 2, 3])]);
    }

    #[test]
    fn env_lines_point_replacing_variables_at_the_bundle() {
        let line = env_lines(Path::new("/d/Dev CA.crt"), Some(Path::new("/etc/ssl/certs/ca-certificates.crt")));
        assert_eq!(line, "export NODE_EXTRA_CA_CERTS='/d/Dev CA.crt' REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=/etc/ssl/certs/ca-certificates.crt\n");
        assert!(env_lines(Path::new("/d/x.crt"), None).contains("REQUESTS_CA_BUNDLE=/d/x.crt"));
    }
}
