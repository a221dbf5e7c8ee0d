//! The container image: `pkg/build-image.sh` builds it with podman from the
//! release binary `pkg/build-dist.sh` made (CERTFORGE_DIST; nothing is
//! compiled here), and podman runs it: `--version`, what the image holds
//! and as whom it runs, and `serve` in it, on the host's network with the
//! depot as a volume, issuing a certificate to lego on 127.0.0.1.
//!
//! podman runs as root with `--network host` and `--runtime runc`, and with a
//! containers.conf of its own (CONTAINERS_CONF) that sets no default
//! rlimits: on machines that are themselves containers, crun and runc are
//! not allowed to set RLIMIT_NOFILE (EPERM) and every start fails. Every
//! container a test starts has a name and is removed at the end
//! (`podman rm -f`), whatever happened. The image is left in podman's
//! store as `localhost/certforge:<version>`: building it again replaces it.

#[path = "common/acme.rs"]
mod acme_server;
#[path = "common/clients.rs"]
mod clients;
mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use acme_server::Server;
use clients::{require, run_bounded};
use common::{free_ports, openssl_verify_server, run_group, the_dist_binary, Env};

/// The user the image runs as (pkg/Containerfile).
const UID: u32 = 65532;

/// A containers.conf with no default rlimits, for every podman command here.
fn containers_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("certforge-containers.conf");
        std::fs::write(&path, "[containers]\ndefault_ulimits = []\n").unwrap();
        path
    })
}

/// `podman --runtime runc ARGS...` with [`containers_conf`].
fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", containers_conf()).args(["--runtime", "runc"]).args(args);
    cmd
}

/// Runs podman for at most `secs` seconds; its stdout, or a panic with
/// everything it said.
fn podman_ok(args: &[&str], secs: u64) -> String {
    let run = run_group(&mut podman(args), None, secs).expect("podman starts");
    let (out, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(
        !run.timed_out && run.status.is_some_and(|s| s.success()),
        "podman {args:?} failed (timed out: {}):\n{out}{err}",
        run.timed_out
    );
    out.into_owned()
}

/// The release binary and the image built from it, once per test binary;
/// None (SKIPPED) without podman, runc or the binary, except under .ci/run.
fn image() -> Option<&'static (PathBuf, String)> {
    static IMAGE: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let tools = require("podman", &["--version"], "apt-get install podman")
                && require("runc", &["--version"], "apt-get install runc");
            let bin = the_dist_binary().filter(|_| tools)?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg/build-image.sh");
            let mut cmd = Command::new("bash");
            cmd.arg(script).arg(&bin).env("CONTAINERS_CONF", containers_conf());
            let run = run_group(&mut cmd, None, 300).expect("bash starts");
            let out = String::from_utf8_lossy(&run.stdout);
            assert!(
                run.status.is_some_and(|s| s.success()),
                "pkg/build-image.sh failed:\n{out}{}",
                String::from_utf8_lossy(&run.stderr)
            );
            let image = out.lines().last().expect("the image reference").to_string();
            Some((bin, image))
        })
        .as_ref()
}

/// A container by name: removed (`podman rm -f`) when dropped, so none
/// outlives the test whether it passed or not.
struct Named(String);

impl Named {
    fn new(what: &str) -> Named {
        Named(format!("certforge-test-{what}-{}", std::process::id()))
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = run_group(&mut podman(&["rm", "--force", "--time", "5", "--ignore", &self.0]), None, 60);
    }
}

/// The shared objects `ldd` lists for `bin`, as absolute paths.
fn ldd(bin: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd runs");
    assert!(out.status.success(), "ldd {}", bin.display());
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [path, ..] if path.starts_with('/') => Some(path.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// Every path under `root` (as "/a/b"), with "d"/"f"/"l", its mode and owner.
fn tree(root: &Path, dir: &Path, into: &mut BTreeSet<(String, char, u32, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = if meta.is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let name = format!("/{}", path.strip_prefix(root).unwrap().display());
        into.insert((name, kind, meta.permissions().mode() & 0o7777, meta.uid()));
        if kind == 'd' {
            tree(root, &path, into);
        }
    }
}

#[test]
fn the_image_prints_its_version() {
    let Some((bin, image)) = image() else { return };
    let out = podman_ok(&["run", "--rm", "--network", "host", image, "--version"], 60);
    assert_eq!(out.trim(), format!("certforge {}", env!("CARGO_PKG_VERSION")));
    let host = Command::new(bin).arg("--version").output().unwrap();
    assert_eq!(out, String::from_utf8_lossy(&host.stdout), "the binary of pkg/build-dist.sh");
    assert!(image.ends_with(&format!("/certforge:{}", env!("CARGO_PKG_VERSION"))), "{image}");
}

#[test]
fn the_image_runs_as_nonroot_and_holds_only_the_binary_and_glibc() {
    let Some((bin, image)) = image() else { return };
    let inspect: serde_json::Value = serde_json::from_str(&podman_ok(&["image", "inspect", image], 60)).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "not root: {config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/bin/certforge"]));
    assert!(config["Volumes"].get("/depot").is_some(), "the depot is a volume: {config}");
    assert!(config["Env"].as_array().unwrap().iter().any(|e| e == "CERTFORGE_DEPOT_PATH=/depot"), "{config}");
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(labels["org.opencontainers.image.licenses"], "MIT OR Apache-2.0");
    assert_eq!(labels["org.opencontainers.image.title"], "certforge");
    eprintln!("image {image}: {} bytes", inspect[0]["Size"]);

    // glibc's four: nothing else is linked in.
    let libs = ldd(bin);
    let mut names: Vec<&str> = libs.iter().map(|l| l.rsplit('/').next().unwrap()).collect();
    names.sort();
    assert_eq!(names.len(), 4, "{libs:?}");
    assert!(names[0].starts_with("ld-linux") && names[1..] == ["libc.so.6", "libgcc_s.so.1", "libm.so.6"], "{libs:?}");

    let mount = podman_ok(&["image", "mount", image], 60);
    let root = PathBuf::from(mount.trim());
    let mut files = BTreeSet::new();
    tree(&root, &root, &mut files);
    let binary = std::fs::read(root.join("usr/bin/certforge"));
    let copies: Vec<bool> =
        libs.iter().map(|l| std::fs::read(root.join(&l[1..])).ok() == Some(std::fs::read(l).unwrap())).collect();
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    podman_ok(&["image", "unmount", image], 60);
    assert!(passwd.starts_with("certforge:x:65532:65532:"), "the user has a name for tools: {passwd}");

    let mut want: BTreeSet<(String, char, u32, u32)> = [
        ("/usr/bin/certforge", 'f', 0o755, 0),
        ("/etc/passwd", 'f', 0o644, 0),
        ("/etc/group", 'f', 0o644, 0),
        ("/etc/nsswitch.conf", 'f', 0o644, 0),
        ("/depot", 'd', 0o755, UID),
        ("/tmp", 'd', 0o1777, 0),
    ]
    .into_iter()
    .map(|(p, k, m, u)| (p.to_string(), k, m, u))
    .collect();
    for lib in &libs {
        // cp keeps the host file's mode (umask 022 in the script).
        let mode = std::fs::metadata(lib).unwrap().permissions().mode() & 0o7777;
        want.insert((lib.clone(), 'f', mode & !0o022, 0));
    }
    // Every parent directory of those.
    for (path, ..) in want.clone() {
        let mut dir = Path::new(&path).parent();
        while let Some(d) = dir.filter(|d| *d != Path::new("/")) {
            want.insert((d.display().to_string(), 'd', 0o755, 0));
            dir = d.parent();
        }
    }
    assert_eq!(files, want, "the image's files (path, kind, mode, owner)");
    assert_eq!(binary.ok(), Some(std::fs::read(bin).unwrap()), "the binary is pkg/build-dist.sh's");
    assert!(copies.iter().all(|c| *c), "each library is the host's own: {libs:?} {copies:?}");
}

#[test]
fn serve_in_the_container_issues_a_certificate_to_lego() {
    let Some((bin, image)) = image() else { return };
    if !require("lego", &["--version"], "apt-get install lego") {
        return;
    }
    let env = Env::with_binary(bin);
    let depot = env.depot();
    std::fs::create_dir(&depot).unwrap();
    // `:U` hands the directory to the image's user, as a new named volume
    // would be.
    let volume = format!("{}:/depot:U", depot.display());
    podman_ok(
        &["run", "--rm", "--network", "host", "-v", &volume, image, "init", "--cn", "Container CA", "--passphrase", ""],
        60,
    );
    let ca = depot.join("Container_CA.crt");
    assert_eq!(std::fs::metadata(&ca).unwrap().uid(), UID, "written by the image's user");

    let [port, http01] = free_ports();
    let container = Named::new("serve");
    let (listen, http01_port) = (format!("127.0.0.1:{port}"), http01.to_string());
    let serve = [
        &["run", "--rm", "--name", &container.0, "--network", "host", "-v", &volume, image][..],
        &["serve", "--CA", "Container CA", "--listen", &listen, "--http01-port", &http01_port],
    ]
    .concat();
    let mut server = Server::start_cmd(&env, podman(&serve));
    assert_eq!(server.directory, format!("https://127.0.0.1:{port}/directory"));
    // The banner names the CA file as the container sees it.
    assert!(server.lines().iter().any(|l| l.contains("/depot/Container_CA.crt")), "{:?}", server.lines());

    // As whom it runs, seen from the host.
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &container.0], 30);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let ids =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(ids("Uid:"), ["65532"; 4], "{status}");
    assert_eq!(ids("Gid:"), ["65532"; 4], "{status}");
    let exe = std::fs::read_link(format!("/proc/{}/exe", pid.trim())).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/certforge"));

    // lego, trusting the depot's CA alone (run_bounded drops the machine's
    // CA-bundle variables), answers http-01 on 127.0.0.1.
    let lego_dir = env.tmp.path().join("lego");
    let mut lego = Command::new("lego");
    lego.env("LEGO_CA_CERTIFICATES", &ca).args(["--server", &server.directory, "--accept-tos"]);
    lego.args(["--email", "a@example.com", "--path"]).arg(&lego_dir);
    lego.args(["--domains", "localhost", "--http", "--http.port", &format!("127.0.0.1:{http01}"), "run"]);
    let (ok, out) = run_bounded(&mut lego, 120);
    assert!(ok, "lego failed:\n{out}\nserve:\n{}", server.lines().join("\n"));
    assert!(out.contains("The server validated our request"), "{out}");
    let cert = lego_dir.join("certificates/localhost.crt");
    openssl_verify_server(env.tmp.path(), &ca.display().to_string(), None, &cert.display().to_string());

    // The certificate is a depot entry the container's user wrote.
    let entries: Vec<_> = std::fs::read_dir(&depot)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("localhost.acme-"))
        .collect();
    assert!(!entries.is_empty(), "no localhost.acme-* entry in the depot");
    assert!(entries.iter().all(|e| e.metadata().unwrap().uid() == UID));

    // SIGTERM to `podman run` reaches certforge, which drains and exits 0.
    let status = server.stop();
    assert!(status.success(), "serve in the container exited with {status}:\n{}", server.lines().join("\n"));
}
