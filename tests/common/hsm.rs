//! A SoftHSM2 token of its own for each test: its token directory and
//! `softhsm2.conf` live in the test's temp dir, and SOFTHSM2_CONF reaches
//! only the commands the test starts (`.env()` on each, never the test
//! process). Commands run without the caller's CERTFORGE_PKCS11_PIN and
//! CERTFORGE_PKCS11_MODULE, and every run is bounded in time: a command
//! still running at its deadline is killed with its process group, and the
//! test fails saying so.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::Env;

/// The SoftHSM2 module, named explicitly so that results do not depend on
/// p11-kit's configuration.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the token each test starts with.
pub const LABEL: &str = "certforge";
pub const PIN: &str = "1234";
pub const SO_PIN: &str = "5678";
/// A PIN that is not the token's.
pub const WRONG_PIN: &str = "9999";

/// The variables that would give certforge a PIN or a module the test did
/// not choose.
pub const TOKEN_ENV: [&str; 2] = ["CERTFORGE_PKCS11_PIN", "CERTFORGE_PKCS11_MODULE"];

/// How long any one command may take.
pub const LIMIT: u64 = 120;

/// Whether SoftHSM2 and OpenSC's pkcs11-tool are here. When one is missing
/// the test skips, saying SKIPPED, unless CI requires the peers
/// (CERTFORGE_REQUIRE_PEERS), where it fails.
pub fn available() -> bool {
    let runs = |program: &str, arg: &str| {
        let mut c = Command::new(program);
        c.arg(arg).stdin(Stdio::null());
        try_bounded(&mut c, 30).is_ok()
    };
    let missing: Vec<&str> = [
        (!runs("softhsm2-util", "--version")).then_some("softhsm2-util (apt-get install softhsm2)"),
        (!Path::new(MODULE).is_file()).then_some("libsofthsm2.so (apt-get install softhsm2)"),
        (!runs("pkcs11-tool", "--help")).then_some("pkcs11-tool (apt-get install opensc)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CERTFORGE_REQUIRE_PEERS").is_none(),
        "SoftHSM2 is required here but missing: {}",
        missing.join(", ")
    );
    eprintln!("SKIPPED: {} not installed", missing.join(", "));
    false
}

/// A depot (`env`) and a SoftHSM2 token directory with one initialized
/// token, LABEL, whose user PIN is PIN.
pub struct Hsm {
    pub env: Env,
    /// The softhsm2.conf every command is given.
    pub conf: PathBuf,
    /// A file holding PIN.
    pub pin_file: PathBuf,
}

impl Hsm {
    /// None when SoftHSM2 is missing and the test is to skip.
    pub fn new() -> Option<Hsm> {
        Hsm::in_env(Env::new())
    }

    /// [`new`](Self::new), with certforge commands running `bin` (the
    /// binary a package installs) instead of this test build's.
    pub fn with_binary(bin: &Path) -> Option<Hsm> {
        Hsm::in_env(Env::with_binary(bin))
    }

    fn in_env(env: Env) -> Option<Hsm> {
        if !available() {
            return None;
        }
        let tokens = env.tmp.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = env.tmp.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        let pin_file = env.tmp.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let hsm = Hsm { env, conf, pin_file };
        hsm.init_token(LABEL);
        Some(hsm)
    }

    /// Initializes another token in the free slot.
    pub fn init_token(&self, label: &str) {
        let out = self
            .tool_run("softhsm2-util", &["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN]);
        assert!(out.status.success(), "softhsm2-util --init-token: {}", text(&out));
    }

    /// A path in the temp dir (outside the depot).
    pub fn path(&self, name: &str) -> PathBuf {
        self.env.tmp.path().join(name)
    }

    /// Writes a file in the temp dir and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// `program` with this test's SoftHSM configuration and without the
    /// caller's token variables, run in the temp dir with stdin closed.
    pub fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.env.tmp.path()).env("SOFTHSM2_CONF", &self.conf).stdin(Stdio::null());
        for v in TOKEN_ENV {
            c.env_remove(v);
        }
        c
    }

    /// Runs a tool to its end (bounded).
    pub fn tool_run(&self, program: &str, args: &[&str]) -> Output {
        bounded(self.tool(program).args(args), LIMIT)
    }

    /// `pkcs11-tool --module MODULE ARGS`; panics unless it succeeds.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let mut all = vec!["--module", MODULE];
        all.extend(args);
        let out = self.tool_run("pkcs11-tool", &all);
        assert!(out.status.success(), "pkcs11-tool {args:?}: {}", text(&out));
        text(&out)
    }

    /// The token's objects as `pkcs11-tool --list-objects` shows them, with
    /// the user logged in or not.
    pub fn objects(&self, login: bool) -> Vec<Object> {
        let mut args = vec!["--list-objects"];
        if login {
            args.extend(["--login", "--pin", PIN]);
        }
        parse_objects(&self.pkcs11_tool(&args))
    }

    /// The private keys on the token (logged in).
    pub fn private_keys(&self) -> Vec<Object> {
        self.objects(true).into_iter().filter(|o| o.kind.starts_with("Private Key Object")).collect()
    }

    /// certforge with this test's SoftHSM configuration and no token flags:
    /// module and PIN come from the URI or the defaults only.
    pub fn bare(&self, args: &[&str]) -> Command {
        let mut c = self.env.cmd(args);
        c.env("SOFTHSM2_CONF", &self.conf);
        for v in TOKEN_ENV {
            c.env_remove(v);
        }
        c
    }

    /// certforge with `--pkcs11-module MODULE --pin-file PIN_FILE`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.bare(args);
        c.arg("--pkcs11-module").arg(MODULE).arg("--pin-file").arg(&self.pin_file);
        c
    }

    /// Runs `cmd` and panics, showing its output, unless it succeeds.
    pub fn ok_cmd(&self, mut cmd: Command) -> String {
        let out = bounded(&mut cmd, LIMIT);
        assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, text(&out));
        text(&out)
    }

    /// [`cmd`](Self::cmd) run to success; returns stdout and stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_cmd(self.cmd(args))
    }

    /// Runs `cmd`, which must fail with an exit status of its own (not a
    /// signal, not a panic); returns stderr.
    pub fn fails_cmd(&self, mut cmd: Command) -> String {
        let out = bounded(&mut cmd, LIMIT);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            matches!(out.status.code(), Some(c) if c != 0),
            "{cmd:?} should have failed with an exit status; it gave {:?}:\n{}",
            out.status,
            text(&out)
        );
        assert!(!err.contains("panicked"), "{cmd:?} panicked:\n{err}");
        err
    }

    /// [`cmd`](Self::cmd) run to failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        self.fails_cmd(self.cmd(args))
    }

    /// `openssl ARGS` in the depot, bounded; (success, stdout + stderr).
    pub fn openssl(&self, args: &[&str]) -> (bool, String) {
        let mut c = Command::new("openssl");
        c.current_dir(self.env.depot()).args(args).stdin(Stdio::null());
        let out = bounded(&mut c, LIMIT);
        (out.status.success(), text(&out))
    }

    /// `openssl ARGS` in the depot, which must succeed.
    pub fn openssl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.openssl(args);
        assert!(ok, "openssl {args:?} failed:\n{out}");
        out
    }
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `cmd` to its end within `secs` seconds. Output goes to files, so a
/// chatty child never blocks on a full pipe. The child leads a process
/// group, and the group is killed once the child has exited or at the
/// deadline, so nothing it started outlives it; at the deadline the test
/// fails.
pub fn bounded(cmd: &mut Command, secs: u64) -> Output {
    try_bounded(cmd, secs).unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()))
}

/// [`bounded`], with Err when the program cannot be started.
pub fn try_bounded(cmd: &mut Command, secs: u64) -> std::io::Result<Output> {
    let run = crate::common::run_group(cmd, None, secs)?;
    let status = run.status.unwrap_or_else(|| panic!("{cmd:?} could not be waited for"));
    let output = Output { status, stdout: run.stdout, stderr: run.stderr };
    assert!(!run.timed_out, "{cmd:?} ran over {secs} s and was killed:\n{}", text(&output));
    Ok(output)
}

/// One object of `pkcs11-tool --list-objects`: its heading line ("Private
/// Key Object; EC") and its "name: value" lines.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

impl Object {
    /// The value of field `name` ("label", "Usage", "Access"), if shown.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The comma-separated words of field `name`.
    pub fn words(&self, name: &str) -> Vec<String> {
        self.get(name).unwrap_or_default().split(',').map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect()
    }
}

/// Splits `pkcs11-tool --list-objects` output into objects: a heading at
/// the start of a line, then indented fields.
pub fn parse_objects(out: &str) -> Vec<Object> {
    let mut objects: Vec<Object> = Vec::new();
    for line in out.lines() {
        if line.ends_with("Object") || line.contains(" Object;") {
            objects.push(Object { kind: line.trim().to_string(), fields: Vec::new() });
        } else if let (Some(obj), true) = (objects.last_mut(), line.starts_with(' ')) {
            if let Some((k, v)) = line.trim().split_once(':') {
                obj.fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    objects
}
