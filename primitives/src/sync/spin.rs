//! A bounded, adaptive wait before sleeping (glibc's adaptive mutex idea, with crossbeam's
//! `Backoff` yields): each object keeps an estimate of how many spin hints an answer takes; a
//! waiter spins up to about twice that (at least [`MIN_SPIN`], at most [`MAX_SPIN`]), then
//! yields the CPU a few times ([`YIELDS`]), and only then sleeps in the kernel.
//!
//! * A partner that answers within microseconds is caught without a system call.
//! * The yields matter on a loaded machine: when the partner waits for *our* CPU, spinning
//!   cannot help (the ping-pong bench fell to one 150 µs spin per round trip without them).
//! * An answer within the limit moves the estimate an eighth of the way towards the hints it
//!   took; a spin that runs out halves it, so an object whose waiters are rarely served soon
//!   spins only [`MIN_SPIN`] hints (a few µs, about the price of a sleep and a wake-up).
//!
//! The estimate is a heuristic, not state of any protocol: a relaxed word outside the model
//! engines' view (a lost update only changes how long someone spins). Under loom and shuttle
//! there is no spinning at all ([`AdaptiveSpin::until`] returns `false` at once: spinning only
//! multiplies the schedules to explore, and the protocol's sleeping path is the one to check),
//! nor for a thread attached to a harness's [`sim`](super::sim) (it looks once: the harness
//! acts when every thread sleeps, and spinning only delays that).

/// Upper bound of one spin, in spin hints (25–60 ns each on the 2-vCPU machine of the
/// benchmarks).
pub const MAX_SPIN: u32 = 2000;
/// The least a spin tries, in spin hints. Shorter floors (64, 128) let the ping-pong bench fall
/// into a mode where both sides sleep on every hand-off.
pub const MIN_SPIN: u32 = 256;
/// Within a spin, a `sched_yield` replaces every this-many-th hint: a partner that waits for
/// our CPU gets it within a few µs, and one on another CPU costs us one cheap system call.
pub const YIELD_EVERY: u32 = 128;
/// `sched_yield`s after a spin that ran out, each followed by a look.
pub const YIELDS: u32 = 4;

/// A yield that took longer than this let another thread run on our CPU.
#[cfg(not(any(loom, shuttle)))]
const LONG_YIELD: std::time::Duration = std::time::Duration::from_micros(2);

/// One object's learnt spin length and yield interval (see the module docs).
#[derive(Debug, Default)]
#[cfg_attr(any(loom, shuttle), allow(dead_code))] // no spinning under the model engines
pub struct AdaptiveSpin {
    /// Spin hints an answer took, as a moving average; 0 = nothing learnt yet.
    est: std::sync::atomic::AtomicU32,
    /// Hints between two yields within a spin, 1..=[`YIELD_EVERY`]; 0 = nothing learnt yet.
    every: std::sync::atomic::AtomicU32,
}

impl AdaptiveSpin {
    /// Nothing learnt yet: the first spin tries the whole bound.
    pub const fn new() -> Self {
        Self {
            est: std::sync::atomic::AtomicU32::new(0),
            every: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Polls `ready` with a spin hint in between, up to the learnt bound, then yields a few
    /// times; returns whether it became true. Always `false` at once under a model engine.
    #[inline]
    pub fn until(&self, ready: impl FnMut() -> bool) -> bool {
        #[cfg(any(loom, shuttle))]
        {
            let _ = ready;
            false
        }
        #[cfg(not(any(loom, shuttle)))]
        {
            // A thread attached to a harness's sim looks once, as under a model engine: the
            // harness acts when every thread sleeps, and a spin only delays that moment.
            if super::sim::attached() {
                let mut ready = ready;
                return ready();
            }
            self.spin(ready)
        }
    }

    #[cfg(not(any(loom, shuttle)))]
    fn spin(&self, mut ready: impl FnMut() -> bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let est = self.est.load(Relaxed).min(MAX_SPIN);
        let limit = if est == 0 {
            MAX_SPIN
        } else {
            (2 * est + MIN_SPIN).min(MAX_SPIN)
        };
        let every = match self.every.load(Relaxed) {
            0 => YIELD_EVERY,
            e => e.min(YIELD_EVERY),
        };
        let learn = |i: u32| {
            let next = ((7 * u64::from(est) + u64::from(i)) / 8).max(1) as u32;
            if next != est {
                self.est.store(next, Relaxed);
            }
        };
        for i in 1..=limit {
            if ready() {
                learn(i);
                return true;
            }
            if i % every != 0 {
                core::hint::spin_loop();
                continue;
            }
            // The partner may be waiting for this very CPU: let it have it.
            let before = std::time::Instant::now();
            std::thread::yield_now();
            if ready() {
                // Answered while we yielded. If someone else ran meanwhile (a long yield), our
                // CPU was what the answer needed: yield sooner next time; otherwise later.
                let next = if before.elapsed() > LONG_YIELD {
                    (every / 2).max(1)
                } else {
                    (every * 2).min(YIELD_EVERY)
                };
                if next != every {
                    self.every.store(next, Relaxed);
                }
                learn(i);
                return true;
            }
        }
        self.est.store((est / 2).max(1), Relaxed);
        for _ in 0..YIELDS {
            std::thread::yield_now();
            if ready() {
                return true;
            }
        }
        false
    }
}
