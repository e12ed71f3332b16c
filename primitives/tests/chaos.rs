//! Chaos mode (`primitives::sync::chaos`) on real threads: with it on, a futex wait that nobody
//! wakes returns spuriously; with it off, it does not; and the reference scenarios stay correct
//! under it (their waits loop on their conditions, as the facade's contract demands).
//!
//! Chaos is process-wide, so the tests take one lock and run one at a time.
#![cfg(not(any(loom, shuttle)))]

use primitives::scenarios::catalogue::SCENARIOS;
use primitives::scenarios::Params;
use primitives::sync::atomic::AtomicU32;
use primitives::sync::chaos;
use primitives::sync::futex::{self, WaitResult};
use primitives::sync::time::{deadline_after, Duration};
use primitives::Mode;
use std::sync::{Mutex, MutexGuard};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns chaos off when dropped, also when a test panics.
struct ChaosOn;

impl ChaosOn {
    fn new(seed: u64, rate: u32) -> Self {
        chaos::enable(seed, rate);
        ChaosOn
    }
}

impl Drop for ChaosOn {
    fn drop(&mut self) {
        chaos::disable();
    }
}

/// Waits `tries` times, 1 ms each, on a word nobody wakes; counts the early (`Woken`) returns.
fn early_returns(tries: u32) -> u32 {
    let word = AtomicU32::new(0);
    (0..tries)
        .filter(|_| {
            futex::wait(&word, 0, deadline_after(Duration::from_millis(1))) == WaitResult::Woken
        })
        .count() as u32
}

#[test]
fn off_by_default_and_an_unwoken_wait_times_out() {
    let _one = exclusive();
    assert!(!chaos::enabled());
    // No waker, no signal: a real futex wait only times out.
    assert_eq!(early_returns(20), 0);
}

#[test]
fn on_an_unwoken_wait_returns_spuriously_and_deadlines_still_hold() {
    let _one = exclusive();
    {
        let _on = ChaosOn::new(7, chaos::DEFAULT_RATE);
        assert!(chaos::enabled());
        // 2 of every 8 waits return `Woken` on average (at once, or after a short sleep): the
        // chance that none of 200 does is (3/4)^200 < 1e-24.
        let early = early_returns(200);
        assert!(early >= 1, "no spurious wake-up in 200 waits with chaos on");
        assert!(early < 200, "chaos must not stop deadlines from passing");
        // Rate 1: every wait returns at once.
        chaos::enable(8, 1);
        assert_eq!(early_returns(20), 20);
    }
    assert!(!chaos::enabled());
    assert_eq!(
        early_returns(20),
        0,
        "disabled again: no more spurious wake-ups"
    );
}

#[test]
fn the_reference_scenarios_pass_under_chaos() {
    let _one = exclusive();
    let _on = ChaosOn::new(11, chaos::DEFAULT_RATE);
    let params = Params {
        threads: 4,
        rounds: 50,
        lockdep: Mode::Panic,
        schedule: primitives::scenarios::Schedule::Real,
    };
    for _ in 0..3 {
        for e in SCENARIOS {
            (e.run)(&params);
        }
    }
}
