//! Robust sleepers: what an idle sleeper costs, and how fast a dead lock holder is taken over.
//!
//! `cargo bench -p primitives --bench sleepers -- [--sleepers N] [--secs S] [--trials T]`
//!
//! 1. **Idle CPU**: N processes (default 50) block in a take nobody serves, for S seconds
//!    (default 3): a pthread process-shared MVar (the `pingpong` bench's pshared kind), this
//!    crate's `SharedMVar` with sleepers that poll in slices as before death beacons (1 ms
//!    doubling to 50 ms), and the same with death beacons (the default). CPU is each child's
//!    own CPU clock (`clock_getcpuclockid`), read at the start and end of the window.
//! 2. **Takeover latency**: T trials (default 100) of: a holder process takes a
//!    `SharedReentrantLock` (a `RobustWord`), a waiter process sleeps on it, the holder is
//!    SIGKILLed (not reaped), and the waiter reports the `CLOCK_MONOTONIC` instant its lock
//!    returned with `recovered()` set; the figure is that instant minus the one just before the
//!    kill. Polling waiters and beacon-watching waiters, side by side.
//!
//! Children are this binary re-executed (`--child ...`), tied to the benchmark (the pingpong
//! bench's `child.rs` machinery: they die with it and are killed and reaped on every path).

#[cfg(not(any(loom, shuttle)))]
include!("sleepers/main_real.rs");

#[cfg(any(loom, shuttle))]
fn main() {}
