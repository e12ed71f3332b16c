//! Checkers over recorded behaviour: every engine's verdict as one public call.
//!
//! [`linearizability`] decides whether a recorded history of MVar operations (from threads,
//! processes, or any other engine) could have come from one MVar acting atomically.

pub mod linearizability;
