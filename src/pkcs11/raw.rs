//! The one PKCS#11 call cryptoki's `Session` has no method for: a
//! single-part C_Sign on an operation that C_SignInit already started.
//!
//! A key with CKA_ALWAYS_AUTHENTICATE (PIV's signature slot 9c on a
//! YubiKey) takes its PIN again for each signature, and that login must
//! come after the operation has started: C_SignInit, then C_Login with
//! CKU_CONTEXT_SPECIFIC, then C_Sign (PKCS#11 v3.0 §4.9, on
//! CKA_ALWAYS_AUTHENTICATE, and §5.6, C_Login). cryptoki's `Session::sign`
//! makes C_SignInit and C_Sign in one call, so the login cannot go
//! between them; this module calls the module's own C_Sign for that step.

use std::path::Path;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki_sys::{CKR_BUFFER_TOO_SMALL, CK_FUNCTION_LIST, CK_RV, CK_SESSION_HANDLE, CK_SESSION_INFO, CK_ULONG};

type SignFn = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut u8, CK_ULONG, *mut u8, *mut CK_ULONG) -> CK_RV;

/// The module's C_Sign, checked to act on the sessions cryptoki opened.
pub struct RawSign {
    /// Keeps the module mapped while `c_sign` points into it. Opening the
    /// same path again maps nothing new: the dynamic loader hands back the
    /// library cryptoki loaded, with its state.
    _lib: cryptoki_sys::Pkcs11,
    c_sign: SignFn,
}

impl RawSign {
    /// The C_Sign of the module at `path`, for `session` (on `slot`).
    ///
    /// Err says why it cannot serve: p11-kit-proxy, for one, gives each
    /// C_GetFunctionList caller an instance of its own, which knows nothing
    /// of cryptoki's sessions. That is found here, with C_GetSessionInfo on
    /// cryptoki's session, before anything is signed.
    pub fn for_session(path: &Path, session: &Session, slot: Slot) -> Result<RawSign, String> {
        // SAFETY: `path` is the module cryptoki has loaded and initialized
        // already, so loading it again runs no initializer of its own, and
        // every PKCS#11 module exports C_GetFunctionList (v3.0 §5.2).
        let lib = unsafe { cryptoki_sys::Pkcs11::new(path) }.map_err(|e| format!("cannot load it again ({e})"))?;
        if lib.C_GetFunctionList.is_err() {
            return Err("it exports no C_GetFunctionList".into());
        }
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: the symbol is present (checked above), and `list` is a
        // valid place for the pointer it writes.
        let rv = unsafe { lib.C_GetFunctionList(&mut list) };
        if rv != cryptoki_sys::CKR_OK || list.is_null() {
            return Err(format!("C_GetFunctionList failed ({:?})", Rv::from(rv)));
        }
        // SAFETY: a non-null list from C_GetFunctionList points to the
        // module's table, which lives as long as the module stays mapped
        // (`_lib` keeps it so); the two entries are copied out.
        let (get_info, c_sign) = unsafe { ((*list).C_GetSessionInfo, (*list).C_Sign) };
        let (Some(get_info), Some(c_sign)) = (get_info, c_sign) else {
            return Err("its function list lacks C_GetSessionInfo or C_Sign".into());
        };
        let mut info = CK_SESSION_INFO { slotID: 0, state: 0, flags: 0, ulDeviceError: 0 };
        // SAFETY: cryptoki's session is open (the caller holds it), and
        // `info` is a valid CK_SESSION_INFO for the module to fill.
        let rv = unsafe { get_info(session.handle(), &mut info) };
        if rv != cryptoki_sys::CKR_OK || info.slotID != slot.id() {
            return Err(format!(
                "the module's function list does not reach the session certforge opened ({:?}); it gives each caller an instance of its own, as p11-kit-proxy does",
                Rv::from(rv)
            ));
        }
        Ok(RawSign { _lib: lib, c_sign })
    }

    /// C_Sign of `data` on `session`, whose signing operation C_SignInit
    /// started (and a context-specific login then authorized). The
    /// operation ends with this call, whether it succeeds or fails.
    pub fn sign(&self, session: &Session, data: &[u8]) -> Result<Vec<u8>, CkError> {
        // 1,024 bytes hold any signature certforge asks for (RSA 4096 makes
        // 512); a larger one comes back as CKR_BUFFER_TOO_SMALL with the
        // length, and the operation stays open for a second call (v3.0 §5.2).
        let mut out = vec![0u8; 1024];
        for _ in 0..2 {
            let mut len = CK_ULONG::try_from(out.len())?;
            // SAFETY: the caller holds `session` (open, one operation at a
            // time under its lock); `data` is read only, though the C
            // prototype is not const; `out` is writable for `len` bytes,
            // and the module writes at most `len` there.
            let rv = unsafe {
                (self.c_sign)(
                    session.handle(),
                    data.as_ptr().cast_mut(),
                    CK_ULONG::try_from(data.len())?,
                    out.as_mut_ptr(),
                    &mut len,
                )
            };
            let len = usize::try_from(len)?;
            if rv == CKR_BUFFER_TOO_SMALL && len > out.len() {
                out.resize(len, 0);
                continue;
            }
            Rv::from(rv).into_result(Function::Sign)?;
            // A module that says it wrote more than the buffer holds is
            // broken: its bytes are no signature.
            if len > out.len() {
                return Err(CkError::Pkcs11(RvError::GeneralError, Function::Sign));
            }
            out.truncate(len);
            return Ok(out);
        }
        // A module that asks for more room a second time, after it was
        // given what it asked for, is broken; say so rather than loop.
        Rv::from(CKR_BUFFER_TOO_SMALL).into_result(Function::Sign).map(|()| Vec::new())
    }
}
