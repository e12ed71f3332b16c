//! The linearizability oracle on real threads (`check::threads`), judging from histories alone:
//! the reference MVar (and a WordMVar in shared memory) is always linearizable; a box that hands
//! a value out twice, or whose timed-out take keeps the value, is caught.

#![cfg(not(any(loom, shuttle)))]

use primitives::check::linearizability::Verdict;
use primitives::check::threads::{mvar_verdict, Traffic};
use primitives::mvar::MVar;
use primitives::traits::MVarApi;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const RUNS: u64 = 30;

fn traffic() -> Traffic {
    Traffic {
        threads: 4,
        ops: 40,
        timeout: Duration::from_millis(1),
        seed: 1,
    }
}

#[test]
fn the_reference_mvar_is_linearizable_on_real_threads() {
    let found = mvar_verdict(MVar::<u64>::new_empty, traffic(), RUNS);
    assert!(
        found.is_none(),
        "false positive: {:?}",
        found.map(|f| (f.0, f.1))
    );
}

/// A box whose `try_take` sometimes hands the value out and leaves it in the box too (a
/// non-atomic read-then-take gone wrong): a value is taken twice.
struct Duplicating {
    inner: MVar<u64>,
    n: AtomicU64,
}

impl MVarApi<u64> for Duplicating {
    fn put(&self, v: u64) {
        MVarApi::put(&self.inner, v)
    }
    fn take(&self) -> u64 {
        MVarApi::take(&self.inner)
    }
    fn try_put(&self, v: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.inner, v)
    }
    fn try_take(&self) -> Option<u64> {
        let v = MVarApi::try_take(&self.inner)?;
        if self.n.fetch_add(1, Ordering::Relaxed) % 3 == 0 {
            // "Peek": give it back as well as out.
            let _ = MVarApi::try_put(&self.inner, v);
        }
        Some(v)
    }
    fn put_timeout(&self, v: u64, t: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.inner, v, t)
    }
    fn take_timeout(&self, t: Duration) -> Option<u64> {
        MVarApi::take_timeout(&self.inner, t)
    }
}

#[test]
fn a_value_handed_out_twice_is_caught_from_the_history() {
    let make = || Duplicating {
        inner: MVar::new_empty(),
        n: AtomicU64::new(0),
    };
    let (seed, verdict, _) = mvar_verdict(make, traffic(), RUNS).expect("caught");
    assert!(
        matches!(verdict, Verdict::NotLinearizable { .. }),
        "seed {seed}: {verdict:?}"
    );
}

/// A box whose timed-out take swallows the value it found arriving late (the contract: a
/// timeout gives the value back).
struct Swallowing {
    inner: MVar<u64>,
}

impl MVarApi<u64> for Swallowing {
    fn put(&self, v: u64) {
        MVarApi::put(&self.inner, v)
    }
    fn take(&self) -> u64 {
        MVarApi::take(&self.inner)
    }
    fn try_put(&self, v: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.inner, v)
    }
    fn try_take(&self) -> Option<u64> {
        MVarApi::try_take(&self.inner)
    }
    fn put_timeout(&self, v: u64, t: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.inner, v, t)
    }
    fn take_timeout(&self, t: Duration) -> Option<u64> {
        match MVarApi::take_timeout(&self.inner, t) {
            // Reports a timeout although it took the value.
            Some(_) if t > Duration::ZERO => None,
            other => other,
        }
    }
}

#[test]
fn a_timed_out_take_that_kept_the_value_is_caught_from_the_history() {
    let make = || Swallowing {
        inner: MVar::new_empty(),
    };
    let (seed, verdict, _) = mvar_verdict(make, traffic(), RUNS).expect("caught");
    assert!(
        matches!(verdict, Verdict::NotLinearizable { .. }),
        "seed {seed}: {verdict:?}"
    );
}

/// A box that declares atomic reads but builds `try_read` from `try_take` + `try_put`: between
/// the two, the box is empty to everyone else (a `try_put` can slip in, and the read's own put
/// then fails and the value is lost).
struct TakeThenPutRead {
    inner: MVar<u64>,
}

impl MVarApi<u64> for TakeThenPutRead {
    fn put(&self, v: u64) {
        MVarApi::put(&self.inner, v)
    }
    fn take(&self) -> u64 {
        MVarApi::take(&self.inner)
    }
    fn try_put(&self, v: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.inner, v)
    }
    fn try_take(&self) -> Option<u64> {
        MVarApi::try_take(&self.inner)
    }
    fn put_timeout(&self, v: u64, t: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.inner, v, t)
    }
    fn take_timeout(&self, t: Duration) -> Option<u64> {
        MVarApi::take_timeout(&self.inner, t)
    }
    fn capabilities(&self) -> primitives::traits::MVarCaps {
        primitives::traits::MVarCaps {
            read_swap: true,
            fifo: false,
        }
    }
    fn try_read(&self) -> Option<u64> {
        let v = MVarApi::try_take(&self.inner)?;
        std::thread::yield_now();
        let _ = MVarApi::try_put(&self.inner, v);
        Some(v)
    }
}

#[test]
fn a_read_made_of_take_and_put_is_caught_from_the_history() {
    let make = || TakeThenPutRead {
        inner: MVar::new_empty(),
    };
    let (seed, verdict, _) = mvar_verdict(make, traffic(), RUNS).expect("caught");
    assert!(
        matches!(verdict, Verdict::NotLinearizable { .. }),
        "seed {seed}: {verdict:?}"
    );
    eprintln!("non-atomic try_read caught at seed {seed} (of {RUNS})");
}
