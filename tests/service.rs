//! certforge-serve.service as an operator meets it: systemd's own checks
//! of the unit (`systemd-analyze verify` and `security`), the .deb that
//! ships it installed, removed and purged by dpkg in a throw-away root, with
//! its maintainer scripts run for real, the host left as it was, and the
//! unit run by a real systemd, PID 1 of a container booted from such a
//! root, with a CA key in a file and on SoftHSM.

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

/// Whether this machine can make a [`TestRoot`] and install the .deb in it
/// (root, for a mount namespace and an overlay; the tools dpkg and the
/// package's scripts call), with the `extra` tools a test needs besides;
/// if not, SKIPPED, or a failure under .ci/run.
fn can_make_test_roots(extra: &[(&str, &str)]) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        assert!(!required(), "a test root needs root (a mount namespace and an overlay)");
        eprintln!("SKIPPED: a test root needs root (a mount namespace and an overlay)");
        return false;
    }
    let tools = [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("dpkg", "dpkg"),
        ("adduser", "adduser"),
        ("systemd-analyze", "systemd"),
    ];
    tools.iter().chain(extra).all(|(tool, package)| need(tool, package))
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
    if !can_make_test_roots(&[]) {
        return;
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

/// A container booted from a [`TestRoot`] by systemd-nspawn, with systemd
/// as its PID 1, on this machine's network (so that its services are
/// reached on 127.0.0.1). It boots only as far as sysinit.target, so that
/// no other service this machine has installed starts in it (Prometheus,
/// podman's). Dropping it halts it, and kills what is left.
struct Booted {
    nspawn: std::process::Child,
    /// The container's systemd, as this machine's PID namespace numbers it.
    init: u32,
}

impl Booted {
    fn boot(root: &TestRoot) -> Booted {
        use std::io::{Read, Seek};
        use std::process::Stdio;
        // nspawn mounts a /dev, /proc and /run of its own and refuses a
        // populated /dev: the test root's go first (so its chroot commands
        // are done once it boots). nspawn keeps its state under
        // /run/systemd/nspawn: a tmpfs over /run in the test root's mount
        // namespace keeps that off this machine. --keep-unit and
        // --register=no: no systemd or machined runs here to register the
        // container with.
        let dir = root.dir().display().to_string();
        let script = format!(
            "umount -l {dir}/dev {dir}/proc {dir}/run && mount -t tmpfs tmpfs /run && exec systemd-nspawn -D {dir} \
             --boot --console=passive --register=no --link-journal=no --keep-unit -- systemd.unit=sysinit.target"
        );
        let mut console = tempfile::tempfile().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let nspawn = clients::nsenter(root.0.pid(), &cmd)
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console.try_clone().unwrap())
            .spawn()
            .expect("nsenter");
        let mut booted = Booted { nspawn, init: 0 };
        // nsenter and sh exec into nspawn, whose child is the container's
        // systemd; it is up once systemctl gets an answer from it. Its
        // console (systemd's boot messages) is for a boot that fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut state = String::new();
        while std::time::Instant::now() < deadline {
            booted.init = booted.init.max(child_of(booted.nspawn.id()).unwrap_or(0));
            if booted.init != 0 {
                state = booted.run(&["systemctl", "is-system-running"]).1.trim().to_string();
                if ["running", "degraded"].contains(&state.as_str()) {
                    return booted;
                }
            }
            if let Ok(Some(status)) = booted.nspawn.try_wait() {
                state = format!("systemd-nspawn exited with {status}");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut said = String::new();
        console.rewind().unwrap();
        console.read_to_string(&mut said).unwrap();
        panic!("the container did not boot within 30 s ({state}); its console:\n{said}");
    }

    /// `args` inside the container (all its namespaces), for at most a
    /// minute: (exited 0, stdout + stderr).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init.to_string(), "-a", "--"]).args(args).env("LC_ALL", "C");
        clients::run_bounded(&mut cmd, 60)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, said) = self.run(args);
        assert!(ok, "{args:?} in the container:\n{said}");
        said
    }

    /// One property of the unit, as `systemctl show` gives it.
    fn show(&self, property: &str) -> String {
        self.ok(&["systemctl", "show", "--value", "-p", property, UNIT]).trim().to_string()
    }

    /// The unit's journal, messages only.
    fn journal(&self) -> String {
        self.run(&["journalctl", "--no-pager", "-o", "cat", "-u", UNIT]).1
    }

    /// Waits at most `secs` for the unit to be active with a main process
    /// other than `not`, and returns that process (in the container's
    /// numbering).
    fn wait_active(&self, not: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let pid = self.show("MainPID");
            if self.show("ActiveState") == "active" && pid != "0" && pid != not {
                return pid;
            }
            assert!(std::time::Instant::now() < deadline, "{UNIT} not active within {secs} s:\n{}", self.journal());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The first child of process `pid`, from any of its threads.
fn child_of(pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .find_map(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
}

impl Drop for Booted {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to halt the container: systemd stops its
        // units and powers off. What does not end in time is killed: the
        // container's PID 1 takes everything in its PID namespace with it.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.init != 0 {
            unsafe { libc::kill(self.init as i32, libc::SIGKILL) };
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// A port below 1024 that nothing holds on 127.0.0.1 (this test runs as
/// root, so it can try them). Only one test takes one, so no other test
/// can race it for the same port.
fn free_low_port() -> u16 {
    (600..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024 on 127.0.0.1")
}

/// A test root with the .deb installed and the CA made as the service's
/// user, its settings file edited as an operator would: the CA, the server
/// on `port` of 127.0.0.1, http-01 on a free port, and `extra` lines.
struct Installed {
    root: TestRoot,
    /// The certforge user's uid in the root, as /etc/passwd gives it.
    uid: String,
    port: u16,
    http01: u16,
}

impl Installed {
    const DEPOT: [&str; 2] = ["--depot-path", "/var/lib/certforge"];

    /// The root with the .deb installed; `prepare` runs next (making a
    /// token, say), then `certforge init --cn CA INIT_ARGS` as the
    /// service's user.
    fn new(
        deb: &Path,
        ca: &str,
        prepare: impl FnOnce(&TestRoot),
        init_args: &[&str],
        port: u16,
        extra: &[&str],
    ) -> Installed {
        let root = TestRoot::start();
        std::fs::copy(deb, root.view("/tmp/certforge.deb")).unwrap();
        root.ok(&["dpkg", "-i", "/tmp/certforge.deb"]);
        let uid = root.passwd("certforge").expect("the postinst made the user certforge")[2].clone();
        prepare(&root);
        let init = [&["runuser", "-u", "certforge", "--", "certforge"][..], &Self::DEPOT, &["init", "--cn", ca]];
        root.ok(&[&init[..], &[init_args]].concat().concat());

        let http01 = common::free_port();
        let defaults = root.view("/etc/default/certforge-serve");
        let settings: String = std::fs::read_to_string(&defaults)
            .unwrap()
            .lines()
            .map(|l| match l {
                "CERTFORGE_CA=" => format!("CERTFORGE_CA=\"{ca}\""),
                l if l.starts_with("CERTFORGE_SERVE_ARGS=") => {
                    format!("CERTFORGE_SERVE_ARGS=\"--listen 127.0.0.1:{port} --http01-port {http01}\"")
                }
                l => l.to_string(),
            })
            .chain(extra.iter().map(|l| l.to_string()))
            .map(|l| l + "\n")
            .collect();
        std::fs::write(&defaults, settings).unwrap();
        // A machine ID of its own, as a cloned machine gets: with this
        // machine's, nspawn refuses to share the journal, and without one
        // systemd takes the boot for a first boot and enables every unit.
        let id = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap().trim().replace('-', "");
        std::fs::write(root.view("/etc/machine-id"), format!("{id}\n")).unwrap();
        Installed { root, uid, port, http01 }
    }

    fn settings_file(&self) -> PathBuf {
        self.root.view("/etc/default/certforge-serve")
    }

    /// lego, trusting the depot's CA file `ca` alone, gets a certificate
    /// for localhost from the service (answering http-01 on 127.0.0.1);
    /// openssl verifies it, and the service wrote it into its depot as
    /// its user.
    fn lego_gets_a_certificate(&self, booted: &Booted, ca: &str) {
        let ca = self.root.view(&format!("/var/lib/certforge/{ca}"));
        let work = tempfile::tempdir().unwrap();
        let lego_dir = work.path().join("lego");
        let mut lego = Command::new("lego");
        lego.env("LEGO_CA_CERTIFICATES", &ca).args(["--server", &format!("https://127.0.0.1:{}/directory", self.port)]);
        lego.args(["--accept-tos", "--email", "a@example.com", "--path"]).arg(&lego_dir);
        lego.args(["--domains", "localhost", "--http", "--http.port", &format!("127.0.0.1:{}", self.http01), "run"]);
        let (ok, out) = clients::run_bounded(&mut lego, 120);
        assert!(ok, "lego failed:\n{out}\nthe journal:\n{}", booted.journal());
        let cert = lego_dir.join("certificates/localhost.crt");
        common::openssl_verify_server(work.path(), &ca.display().to_string(), None, &cert.display().to_string());
        let written: Vec<u32> = std::fs::read_dir(self.root.view("/var/lib/certforge"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("localhost.acme-"))
            .map(|e| e.metadata().unwrap().uid())
            .collect();
        assert!(!written.is_empty(), "no localhost.acme-* entry in the service's depot");
        assert!(written.iter().all(|u| u.to_string() == self.uid), "depot entries not the service user's: {written:?}");
    }
}

/// The tools a test of the unit under systemd needs, beyond a test root's.
const BOOT_TOOLS: [(&str, &str); 2] = [("systemd-nspawn", "systemd-container"), ("lego", "lego")];

/// The unit as systemd runs it. The .deb is installed in a test root, the
/// CA is made as the settings file says, and systemd is PID 1 of a
/// container booted from that root. `systemctl start` runs serve as the
/// certforge user with one capability (binding a port below 1024), no way
/// to gain others, and the system-call filter; lego gets a certificate from
/// it, which the service wrote into its depot; killed, it is restarted;
/// `systemctl stop` drains it and it ends cleanly; with settings it cannot
/// start with, it fails once and is not restarted.
#[test]
fn systemd_runs_the_unit_sandboxed_and_it_issues_to_lego() {
    let Some(deb) = common::the_deb() else { return };
    if !can_make_test_roots(&BOOT_TOOLS) {
        return;
    }
    // A port below 1024, which only the unit's capability lets its user
    // open.
    let installed = Installed::new(&deb, "Staging CA", |_| {}, &[], free_low_port(), &[]);
    let booted = Booted::boot(&installed.root);
    assert_eq!(booted.run(&["systemctl", "is-enabled", UNIT]).1.trim(), "disabled", "the package enables nothing");
    booted.ok(&["systemctl", "start", UNIT]);
    let pid = booted.wait_active("0", 30);

    // As whom, and with what, systemd runs it: capability 10 is
    // CAP_NET_BIND_SERVICE (linux/capability.h); Seccomp 2 is a filter.
    let status = booted.ok(&["cat", &format!("/proc/{pid}/status")]);
    let field = |key: &str| -> Vec<&str> {
        let line = status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'));
        line.unwrap_or_else(|| panic!("no {key} in:\n{status}")).split_whitespace().collect()
    };
    assert_eq!(field("Uid"), [installed.uid.as_str(); 4], "{status}");
    for caps in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(caps), ["0000000000000400"], "{caps} holds more than CAP_NET_BIND_SERVICE:\n{status}");
    }
    assert_eq!(field("NoNewPrivs"), ["1"], "{status}");
    assert_eq!(field("Seccomp"), ["2"], "no system-call filter:\n{status}");

    installed.lego_gets_a_certificate(&booted, "Staging_CA.crt");

    // A crash: systemd starts it again (Restart=on-failure, RestartSec=5).
    // (kill(1) rather than `systemctl kill`: this machine's cgroups refuse
    // systemd's signal to the whole control group, EIO.)
    booted.ok(&["kill", "-KILL", &pid]);
    let again = booted.wait_active(&pid, 30);
    println!("killed as PID {pid}, restarted as PID {again}");

    // systemctl stop: SIGTERM, the drain, a clean end.
    booted.ok(&["systemctl", "stop", UNIT]);
    let state = (booted.show("ActiveState"), booted.show("Result"));
    assert_eq!(state, ("inactive".to_string(), "success".to_string()), "{}", booted.journal());
    let journal = booted.journal();
    assert!(journal.contains("stopping: no new connections"), "no drain in the journal:\n{journal}");

    // A usage error (exit status 2: here an empty CERTFORGE_CA) is not
    // restarted: the settings must change first (RestartPreventExitStatus=2).
    let settings = std::fs::read_to_string(installed.settings_file()).unwrap();
    std::fs::write(installed.settings_file(), settings.replace("CERTFORGE_CA=\"Staging CA\"", "CERTFORGE_CA="))
        .unwrap();
    let restarts = booted.show("NRestarts");
    let _ = booted.run(&["systemctl", "start", UNIT]);
    std::thread::sleep(Duration::from_secs(7));
    let state = (booted.show("ActiveState"), booted.show("ExecMainStatus"), booted.show("NRestarts"));
    assert_eq!(state, ("failed".to_string(), "2".to_string(), restarts), "{}", booted.journal());
    assert!(booted.journal().contains("--CA: the name is empty"), "{}", booted.journal());
}

/// A CA key on SoftHSM under the unit, set up as the README says: the
/// service's user in the softhsm group makes the token in SoftHSM's system
/// token directory, `init --key pkcs11:…` makes the key there, and the
/// settings file names the module and the PIN. systemd starts serve with no
/// drop-in (signing only reads the token, which ProtectSystem=strict
/// allows), and lego gets a certificate signed on the token.
#[test]
fn systemd_runs_the_unit_with_a_softhsm_ca_key() {
    let Some(deb) = common::the_deb() else { return };
    if !can_make_test_roots(&[&BOOT_TOOLS[..], &[("softhsm2-util", "softhsm2")]].concat()) {
        return;
    }
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    let prepare = |root: &TestRoot| {
        root.ok(&["adduser", "certforge", "softhsm"]);
        let as_certforge = ["runuser", "-u", "certforge", "--"];
        let token = ["softhsm2-util", "--init-token", "--free", "--label", "certforge", "--pin", "1234"];
        root.ok(&[&as_certforge[..], &token, &["--so-pin", "5678"]].concat());
        root.ok(&[&as_certforge[..], &["sh", "-c", "umask 077; echo 1234 > /var/lib/certforge/pin"]].concat());
    };
    let key = ["--key", "pkcs11:token=certforge;object=staging-ca", "--pin-file", "/var/lib/certforge/pin"];
    let init_args = [&key[..], &["--pkcs11-module", module]].concat();
    let extra = [format!("CERTFORGE_PKCS11_MODULE={module}"), "CERTFORGE_PKCS11_PIN=1234".to_string()];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let installed = Installed::new(&deb, "HSM CA", prepare, &init_args, common::free_port(), &extra);
    std::fs::remove_file(installed.root.view("/var/lib/certforge/pin")).unwrap();
    assert!(!installed.root.view("/var/lib/certforge/HSM_CA.key").exists(), "a key file beside the token's key");

    let booted = Booted::boot(&installed.root);
    booted.ok(&["systemctl", "start", UNIT]);
    booted.wait_active("0", 30);
    installed.lego_gets_a_certificate(&booted, "HSM_CA.crt");
    let journal = booted.journal();
    assert!(journal.contains(r#"PKCS#11: token "certforge", object "staging-ca""#), "{journal}");
}
