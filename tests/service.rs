//! certforge-serve.service as an operator meets it: systemd's own checks
//! of the unit (`systemd-analyze verify` and `security`), and the .deb that
//! ships it installed, removed and purged by dpkg in a throw-away root, with
//! its maintainer scripts run for real, the host left as it was.

#[path = "common/clients.rs"]
mod clients;
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{need, required, Namespace};

const UNIT: &str = "certforge-serve.service";

fn unit_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg/debian").join(UNIT)
}

/// The exposure systemd-analyze gives the unit, from its last line:
/// "→ Overall exposure level for certforge-serve.service: 1.4 OK 🙂".
fn exposure(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let after = line.rsplit_once(": ").map(|(_, s)| s).unwrap_or_default();
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no score in {line:?}"))
}

/// The sandbox systemd rates "OK" (2.0 or lower on its 0 to 10 scale of
/// exposure), and the one capability kept is binding ports below 1024.
#[test]
fn systemd_rates_the_unit_sandbox_ok() {
    if !need("systemd-analyze", "systemd") {
        return;
    }
    let (ok, report) = clients::run_bounded(
        Command::new("systemd-analyze").arg("security").arg("--offline=true").arg(unit_source()),
        30,
    );
    assert!(ok, "systemd-analyze security:\n{report}");
    let score = exposure(&report);
    println!("systemd-analyze security --offline=true {UNIT}: {score} (2.0 or lower is \"OK\")");
    assert!(score <= 2.0, "exposure {score} is above 2.0:\n{report}");

    let unit = std::fs::read_to_string(unit_source()).unwrap();
    let settings =
        |key: &str| -> Vec<&str> { unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect() };
    assert_eq!(settings("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(settings("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    // The drain after SIGTERM must end before systemd's SIGKILL.
    let stop: u64 = settings("TimeoutStopSec")[0].parse().unwrap();
    assert!(
        Duration::from_secs(stop) > certforge::serve::http::DRAIN,
        "TimeoutStopSec={stop} cuts serve's drain short"
    );
    assert_eq!(settings("KillSignal"), ["SIGTERM"]);
    assert_eq!(settings("Restart"), ["on-failure"]);
}

/// A throw-away root: this machine's / through an overlay whose changes go
/// to a tmpfs, in a mount namespace of its own
/// (tests/interop/overlay_root.sh). Dropping it ends the namespace, and the
/// mounts and every change with it.
struct TestRoot(Namespace);

impl TestRoot {
    fn start() -> TestRoot {
        TestRoot(Namespace::start("overlay_root.sh", Duration::from_secs(20)))
    }

    /// The root's path inside the namespace.
    fn dir(&self) -> PathBuf {
        self.0.work().join("root")
    }

    /// `path` of the test root, read from outside.
    fn view(&self, path: &str) -> PathBuf {
        self.0.view(&format!("{}{path}", self.dir().display()))
    }

    /// `args` chrooted into the root, for at most a minute: (exited 0,
    /// stdout + stderr).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("chroot");
        cmd.arg(self.dir()).args(args).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("LC_ALL", "C");
        clients::run_bounded(&mut clients::nsenter(self.0.pid(), &cmd), 60)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, said) = self.run(args);
        assert!(ok, "{args:?} in the test root:\n{said}");
        said
    }

    /// dpkg's state of the package: "install ok installed", "deinstall ok
    /// config-files", or "" once purged.
    fn status(&self) -> String {
        let (_, said) = self.run(&["dpkg-query", "-W", "-f=${Status}", "certforge"]);
        if said.contains("no packages found") {
            return String::new();
        }
        said.trim().to_string()
    }

    /// The root's /etc/passwd entry for `user`, split at ':'.
    fn passwd(&self, user: &str) -> Option<Vec<String>> {
        let passwd = std::fs::read_to_string(self.view("/etc/passwd")).unwrap();
        passwd.lines().map(|l| l.split(':').map(String::from).collect::<Vec<_>>()).find(|f| f[0] == user)
    }
}

/// What installing into the test root must leave as it is on the host.
fn host_state() -> Vec<(String, Vec<u8>)> {
    ["/etc/passwd", "/etc/group", "/var/lib/dpkg/status"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(f).unwrap_or_default()))
        .collect()
}

/// `dpkg -i`, `-r` and `-P` of the .deb in a root where systemd is not
/// running: the install makes the certforge user and its depot, ships the
/// unit (which systemd-analyze verify accepts there) and the settings file
/// as a conffile, and enables and starts nothing; the depot command the
/// settings file prints works as printed; removal keeps the conffile, purge
/// deletes it and keeps the CA's depot and the user.
#[test]
fn the_deb_installs_removes_and_purges_cleanly_in_a_test_root() {
    let Some(deb) = common::the_deb() else { return };
    if unsafe { libc::geteuid() } != 0 {
        assert!(!required(), "the dpkg test needs root (a mount namespace and an overlay)");
        eprintln!("SKIPPED: the dpkg test needs root (a mount namespace and an overlay)");
        return;
    }
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("dpkg", "dpkg"),
        ("adduser", "adduser"),
        ("systemd-analyze", "systemd"),
    ] {
        if !need(tool, package) {
            return;
        }
    }
    let host = host_state();
    let root = TestRoot::start();
    assert!(!root.view("/run/systemd/system").exists(), "systemd seems to run in the test root");
    std::fs::copy(&deb, root.view("/tmp/certforge.deb")).unwrap();
    // Before the install systemd-analyze verify finds the unit's program
    // missing: it checks the root it runs in.
    std::fs::copy(unit_source(), root.view(&format!("/tmp/{UNIT}"))).unwrap();
    let (ok, said) = root.run(&["systemd-analyze", "verify", &format!("/tmp/{UNIT}")]);
    assert!(!ok && said.contains("/usr/bin/certforge"), "verify before the install:\n{said}");

    // Install.
    let said = root.ok(&["dpkg", "-i", "/tmp/certforge.deb"]);
    println!("dpkg -i:\n{said}");
    assert_eq!(root.status(), "install ok installed");
    let user = root.passwd("certforge").expect("the postinst made the user certforge");
    assert_eq!(user[5], "/var/lib/certforge", "{user:?}");
    assert!(user[6].ends_with("nologin"), "a system user without a login shell: {user:?}");
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {user:?}");
    let group = std::fs::read_to_string(root.view("/etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("certforge:")), "the group certforge");
    let depot = std::fs::metadata(root.view("/var/lib/certforge")).expect("the postinst made /var/lib/certforge");
    assert_eq!((depot.uid(), depot.permissions().mode() & 0o7777), (uid, 0o700));

    let unit = root.view(&format!("/usr/lib/systemd/system/{UNIT}"));
    assert_eq!(std::fs::read(&unit).unwrap(), std::fs::read(unit_source()).unwrap(), "the unit as written");
    let defaults = root.view("/etc/default/certforge-serve");
    let meta = std::fs::metadata(&defaults).expect("/etc/default/certforge-serve is installed");
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (0, 0o600), "root's only: it may hold a password");
    let conffiles = root.ok(&["dpkg-query", "-W", "-f=${Conffiles}", "certforge"]);
    assert!(conffiles.contains("/etc/default/certforge-serve "), "a conffile: {conffiles}");
    // Neither enabled nor started: the operator names the CA first.
    assert!(!root.view(&format!("/etc/systemd/system/multi-user.target.wants/{UNIT}")).exists(), "enabled at install");

    // systemd checks the installed unit against the root it is installed
    // in: the binary, the user, the man page it names.
    let (ok, said) = root.run(&["systemd-analyze", "verify", UNIT]);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify {UNIT}:\n{said}");

    // The settings file's commands (making the CA, an EAB key), run as
    // printed (as root, who reads the file), leave a CA the service's user owns.
    let settings = std::fs::read_to_string(&defaults).unwrap();
    let lines: Vec<String> = settings
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix("runuser ").map(|rest| format!("runuser {rest}")))
        .collect();
    assert_eq!(lines.len(), 2, "init and acme eab add in:\n{settings}");
    for line in &lines {
        root.ok(&["sh", "-c", line]);
    }
    let line = &lines[0];
    let listed =
        root.ok(&["runuser", "-u", "certforge", "--", "certforge", "--depot-path", "/var/lib/certforge", "list"]);
    assert!(listed.contains("Staging CA"), "{line}\nlist says:\n{listed}");

    // The settings' arguments start the server as the service's user (on a
    // loopback port here rather than 443), which stops on SIGTERM.
    let args = settings
        .lines()
        .find_map(|l| l.strip_prefix("CERTFORGE_SERVE_ARGS="))
        .unwrap_or_else(|| panic!("no CERTFORGE_SERVE_ARGS in:\n{settings}"))
        .trim_matches('"')
        .replace("0.0.0.0:443", "127.0.0.1:0");
    let mut serve = vec!["runuser", "-u", "certforge", "--", "timeout", "-s", "TERM", "3", "certforge"];
    serve.extend(["--depot-path", "/var/lib/certforge", "serve", "--CA", "Staging CA"]);
    serve.extend(args.split_whitespace());
    let (_, said) = root.run(&serve);
    assert!(said.contains("directory    https://acme.example.internal:"), "serve {args}:\n{said}");
    assert!(said.contains(r#""msg":"stopped""#), "serve {args} stops on SIGTERM:\n{said}");

    // Remove: the binary and the unit go, the settings and the user stay.
    std::fs::write(&defaults, settings.replace("CERTFORGE_CA=\n", "CERTFORGE_CA=\"Staging CA\"\n")).unwrap();
    let said = root.ok(&["dpkg", "-r", "certforge"]);
    println!("dpkg -r:\n{said}");
    assert_eq!(root.status(), "deinstall ok config-files");
    assert!(!root.view("/usr/bin/certforge").exists() && !unit.exists(), "dpkg -r leaves the binary or the unit");
    assert!(
        std::fs::read_to_string(&defaults).unwrap().contains("CERTFORGE_CA=\"Staging CA\""),
        "edited conffile kept"
    );

    // Purge: the conffile goes; the CA's depot and its owner stay.
    let said = root.ok(&["dpkg", "-P", "certforge"]);
    println!("dpkg -P:\n{said}");
    assert_eq!(root.status(), "");
    assert!(!defaults.exists(), "dpkg -P leaves /etc/default/certforge-serve");
    assert!(said.contains("kept /var/lib/certforge"), "purge says what it kept:\n{said}");
    assert!(root.passwd("certforge").is_some(), "the user stays, owning the depot");
    let kept = std::fs::read_dir(root.view("/var/lib/certforge")).unwrap().count();
    assert!(kept > 0, "the CA's depot stays");
    // Nothing of the unit is left to systemd: no mask (dpkg -r made one, so
    // that it could not be started without its program), no
    // deb-systemd-helper records.
    let left: Vec<PathBuf> = ["/etc/systemd", "/var/lib/systemd"]
        .iter()
        .flat_map(|dir| common::snapshot(&root.view(dir)).into_keys())
        .filter(|p| p.to_string_lossy().contains("certforge"))
        .collect();
    assert!(left.is_empty(), "left after dpkg -P: {left:?}");

    drop(root);
    assert!(host_state() == host, "the host's users or dpkg database changed");
}
