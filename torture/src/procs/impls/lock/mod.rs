//! The seam between `torture locks` and the cross-process lock it tortures: the reference
//! ([`reference`](mod@reference), `primitives::lock::SharedReentrantLock`), a user's C library
//! loaded with `--impl-lib` ([`clib`], the ABI of `torture/include/torture_lock.h`), or a Rust
//! implementation registered by the running binary (`--impl NAME`, [`CrossLock`]).
//!
//! - [`LockHandle`]: one process's handle on a lock — acquire with a timeout ([`Status`]),
//!   release, and its holder's pid when the implementation can say it;
//! - [`LockCaps`]: what the implementation promises (ROBUST, HOLDER, REENTRANT); what a missing
//!   one prevents torture from checking is listed in the report;
//! - [`LockImpl`]: creates, opens and destroys locks by name, and names itself and its
//!   acquire in reports; a worker gets the same one from its spec;
//! - [`CreatedLock`]: the runner's lock, destroyed when dropped (every exit path).
//!
//! The lock-order validator is torture's, not the implementation's: a worker calls
//! [`primitives::lock::LockClass::before_acquire`] before each acquire, so any lock — the
//! reference or a stranger's — is checked the same way.

pub mod clib;
pub mod reference;
pub mod tracked;

use super::{Status, Wait};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// What a lock implementation promises (`TORTURE_LOCK_CAP_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockCaps {
    /// A holder killed at any instruction wedges no one (the next acquirer gets OWNER_DIED).
    pub robust: bool,
    /// It names the pid holding the lock.
    pub holder: bool,
    /// The holder may acquire it again.
    pub reentrant: bool,
}

impl LockCaps {
    /// Every capability (the reference).
    pub const ALL: LockCaps = LockCaps {
        robust: true,
        holder: true,
        reentrant: true,
    };

    /// From `TORTURE_LOCK_CAP_*` bits.
    pub fn from_bits(bits: u32) -> LockCaps {
        LockCaps {
            robust: bits & 1 != 0,
            holder: bits & 2 != 0,
            reentrant: bits & 4 != 0,
        }
    }

    /// `ROBUST|HOLDER` (or `none`).
    pub fn words(&self) -> String {
        super::cap_words(&[
            (self.robust, "ROBUST"),
            (self.holder, "HOLDER"),
            (self.reentrant, "REENTRANT"),
        ])
    }

    /// What torture cannot check without the missing capabilities (empty: everything).
    pub fn not_checked(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.reentrant {
            v.push("re-entry (no REENTRANT: workers never re-acquire a lock they hold)");
        }
        if !self.holder {
            v.push("the wait-for graph of a hang and a dead holder's pid (no HOLDER)");
        }
        v
    }
}

/// A cross-process lock implementation: locks in shared memory, found by name.
pub trait CrossLock: Send + Sync + 'static {
    /// What it promises (a check needing a missing capability is reported as not checked).
    fn caps(&self) -> LockCaps;
    /// Creates the lock `name` (a POSIX shm name, "/..."), free. Called once, by the runner,
    /// before any worker starts.
    fn create(&self, name: &str) -> Result<(), String>;
    /// Opens the lock `name` in this process.
    fn open(&self, name: &str) -> Result<Box<dyn LockHandle>, String>;
    /// Removes the lock `name` (the runner calls it once, on every exit path).
    fn destroy(&self, name: &str);
}

/// The lock implementations the running binary registered (see [`super::plugin::Registry`]).
type Registered = Vec<(&'static str, Arc<dyn CrossLock>)>;

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// Installs the registered lock implementations (once; [`super::plugin::install`] does it).
pub fn install(locks: Registered) {
    let _ = REGISTERED.set(locks);
}

/// `--impl NAME` for the lock scenarios resolved (with the name as registered), or the
/// one-line reason it cannot be.
pub fn resolve(name: &str) -> Result<(&'static str, Arc<dyn CrossLock>), String> {
    let all = REGISTERED.get().map(Vec::as_slice).unwrap_or_default();
    all.iter()
        .find(|(n, _)| *n == name)
        .map(|(n, i)| (*n, i.clone()))
        .ok_or_else(|| super::unknown(name, "lock", all.iter().map(|(n, _)| *n).collect()))
}

/// One process's handle on a shared lock (used from one thread).
pub trait LockHandle {
    /// Acquires the lock: `Ok`, `OwnerDied` (held now, taken over from a dead holder),
    /// `Timeout` (not held), or an error.
    fn acquire(&self, wait: Wait) -> Status;
    /// Releases one acquisition the caller holds.
    fn release(&self) -> Status;
    /// `Some(pid)` holding the lock (`Some(None)`: free); `None` without HOLDER.
    fn holder(&self) -> Option<Option<u32>>;
    /// Locks taken over from a dead holder since creation, if the implementation counts them.
    fn takeovers(&self) -> Option<u64> {
        None
    }
}

/// The lock a run tortures.
#[derive(Clone)]
pub enum LockImpl {
    /// `primitives::lock::SharedReentrantLock`; `recover: false` is the control
    /// `lock-no-recovery` (a dead holder's lock is never taken over).
    Reference {
        /// Whether a dead holder's lock is taken over (the reference) or not (the control).
        recover: bool,
    },
    /// A C library (`--impl-lib`).
    Lib(Arc<clib::LockLib>),
    /// A Rust implementation registered by the running binary (`--impl NAME`).
    Plugin(&'static str, Arc<dyn CrossLock>),
}

impl LockImpl {
    /// The one a worker's spec names: a library's path, a registered name, or the reference
    /// (`recover: false`: the control `lock-no-recovery`).
    pub fn select(
        lib: Option<&Path>,
        plugin: Option<&str>,
        recover: bool,
    ) -> Result<LockImpl, String> {
        if let Some(name) = plugin {
            return LockImpl::plugin(name);
        }
        match lib {
            Some(p) => Ok(LockImpl::Lib(Arc::new(clib::LockLib::load(p)?))),
            None => Ok(LockImpl::Reference { recover }),
        }
    }

    /// The registered lock implementation `name` of this binary (`--impl`).
    pub fn plugin(name: &str) -> Result<LockImpl, String> {
        let (name, imp) = resolve(name)?;
        Ok(LockImpl::Plugin(name, imp))
    }

    /// The library's path, if it is one.
    pub fn lib_path(&self) -> Option<PathBuf> {
        match self {
            LockImpl::Lib(l) => Some(l.path().to_path_buf()),
            _ => None,
        }
    }

    /// The registered implementation's name, if it is one.
    pub fn plugin_name(&self) -> Option<String> {
        match self {
            LockImpl::Plugin(n, _) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The flag that selects it again in a replay line (empty for the reference).
    pub fn flag(&self) -> String {
        match self {
            LockImpl::Reference { .. } => String::new(),
            LockImpl::Lib(l) => format!(
                " --impl-lib {}",
                crate::units::shell_word(&l.path().to_string_lossy())
            ),
            LockImpl::Plugin(n, _) => format!(" --impl {}", crate::units::shell_word(n)),
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            LockImpl::Reference { recover: true } => "reference SharedReentrantLock".into(),
            LockImpl::Reference { recover: false } => {
                "SharedReentrantLock without recovery (CONTROL lock-no-recovery)".into()
            }
            LockImpl::Lib(l) => format!("C library {}", l.path().display()),
            LockImpl::Plugin(n, _) => format!("implementation {n:?}"),
        }
    }

    /// What it promises.
    pub fn caps(&self) -> LockCaps {
        match self {
            LockImpl::Reference { .. } => LockCaps::ALL,
            LockImpl::Lib(l) => l.caps(),
            LockImpl::Plugin(_, p) => p.caps(),
        }
    }

    /// Its acquire, as a hang report names it.
    pub fn acquire_name(&self) -> String {
        match self {
            LockImpl::Reference { .. } => "SharedReentrantLock::lock".into(),
            LockImpl::Lib(_) => "torture_lock_acquire".into(),
            LockImpl::Plugin(n, _) => format!("{n}::acquire"),
        }
    }

    /// Creates the lock `name` (for up to `participants` processes where that matters) and
    /// opens the runner's handle on it; destroyed when dropped.
    pub fn create(&self, name: &str, participants: u32) -> Result<CreatedLock, String> {
        let handle: Box<dyn LockHandle> = match self {
            LockImpl::Reference { .. } => Box::new(reference::RefLock::create(name, participants)?),
            LockImpl::Lib(l) => {
                l.create(name)?;
                match clib::LockHandleC::open(l, name) {
                    Ok(h) => Box::new(h),
                    Err(e) => {
                        l.destroy(name);
                        return Err(e);
                    }
                }
            }
            LockImpl::Plugin(_, p) => {
                p.create(name)?;
                match p.open(name) {
                    Ok(h) => h,
                    Err(e) => {
                        p.destroy(name);
                        return Err(e);
                    }
                }
            }
        };
        Ok(CreatedLock {
            imp: self.clone(),
            name: name.to_string(),
            handle: Some(handle),
        })
    }

    /// Opens the lock `name` in this process.
    pub fn open(&self, name: &str) -> Result<Box<dyn LockHandle>, String> {
        Ok(match self {
            LockImpl::Reference { recover: true } => Box::new(reference::RefLock::open(name)?),
            LockImpl::Reference { recover: false } => {
                Box::new(reference::RefLock::open_without_recovery(name)?)
            }
            LockImpl::Lib(l) => Box::new(clib::LockHandleC::open(l, name)?),
            LockImpl::Plugin(_, p) => p.open(name)?,
        })
    }

    fn destroy(&self, name: &str) {
        match self {
            LockImpl::Reference { .. } => reference::RefLock::destroy(name),
            LockImpl::Lib(l) => l.destroy(name),
            LockImpl::Plugin(_, p) => p.destroy(name),
        }
    }
}

/// The runner's lock: its handle, and the lock destroyed when dropped.
pub struct CreatedLock {
    imp: LockImpl,
    name: String,
    handle: Option<Box<dyn LockHandle>>,
}

impl CreatedLock {
    /// The runner's handle.
    pub fn handle(&self) -> &dyn LockHandle {
        self.handle.as_deref().expect("present until dropped")
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for CreatedLock {
    fn drop(&mut self) {
        drop(self.handle.take());
        self.imp.destroy(&self.name);
    }
}

/// The lock implementation `--impl-lib` / `--impl` name (`None`: the reference), or the line
/// scenario `cmd` prints before exiting 2.
pub fn from_flags(cmd: &str, lib: Option<&Path>, name: Option<&str>) -> Result<LockImpl, String> {
    match (lib, name) {
        (_, Some(name)) => {
            LockImpl::plugin(name).map_err(|e| format!("torture {cmd}: --impl {name}: {e}"))
        }
        (None, None) => Ok(LockImpl::Reference { recover: true }),
        (Some(path), None) => {
            load(path).map_err(|e| format!("torture {cmd}: --impl-lib {}: {e}", path.display()))
        }
    }
}

/// The library at `path`, validated in a child process first (see [`super::probe`]).
pub fn load(path: &Path) -> Result<LockImpl, String> {
    let abs = std::fs::canonicalize(path).map_err(|e| format!("cannot open: {e}"))?;
    super::probe(&abs, super::Abi::Lock)?;
    LockImpl::select(Some(&abs), None, true)
}

/// The lock half of `torture __probe-lib --abi lock PATH`: loads the library, creates, opens,
/// acquires, releases, closes and destroys a lock, announcing each stage with `stage`.
pub fn probe_steps(path: &Path, name: &str, stage: &dyn Fn(&str)) -> Result<u32, String> {
    stage("loading");
    let lib = Arc::new(clib::LockLib::load(path)?);
    stage("creating a lock");
    lib.create(name)?;
    let used = (|| {
        stage("opening a lock");
        let h = clib::LockHandleC::open(&lib, name)?;
        stage("acquiring a free lock");
        match h.acquire(Some(std::time::Duration::ZERO)) {
            Status::Ok => {}
            s => {
                return Err(format!(
                    "torture_lock_acquire on a free lock (a try) returned {s:?}"
                ))
            }
        }
        stage("releasing a lock");
        if let Status::Error(e) = h.release() {
            return Err(e);
        }
        stage("closing a lock");
        drop(h);
        Ok(())
    })();
    stage("destroying a lock");
    lib.destroy(name);
    used.map(|()| lib.caps_bits())
}
