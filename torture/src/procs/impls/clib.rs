//! A user's cross-process MVar in a shared library (`--impl-lib PATH`), through the C ABI of
//! `torture/include/torture_mvar.h` (version [`ABI_VERSION`]), loaded with `libloading`.
//!
//! Loading runs the library's constructors: the runner loads a library only after
//! [`super::probe`] has loaded it in a child process. A required symbol missing, another ABI
//! version, or a capability whose symbol is missing is a one-line error.

use super::{Caps, MVarHandle, Status, Wait};
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The ABI version this torture speaks.
pub const ABI_VERSION: u32 = 1;

type AbiFn = unsafe extern "C" fn() -> u32;
type CreateFn = unsafe extern "C" fn(*const c_char, usize) -> c_int;
type OpenFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type PutFn = unsafe extern "C" fn(*mut c_void, *const c_void, i64) -> c_int;
type TakeFn = unsafe extern "C" fn(*mut c_void, *mut c_void, i64) -> c_int;
type HolderFn = unsafe extern "C" fn(*mut c_void) -> i32;
type CommitsFn = unsafe extern "C" fn(*mut c_void) -> u64;
type CloseFn = unsafe extern "C" fn(*mut c_void);
type DestroyFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// A loaded library: its functions, valid while it stays loaded (it is never unloaded before
/// them: they live in the same struct).
pub struct Lib {
    path: PathBuf,
    caps: u32,
    create: CreateFn,
    open: OpenFn,
    put: PutFn,
    take: TakeFn,
    read: Option<TakeFn>,
    holder: Option<HolderFn>,
    commits: Option<CommitsFn>,
    close: CloseFn,
    destroy: DestroyFn,
    _lib: libloading::Library,
}

/// The required symbols, in the header's order.
pub const REQUIRED: [&str; 8] = [
    "torture_mvar_abi_version",
    "torture_mvar_capabilities",
    "torture_mvar_create",
    "torture_mvar_open",
    "torture_mvar_put",
    "torture_mvar_take",
    "torture_mvar_close",
    "torture_mvar_destroy",
];

/// Loads the library at `path` (of either ABI) and checks that it exports every symbol of
/// `required`; the error is the rest of one line.
pub fn load_with(path: &Path, required: &[&str]) -> Result<libloading::Library, String> {
    // SAFETY: loading a library runs its constructors: that is the user's code we are here to
    // torture; the runner only does it after a child process survived doing it.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("cannot load: {}", e.to_string().trim()))?;
    for s in required {
        // SAFETY: only looked up, not called.
        if unsafe { lib.get::<*const c_void>(s.as_bytes()) }.is_err() {
            return Err(format!("missing symbol {s}"));
        }
    }
    Ok(lib)
}

impl Lib {
    /// Loads the library at `path` and checks its symbols, ABI version and capabilities.
    pub fn load(path: &Path) -> Result<Lib, String> {
        let lib = load_with(path, &REQUIRED)?;
        // SAFETY: each symbol has the type the header declares (the ABI this torture speaks);
        // the copied function pointers stay valid while `lib` is loaded, which `Lib` keeps.
        unsafe {
            macro_rules! sym {
                ($t:ty, $n:literal) => {
                    *lib.get::<$t>($n.as_bytes())
                        .map_err(|_| format!("missing symbol {}", $n))?
                };
            }
            macro_rules! opt {
                ($t:ty, $n:literal) => {
                    lib.get::<$t>($n.as_bytes()).ok().map(|s| *s)
                };
            }
            let version = sym!(AbiFn, "torture_mvar_abi_version")();
            if version != ABI_VERSION {
                return Err(format!(
                    "ABI version {version}, this torture speaks {ABI_VERSION}"
                ));
            }
            let caps = sym!(AbiFn, "torture_mvar_capabilities")();
            let l = Lib {
                path: path.to_path_buf(),
                caps,
                create: sym!(CreateFn, "torture_mvar_create"),
                open: sym!(OpenFn, "torture_mvar_open"),
                put: sym!(PutFn, "torture_mvar_put"),
                take: sym!(TakeFn, "torture_mvar_take"),
                read: opt!(TakeFn, "torture_mvar_read"),
                holder: opt!(HolderFn, "torture_mvar_holder"),
                commits: opt!(CommitsFn, "torture_mvar_commits"),
                close: sym!(CloseFn, "torture_mvar_close"),
                destroy: sym!(DestroyFn, "torture_mvar_destroy"),
                _lib: lib,
            };
            let c = l.caps();
            for (has, sym, cap) in [
                (
                    c.holder && l.holder.is_none(),
                    "torture_mvar_holder",
                    "HOLDER",
                ),
                (
                    c.commits && l.commits.is_none(),
                    "torture_mvar_commits",
                    "COMMITS",
                ),
                (c.read && l.read.is_none(), "torture_mvar_read", "READ"),
            ] {
                if has {
                    return Err(format!(
                        "missing symbol {sym} (the library claims the {cap} capability)"
                    ));
                }
            }
            Ok(l)
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its capabilities.
    pub fn caps(&self) -> Caps {
        Caps::from_bits(self.caps)
    }

    /// Its capability bits.
    pub fn caps_bits(&self) -> u32 {
        self.caps
    }

    /// `torture_mvar_create`.
    pub fn create(&self, name: &str, payload_len: usize) -> Result<(), String> {
        let c = cname(name)?;
        // SAFETY: a valid C string and a length, as the ABI says.
        match unsafe { (self.create)(c.as_ptr(), payload_len) } {
            0 => Ok(()),
            r => Err(format!(
                "torture_mvar_create({name:?}, {payload_len}) returned {r}"
            )),
        }
    }

    /// `torture_mvar_destroy` (its result is ignored: nothing more can be done).
    pub fn destroy(&self, name: &str) {
        if let Ok(c) = cname(name) {
            // SAFETY: a valid C string, as the ABI says.
            unsafe { (self.destroy)(c.as_ptr()) };
        }
    }
}

/// `name` as a C string (a name with a NUL byte cannot be passed).
pub fn cname(name: &str) -> Result<CString, String> {
    CString::new(name).map_err(|_| format!("bad name {name:?}"))
}

/// A process's handle (`torture_mvar_open`), closed when dropped.
pub struct Handle {
    lib: Arc<Lib>,
    m: *mut c_void,
    payload_len: usize,
}

impl Handle {
    /// Opens the box `name`, whose values are `payload_len` bytes.
    pub fn open(lib: &Arc<Lib>, name: &str, payload_len: usize) -> Result<Handle, String> {
        let c = cname(name)?;
        // SAFETY: a valid C string, as the ABI says.
        let m = unsafe { (lib.open)(c.as_ptr()) };
        if m.is_null() {
            return Err(format!("torture_mvar_open({name:?}) returned NULL"));
        }
        Ok(Handle {
            lib: Arc::clone(lib),
            m,
            payload_len,
        })
    }
}

fn timeout_ns(wait: Wait) -> i64 {
    wait.map_or(-1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What the C function `f` returning `r` (a `TORTURE_*` code) means.
pub fn status(f: &str, r: c_int) -> Status {
    match r {
        0 => Status::Ok,
        1 => Status::Timeout,
        2 => Status::OwnerDied,
        -1 => Status::Error(format!("{f} returned TORTURE_ERROR")),
        r => Status::Error(format!("{f} returned {r}, not a TORTURE_* code")),
    }
}

impl MVarHandle for Handle {
    fn put(&self, value: &[u8], wait: Wait) -> Status {
        assert_eq!(
            value.len(),
            self.payload_len,
            "a value of payload_len bytes"
        );
        // SAFETY: an open handle and `payload_len` readable bytes, as the ABI says.
        status("torture_mvar_put", unsafe {
            (self.lib.put)(self.m, value.as_ptr().cast(), timeout_ns(wait))
        })
    }

    fn take(&self, out: &mut [u8], wait: Wait) -> Status {
        assert_eq!(out.len(), self.payload_len, "room for payload_len bytes");
        // SAFETY: an open handle and `payload_len` writable bytes, as the ABI says.
        status("torture_mvar_take", unsafe {
            (self.lib.take)(self.m, out.as_mut_ptr().cast(), timeout_ns(wait))
        })
    }

    fn payload_len(&self) -> usize {
        self.payload_len
    }

    fn holder(&self) -> Option<Option<u32>> {
        let f = self.lib.holder.filter(|_| self.lib.caps().holder)?;
        // SAFETY: an open handle, as the ABI says.
        let pid = unsafe { f(self.m) };
        Some((pid > 0).then_some(pid as u32))
    }

    fn commits(&self) -> Option<u64> {
        let f = self.lib.commits.filter(|_| self.lib.caps().commits)?;
        // SAFETY: an open handle, as the ABI says.
        Some(unsafe { f(self.m) })
    }

    fn is_full(&self) -> Option<bool> {
        let f = self.lib.read.filter(|_| self.lib.caps().read)?;
        let mut buf = vec![0u8; self.payload_len];
        // SAFETY: an open handle and `payload_len` writable bytes; a try (timeout 0).
        match unsafe { f(self.m, buf.as_mut_ptr().cast(), 0) } {
            0 | 2 => Some(true),
            1 => Some(false),
            _ => None,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: an open handle, closed once.
        unsafe { (self.lib.close)(self.m) };
    }
}
