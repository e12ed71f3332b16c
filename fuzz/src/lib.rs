//! The fuzz cases behind `fuzz_targets/*`: each decodes its input with `arbitrary` into a case
//! whose `Debug` is a readable reproducer, runs it against the reference primitives (or a
//! negative control chosen with `FUZZ_CONTROL`), checks it against a model, and panics on a
//! broken invariant. Every execution runs under a deadline ([`deadline`]): a hang aborts the
//! process with a report of who waits in which operation on which object, so libFuzzer saves
//! the input as a crash artifact.
//!
//! The same case code is replayed by `cargo test` from `fuzz/regressions/` (see
//! `primitives/tests/regressions.rs`), so every input that ever failed stays a test.

pub mod deadline;

#[cfg(not(any(loom, shuttle)))]
pub mod cases;

#[cfg(shuttle)]
pub mod schedule;

mod common;
pub use common::{control, decode, MAX_INPUT};
