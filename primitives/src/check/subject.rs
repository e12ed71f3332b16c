//! A primitive under a model engine, with its maker's type erased: the names of the scenarios
//! of its family (taken from the catalogue's generic lists, so a scenario added there is checked
//! by every model engine's public call without a change here), what it declares, and one
//! function that runs scenario `i` on it.

use crate::lock::{LockClass, Mode, Validator};
use crate::scenarios::catalogue::{
    lock_scenarios, log_scenarios, mvar_scenarios, Delivered, MakeLock, MakeLog, MakeMVar,
};
use crate::scenarios::{Checked, Params, Scenario};
use crate::sync::engine::{once, Body};
use crate::sync::BookArc;
use crate::traits::{LockApi, LogApi, MVarApi};

/// Runs scenario `i` of the family on a fresh primitive.
pub(crate) type RunScenario = BookArc<dyn Fn(usize, &Params) -> Checked + Send + Sync + 'static>;

/// A primitive of one family, ready for an engine.
pub(crate) struct Subject {
    /// Its type name.
    pub name: String,
    /// What it declares (capabilities; for a lock, reentrancy).
    pub declared: Vec<&'static str>,
    /// Which family's scenarios it runs (`mvar`, `lock`, `log`).
    pub family: &'static str,
    /// The names of those scenarios, in catalogue order.
    pub scenarios: Vec<&'static str>,
    /// Runs one.
    pub run: RunScenario,
}

/// The runner of `list` on primitives made by `make`, `as_maker` turning the user's closure
/// into the catalogue's maker type.
fn runner<F: ?Sized + 'static, K: Send + Sync + 'static>(
    list: Vec<Scenario<F>>,
    make: K,
    as_maker: fn(&K) -> &F,
) -> (Vec<&'static str>, RunScenario) {
    let names = list.iter().map(|s| s.name).collect();
    let runs: Vec<fn(&Params, &F) -> Checked> = list.iter().map(|s| s.run).collect();
    let run: RunScenario = BookArc::new(move |i: usize, p: &Params| runs[i](p, as_maker(&make)));
    (names, run)
}

impl Subject {
    /// An MVar of `u64` values made by `make` (each call: a new, empty one).
    pub fn mvar<M, K>(make: K) -> Subject
    where
        M: MVarApi<u64> + 'static,
        K: Fn() -> M + Send + Sync + 'static,
    {
        let make = BookArc::new(make);
        let m = make.clone();
        let declared = once(move || m().capabilities().names()).unwrap_or_default();
        let (scenarios, run) = runner(mvar_scenarios::<M>(), make, |k| {
            let f: &MakeMVar<M> = &**k;
            f
        });
        Subject {
            name: std::any::type_name::<M>().to_string(),
            declared,
            family: "mvar",
            scenarios,
            run,
        }
    }

    /// A lock made by `make` (each call: a new, free one, tracked as the given class).
    pub fn lock<L, K>(make: K) -> Subject
    where
        L: LockApi + 'static,
        K: Fn(&LockClass) -> L + Send + Sync + 'static,
    {
        let make = BookArc::new(make);
        let m = make.clone();
        let declared = once(move || {
            let class = Validator::new(Mode::Off).class("probe", true);
            if m(&class).is_reentrant() {
                vec!["reentrant"]
            } else {
                vec![]
            }
        })
        .unwrap_or_default();
        let (scenarios, run) = runner(lock_scenarios::<L>(), make, |k| {
            let f: &MakeLock<L> = &**k;
            f
        });
        Subject {
            name: std::any::type_name::<L>().to_string(),
            declared,
            family: "lock",
            scenarios,
            run,
        }
    }

    /// A log made by `make` (each call: a new one delivering into the given sink, its own sink
    /// lock tracked as the given class).
    pub fn log<G, K>(make: K) -> Subject
    where
        G: LogApi + 'static,
        K: Fn(Delivered, &LockClass) -> G + Send + Sync + 'static,
    {
        let (scenarios, run) = runner(log_scenarios::<G>(), BookArc::new(make), |k| {
            let f: &MakeLog<G> = &**k;
            f
        });
        Subject {
            name: std::any::type_name::<G>().to_string(),
            declared: Vec::new(),
            family: "log",
            scenarios,
            run,
        }
    }

    /// Scenario `i` under `params` as an engine's per-execution body.
    pub fn body(&self, i: usize, params: Params) -> BookArc<Body> {
        let run = self.run.clone();
        BookArc::new(move || match run(i, &params) {
            Checked::Yes => None,
            Checked::Skipped(why) => Some(why),
        })
    }

    /// The index of the scenario named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| *s == name)
    }
}
