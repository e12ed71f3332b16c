//! What a matrix run does: the jobs (each one process: a `torture` run re-executed, a cargo
//! test driver, a fuzz target) and the cells each of them fills.
//!
//! Engines (columns):
//! - `loom`, `shuttle-random`, `shuttle-pct`, `shuttle-urw`, `shuttle-dfs`, `proptest`: the
//!   drivers of `primitives/tests/matrix.rs`, built with `--cfg loom` / `--cfg shuttle` / as
//!   is, each run once for all its cells (needs the workspace and cargo);
//! - `threads`, `threads-chaos`: `torture threads --control C` (and the reference catalogue),
//!   without and with injected spurious wake-ups;
//! - `storm`, `mvar`, `churn`, `locks`, `pipe`, `fork`: each process scenario of `torture` on
//!   every control it runs, and its reference run, with its faults (kills where it has them);
//!   the C examples through `--impl-lib` (when `cc` is there);
//! - `fuzz`: libFuzzer (`cargo fuzz run -s none`) on the op-sequence target that has the
//!   control (`FUZZ_CONTROL`), from the target's seed corpus;
//! - `fuzz-schedule`: libFuzzer choosing shuttle's interleavings (the `schedule` target, built
//!   with `--cfg shuttle`) on every catalogue control.

use super::Profile;
use crate::procs::scenarios::CATALOGUE;
use primitives::controls::CONTROLS as REGISTRY;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every engine, in column order.
pub const ENGINES: &[&str] = &[
    "loom",
    "shuttle-random",
    "shuttle-pct",
    "shuttle-urw",
    "shuttle-dfs",
    "proptest",
    "fuzz",
    "fuzz-schedule",
    "threads",
    "threads-chaos",
    "storm",
    "mvar",
    "churn",
    "locks",
    "pipe",
    "fork",
];

/// How a job's process is judged.
#[derive(Clone, Debug)]
pub enum Judge {
    /// It prints `MATRIX {json}` lines, one per cell.
    Lines,
    /// One cell: `engine` on `subject` with `seed`; a control is caught when the run exits 1
    /// (a reference run exiting 1 is a false positive); `executions` from the JSON report at
    /// `json` when it says.
    Exit {
        engine: &'static str,
        subject: String,
        seed: u64,
        json: Option<PathBuf>,
    },
    /// A build, so that no cell's time includes one: no cells (one without a verdict if it
    /// fails).
    Build,
    /// One cell from libFuzzer: caught when it stops on a crash; executions from its output.
    Fuzz {
        engine: &'static str,
        subject: String,
        seed: u64,
    },
}

/// One process to run.
#[derive(Clone, Debug)]
pub struct Job {
    /// The engines it fills (for `--engines` and the progress line).
    pub engines: Vec<&'static str>,
    /// What it is, in one line.
    pub label: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Its working directory (the workspace for cargo jobs).
    pub dir: Option<PathBuf>,
    /// How long it may run before it is killed (its cells then are `timeout`).
    pub limit: Duration,
    /// How its output becomes cells.
    pub judge: Judge,
}

impl Job {
    /// Whether `--only WHAT` selects it: its subject is `what`, or its label contains it.
    pub fn matches(&self, what: &str) -> bool {
        let subject = match &self.judge {
            Judge::Exit { subject, .. } | Judge::Fuzz { subject, .. } => Some(subject.as_str()),
            Judge::Lines | Judge::Build => None,
        };
        subject == Some(what) || self.label.contains(what)
    }
}

/// The plan's inputs.
pub struct Inputs<'a> {
    /// This binary.
    pub exe: &'a Path,
    /// The workspace (for the cargo and fuzz engines), if found.
    pub workspace: Option<&'a Path>,
    /// The C examples built as libraries: (label, path, ABI scenarios).
    pub c_libs: &'a [(String, PathBuf, Vec<&'static str>)],
    /// Where run reports go.
    pub scratch: &'a Path,
    /// The budgets.
    pub profile: &'a Profile,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The jobs of a matrix run, and the reasons engines that cannot run here are left out.
pub fn jobs(i: &Inputs<'_>) -> (Vec<Job>, Vec<String>) {
    let p = i.profile;
    let seeds: Vec<u64> = (1..=u64::from(p.seeds)).collect();
    let seed_list = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    let catalogue: Vec<&str> = primitives::scenarios::catalogue::CONTROLS
        .iter()
        .map(|c| c.name)
        .collect();
    // The cargo drivers.
    match i.workspace {
        None => missing.push(
            "loom, shuttle, proptest, fuzz: no workspace (run from the repository, or pass --workspace)"
                .to_string(),
        ),
        Some(ws) => {
            let driver = |engines: Vec<&'static str>,
                          cfg: Option<&str>,
                          target: &str,
                          package: &str| {
                let mut env = vec![
                    ("MATRIX_SEEDS".to_string(), seed_list.clone()),
                    ("MATRIX_ITERATIONS".into(), p.iterations.to_string()),
                    ("MATRIX_LOOM_ITERATIONS".into(), p.loom_iterations.to_string()),
                    ("MATRIX_SECS".into(), p.cell_time.as_secs().to_string()),
                    // The std drivers share the workspace's own target folder.
                    (
                        "CARGO_TARGET_DIR".into(),
                        s(&ws.join("target").join(target)),
                    ),
                    ("LOOM_PREEMPTION_BOUND".into(), p.loom_bound.to_string()),
                    ("CARGO_TERM_COLOR".into(), "never".into()),
                ];
                if let Some(c) = cfg {
                    env.push(("RUSTFLAGS".into(), format!("--cfg {c}")));
                }
                Job {
                    label: format!(
                        "cargo test -p {package} --test matrix ({})",
                        engines.join(", ")
                    ),
                    engines,
                    argv: [
                        "cargo",
                        "test",
                        "-q",
                        "-p",
                        package,
                        "--release",
                        "--test",
                        "matrix",
                        "--",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ]
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                    env,
                    dir: Some(ws.to_path_buf()),
                    limit: p.driver_limit,
                    judge: Judge::Lines,
                }
            };
            let shuttle = || vec!["shuttle-random", "shuttle-pct", "shuttle-urw", "shuttle-dfs"];
            for package in ["primitives", "third-party-checks"] {
                jobs.push(driver(vec!["loom"], Some("loom"), "loom", package));
                jobs.push(driver(shuttle(), Some("shuttle"), "shuttle", package));
            }
            jobs.push(driver(vec!["proptest"], None, "", "primitives"));
            jobs.push(driver(
                vec!["threads", "proptest"],
                None,
                "",
                "third-party-checks",
            ));
            // The fuzz targets are built first: a cell's seconds are libFuzzer's, not cargo's.
            // (`cargo fuzz build` takes one target or all of them: all.)
            let shuttle_dir = s(&ws.join("fuzz/target-shuttle"));
            let build = |engine: &'static str, extra: Vec<String>, env: Vec<(String, String)>| {
                let mut argv: Vec<String> = ["cargo", "fuzz", "build", "-s", "none"]
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
                let label = format!("cargo fuzz build {}", extra.join(" "));
                argv.extend(extra);
                Job {
                    engines: vec![engine],
                    label: label.trim_end().to_string(),
                    argv,
                    env,
                    dir: Some(ws.to_path_buf()),
                    limit: Duration::from_secs(1800),
                    judge: Judge::Build,
                }
            };
            let shuttle_env = || vec![("RUSTFLAGS".to_string(), "--cfg shuttle".to_string())];
            jobs.push(build("fuzz", Vec::new(), Vec::new()));
            jobs.push(build(
                "fuzz-schedule",
                vec!["--target-dir".into(), shuttle_dir.clone(), "schedule".into()],
                shuttle_env(),
            ));
            // One libFuzzer run: `target` on `control` (the reference without one: a finding
            // there is a false positive), from the target's seeds if it has some.
            let run = |engine: &'static str, target: &str, control: Option<&str>, seed: u64| {
                let schedule = engine == "fuzz-schedule";
                let time = if schedule || control.is_none() {
                    p.schedule_time
                } else {
                    p.fuzz_time
                };
                let name = control.unwrap_or("reference");
                let corpus = i.scratch.join(format!("corpus-{target}-{name}-{seed}"));
                // libFuzzer writes new inputs to the first folder: it must exist.
                let _ = std::fs::create_dir_all(&corpus);
                let mut argv: Vec<String> = ["cargo", "fuzz", "run", "-s", "none"]
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
                if schedule {
                    argv.extend(["--target-dir".to_string(), shuttle_dir.clone()]);
                }
                argv.extend([target.to_string(), s(&corpus)]);
                let seeds_dir = ws.join("fuzz/seeds").join(target);
                if !schedule && seeds_dir.is_dir() {
                    argv.push(s(&seeds_dir));
                }
                argv.extend([
                    "--".to_string(),
                    format!("-seed={seed}"),
                    format!("-max_total_time={}", time.as_secs()),
                    format!("-artifact_prefix={}/", s(i.scratch)),
                    "-print_final_stats=1".into(),
                ]);
                let mut env = vec![
                    ("RUST_BACKTRACE".to_string(), "0".to_string()),
                    ("CARGO_TERM_COLOR".into(), "never".into()),
                ];
                if let Some(c) = control {
                    env.push(("FUZZ_CONTROL".into(), c.to_string()));
                }
                if schedule {
                    env.extend(shuttle_env());
                }
                Job {
                    engines: vec![engine],
                    label: match control {
                        Some(c) => format!("fuzz {target} FUZZ_CONTROL={c} seed {seed}"),
                        None => format!("fuzz {target} (reference) seed {seed}"),
                    },
                    argv,
                    env,
                    dir: Some(ws.to_path_buf()),
                    limit: time * 3 + Duration::from_secs(600),
                    judge: Judge::Fuzz {
                        engine,
                        subject: control
                            .map_or_else(|| format!("reference/fuzz {target}"), str::to_string),
                        seed,
                    },
                }
            };
            let mut op_targets = std::collections::BTreeSet::new();
            for c in REGISTRY {
                if let Some(target) = fuzz_target(c.name) {
                    op_targets.insert(target);
                    for &seed in &seeds {
                        jobs.push(run("fuzz", target, Some(c.name), seed));
                    }
                }
            }
            for c in &catalogue {
                for &seed in &seeds {
                    jobs.push(run("fuzz-schedule", "schedule", Some(c), seed));
                }
            }
            for t in op_targets {
                jobs.push(run("fuzz", t, None, 1));
            }
            jobs.push(run("fuzz-schedule", "schedule", None, 1));
        }
    }
    // torture threads, with and without chaos: each catalogue control, and the references.
    for (engine, chaos) in [("threads", false), ("threads-chaos", true)] {
        for &seed in &seeds {
            let subjects = catalogue
                .iter()
                .map(|c| Some(*c))
                .chain(std::iter::once(None));
            for control in subjects {
                let json = i.scratch.join(format!(
                    "threads-{}-{}-{seed}.json",
                    chaos,
                    control.unwrap_or("reference")
                ));
                let mut argv = vec![
                    s(i.exe),
                    "threads".into(),
                    "--duration".into(),
                    secs(p.threads_time),
                    "--deadline".into(),
                    "1s".into(),
                    "--seed".into(),
                    seed.to_string(),
                    "--json".into(),
                    s(&json),
                ];
                if chaos {
                    argv.push("--chaos".into());
                }
                if let Some(c) = control {
                    argv.extend(["--control".into(), c.to_string()]);
                }
                jobs.push(Job {
                    engines: vec![engine],
                    label: format!(
                        "torture threads{} {}",
                        if chaos { " --chaos" } else { "" },
                        control.unwrap_or("(reference catalogue)")
                    ),
                    argv,
                    env: Vec::new(),
                    dir: None,
                    limit: p.threads_time * 2 + Duration::from_secs(30),
                    judge: Judge::Exit {
                        engine,
                        subject: control
                            .map_or("reference/threads catalogue".into(), str::to_string),
                        seed,
                        json: Some(json),
                    },
                });
            }
        }
    }
    // The process scenarios: every control each runs, and its reference run.
    for sc in CATALOGUE.iter().copied() {
        let controls: Vec<Option<&str>> = sc
            .controls()
            .into_iter()
            .map(|(n, _)| Some(n))
            .chain(std::iter::once(None))
            .collect();
        for control in controls {
            for &seed in seeds.iter().take(p.process_seeds as usize) {
                let mut argv = vec![
                    s(i.exe),
                    sc.name().to_string(),
                    "--seed".into(),
                    seed.to_string(),
                ];
                argv.extend(process_flags(sc.name(), control));
                if let Some(c) = control {
                    argv.extend(["--control".into(), c.to_string()]);
                }
                jobs.push(Job {
                    engines: vec![sc.name()],
                    label: format!("torture {}", argv[1..].join(" ")),
                    argv,
                    env: Vec::new(),
                    dir: None,
                    limit: Duration::from_secs(180),
                    judge: Judge::Exit {
                        engine: sc.name(),
                        subject: control
                            .map_or_else(|| format!("reference/{}", sc.name()), str::to_string),
                        seed,
                        json: None,
                    },
                });
            }
        }
    }
    // The correct C examples, without kills (the MVar) and with them (the robust lock).
    for (label, lib, scenarios) in i.c_libs {
        for &sc in scenarios {
            let mut argv = vec![
                s(i.exe),
                sc.to_string(),
                "--impl-lib".into(),
                s(lib),
                "--seed".into(),
                "1".into(),
            ];
            if sc == "mvar" {
                argv.extend(["--procs".into(), "50".into()]);
            }
            if sc == "locks" {
                argv.extend([
                    "--procs".into(),
                    "8".into(),
                    "--kill-rate".into(),
                    "20".into(),
                ]);
            }
            jobs.push(Job {
                engines: vec![sc],
                label: format!("torture {sc} --impl-lib {label}"),
                argv,
                env: Vec::new(),
                dir: None,
                limit: Duration::from_secs(180),
                judge: Judge::Exit {
                    engine: sc,
                    subject: format!("third-party/{label} ({sc})"),
                    seed: 1,
                    json: None,
                },
            });
        }
    }
    (jobs, missing)
}

/// Flags a scenario needs to show a control within the matrix's budget.
fn process_flags(scenario: &str, control: Option<&str>) -> Vec<String> {
    let v: &[&str] = match (scenario, control) {
        // Seed 000's scale: lost wake-ups show among 50 slaves. (No kills: 10 rounds are over
        // in a tenth of a second; the recovery controls are the storm's.)
        ("mvar", _) => &["--procs", "50"],
        // A control stops at its first detection; no-recovery needs a kill inside the box's
        // critical section, which takes a few hundred kills.
        ("storm", Some(_)) => &["--kills", "600"],
        ("storm", None) => &["--kills", "200"],
        _ => &[],
    };
    v.iter().map(|a| a.to_string()).collect()
}

/// The op-sequence fuzz target that runs `control` with `FUZZ_CONTROL`, if one does: the
/// fuzz-home controls (their `caught_by` names the target) and the MVar controls of
/// `mvar_ops` (the `schedule` target, which runs every catalogue control, is the
/// `fuzz-schedule` engine).
fn fuzz_target(control: &str) -> Option<&'static str> {
    let c = REGISTRY.iter().find(|c| c.name == control)?;
    for by in c.caught_by {
        if let Some(t) = by.strip_prefix("fuzz:") {
            return match t {
                "lock_ops" => Some("lock_ops"),
                "msg_ops" => Some("msg_ops"),
                "mvar_ops" => Some("mvar_ops"),
                "shm_open" => Some("shm_open"),
                _ => None,
            };
        }
    }
    None
}
