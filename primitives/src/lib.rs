//! Reference concurrency primitives for the torture and fuzz suite.
//!
//! Every primitive is one state machine written against the [`sync`] facade, so that the same
//! source runs for real (std + Linux futex), under loom (`--cfg loom`) and under shuttle
//! (`--cfg shuttle`). The [`scenarios`] catalogue exercises any implementation of the public
//! [`traits`]; [`controls`] are deliberately broken variants every engine must catch.
//!
//! # Layers
//! Each module imports only the modules listed before it; a lower layer never names a higher
//! one. Where a lower layer must call up, the upper layer registers a hook with it (the message
//! logs register their flush as a [`track::ReleaseHook`], run at a thread's outermost release).
//!
//! | layer        | what                                                                        | may name |
//! |--------------|-----------------------------------------------------------------------------|----------|
//! | [`sync`]     | the facade: atomics, threads, cells, futex (+ its model), time             | std, loom, shuttle |
//! | [`traits`]   | the public traits, definitions only (each primitive implements them beside its type) | sync |
//! | [`track`]    | per-thread held-lock stack with outermost-release hooks; the wait registry | sync |
//! | [`shm`]      | segments, participant table, robust lock word; object kinds are tags only  | sync, track |
//! | [`lock`]     | raw mutex, mutex, reentrant lock, lock-order validator, robust lock        | the above |
//! | [`msg`]      | buffered message log, shared message ring                                  | the above, lock |
//! | [`mvar`]     | the MVar: `local` and `robust` (`core`, `segment`, `model`)                | the above |
//! | [`controls`] | negative controls and their one registry                                  | the above |
//! | [`history`]  | recorded operation histories and the linearizability oracle               | sync |
//! | [`scenarios`]| the scenario catalogue, run by every engine                               | everything |
//! | [`check`]    | every engine as one public call for a user's type                          | everything |
//!
//! `lock` and `msg` are one floor in spirit — neither needs the other's internals — but the log
//! guards its sink with a tracked [`lock::Mutex`], so `msg` sits above `lock`, and `lock` never
//! names `msg`. The traits sit just above `sync` (not above the primitives) precisely so that
//! each primitive can implement them beside its own type without naming a layer above it.

// The layers, bottom first (blank lines keep rustfmt from sorting them).
pub mod sync;

pub mod traits;

pub mod track;

pub mod shm;

pub mod lock;

pub mod msg;

pub mod mvar;

pub mod controls;

pub mod history;

pub mod scenarios;

pub mod check;

pub use lock::{LockClass, Mode, Mutex, ReentrantLock, Validator};
pub use msg::{Message, MessageLog, MessageSink};
pub use mvar::MVar;
pub use traits::{LockApi, LogApi, MVarApi};
