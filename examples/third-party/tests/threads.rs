//! The real-threads engine on the three third-party primitives: the MVars keep every property
//! they declare; parking_lot's reentrant mutex breaks owner identity after a guard leaked on an
//! exited thread (its owner id is a thread-local's address, which the next thread reuses), and
//! the scenario for that property catches it.
#![cfg(not(any(loom, shuttle)))]

use primitives::check::{threads, Budget, Outcome};
use std::time::Duration;
use third_party_checks::{ChannelMVar, CondvarMVar, ImmediateLog, ParkingLotReentrant};

fn budget() -> Budget {
    Budget::default()
        .iterations(50)
        .time(Duration::from_secs(10))
}

#[test]
fn crossbeam_bounded_1_passes_the_core_contract() {
    let r = threads::mvar(ChannelMVar::new, budget());
    eprintln!("{r}");
    r.assert_passed();
}

#[test]
fn a_condvar_mvar_passes_including_read_and_swap() {
    let r = threads::mvar(CondvarMVar::new, budget());
    eprintln!("{r}");
    r.assert_passed();
    assert!(r.declared.contains(&"read/swap"));
}

#[test]
fn parking_lot_reentrant_mutex_reuses_an_exited_owners_identity() {
    let r = threads::lock(|_| ParkingLotReentrant::new(), budget());
    eprintln!("{r}");
    // Everything but owner identity after a leaked guard holds ...
    for row in r.findings() {
        assert_eq!(
            row.scenario, "lock-owner-after-exit",
            "parking_lot failed a property other than owner identity:\n{r}"
        );
    }
    // ... and that one is caught.
    let owner = r
        .rows
        .iter()
        .find(|row| row.scenario == "lock-owner-after-exit")
        .expect("the scenario ran");
    assert!(
        matches!(owner.outcome, Outcome::Failed { .. }),
        "parking_lot's thread-local-address owner id was not caught:\n{r}"
    );
}

#[test]
fn an_immediate_log_keeps_the_log_contract() {
    let r = threads::log(|sink, _| ImmediateLog::new(sink), budget());
    eprintln!("{r}");
    r.assert_passed();
}
