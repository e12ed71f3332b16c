//! `torture all`: every process scenario of the catalogue in turn, each with its defaults (the
//! quick "is everything still sound" run) — or, with `--procs N` or a sweep, at each count for
//! every scenario that has a process count — then one summary table (one row per scenario ×
//! count: runs, ops/s, faults, verdict); the exit code is the worst of them (2 over 1 over 0).
//!
//! The runs are the list of (scenario × count) pairs, scenario by scenario; `--shard i/n` runs
//! those whose index is ≡ i-1 mod n. Each run goes through the scenario's own `main` with
//! `--procs N --seed S` (S: `--seed`, or derived from it and N in a sweep), so its replay line
//! is the scenario's own; every run's command line is checked before the first one starts.

use super::scenarios::CATALOGUE;
use super::sweep::{self, Ran, SweepHead};
use super::ProcScenario;
use crate::cli::AllArgs;
use crate::report::Outputs;

/// Whether `s` takes a process count (`--procs`).
pub fn has_procs(s: &dyn ProcScenario) -> bool {
    s.command()
        .get_arguments()
        .any(|a| a.get_id() == "procs" && !a.is_hide_set())
}

/// With `--impl-lib` / `--impl`: the flags each ABI's scenarios get, or why they are skipped.
struct Plugged {
    mvar: Result<Vec<String>, String>,
    lock: Result<Vec<String>, String>,
}

impl Plugged {
    fn of(args: &AllArgs) -> Option<Plugged> {
        use crate::procs::impls::{plugin, probe, Abi};
        if let Some(lib) = &args.impl_lib {
            let abs = std::fs::canonicalize(lib);
            let check = |abi| match &abs {
                Ok(p) => probe(p, abi)
                    .map(|_| vec!["--impl-lib".to_string(), p.to_string_lossy().into_owned()]),
                Err(e) => Err(format!("cannot open: {e}")),
            };
            return Some(Plugged {
                mvar: check(Abi::MVar),
                lock: check(Abi::Lock),
            });
        }
        let name = args.impl_name.as_deref()?;
        let flags = vec!["--impl".to_string(), name.to_string()];
        Some(Plugged {
            mvar: plugin::resolve(name).map(|_| flags.clone()),
            lock: crate::procs::impls::lock::resolve(name).map(|_| flags),
        })
    }

    fn for_scenario(&self, s: &dyn ProcScenario) -> Result<Vec<String>, String> {
        use crate::procs::impls::Abi;
        match s.plugs() {
            Some(Abi::MVar) => self.mvar.clone(),
            Some(Abi::Lock) => self.lock.clone(),
            None => Err("it does not take a user's implementation".into()),
        }
    }
}

/// Runs `torture all`.
pub fn main(program: &str, args: &AllArgs) -> u8 {
    let base = args.seed.unwrap_or_else(crate::prng::fresh_seed);
    let plugged = Plugged::of(args);
    if let Some(p) = &plugged {
        if let (Err(m), Err(l)) = (&p.mvar, &p.lock) {
            let what = match (&args.impl_lib, &args.impl_name) {
                (Some(lib), _) => format!("--impl-lib {}", lib.display()),
                (_, n) => format!("--impl {}", n.as_deref().unwrap_or("")),
            };
            crate::out::warn!(
                "torture all: {what}: no scenario can use it (as an MVar: {m}; as a lock: {l})"
            );
            return 2;
        }
    }
    // The whole list, every command line checked first.
    let mut list = Vec::new();
    for s in CATALOGUE.iter().copied() {
        let extra = match plugged.as_ref().map(|p| p.for_scenario(s)) {
            None => Vec::new(),
            Some(Ok(flags)) => flags,
            Some(Err(why)) => {
                crate::out::say!("torture all: {} skipped: {why}", s.name());
                continue;
            }
        };
        let counts: Vec<Option<u32>> = match &args.procs {
            Some(sw) if has_procs(s) => sw.counts().iter().copied().map(Some).collect(),
            _ => vec![None],
        };
        for n in counts {
            let mut argv = vec![s.name().to_string()];
            let seed = match (n, &args.procs) {
                (Some(n), Some(sw)) => {
                    argv.extend(["--procs".to_string(), n.to_string()]);
                    sw.seed_for(base, n)
                }
                _ => base,
            };
            argv.extend(["--seed".to_string(), seed.to_string()]);
            argv.extend(extra.iter().cloned());
            let flags = match s.command().try_get_matches_from(&argv) {
                Ok(m) => m,
                Err(e) => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("").trim();
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    crate::out::warn!("torture all: error: {}: {first}", s.name());
                    return 2;
                }
            };
            list.push((s, argv, flags));
        }
    }
    let picked = sweep::select(list.len(), args.shard);
    crate::out::say!(
        "torture all: {} of {} runs{}, seed {base}",
        picked.len(),
        list.len(),
        args.shard
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default()
    );
    let mut runs: Vec<Ran> = Vec::new();
    for i in picked {
        let (s, argv, flags) = &list[i];
        crate::out::say!("\n== torture {}", argv.join(" "));
        let (code, mut ran) = sweep::collect(|| s.main(program, flags));
        if ran.is_empty() {
            // A scenario whose main ends through neither `sweep::main` nor `finish` (or stopped
            // at its flags): its exit code only.
            ran.push(Ran {
                scenario: s.name().to_string(),
                procs: None,
                seed: base,
                exit_code: code,
                replay: format!("{program} {}", argv.join(" ")),
                report: None,
            });
        }
        runs.extend(ran);
        if crate::signals::received().is_some() {
            break;
        }
    }
    sweep::write_sweep(
        "torture all",
        &SweepHead {
            command: "all",
            procs: args.procs.as_ref().map(ToString::to_string),
            shard: args.shard,
            seed: base,
        },
        &runs,
        &Outputs {
            json: args.json.clone(),
            junit: args.junit.clone(),
        },
    )
}
