//! The recorded MVar scenarios of the promised properties on real threads: the reference MVar
//! passes each of them, and each MVar mutant of the catalogue's controls is caught by its
//! scenario (the runs needed are printed, never asserted on).
#![cfg(not(any(loom, shuttle)))]

use primitives::mvar::MVar;
use primitives::scenarios::catalogue::{control, mvar_scenarios, run_named};
use primitives::scenarios::{Checked, Params, Schedule};
use primitives::traits::{MVarApi, MVarCaps};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The scenarios this file is about.
const NEW: [&str; 4] = [
    "mvar-read-races",
    "mvar-swap-races",
    "mvar-deadlines",
    "mvar-fifo",
];

/// Each control and the scenario that must catch it.
const MUTANTS: [(&str, &str); 4] = [
    ("mvar-read-take-put", "mvar-read-races"),
    ("mvar-swap-take-put", "mvar-swap-races"),
    ("mvar-timeout-takes-effect", "mvar-deadlines"),
    ("mvar-lifo-waiters", "mvar-fifo"),
];

/// Runs per reference scenario, and at most per mutant.
const REFERENCE_RUNS: usize = 10;
const MUTANT_RUNS: usize = 200;
/// A run longer than this is a hang (none of these scenarios may hang on a mutant).
const HANG: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread: `Ok` if it returned, `Err(message)` if it panicked; panics if it
/// has not finished after [`HANG`].
fn outcome(f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r.map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }));
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("a run did not finish within {HANG:?}"))
}

#[test]
fn the_reference_passes_every_new_scenario() {
    let list = mvar_scenarios::<MVar<u64>>();
    let p = Params::for_engine();
    for name in NEW {
        let start = Instant::now();
        for _ in 0..REFERENCE_RUNS {
            let r = run_named(&list, name, &p, &|| MVar::<u64>::new_empty()).expect("listed");
            assert_eq!(r, Checked::Yes, "{name} did not check the reference");
        }
        eprintln!(
            "reference: {name:<18} passed {REFERENCE_RUNS} runs in {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn every_mvar_mutant_is_caught_by_its_scenario_on_real_threads() {
    for (name, scenario) in MUTANTS {
        let c = control(name).unwrap_or_else(|| panic!("{name} is not a catalogue control"));
        let start = Instant::now();
        let mut caught = None;
        for run in 1..=MUTANT_RUNS {
            let p = Params::for_engine();
            if let Err(msg) = outcome(move || (c.run)(&p)) {
                caught = Some((run, msg));
                break;
            }
        }
        let (runs, msg) = caught.unwrap_or_else(|| {
            panic!("{name}: {scenario} did NOT catch it in {MUTANT_RUNS} runs on real threads")
        });
        assert!(
            msg.contains(scenario),
            "{name}: caught, but not by {scenario}: {msg}"
        );
        eprintln!(
            "real threads: {name:<26} caught by {scenario} after {runs} run(s), {:?}: {}",
            start.elapsed(),
            msg.lines().next().unwrap_or("")
        );
    }
}

/// A correct box that declares nothing beyond the core contract.
struct Core(MVar<u64>);

impl MVarApi<u64> for Core {
    fn put(&self, v: u64) {
        self.0.put(v)
    }
    fn take(&self) -> u64 {
        self.0.take()
    }
    fn try_put(&self, v: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.0, v)
    }
    fn try_take(&self) -> Option<u64> {
        MVarApi::try_take(&self.0)
    }
    fn put_timeout(&self, v: u64, t: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.0, v, t)
    }
    fn take_timeout(&self, t: Duration) -> Option<u64> {
        MVarApi::take_timeout(&self.0, t)
    }
    fn capabilities(&self) -> MVarCaps {
        MVarCaps::CORE
    }
}

/// Properties not declared are not checked (and not failed), and FIFO is not claimed where the
/// schedule cannot show it; the core scenario runs on any box.
#[test]
fn undeclared_or_unobservable_properties_are_skipped() {
    let list = mvar_scenarios::<Core>();
    let make = || Core(MVar::new_empty());
    let p = Params::for_engine();
    for (name, want) in [
        (
            "mvar-read-races",
            Checked::Skipped("read/swap not declared"),
        ),
        (
            "mvar-swap-races",
            Checked::Skipped("read/swap not declared"),
        ),
        ("mvar-fifo", Checked::Skipped("fifo not declared")),
        ("mvar-deadlines", Checked::Yes),
    ] {
        assert_eq!(run_named(&list, name, &p, &make), Some(want), "{name}");
    }
    let exhaustive = p.with_schedule(Schedule::Exhaustive);
    let r = run_named(
        &mvar_scenarios::<MVar<u64>>(),
        "mvar-fifo",
        &exhaustive,
        &|| MVar::<u64>::new_empty(),
    );
    assert!(
        matches!(r, Some(Checked::Skipped(why)) if why.contains("exhaustive")),
        "{r:?}"
    );
}
