//! The crash-robust MVar: one protocol ([`core`]) with two homes.
//!
//! * [`core`] — the protocol, its state table, recovery rule and memory-ordering notes, written
//!   once against a [`Slots`](self::core) abstraction of the two payload slots.
//! * `wait` — the blocking part of the protocol: spin, sleep, wake, pass a wake on, recover.
//! * [`segment`] — the real home: [`SharedMVar`], a box in a named shared-memory segment,
//!   usable from any process, non-private futex operations, offsets only; [`WordMVar`] is it
//!   over `u64` values under the public `MVarApi`, so the scenario catalogue runs on it.
//! * `model` — the ordinary-memory home that loom and shuttle run, where a participant can be
//!   killed at any crash point (`--cfg loom` / `--cfg shuttle` only).

pub mod core;
#[cfg(any(loom, shuttle))]
pub mod model;
#[cfg(not(any(loom, shuttle)))]
pub mod segment;
mod wait;

pub use self::core::{BoxState, Died, Flavor, MAX_PAYLOAD, TRY_LOCK_WAIT};
#[cfg(not(any(loom, shuttle)))]
pub use segment::{SharedMVar, WordMVar, WORD_PAYLOAD};
