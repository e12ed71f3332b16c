//! Cross-process MVars written in Rust and plugged in from a user's own binary: implement
//! [`CrossMVar`] (create / open / destroy by name, and the capabilities) and [`MVarHandle`]
//! (one process's handle), register the implementation under a name, and hand the
//! [`Registry`] to [`crate::main`] from your `main`. The runner re-executes *that* binary for
//! its workers, so every worker finds the same registry; `torture mvar --impl NAME` then runs
//! seed 000's master/slaves — with `--kill-rate`, `--stop-rate`, the hang detector, the checks
//! and the reports — against your implementation.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     torture::main(torture::Registry::new().mvar("mine", MyMVar))
//! }
//! ```

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
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Installs this process's registry (once; [`crate::main`] does it).
pub fn install(r: Registry) {
    let _ = REGISTRY.set(r);
}

/// This process's registry (empty in the plain `torture` binary).
pub fn registry() -> Registry {
    REGISTRY.get().cloned().unwrap_or_default()
}

/// `--impl NAME` resolved, or the one-line reason it cannot be.
pub fn resolve(name: &str) -> Result<Arc<dyn CrossMVar>, String> {
    let r = registry();
    r.find_mvar(name).ok_or_else(|| {
        let names = r.mvar_names();
        if names.is_empty() {
            format!(
                "no implementation named {name:?}: this binary registers none (--impl is for a \
                 binary that calls torture::main with a Registry; a C library goes with --impl-lib)"
            )
        } else {
            format!(
                "no implementation named {name:?}; this binary registers: {}",
                names.join(", ")
            )
        }
    })
}
