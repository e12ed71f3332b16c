//! The harness-owned sim (`primitives::sync::sim`) on real threads: an attached thread's timed
//! wait sleeps until the harness expires it (the virtual clock jumps to its deadline), the
//! harness sees who sleeps, a spurious wake-up it injects is tolerated by the reference and
//! caught in the `mvar-if-not-while` control, and threads that are not attached keep the real
//! clock.
#![cfg(not(any(loom, shuttle)))]

use primitives::controls::WaitOnce;
use primitives::mvar::{MVar, Policy};
use primitives::sync::sim::Sim;
use primitives::sync::time::{deadline_after, is_due, Duration};
use std::sync::Arc;
use std::thread;

/// Waits (real time, generously) until `n` attached threads sleep.
fn until_asleep(sim: &Sim, n: usize) {
    for _ in 0..200_000 {
        if sim.asleep() == n {
            return;
        }
        thread::yield_now();
    }
    panic!("expected {n} sleepers, see {}", sim.asleep());
}

/// A thread attached to `sim` that takes from `m`.
fn attached_take<P: Policy>(sim: &Arc<Sim>, m: &Arc<MVar<u32, P>>) -> thread::JoinHandle<u32> {
    let (sim, m) = (sim.clone(), m.clone());
    thread::spawn(move || {
        let _a = sim.attach();
        m.take()
    })
}

#[test]
fn a_timed_wait_sleeps_until_the_harness_expires_it() {
    let sim = Sim::new();
    let m: Arc<MVar<u32>> = Arc::new(MVar::new_empty());
    let start = sim.now();
    let t = {
        let (sim, m) = (sim.clone(), m.clone());
        // An hour of virtual time: for real this test would never end.
        thread::spawn(move || {
            let _a = sim.attach();
            m.take_timeout(Duration::from_secs(3600))
        })
    };
    until_asleep(&sim, 1);
    let sleepers = sim.sleepers();
    assert_eq!(sleepers.len(), 1);
    assert!(sleepers[0].timed && !sleepers[0].expired);
    assert_eq!(sim.expire_next(), 1);
    assert!(t.join().unwrap().is_err(), "expired: the take times out");
    assert!(sim.now().saturating_duration_since(start) >= Duration::from_secs(3600));
    assert_eq!(sim.asleep(), 0);
    assert_eq!(sim.expire_next(), 0, "nobody left to expire");
}

#[test]
fn a_due_deadline_times_out_at_once_and_unattached_threads_keep_the_real_clock() {
    let sim = Sim::new();
    let m: MVar<u32> = MVar::new_empty();
    {
        let _a = sim.attach();
        assert!(m.take_timeout(Duration::ZERO).is_err());
        let d = deadline_after(Duration::from_millis(1)).unwrap();
        thread::sleep(Duration::from_millis(5));
        assert!(!is_due(d), "virtual time did not move");
    }
    // Detached: real time.
    let d = deadline_after(Duration::from_millis(1)).unwrap();
    thread::sleep(Duration::from_millis(5));
    assert!(is_due(d));
    assert!(m.take_timeout(Duration::from_millis(1)).is_err());
}

#[test]
fn the_reference_sleeps_again_after_a_spurious_wake_and_a_grant_still_reaches_it() {
    let sim = Sim::new();
    let m: Arc<MVar<u32>> = Arc::new(MVar::new_empty());
    let t = attached_take(&sim, &m);
    until_asleep(&sim, 1);
    for k in 0..5 {
        assert!(sim.wake_spuriously(k));
        let seen = sim.activity();
        // It wakes, re-checks and sleeps again.
        for _ in 0..200_000 {
            if sim.activity() >= seen + 2 && sim.asleep() == 1 {
                break;
            }
            thread::yield_now();
        }
        assert_eq!(sim.asleep(), 1);
    }
    m.put(7);
    assert_eq!(t.join().unwrap(), 7);
}

#[test]
fn a_spurious_wake_is_caught_in_the_if_not_while_control() {
    let sim = Sim::new();
    let m: Arc<MVar<u32, WaitOnce>> = Arc::new(MVar::with_policy_empty());
    let t = attached_take(&sim, &m);
    until_asleep(&sim, 1);
    assert!(sim.wake_spuriously(0));
    let err = t.join().expect_err("woken without a value");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("woken without a value"), "{msg}");
}

#[test]
fn an_expiry_racing_a_grant_loses_no_value() {
    for round in 0..200 {
        let sim = Sim::new();
        let m: Arc<MVar<u32>> = Arc::new(MVar::new_empty());
        let t = {
            let (sim, m) = (sim.clone(), m.clone());
            thread::spawn(move || {
                let _a = sim.attach();
                m.take_timeout(Duration::from_millis(2)).ok()
            })
        };
        until_asleep(&sim, 1);
        assert_eq!(sim.expire_next(), 1);
        m.put(round);
        let got = t.join().unwrap();
        let left = m.try_take().ok();
        assert_eq!(
            got.into_iter().chain(left).collect::<Vec<_>>(),
            vec![round],
            "the value is taken or still in the box, exactly once"
        );
    }
}
