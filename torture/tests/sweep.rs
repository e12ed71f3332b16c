//! `--procs` sweeps and `--shard`: parsing (good and bad, one line and exit 2 on the command
//! line), shards that together run the whole sweep once, and small real sweeps whose summary
//! table, JSON and JUnit have one row / run / case per process count.

mod common;

use common::{json_of, torture, torture_env, TempDir};
use std::time::Duration;
use torture::procs::sweep::{self, Shard};

#[test]
fn sweeps_parse() {
    let counts = |s| sweep::parse(s, 1, 1000).map(|w| w.counts().to_vec());
    assert_eq!(counts("2:128:x2"), Ok(vec![2, 4, 8, 16, 32, 64, 128]));
    assert_eq!(counts("2:128:x4"), Ok(vec![2, 8, 32, 128]));
    assert_eq!(counts("2:12:+5"), Ok(vec![2, 7, 12]));
    assert_eq!(counts("8"), Ok(vec![8]));
    for bad in [
        "1:0:x2", "2:8:x1", "2:8:x0", "2:8:+0", "garbage", "2:8", "", "0", "1001",
    ] {
        let e = counts(bad).expect_err(bad);
        assert!(!e.contains('\n'), "{bad:?}: {e}");
    }
}

#[test]
fn shards_together_run_the_whole_sweep_once() {
    let sw = sweep::parse("2:128:x2", 1, 1000).expect("a sweep");
    let len = sw.counts().len();
    for n in 1..=9 {
        let mut seen: Vec<usize> = (1..=n)
            .flat_map(|i| sweep::select(len, Some(Shard { index: i, of: n })))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..len).collect::<Vec<_>>(), "{n} shards");
    }
    assert_eq!(sweep::select(len, None), (0..len).collect::<Vec<_>>());
    for bad in ["0/2", "3/2", "1/0", "1", "x/y", "-1/2"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_sweeps_and_shards_are_one_line_exit_2() {
    for (args, want) in [
        (&["mvar", "--procs", "1:0:x2"][..], "empty sweep"),
        (&["mvar", "--procs", "2:8:x1"], "at least x2"),
        (&["storm", "--procs", "2:8:x0"], "at least x2"),
        (&["locks", "--procs", "garbage"], "not a process count"),
        (&["storm", "--procs", "1:4:x2"], "out of range"),
        (&["mvar", "--shard", "0/2"], "bad shard"),
        (&["all", "--shard", "0/2"], "bad shard"),
        (&["all", "--procs", "1:2:+1"], "out of range"),
        (&["pipe", "--procs", "4"], "always runs 2 processes"),
    ] {
        let r = torture(args, Duration::from_secs(20));
        assert_eq!(r.code, Some(2), "{args:?}\n{}", r.all());
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}\n{}", r.all());
        assert!(
            r.stderr.contains(want),
            "{args:?}: wants {want:?}\n{}",
            r.all()
        );
        assert!(r.stdout.is_empty(), "{args:?}: nothing ran\n{}", r.all());
    }
}

/// The rows of the summary table printed at the end, as (scenario, procs, verdict).
fn rows(stdout: &str) -> Vec<(String, u32, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (
                cells[0].to_string(),
                cells[1].parse().expect("a process count"),
                cells[cells.len() - 1].to_string(),
            )
        })
        .collect()
}

#[test]
fn a_small_sweep_runs_once_per_count_with_its_own_seed_and_replay() {
    let tmp = TempDir::new("sweep");
    let json = tmp.0.join("sweep.json");
    let xml = tmp.0.join("sweep.xml");
    let (json_arg, xml_arg) = (json.to_str().expect("utf-8"), xml.to_str().expect("utf-8"));
    let env = [("TMPDIR", tmp.path())];
    let r = torture_env(
        &[
            "mvar", "--procs", "2:4:x2", "--rounds", "2", "--seed", "9", "--json", json_arg,
            "--junit", xml_arg,
        ],
        &env,
        Duration::from_secs(60),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        rows(&r.stdout),
        vec![
            ("mvar".to_string(), 2, "pass".to_string()),
            ("mvar".to_string(), 4, "pass".to_string())
        ],
        "{}",
        r.all()
    );
    let v = json_of(&json);
    assert_eq!(v["command"], "mvar");
    assert_eq!(v["procs"], "2:4:x2");
    assert_eq!(v["seed"], 9);
    assert_eq!(v["exit_code"], 0);
    let table = v["table"].as_array().expect("a table");
    assert_eq!(table.len(), 2, "{v}");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{v}");
    let mut seeds = Vec::new();
    for (run, n) in runs.iter().zip([2u64, 4]) {
        let seed = run["seed"].as_u64().expect("a seed");
        assert_eq!(seed, sweep::derive_seed(9, n as u32));
        assert!(r.stdout.contains(&format!("seed {seed}")), "{}", r.all());
        let replay = run["replay"].as_str().expect("a replay line");
        assert!(
            replay.contains(&format!("--procs {n} ")) && replay.contains(&format!("--seed {seed}")),
            "the replay line names the single count and the run's seed: {replay}"
        );
        let report = &run["report"];
        assert_eq!(report["verdict"], "pass");
        assert_eq!(report["tally"]["procs"], n);
        // Every slave takes and puts back twice, then takes once; the master puts N.
        assert_eq!(report["tally"]["ops"], n * 6, "{report}");
        seeds.push(seed);
    }
    assert_ne!(seeds[0], seeds[1]);
    let row = &table[1];
    assert_eq!(
        (row["procs"].as_u64(), row["runs"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(row["ops_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
    let text = std::fs::read_to_string(&xml).expect("JUnit report written");
    let junit = quick_junit::Report::deserialize_from_str(&text).expect("valid JUnit XML");
    assert_eq!((junit.tests, junit.failures), (2, 0));

    // Shard 2 of 2 runs only the second count, with the seed it has in the whole sweep.
    let r = torture_env(
        &[
            "mvar", "--procs", "2:4:x2", "--rounds", "2", "--seed", "9", "--shard", "2/2",
        ],
        &env,
        Duration::from_secs(60),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        rows(&r.stdout),
        vec![("mvar".to_string(), 4, "pass".to_string())]
    );
    assert!(
        r.stdout.contains(&format!("seed {}", seeds[1])),
        "{}",
        r.all()
    );
    assert_eq!(tmp.leftovers().len(), 2, "only the two reports are left");
}

#[test]
fn all_takes_a_count_and_a_shard() {
    // storm, churn, locks, mvar at 2, then pipe and fork: shard 4 of 4 is mvar alone.
    let tmp = TempDir::new("all-shard");
    let r = torture_env(
        &["all", "--procs", "2", "--shard", "4/4", "--seed", "4"],
        &[("TMPDIR", tmp.path())],
        Duration::from_secs(60),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        rows(&r.stdout),
        vec![("mvar".to_string(), 2, "pass".to_string())]
    );
    assert!(r.stdout.contains("mvar --procs 2 --seed 4"), "{}", r.all());
}
