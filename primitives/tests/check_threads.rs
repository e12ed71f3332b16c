//! The real-threads engine as one public call (`check::threads::{mvar, lock, log}`): the
//! reference primitives pass every catalogue scenario; a user's broken MVar is reported with the
//! scenario and message that caught it; a hanging one is reported as a hang naming the
//! operation each thread is stuck in — for a type the crate knows nothing about.
#![cfg(not(any(loom, shuttle)))]

mod common;

use common::broken::OneCondvarMVar;
use primitives::check::threads;
use primitives::check::{Budget, Outcome};
use primitives::mvar::MVar;
use primitives::scenarios::catalogue::reference_log;
use primitives::traits::MVarApi;
use primitives::ReentrantLock;
use std::time::Duration;

fn budget() -> Budget {
    Budget::default()
        .iterations(20)
        .time(Duration::from_secs(10))
}

#[test]
fn the_reference_primitives_pass_every_scenario() {
    let r = threads::mvar(MVar::<u64>::new_empty, budget());
    eprintln!("{r}");
    r.assert_passed();
    let r = threads::lock(|c| ReentrantLock::tracked((), c), budget());
    eprintln!("{r}");
    r.assert_passed();
    let r = threads::log(reference_log, budget());
    eprintln!("{r}");
    r.assert_passed();
}

#[test]
fn a_lost_wake_up_in_a_users_mvar_is_reported_as_a_hang_naming_the_operation() {
    let r = threads::mvar(OneCondvarMVar::new, budget().iterations(500));
    eprintln!("{r}");
    let hang = r
        .rows
        .iter()
        .find(|row| matches!(row.outcome, Outcome::Hang { .. }))
        .unwrap_or_else(|| panic!("no hang reported:\n{r}"));
    let Outcome::Hang { report, .. } = &hang.outcome else {
        unreachable!()
    };
    assert!(
        report.contains(" in take on ") || report.contains(" in put on "),
        "the hang report does not name the blocked operation: {report}"
    );
}

/// A box whose `try_take` hands the value out but leaves it in the box a third of the time.
struct Duplicating(MVar<u64>, std::sync::atomic::AtomicU64);

impl MVarApi<u64> for Duplicating {
    fn put(&self, v: u64) {
        MVarApi::put(&self.0, v)
    }
    fn take(&self) -> u64 {
        MVarApi::take(&self.0)
    }
    fn try_put(&self, v: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.0, v)
    }
    fn try_take(&self) -> Option<u64> {
        let v = MVarApi::try_take(&self.0)?;
        if self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 3 == 0 {
            let _ = MVarApi::try_put(&self.0, v);
        }
        Some(v)
    }
    fn put_timeout(&self, v: u64, t: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.0, v, t)
    }
    fn take_timeout(&self, t: Duration) -> Option<u64> {
        MVarApi::take_timeout(&self.0, t)
    }
}

#[test]
fn a_duplicated_value_is_reported_as_a_failure_with_the_scenario() {
    let r = threads::mvar(
        || Duplicating(MVar::new_empty(), Default::default()),
        budget(),
    );
    eprintln!("{r}");
    assert!(!r.passed(), "a duplicating try_take passed:\n{r}");
    assert!(
        r.findings()
            .all(|row| matches!(row.outcome, Outcome::Failed { .. })),
        "expected failures, not hangs:\n{r}"
    );
}
