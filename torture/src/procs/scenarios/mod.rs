//! One module per process scenario; each is listed once in [`CATALOGUE`]. The hidden worker
//! entry ([`worker_main`]) dispatches to a scenario by name.

pub mod churn;
pub mod fork;
pub mod kill_storm;
pub mod locks;
pub mod mvar;
pub mod pipe;

use super::{ProcScenario, WorkerArgs};

/// Every process scenario.
pub static CATALOGUE: &[&dyn ProcScenario] = &[
    &kill_storm::KillStorm,
    &churn::Churn,
    &locks::Locks,
    &mvar::MasterSlaves,
    &pipe::PipeDeadlock,
    &fork::ThreadsAndFork,
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static dyn ProcScenario> {
    CATALOGUE.iter().copied().find(|s| s.name() == name)
}

/// Runs the hidden worker entry.
pub fn worker_main(w: &WorkerArgs) -> u8 {
    // The crew set PR_SET_PDEATHSIG before exec and checked the parent then; a worker started
    // by hand (or whose runner is gone) does not run.
    if nix::unistd::getppid().as_raw() as u32 != w.runner {
        crate::out::warn!(
            "torture __worker: the runner (pid {}) is not this process's parent; this is an internal command of the process scenarios",
            w.runner
        );
        return 2;
    }
    if let Some(seed) = w.chaos {
        primitives::sync::chaos::enable(seed, primitives::sync::chaos::DEFAULT_RATE);
    }
    match find(&w.scenario) {
        Some(s) => s.worker(w),
        None => {
            crate::out::warn!("torture __worker: unknown scenario {:?}", w.scenario);
            2
        }
    }
}
