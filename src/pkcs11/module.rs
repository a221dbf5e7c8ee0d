//! Which PKCS#11 module (shared library) to load, and loading it.
//!
//! Order: `--pkcs11-module` or `CERTFORGE_PKCS11_MODULE` (this run's
//! choice), then the URI's `module-path` or `module-name` (what `init`
//! stored), then the defaults: p11-kit-proxy, which reaches every module
//! the system registers, then the modules OpenSC and SoftHSM install.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

use super::{Options, Pkcs11Uri, TokenError};

/// Library directories searched for defaults and for `module-name`
/// (Debian and Ubuntu multiarch, Fedora, Arch, Homebrew).
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/homebrew/lib",
];
/// Default modules under each library directory, in the order tried.
const DEFAULTS: &[&str] = &[
    "p11-kit-proxy.so",
    "pkcs11/p11-kit-proxy.so",
    "p11-kit-proxy.dylib",
    "opensc-pkcs11.so",
    "pkcs11/opensc-pkcs11.so",
    "opensc-pkcs11.dylib",
    "softhsm/libsofthsm2.so",
    "pkcs11/libsofthsm2.so",
    "softhsm/libsofthsm2.dylib",
];

/// The modules to try, each with the name of what chose it (for errors).
/// One entry when the user or the URI chose; the existing defaults
/// otherwise.
pub fn candidates(uri: Option<&Pkcs11Uri>, opts: &Options) -> Result<Vec<(PathBuf, String)>, TokenError> {
    if let Some(path) = &opts.module {
        return Ok(vec![(path.clone(), "--pkcs11-module or CERTFORGE_PKCS11_MODULE".into())]);
    }
    if let Some(path) = uri.and_then(|u| u.module_path.as_deref()) {
        return Ok(vec![(PathBuf::from(path), "the URI's module-path".into())]);
    }
    let found = |names: &[String]| -> Vec<PathBuf> {
        LIB_DIRS.iter().flat_map(|d| names.iter().map(move |n| Path::new(d).join(n))).filter(|p| p.is_file()).collect()
    };
    if let Some(name) = uri.and_then(|u| u.module_name.as_deref()) {
        let names: Vec<String> = ["", "pkcs11/", "softhsm/"]
            .iter()
            .flat_map(|dir| [format!("{dir}{name}.so"), format!("{dir}lib{name}.so"), format!("{dir}{name}.dylib")])
            .collect();
        return match found(&names).into_iter().next() {
            Some(p) => Ok(vec![(p, "the URI's module-name".into())]),
            None => Err(TokenError::NoModule { tried: format!("module-name={name} under {}", LIB_DIRS.join(", ")) }),
        };
    }
    let mut seen = Vec::new();
    for p in found(&DEFAULTS.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
        // /usr/lib and /usr/lib64 may be one directory through a link.
        let real = p.canonicalize().unwrap_or_else(|_| p.clone());
        if !seen.iter().any(|(q, _): &(PathBuf, String)| q.canonicalize().ok().as_ref() == Some(&real)) {
            seen.push((p, "the default modules".into()));
        }
    }
    if seen.is_empty() {
        return Err(TokenError::NoModule {
            tried: format!("p11-kit-proxy, opensc-pkcs11 and libsofthsm2 under {}", LIB_DIRS.join(", ")),
        });
    }
    Ok(seen)
}

/// A loaded, initialized module. C_Initialize and C_Finalize are once per
/// process (PKCS#11 v3.0 §5.4), so each module is loaded once and shared
/// (a plan may hold a root and an intermediate on one token), and
/// finalized when its last user is gone, after their sessions closed.
pub struct Module {
    pub ctx: Pkcs11,
    pub path: PathBuf,
}

impl Drop for Module {
    fn drop(&mut self) {
        let _ = self.ctx.clone().finalize();
    }
}

static LOADED: Mutex<Vec<(PathBuf, Weak<Module>)>> = Mutex::new(Vec::new());

/// The module at `path`, loaded and initialized once per process.
pub fn load(path: &Path, chosen_by: &str) -> Result<Arc<Module>, TokenError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    loaded.retain(|(_, w)| w.strong_count() > 0);
    if let Some(m) = loaded.iter().find(|(p, _)| p == path).and_then(|(_, w)| w.upgrade()) {
        return Ok(m);
    }
    let module = Arc::new(Module { ctx: init(path, chosen_by)?, path: path.to_path_buf() });
    loaded.push((path.to_path_buf(), Arc::downgrade(&module)));
    Ok(module)
}

/// Loads and initializes the module at `path`. OS locking is allowed so
/// that `serve`'s threads may share it (PKCS#11 v3.0 §5.4).
fn init(path: &Path, chosen_by: &str) -> Result<Pkcs11, TokenError> {
    let fail = |detail: String| TokenError::ModuleLoad {
        path: path.display().to_string(),
        detail,
        source_name: chosen_by.to_string(),
    };
    if !path.exists() {
        return Err(fail("no such file".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| fail(format!("cannot be loaded as a PKCS#11 module ({e})")))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| fail(format!("C_Initialize failed ({e})")))?;
    Ok(ctx)
}
