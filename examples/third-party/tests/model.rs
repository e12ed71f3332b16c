//! The sequential engines on the three third-party primitives: proptest's state-machine models
//! (`check::model`) and the cargo-fuzz entry points (`check::fuzz`, fed here with a fixed set of
//! pseudo-random inputs; a real fuzz target is the one line in the README).
#![cfg(not(any(loom, shuttle)))]

use primitives::check::{fuzz, model, Budget, Outcome};
use std::time::Duration;
use third_party_checks::{ChannelMVar, CondvarMVar, ImmediateLog, ParkingLotReentrant};

fn budget() -> Budget {
    Budget::default()
        .iterations(128)
        .time(Duration::from_secs(20))
        .seed(7)
}

/// 200 inputs of 1–96 bytes from a fixed SplitMix64 stream.
fn inputs() -> Vec<Vec<u8>> {
    let mut x = 0x5eed_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..200)
        .map(|_| {
            let n = 1 + (next() % 96) as usize;
            (0..n).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn crossbeam_bounded_1_passes_the_models_read_swap_not_checked() {
    let r = model::mvar(ChannelMVar::new, budget());
    eprintln!("{r}");
    r.assert_passed();
    assert!(r
        .rows
        .iter()
        .any(|row| matches!(row.outcome, Outcome::Skipped(_))));
    for data in inputs() {
        fuzz::mvar(ChannelMVar::new, &data);
    }
}

#[test]
fn condvar_mvar_passes_the_models_including_read_and_swap() {
    let r = model::mvar(CondvarMVar::new, budget());
    eprintln!("{r}");
    r.assert_passed();
    assert!(r
        .rows
        .iter()
        .all(|row| !matches!(row.outcome, Outcome::Skipped(_))));
    for data in inputs() {
        fuzz::mvar(CondvarMVar::new, &data);
    }
}

/// One thread at a time cannot reach the owner-identity defect (it needs a thread to exit
/// holding the lock): the sequential model passes parking_lot's mutex.
#[test]
fn parking_lot_reentrant_mutex_passes_the_sequential_model() {
    let r = model::lock(|_| ParkingLotReentrant::new(), budget());
    eprintln!("{r}");
    r.assert_passed();
    for data in inputs() {
        fuzz::lock(|_| ParkingLotReentrant::new(), &data);
    }
}

#[test]
fn an_immediate_log_passes_the_models() {
    let r = model::log(|sink, _| ImmediateLog::new(sink), budget());
    eprintln!("{r}");
    r.assert_passed();
    for data in inputs() {
        fuzz::log(|sink, _| ImmediateLog::new(sink), &data);
    }
}
