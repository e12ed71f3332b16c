//! Chaos mode for real threads: injected spurious wake-ups and short random delays at the
//! facade's synchronisation points.
//!
//! A real `futex(2)` wait almost never returns without a wake, so on real threads code that
//! sleeps once (`if` where it needs `while`) passes forever; loom and shuttle model spurious
//! wake-ups, real threads do not. With chaos on, the facade makes them happen, and stretches
//! the windows between a thread's steps:
//!
//! | hook                      | with chaos on                                                          |
//! |---------------------------|------------------------------------------------------------------------|
//! | [`futex::wait_in`] (and `wait`) | 1 in `rate`: returns [`WaitResult::Woken`] at once, not woken (spurious); 1 in `rate`: sleeps on the word at most 10–200 µs, then returns `Woken` even though nobody woke it; otherwise a random delay, then the real wait |
//! | [`futex::wake_in`] (and `wake_one`, `wake_all`) | a random delay before or after the wake syscall |
//! | [`thread::spawn`]         | a random delay at the start of the new thread                          |
//!
//! A *random delay* is, with probabilities ½ / ¼ / ⅛ / ⅛: nothing, a `yield_now`, a spin of
//! 1–8 µs, or (one time in four of the last case) a sleep of 10–200 µs instead.
//!
//! The facade re-exports std's atomics, so single atomic operations carry no hook: wait, wake
//! and spawn are the points where one thread hands over to another.
//!
//! Every primitive's contract allows spurious wake-ups (each waiter re-checks its condition in
//! a loop), so chaos changes timing, never results: the reference must pass with it on, and the
//! `mvar-if-not-while` control is caught.
//!
//! # API
//! [`enable`]`(seed, rate)` turns chaos on for the whole process (call it before the threads to
//! disturb start, e.g. at the start of a run); [`disable`] turns it off; [`enabled`] tells.
//! `rate` is "1 in `rate`" for each kind of injected wake-up ([`DEFAULT_RATE`] = 8; 1 makes
//! every wait return at once). Each thread draws from its own SplitMix64 stream, seeded from
//! `seed` mixed with the thread's [`current_thread_id`](super::current_thread_id) and the
//! number of `enable` calls so far; the OS scheduler still decides the interleaving, so a seed
//! makes the *injections* reproducible per thread, not the run.
//!
//! # Cost when off
//! Each hook first does **one relaxed atomic load** of the process-wide configuration word and
//! returns if it is 0; nothing else runs and no behaviour changes (no thread-local is touched).
//!
//! # Model engines
//! Under `--cfg loom` / `--cfg shuttle` the futex model already wakes waiters spuriously and the
//! checker owns the schedule, so chaos compiles to nothing: [`enable`] does nothing and
//! [`enabled`] is always false.
//!
//! [`futex::wait_in`]: super::futex::wait_in
//! [`futex::wake_in`]: super::futex::wake_in
//! [`WaitResult::Woken`]: super::futex::WaitResult::Woken
//! [`thread::spawn`]: super::thread::spawn

/// The default `rate`: one wait in 8 returns spuriously at once, another one in 8 after a short
/// sleep although not woken.
pub const DEFAULT_RATE: u32 = 8;

#[cfg(not(any(loom, shuttle)))]
pub(crate) use imp::{after_wake, before_wait, before_wake, thread_start, BeforeWait};
pub use imp::{disable, enable, enabled};

#[cfg(not(any(loom, shuttle)))]
mod imp {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// The configuration word: 0 = off; otherwise `generation << 32 | rate` (`rate >= 1`,
    /// `generation >= 1` counts the `enable` calls, so that threads re-seed after each).
    static CONFIG: AtomicU64 = AtomicU64::new(0);
    /// The seed of the current generation. Read only when chaos is on; a thread that races an
    /// `enable` may seed from the previous seed, which only changes which random numbers it
    /// draws.
    static SEED: AtomicU64 = AtomicU64::new(0);
    /// Generations handed out so far.
    static GENERATIONS: AtomicU64 = AtomicU64::new(0);

    std::thread_local! {
        /// (generation the stream was seeded for, SplitMix64 state).
        static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }

    /// Turns chaos on for the whole process with this seed and rate (`rate` 0 counts as 1).
    pub fn enable(seed: u64, rate: u32) {
        let generation = (GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1) & 0xFFFF_FFFF;
        SEED.store(seed, Ordering::Relaxed);
        CONFIG.store(
            generation.max(1) << 32 | u64::from(rate.max(1)),
            Ordering::Relaxed,
        );
    }

    /// Turns chaos off: every hook is one relaxed load again.
    pub fn disable() {
        CONFIG.store(0, Ordering::Relaxed);
    }

    /// Whether chaos is on.
    pub fn enabled() -> bool {
        CONFIG.load(Ordering::Relaxed) != 0
    }

    /// The one load of every hook: the configuration if chaos is on.
    #[inline(always)]
    fn config() -> Option<u64> {
        match CONFIG.load(Ordering::Relaxed) {
            0 => None,
            c => Some(c),
        }
    }

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The calling thread's next random number (SplitMix64), re-seeded when `config` belongs to
    /// a new generation.
    fn next(config: u64) -> u64 {
        let generation = config >> 32;
        STREAM
            .try_with(|s| {
                let (g, mut state) = s.get();
                if g != generation {
                    let seed = SEED.load(Ordering::Relaxed);
                    state = mix(seed ^ mix(generation))
                        ^ mix(crate::sync::current_thread_id().wrapping_mul(0x9E37_79B9));
                }
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                s.set((generation, state));
                mix(state)
            })
            // A hook run while the thread's locals are being destroyed: no injection.
            .unwrap_or(u64::MAX)
    }

    fn rate(config: u64) -> u64 {
        config & 0xFFFF_FFFF
    }

    /// Spins for `d` (a few µs: shorter than any sleep the kernel can do).
    fn spin_for(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    /// A random short delay: nothing, a yield, a spin of 1–8 µs, or a sleep of 10–200 µs.
    fn delay(config: u64) {
        let r = next(config);
        match r & 7 {
            0..=3 => {}
            4 | 5 => std::thread::yield_now(),
            6 => spin_for(Duration::from_micros(1 + (r >> 8) % 8)),
            _ => {
                if (r >> 8) & 3 == 0 {
                    std::thread::sleep(Duration::from_micros(10 + (r >> 16) % 191));
                } else {
                    spin_for(Duration::from_micros(1 + (r >> 16) % 8));
                }
            }
        }
    }

    /// What a wait does under chaos.
    pub(crate) enum BeforeWait {
        /// Wait as asked (chaos is off, or only delayed this wait).
        Proceed,
        /// Return `Woken` at once: a spurious wake-up.
        Spurious,
        /// Wait at most until this instant; if nobody wakes the waiter by then, report `Woken`
        /// anyway (a late spurious wake-up).
        WakeBy(Instant),
    }

    /// The hook at the start of a futex wait.
    #[inline]
    pub(crate) fn before_wait() -> BeforeWait {
        match config() {
            None => BeforeWait::Proceed,
            Some(c) => chaotic_wait(c),
        }
    }

    #[cold]
    fn chaotic_wait(c: u64) -> BeforeWait {
        let r = next(c);
        let rate = rate(c);
        if r % rate == 0 {
            return BeforeWait::Spurious;
        }
        if (r / rate) % rate == 0 {
            let after = Duration::from_micros(10 + (r >> 40) % 191);
            return BeforeWait::WakeBy(Instant::now() + after);
        }
        delay(c);
        BeforeWait::Proceed
    }

    /// The hook before a futex wake: returns whether to call [`after_wake`]'s delay instead.
    #[inline]
    pub(crate) fn before_wake() -> bool {
        match config() {
            None => false,
            Some(c) => wake_delay(c),
        }
    }

    /// Delays before the wake half of the time; otherwise asks for a delay after it.
    #[cold]
    fn wake_delay(c: u64) -> bool {
        if next(c) & 1 == 0 {
            delay(c);
            false
        } else {
            true
        }
    }

    /// The hook after a futex wake (when [`before_wake`] asked for it).
    #[cold]
    pub(crate) fn after_wake() {
        if let Some(c) = config() {
            delay(c);
        }
    }

    /// The hook at the start of a thread spawned through the facade.
    #[inline]
    pub(crate) fn thread_start() {
        if let Some(c) = config() {
            delay(c);
        }
    }
}

#[cfg(any(loom, shuttle))]
mod imp {
    /// Does nothing: the model engines own the schedule and already inject spurious wake-ups.
    pub fn enable(_seed: u64, _rate: u32) {}

    /// Does nothing.
    pub fn disable() {}

    /// Always false under a model engine.
    pub fn enabled() -> bool {
        false
    }
}
