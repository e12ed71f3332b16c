//! Cross-process MVars written in Rust and plugged in from a user's own binary: implement
//! [`CrossMVar`] (create / open / destroy by name, and the capabilities) and [`MVarHandle`]
//! (one process's handle), register the implementation under a name, and hand the
//! [`Registry`] to [`crate::main`] from your `main`. The runner re-executes *that* binary for
//! its workers, so every worker finds the same registry; `torture mvar --impl NAME` then runs
//! seed 000's master/slaves — with `--kill-rate`, `--stop-rate`, the hang detector, the checks
//! and the reports — against your implementation.
//!
//! Locks the same way: [`CrossLock`] and [`LockHandle`], registered with [`Registry::lock`],
//! tortured by `torture locks --impl NAME`.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     torture::main(torture::Registry::new().mvar("mine", MyMVar).lock("mine", MyLock))
//! }
//! ```

use super::lock::CrossLock;
use super::{Caps, MVarHandle};
use std::sync::{Arc, OnceLock};

/// A cross-process MVar implementation: boxes in shared memory, found by name, each holding
/// values of `payload_len` bytes fixed at creation.
pub trait CrossMVar: Send + Sync + 'static {
    /// What it promises (a check needing a missing capability is reported as not checked).
    fn caps(&self) -> Caps;
    /// Creates the box `name` (a POSIX shm name, "/..."), empty. Called once, by the runner,
    /// before any worker starts.
    fn create(&self, name: &str, payload_len: usize) -> Result<(), String>;
    /// Opens the box `name` in this process.
    fn open(&self, name: &str) -> Result<Box<dyn MVarHandle>, String>;
    /// Removes the box `name` (the runner calls it once, on every exit path).
    fn destroy(&self, name: &str);
}

/// The implementations a binary offers, by name.
#[derive(Clone, Default)]
pub struct Registry {
    mvars: Vec<(&'static str, Arc<dyn CrossMVar>)>,
    locks: Vec<(&'static str, Arc<dyn CrossLock>)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds the MVar implementation `imp` as `--impl name`.
    pub fn mvar(mut self, name: &'static str, imp: impl CrossMVar) -> Registry {
        self.mvars.push((name, Arc::new(imp)));
        self
    }

    /// The MVar implementation named `name`.
    pub fn find_mvar(&self, name: &str) -> Option<Arc<dyn CrossMVar>> {
        self.mvars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| i.clone())
    }

    /// The names of the MVar implementations.
    pub fn mvar_names(&self) -> Vec<&'static str> {
        self.mvars.iter().map(|(n, _)| *n).collect()
    }

    /// Adds the lock implementation `imp` as `--impl name` (for `torture locks`).
    pub fn lock(mut self, name: &'static str, imp: impl CrossLock) -> Registry {
        self.locks.push((name, Arc::new(imp)));
        self
    }

    /// The names of the lock implementations.
    pub fn lock_names(&self) -> Vec<&'static str> {
        self.locks.iter().map(|(n, _)| *n).collect()
    }
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Installs this process's registry (once; [`crate::main`] does it); its locks go to
/// [`super::lock`], which resolves `--impl` for the lock scenarios.
pub fn install(r: Registry) {
    super::lock::install(r.locks.clone());
    let _ = REGISTRY.set(r);
}

/// `--impl NAME` resolved (with the name as registered), or the one-line reason it cannot be.
pub fn resolve(name: &str) -> Result<(&'static str, Arc<dyn CrossMVar>), String> {
    let r = REGISTRY.get().map_or(&[][..], |r| r.mvars.as_slice());
    r.iter()
        .find(|(n, _)| *n == name)
        .map(|(n, i)| (*n, i.clone()))
        .ok_or_else(|| super::unknown(name, "MVar", r.iter().map(|(n, _)| *n).collect()))
}
