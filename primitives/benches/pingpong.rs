//! MVar-style ping-pong round trips: cross-process (pthread process-shared MVar in POSIX
//! shared memory, this crate's `SharedMVar` plus a private-futex control of it, pipes, Unix
//! socketpair) and in-process (std, crossbeam, parking_lot), each for a fixed wall-time
//! budget. Prints a Markdown table.
//!
//! `cargo bench -p primitives --bench pingpong -- [--secs N] [--only S] [--sleepers N]`
//!
//! Child processes are this binary re-executed as `--child <kind> <role> ...`, started tied to
//! the benchmark (`torture/src/procs/tied.rs`).
//! Kinds live in `pingpong/kinds.rs` (trait + registry table).

// The model engines (`--cfg loom` / `--cfg shuttle`) have nothing real to measure.
#[cfg(not(any(loom, shuttle)))]
include!("pingpong/main_real.rs");

#[cfg(any(loom, shuttle))]
fn main() {}
