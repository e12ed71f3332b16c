//! Sweeps and shards: `--procs` as one count or a sweep of counts, `--shard i/n`, and the shell
//! every process scenario's `main` runs in ([`main`]): one run per count of the sweep (each with
//! its own seed, derived from `--seed`, and its own replay line naming the single count), then a
//! summary table — one row per (scenario × process count): runs, ops/s, faults injected,
//! verdict — in the output, in `--json` and, one test case per run, in `--junit`.
//!
//! - `--procs 8`: one run, exactly as before (its report and its seed unchanged);
//! - `--procs 2:128:x2`: geometric, 2, 4, 8, …, 128 (the factor is at least 2);
//! - `--procs 2:10:+4`: arithmetic, 2, 6, 10 (the step is at least 1); the last count is the
//!   last one not past B;
//! - `--shard i/n` (1-based): this invocation runs the sweep's runs whose index is ≡ i-1 mod n,
//!   so `--shard 1/n` … `--shard n/n` together run the whole sweep, each run exactly once, each
//!   with the seed it has in the whole sweep.
//!
//! `torture all` runs its list of (scenario × count) runs one by one through each scenario's
//! own `main`; [`collect`] hands it each run's [`Ran`] (a scenario's `main` that runs through
//! [`main`] is in `torture all`'s table for free: a new scenario fills [`super::Outcome::ops`]
//! and its faults, and calls [`main`]).

use super::{Faults, Outcome, SetupError};
use crate::report::{JunitCase, Outputs, Report, Verdict};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;

/// Most runs one sweep may describe (a typo like `1:1000:+1` is an error, not a day).
pub const MAX_RUNS: usize = 256;

/// The process counts of `--procs`: one count, or a sweep. Displays as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    counts: Vec<u32>,
    text: String,
}

impl Sweep {
    /// One count.
    pub fn one(n: u32) -> Sweep {
        Sweep {
            counts: vec![n],
            text: n.to_string(),
        }
    }

    /// The counts, in the order they run.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Whether this is a single count (then its run keeps `--seed` as given).
    pub fn is_single(&self) -> bool {
        self.counts.len() == 1
    }

    /// The seed of the run at `procs`: `base` for a single count, else one derived from `base`
    /// and the count (so a shard, or another sweep through the same count, runs it alike).
    pub fn seed_for(&self, base: u64, procs: u32) -> u64 {
        if self.is_single() {
            base
        } else {
            derive_seed(base, procs)
        }
    }
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The seed of a sweep's run at `procs` processes, from the sweep's seed.
pub fn derive_seed(base: u64, procs: u32) -> u64 {
    crate::prng::SplitMix64::new(base ^ u64::from(procs).wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .next_u64()
}

/// Parses `N`, `A:B:xK` or `A:B:+K` (see the module docs); every count must lie in
/// `min..=max`. The error is one line.
pub fn parse(s: &str, min: u32, max: u32) -> Result<Sweep, String> {
    let s = s.trim();
    let number = |t: &str| -> Result<u32, String> {
        t.parse()
            .map_err(|_| format!("{t:?} is not a process count (want N, A:B:xK or A:B:+K)"))
    };
    let in_range = |n: u32| -> Result<u32, String> {
        if n < min || n > max {
            return Err(format!("{n} processes is out of range {min}..={max}"));
        }
        Ok(n)
    };
    let count = |t: &str| number(t).and_then(in_range);
    let parts: Vec<&str> = s.split(':').collect();
    let counts = match parts[..] {
        [n] => vec![count(n)?],
        [a, b, step] => {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("empty sweep {s:?}: {a} is past {b} (want A <= B)"));
            }
            let (a, b) = (in_range(a)?, in_range(b)?);
            let k = |t: &str| {
                t.parse::<u32>()
                    .map_err(|_| format!("bad step {step:?} in {s:?} (want xK or +K)"))
            };
            let mut v = vec![a];
            if let Some(f) = step.strip_prefix('x') {
                let f = k(f)?;
                if f < 2 {
                    return Err(format!("factor x{f} in {s:?} must be at least x2"));
                }
                while let Some(n) = v.last().and_then(|n| n.checked_mul(f)).filter(|n| *n <= b) {
                    v.push(n);
                }
            } else if let Some(d) = step.strip_prefix('+') {
                let d = k(d)?;
                if d < 1 {
                    return Err(format!("step +{d} in {s:?} must be at least +1"));
                }
                while let Some(n) = v.last().and_then(|n| n.checked_add(d)).filter(|n| *n <= b) {
                    if v.len() > MAX_RUNS {
                        break;
                    }
                    v.push(n);
                }
            } else {
                return Err(format!("bad step {step:?} in {s:?} (want xK or +K)"));
            }
            if v.len() > MAX_RUNS {
                return Err(format!("sweep {s:?} has over {MAX_RUNS} runs"));
            }
            v
        }
        _ => {
            return Err(format!(
                "{s:?} is not a process count or sweep (want N, A:B:xK or A:B:+K)"
            ))
        }
    };
    Ok(Sweep {
        counts,
        text: s.to_string(),
    })
}

/// A clap value parser for `--procs` with counts in `min..=max`.
pub fn procs(min: u32, max: u32) -> impl Fn(&str) -> Result<Sweep, String> + Clone + Send + Sync {
    move |s| parse(s, min, max)
}

/// `--shard i/n`: this invocation runs the runs whose index is ≡ i-1 mod n (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// Which shard, 1..=of.
    pub index: u32,
    /// Of how many.
    pub of: u32,
}

impl Shard {
    /// Parses `i/n` with `1 <= i <= n`; the error is one line.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("bad shard {s:?} (want i/n with 1 <= i <= n, e.g. 1/4)");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, of) = (
            i.parse::<u32>().map_err(|_| bad())?,
            n.parse::<u32>().map_err(|_| bad())?,
        );
        if index < 1 || index > of {
            return Err(bad());
        }
        Ok(Shard { index, of })
    }

    /// Whether this shard runs the run at `index` (0-based) of the whole list.
    pub fn selects(self, index: usize) -> bool {
        index % self.of as usize == (self.index - 1) as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

/// The indices of `0..len` that `shard` runs (all of them without a shard).
pub fn select(len: usize, shard: Option<Shard>) -> Vec<usize> {
    (0..len)
        .filter(|i| shard.map_or(true, |s| s.selects(*i)))
        .collect()
}

/// What a scenario's `main` prepares for one run: what [`finish`] takes.
pub struct Single {
    /// The control run instead of the reference, if any.
    pub control: Option<String>,
    /// The replay line of this run (its single count, its seed).
    pub replay: String,
    /// The run itself.
    pub run: Result<Outcome, SetupError>,
}

/// One run of a sweep (or of `torture all`), judged.
#[derive(Debug, Serialize)]
pub struct Ran {
    /// The scenario.
    pub scenario: String,
    /// Its process count (`None`: the scenario has none, or did not say).
    pub procs: Option<u32>,
    /// Its seed.
    pub seed: u64,
    /// Its exit code.
    pub exit_code: u8,
    /// Its replay line.
    pub replay: String,
    /// Its report (none after a setup error or an interruption).
    pub report: Option<Report>,
}

impl Ran {
    fn verdict_word(&self) -> &'static str {
        match &self.report {
            Some(r) => match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::Caught => "caught",
                Verdict::NotCaught => "NOT CAUGHT",
            },
            None => match self.exit_code {
                0 => "pass",
                1 => "FAIL",
                _ => "setup error / interrupted",
            },
        }
    }

    /// Its JUnit test case.
    pub fn junit(&self) -> JunitCase {
        let name = match self.procs {
            Some(n) => format!("{} --procs {n}", self.scenario),
            None => self.scenario.clone(),
        };
        match &self.report {
            Some(r) => JunitCase {
                name: match &r.control {
                    Some(c) => format!("{name} --control {c}"),
                    None => name,
                },
                verdict: r.verdict,
                message: r.findings.first().map(|f| f.text.clone()),
                output: r.summary.clone(),
                replay: self.replay.clone(),
            },
            None => JunitCase {
                name,
                verdict: if self.exit_code == 0 {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                message: (self.exit_code != 0).then(|| {
                    format!(
                        "torture {} exited {} (its output says why)",
                        self.scenario, self.exit_code
                    )
                }),
                output: String::new(),
                replay: self.replay.clone(),
            },
        }
    }
}

thread_local! {
    /// Where [`collect`] gathers the runs of the `main`s it calls.
    static SINK: RefCell<Option<Vec<Ran>>> = const { RefCell::new(None) };
}

/// Calls `f` and returns what it returns with every run judged inside it (by [`main`]).
pub fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<Ran>) {
    let outer = SINK.with(|s| s.borrow_mut().replace(Vec::new()));
    let value = f();
    let runs = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (value, runs.unwrap_or_default())
}

/// The exit code of several: 2 over 1 over 0.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes
        .into_iter()
        .max_by_key(|c| match c {
            0 => 0,
            1 => 1,
            _ => 2,
        })
        .unwrap_or(0)
}

/// Runs a process scenario at every count of `procs` this `shard` selects, in turn: `run_one`
/// prints the run's header and runs it at the given count and seed. A single count without a
/// shard is one run reported exactly as before (its JSON is the run's [`Report`]); a sweep ends
/// with the summary table, and its `--json` / `--junit` hold every run. Stops after an
/// interruption. Returns the exit code (the worst of the runs').
pub fn main(
    name: &'static str,
    procs: &Sweep,
    shard: Option<Shard>,
    seed: Option<u64>,
    out: &Outputs,
    mut run_one: impl FnMut(u32, u64) -> Single,
) -> u8 {
    let base = seed.unwrap_or_else(crate::prng::fresh_seed);
    let counts = procs.counts();
    if procs.is_single() && shard.is_none() {
        let (n, seed) = (counts[0], base);
        return once(name, Some(n), seed, run_one(n, seed), out);
    }
    let picked = select(counts.len(), shard);
    let shard_words = shard.map(|s| format!(", shard {s}")).unwrap_or_default();
    crate::out::say!(
        "== {name}: --procs {procs} ({} runs{shard_words}: {}), seed {base}",
        counts.len(),
        if picked.is_empty() {
            "none here".to_string()
        } else {
            picked
                .iter()
                .map(|i| counts[*i].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut runs = Vec::new();
    for i in picked {
        let n = counts[i];
        let seed = procs.seed_for(base, n);
        crate::out::say!("\n== {name} --procs {n} --seed {seed}");
        runs.push(judge(
            name,
            Some(n),
            seed,
            run_one(n, seed),
            &Outputs::default(),
        ));
        if crate::signals::received().is_some() {
            break;
        }
    }
    let code = write_sweep(
        &format!("torture {name}"),
        &SweepHead {
            command: name,
            procs: Some(procs.to_string()),
            shard,
            seed: base,
        },
        &runs,
        out,
    );
    for r in runs {
        keep(r);
    }
    code
}

/// Hands a judged run to [`collect`], if someone collects.
fn keep(ran: Ran) {
    SINK.with(|s| {
        if let Some(v) = s.borrow_mut().as_mut() {
            v.push(ran);
        }
    });
}

/// One run on its own (not in a sweep): printed, its report written to `out`, handed to
/// [`collect`]; returns its exit code.
pub fn once(name: &'static str, procs: Option<u32>, seed: u64, run: Single, out: &Outputs) -> u8 {
    let ran = judge(name, procs, seed, run, out);
    let code = ran.exit_code;
    keep(ran);
    code
}

/// Prints and reports one run: a setup error or an interruption is one line (exit 2).
fn judge(name: &'static str, procs: Option<u32>, seed: u64, single: Single, out: &Outputs) -> Ran {
    let Single {
        control,
        replay,
        run,
    } = single;
    let mut ran = Ran {
        scenario: name.to_string(),
        procs,
        seed,
        exit_code: 2,
        replay: replay.clone(),
        report: None,
    };
    let outcome = match run {
        Ok(o) => o,
        Err(e) => {
            crate::out::warn!("torture {name}: setup error: {}", e.0);
            return ran;
        }
    };
    if let Some(sig) = &outcome.interrupted {
        crate::out::say_raw!("{}", outcome.summary);
        crate::out::warn!(
            "torture {name}: interrupted by {sig}; workers reaped, segments and ledgers removed"
        );
        return ran;
    }
    let report = super::report_of(name, control, seed, replay, procs, outcome);
    ran.exit_code = out.emit(&report);
    ran.report = Some(report);
    ran
}

/// What a sweep's JSON says about itself.
#[derive(Debug, Serialize)]
pub struct SweepHead {
    /// The command (`mvar`, …, or `all`).
    pub command: &'static str,
    /// `--procs` as given, if given.
    pub procs: Option<String>,
    /// `--shard`, if given.
    pub shard: Option<Shard>,
    /// The sweep's seed (each run's own is derived from it).
    pub seed: u64,
}

/// One row of the summary table: a (scenario × process count) and its runs.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    /// The scenario.
    pub scenario: String,
    /// Its process count (`None`: not said).
    pub procs: Option<u32>,
    /// Runs at that count.
    pub runs: usize,
    /// Operations they completed (box commits, lock acquisitions, messages).
    pub ops: u64,
    /// Their wall time, seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Faults injected.
    pub faults: Faults,
    /// The worst verdict among them (`pass`, `FAIL`, `caught`, `NOT CAUGHT`, or setup error).
    pub verdict: String,
}

/// The summary table of `runs`: one row per (scenario × count), in order of first appearance.
pub fn table(runs: &[Ran]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for r in runs {
        let (ops, secs, faults) = r.report.as_ref().map_or((0, 0.0, Faults::default()), |p| {
            (p.tally.ops, p.tally.seconds, p.tally.faults)
        });
        let word = r.verdict_word();
        match rows
            .iter_mut()
            .find(|x| x.scenario == r.scenario && x.procs == r.procs)
        {
            Some(row) => {
                row.runs += 1;
                row.ops += ops;
                row.seconds += secs;
                row.faults.kills += faults.kills;
                row.faults.stops += faults.stops;
                if rank(word) > rank(&row.verdict) {
                    row.verdict = word.to_string();
                }
            }
            None => rows.push(Row {
                scenario: r.scenario.clone(),
                procs: r.procs,
                runs: 1,
                ops,
                seconds: secs,
                ops_per_s: 0.0,
                faults,
                verdict: word.to_string(),
            }),
        }
    }
    for row in &mut rows {
        row.ops_per_s = row.ops as f64 / row.seconds.max(1e-9);
    }
    rows
}

fn rank(word: &str) -> u8 {
    match word {
        "pass" | "caught" => 0,
        "NOT CAUGHT" => 1,
        "FAIL" => 2,
        _ => 3,
    }
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | procs | runs | ops | ops/s | kills | stops | seconds | verdict |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.2} | {} |\n",
            r.scenario,
            r.procs.map_or("-".to_string(), |n| n.to_string()),
            r.runs,
            r.ops,
            r.ops_per_s,
            r.faults.kills,
            r.faults.stops,
            r.seconds,
            r.verdict
        ));
    }
    s
}

/// A sweep's (or `torture all`'s) `--json`.
#[derive(Serialize)]
struct SweepReport<'a> {
    tool: &'static str,
    version: &'static str,
    #[serde(flatten)]
    head: &'a SweepHead,
    exit_code: u8,
    table: Vec<Row>,
    runs: &'a [Ran],
}

/// Prints the summary table of `runs` and writes `--json` / `--junit` (one case per run);
/// returns the worst exit code (2 if a report cannot be written).
pub fn write_sweep(who: &str, head: &SweepHead, runs: &[Ran], out: &Outputs) -> u8 {
    let rows = table(runs);
    crate::out::say!("\n{}", markdown(&rows).trim_end());
    let mut code = worst(runs.iter().map(|r| r.exit_code));
    if let Some(path) = &out.json {
        let report = SweepReport {
            tool: "torture",
            version: env!("CARGO_PKG_VERSION"),
            head,
            exit_code: code,
            table: rows,
            runs,
        };
        if let Err(e) = crate::report::write_json(path, &report) {
            crate::out::warn!("{who}: error: {e}");
            code = 2;
        }
    }
    if let Some(path) = &out.junit {
        let cases: Vec<JunitCase> = runs.iter().map(Ran::junit).collect();
        if let Err(e) = crate::report::write_junit(path, who, &cases) {
            crate::out::warn!("{who}: error: {e}");
            code = 2;
        }
    }
    code
}

/// The end of a scenario's `main` that runs once, without a process count (a scenario with one
/// runs through [`main`] instead): a setup error or an interruption is one line and exit
/// 2; otherwise the report is printed and written. The run is a row of `torture all`'s table
/// either way. Returns the exit code.
pub fn finish(
    name: &'static str,
    control: Option<String>,
    seed: u64,
    replay: String,
    out: &crate::report::Outputs,
    run: Result<Outcome, SetupError>,
) -> u8 {
    let single = Single {
        control,
        replay,
        run,
    };
    once(name, None, seed, single, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse() {
        let p = |s| parse(s, 1, 1000).map(|w| w.counts().to_vec());
        assert_eq!(p("2:128:x2"), Ok(vec![2, 4, 8, 16, 32, 64, 128]));
        assert_eq!(p("2:100:x2"), Ok(vec![2, 4, 8, 16, 32, 64]));
        assert_eq!(p("2:128:x4"), Ok(vec![2, 8, 32, 128]));
        assert_eq!(p("2:10:+4"), Ok(vec![2, 6, 10]));
        assert_eq!(p("3:3:+1"), Ok(vec![3]));
        assert_eq!(p("8"), Ok(vec![8]));
        assert_eq!(parse("2:128:x2", 1, 1000).unwrap().to_string(), "2:128:x2");
        for bad in [
            "",
            "0",
            "1001",
            "1:0:x2",
            "2:8:x1",
            "2:8:x0",
            "2:8:+0",
            "2:8",
            "2:8:2",
            "2:8:x",
            "a:b:x2",
            "2:8:x2:1",
            "-1",
            "x2",
            "1:1000:+1000000000000",
        ] {
            let e = p(bad).expect_err(bad);
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse("1:999:+1", 1, 1000).is_err(), "too many runs");
        assert_eq!(
            parse("1:256:+1", 1, 1000).map(|w| w.counts().len()),
            Ok(MAX_RUNS)
        );
        assert!(parse("1:257:+1", 1, 1000).is_err());
        assert_eq!(parse("2:4:x2", 2, 1000).unwrap().counts(), &[2, 4]);
        assert!(
            parse("1:4:x2", 2, 1000).is_err(),
            "below the scenario's minimum"
        );
    }

    #[test]
    fn shards_cover_the_sweep_once() {
        assert!(Shard::parse("0/2").is_err());
        assert!(Shard::parse("3/2").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("a/b").is_err());
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, of: 3 }));
        for len in 0..12 {
            for n in 1..6 {
                let mut all: Vec<usize> = (1..=n)
                    .flat_map(|i| select(len, Some(Shard { index: i, of: n })))
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "len {len}, {n} shards");
            }
        }
        assert_eq!(select(7, Some(Shard { index: 2, of: 3 })), vec![1, 4]);
    }

    fn ran(scenario: &str, procs: Option<u32>, ops: u64, failed: bool) -> Ran {
        let findings = if failed {
            vec![crate::report::Finding::new(
                crate::report::FindingKind::Hang,
                "HANG",
            )]
        } else {
            Vec::new()
        };
        let mut report = Report::new(
            "mvar",
            None,
            1,
            findings,
            String::new(),
            serde_json::Value::Null,
            String::new(),
        );
        report.tally = crate::report::Tally::new(
            procs,
            ops,
            std::time::Duration::from_secs(2),
            Faults { kills: 3, stops: 1 },
        );
        Ran {
            scenario: scenario.to_string(),
            procs,
            seed: 1,
            exit_code: report.exit_code,
            replay: String::new(),
            report: Some(report),
        }
    }

    #[test]
    fn the_table_has_a_row_per_scenario_and_count() {
        let runs = [
            ran("mvar", Some(2), 100, false),
            ran("mvar", Some(4), 300, false),
            ran("mvar", Some(2), 100, true),
            ran("pipe", None, 10, false),
        ];
        let rows = table(&runs);
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].runs, rows[0].ops), (2, 200));
        assert_eq!(rows[0].ops_per_s, 50.0);
        assert_eq!(rows[0].faults, Faults { kills: 6, stops: 2 });
        assert_eq!(rows[0].verdict, "FAIL", "the worst verdict");
        assert_eq!(rows[1].verdict, "pass");
        let md = markdown(&rows);
        assert!(
            md.contains("| mvar | 2 | 2 | 200 | 50 | 6 | 2 | 4.00 | FAIL |"),
            "{md}"
        );
        assert!(
            md.contains("| pipe | - | 1 | 10 | 5 | 3 | 1 | 2.00 | pass |"),
            "{md}"
        );
    }

    #[test]
    fn seeds_single_as_given_sweep_derived() {
        let one = Sweep::one(8);
        assert_eq!(one.seed_for(42, 8), 42);
        let sw = parse("2:8:x2", 1, 100).unwrap();
        let seeds: Vec<u64> = sw.counts().iter().map(|n| sw.seed_for(42, *n)).collect();
        assert_eq!(seeds[0], derive_seed(42, 2));
        assert!(seeds[0] != seeds[1] && seeds[1] != seeds[2]);
    }
}
