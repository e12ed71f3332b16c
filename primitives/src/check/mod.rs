//! Checkers over recorded behaviour: every engine's verdict as one public call.
//!
//! [`linearizability`] decides whether a recorded history of MVar operations (from threads,
//! processes, or any other engine) could have come from one MVar acting atomically; [`threads`]
//! records such a history from real threads for any `MVarApi<u64>` and judges it (the oracle as
//! one call on a user's type).

pub use crate::history::linearizability;
#[cfg(not(any(loom, shuttle)))]
pub mod threads;
