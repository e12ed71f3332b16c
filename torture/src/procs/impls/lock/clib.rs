//! A user's cross-process lock in a shared library (`--impl-lib PATH`), through the C ABI of
//! `torture/include/torture_lock.h` (version [`ABI_VERSION`]), loaded with `libloading`. As
//! for MVars, the runner loads a library only after a child process survived loading it
//! ([`super::super::probe`]).

use super::{LockCaps, LockHandle};
use crate::procs::impls::clib::{cname, status};
use crate::procs::impls::{Status, Wait};
use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lock ABI version this torture speaks.
pub const ABI_VERSION: u32 = 1;

type AbiFn = unsafe extern "C" fn() -> u32;
type CreateFn = unsafe extern "C" fn(*const c_char) -> c_int;
type OpenFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type AcquireFn = unsafe extern "C" fn(*mut c_void, i64) -> c_int;
type ReleaseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type HolderFn = unsafe extern "C" fn(*mut c_void) -> i32;
type CloseFn = unsafe extern "C" fn(*mut c_void);
type DestroyFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// The required symbols, in the header's order.
pub const REQUIRED: [&str; 8] = [
    "torture_lock_abi_version",
    "torture_lock_capabilities",
    "torture_lock_create",
    "torture_lock_open",
    "torture_lock_acquire",
    "torture_lock_release",
    "torture_lock_close",
    "torture_lock_destroy",
];

/// A loaded lock library: its functions, valid while it stays loaded (they live in the same
/// struct as the library).
pub struct LockLib {
    path: PathBuf,
    caps: u32,
    create: CreateFn,
    open: OpenFn,
    acquire: AcquireFn,
    release: ReleaseFn,
    holder: Option<HolderFn>,
    close: CloseFn,
    destroy: DestroyFn,
    _lib: libloading::Library,
}

impl LockLib {
    /// Loads the library at `path` and checks its symbols, ABI version and capabilities.
    pub fn load(path: &Path) -> Result<LockLib, String> {
        let lib = crate::procs::impls::clib::load_with(path, &REQUIRED)?;
        // SAFETY: each symbol has the type the header declares; the copied function pointers
        // stay valid while `lib` is loaded, which `LockLib` keeps.
        unsafe {
            macro_rules! sym {
                ($t:ty, $n:literal) => {
                    *lib.get::<$t>($n.as_bytes())
                        .map_err(|_| format!("missing symbol {}", $n))?
                };
            }
            let version = sym!(AbiFn, "torture_lock_abi_version")();
            if version != ABI_VERSION {
                return Err(format!(
                    "lock ABI version {version}, this torture speaks {ABI_VERSION}"
                ));
            }
            let caps = sym!(AbiFn, "torture_lock_capabilities")();
            let holder = lib.get::<HolderFn>(b"torture_lock_holder").ok().map(|s| *s);
            if LockCaps::from_bits(caps).holder && holder.is_none() {
                return Err(
                    "missing symbol torture_lock_holder (the library claims the HOLDER capability)"
                        .into(),
                );
            }
            Ok(LockLib {
                path: path.to_path_buf(),
                caps,
                create: sym!(CreateFn, "torture_lock_create"),
                open: sym!(OpenFn, "torture_lock_open"),
                acquire: sym!(AcquireFn, "torture_lock_acquire"),
                release: sym!(ReleaseFn, "torture_lock_release"),
                holder,
                close: sym!(CloseFn, "torture_lock_close"),
                destroy: sym!(DestroyFn, "torture_lock_destroy"),
                _lib: lib,
            })
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its capabilities.
    pub fn caps(&self) -> LockCaps {
        LockCaps::from_bits(self.caps)
    }

    /// Its capability bits.
    pub fn caps_bits(&self) -> u32 {
        self.caps
    }

    /// `torture_lock_create`.
    pub fn create(&self, name: &str) -> Result<(), String> {
        let c = cname(name)?;
        // SAFETY: a valid C string, as the ABI says.
        match unsafe { (self.create)(c.as_ptr()) } {
            0 => Ok(()),
            r => Err(format!("torture_lock_create({name:?}) returned {r}")),
        }
    }

    /// `torture_lock_destroy` (its result is ignored: nothing more can be done).
    pub fn destroy(&self, name: &str) {
        if let Ok(c) = cname(name) {
            // SAFETY: a valid C string, as the ABI says.
            unsafe { (self.destroy)(c.as_ptr()) };
        }
    }
}

/// A process's handle (`torture_lock_open`), closed when dropped.
pub struct LockHandleC {
    lib: Arc<LockLib>,
    l: *mut c_void,
}

impl LockHandleC {
    /// Opens the lock `name`.
    pub fn open(lib: &Arc<LockLib>, name: &str) -> Result<LockHandleC, String> {
        let c = cname(name)?;
        // SAFETY: a valid C string, as the ABI says.
        let l = unsafe { (lib.open)(c.as_ptr()) };
        if l.is_null() {
            return Err(format!("torture_lock_open({name:?}) returned NULL"));
        }
        Ok(LockHandleC {
            lib: Arc::clone(lib),
            l,
        })
    }
}

impl LockHandle for LockHandleC {
    fn acquire(&self, wait: Wait) -> Status {
        let ns = wait.map_or(-1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        // SAFETY: an open handle, as the ABI says.
        status("torture_lock_acquire", unsafe {
            (self.lib.acquire)(self.l, ns)
        })
    }

    fn release(&self) -> Status {
        // SAFETY: an open handle whose lock the caller holds (torture never releases
        // otherwise).
        match status("torture_lock_release", unsafe {
            (self.lib.release)(self.l)
        }) {
            Status::Ok => Status::Ok,
            Status::Error(e) => Status::Error(e),
            s => Status::Error(format!(
                "torture_lock_release returned {s:?}, not OK or ERROR"
            )),
        }
    }

    fn holder(&self) -> Option<Option<u32>> {
        let f = self.lib.holder.filter(|_| self.lib.caps().holder)?;
        // SAFETY: an open handle, as the ABI says.
        let pid = unsafe { f(self.l) };
        Some((pid > 0).then_some(pid as u32))
    }
}

impl Drop for LockHandleC {
    fn drop(&mut self) {
        // SAFETY: an open handle, closed once.
        unsafe { (self.lib.close)(self.l) };
    }
}
