//! The monotonic clock of the facade, and deadlines.
//!
//! For real this is `std::time::Instant` (`CLOCK_MONOTONIC`, never wall clock). Under a model
//! engine time is frozen: `now()` never advances, so only a zero timeout is already due.

pub use core::time::Duration;

#[cfg(not(any(loom, shuttle)))]
pub use std::time::Instant;

/// Logical instant of the model engines: time never advances.
#[cfg(any(loom, shuttle))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

#[cfg(any(loom, shuttle))]
impl Instant {
    /// The frozen "now".
    pub fn now() -> Self {
        Instant(Duration::ZERO)
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
    /// Time elapsed since `self` (always zero: time is frozen).
    pub fn elapsed(&self) -> Duration {
        Duration::ZERO
    }
    /// `self + d`, or `None` on overflow.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }
}

/// "Now" of the calling thread: the real clock, or — for a thread attached to a harness's
/// [`sim`](super::sim) — its virtual clock.
#[cfg(not(any(loom, shuttle)))]
pub fn now() -> Instant {
    super::sim::now()
}

/// "Now" under a model engine: frozen.
#[cfg(any(loom, shuttle))]
pub fn now() -> Instant {
    Instant::now()
}

/// A deadline `d` from [`now`]; `None` means "never" (the duration is too large to represent).
pub fn deadline_after(d: Duration) -> Option<Instant> {
    now().checked_add(d)
}

/// True once `deadline` has passed (by [`now`]).
pub fn is_due(deadline: Instant) -> bool {
    now() >= deadline
}
