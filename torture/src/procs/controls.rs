//! The cross-process negative controls: one broken rule of the shared MVar's protocol each,
//! selected by name (`--control NAME`) and handed to workers as that name.

use primitives::mvar::Flavor;
use primitives::sync::futex::Scope;

/// A cross-process control: its name, its story and the rule it breaks.
pub struct ProcControl {
    /// `--control NAME`.
    pub name: &'static str,
    /// The seed document it comes from.
    pub seed: &'static str,
    /// The one defect.
    pub defect: &'static str,
    /// The broken protocol flavour.
    pub flavor: fn() -> Flavor,
}

/// Every cross-process control of the shared MVar.
pub static MVAR_CONTROLS: &[ProcControl] = &[
    ProcControl {
        name: "private-futex",
        seed: "000",
        defect: "the box's futex words use FUTEX_PRIVATE in shared memory: wake-ups never cross processes",
        flavor: || Flavor {
            scope: Scope::Private,
            ..Flavor::REFERENCE
        },
    },
    ProcControl {
        name: "no-recovery",
        seed: "000/001",
        defect: "a lock held by a dead participant is never taken over",
        flavor: || Flavor {
            recover: false,
            ..Flavor::REFERENCE
        },
    },
    ProcControl {
        name: "stale-waiter-count",
        seed: "000 (glibc BZ 21422)",
        defect: "a waker waits for every counted waiter to acknowledge its wake-up; a killed waiter never does",
        flavor: || Flavor {
            wait_for_acks: true,
            ..Flavor::REFERENCE
        },
    },
];

/// The control called `name`.
pub fn find(name: &str) -> Option<&'static ProcControl> {
    MVAR_CONTROLS.iter().find(|c| c.name == name)
}

/// The flavour a worker runs: the reference, or a control's.
pub fn flavor(control: Option<&str>) -> Option<Flavor> {
    match control {
        None => Some(Flavor::REFERENCE),
        Some(c) => find(c).map(|c| (c.flavor)()),
    }
}
