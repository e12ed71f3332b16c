//! Runs one matrix job (one process, tied to this one: it dies with us, and is killed with its
//! whole group at its time limit or on Ctrl-C / SIGTERM) and turns what it said into cells.

use super::plan::{Job, Judge};
use super::Cell;
use crate::procs::tied::Tied;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch folder (run reports, fuzz corpora, the C libraries), removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh folder under `TMPDIR` (or `/tmp`).
    pub fn new(label: &str) -> Result<Scratch, String> {
        let root = crate::procs::crew::temp_root().map_err(|e| e.0)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = root.join(format!("torture-{label}-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the process printed and how it ended.
struct Ran {
    stdout: String,
    stderr: String,
    code: Option<i32>,
    timed_out: bool,
    interrupted: bool,
    seconds: f64,
}

fn reader(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

fn spawn(job: &Job) -> Result<Ran, String> {
    let mut cmd = Command::new(&job.argv[0]);
    cmd.args(&job.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    if let Some(d) = &job.dir {
        cmd.current_dir(d);
    }
    let start = Instant::now();
    let mut child =
        Tied::spawn(&mut cmd).map_err(|e| format!("cannot start {}: {e}", job.argv[0]))?;
    let out = reader(child.child().stdout.take());
    let err = reader(child.child().stderr.take());
    let mut status = None;
    let mut interrupted = false;
    while start.elapsed() < job.limit {
        if crate::signals::received().is_some() {
            interrupted = true;
            break;
        }
        if let Some(s) = child.wait_timeout(Duration::from_millis(200)) {
            status = Some(s);
            break;
        }
    }
    let timed_out = status.is_none() && !interrupted;
    if status.is_none() {
        status = child.kill();
    }
    drop(child);
    Ok(Ran {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        code: status.and_then(|s| s.code()),
        timed_out,
        interrupted,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl Ran {
    /// Why it gave no verdict: it timed out, or it ended with an unexpected code (and the
    /// last `n` lines of `text` say why).
    fn why(&self, text: &str, n: usize) -> String {
        if self.timed_out {
            format!("timed out after {:.0} s", self.seconds)
        } else {
            format!("exit {:?}: {}", self.code, tail(text, n))
        }
    }
}

/// The last lines of `text`, for an error.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Runs `job`; its cells (one with an error if it gave no verdict).
pub fn job(job: &Job) -> Vec<Cell> {
    let ran = match spawn(job) {
        Ok(r) => r,
        Err(e) => return vec![error_cell(job, e)],
    };
    if ran.interrupted {
        return Vec::new();
    }
    match &job.judge {
        Judge::Build => match (ran.timed_out, ran.code) {
            (false, Some(0)) => Vec::new(),
            _ => vec![error_cell(job, ran.why(&ran.stderr, 3))],
        },
        Judge::Lines => {
            let cells: Vec<Cell> = ran
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("MATRIX "))
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect();
            let mut cells = cells;
            if cells.is_empty() || ran.code != Some(0) {
                cells.push(error_cell(job, ran.why(&ran.stderr, 3)));
            }
            cells
        }
        Judge::Exit {
            engine,
            subject,
            seed,
            json,
        } => {
            let (caught, error) = match (ran.timed_out, ran.code) {
                (false, Some(0)) => (false, None),
                (false, Some(1)) => (true, None),
                _ => (false, Some(ran.why(&ran.stderr, 2))),
            };
            // The thread runner says in which run it caught; a process run is one execution.
            let executions = json.as_deref().and_then(threads_runs).unwrap_or(1);
            vec![verdict(
                engine, subject, *seed, caught, executions, &ran, error,
            )]
        }
        Judge::Fuzz {
            engine,
            subject,
            seed,
        } => {
            // libFuzzer: a crash (or a timeout/oom) ends the run with "==N== ERROR" / a
            // deadly signal and exit 1 from cargo-fuzz; a clean run prints its stats.
            let text = format!("{}\n{}", ran.stdout, ran.stderr);
            let executions = fuzz_executions(&text);
            let crashed = text.contains("ERROR: libFuzzer")
                || text.contains("==ERROR:")
                || text.contains("deadly signal")
                || text.contains("SUMMARY: libFuzzer");
            let (caught, error) = match (ran.timed_out, ran.code, crashed) {
                (false, _, true) => (true, None),
                (false, Some(0), false) => (false, None),
                _ => (false, Some(ran.why(&text, 3))),
            };
            vec![verdict(
                engine, subject, *seed, caught, executions, &ran, error,
            )]
        }
    }
}

/// The one cell of a run judged by its exit (or libFuzzer's output).
fn verdict(
    engine: &str,
    subject: &str,
    seed: u64,
    caught: bool,
    executions: u64,
    ran: &Ran,
    error: Option<String>,
) -> Cell {
    Cell {
        engine: engine.to_string(),
        subject: subject.to_string(),
        seed,
        caught,
        executions,
        seconds: ran.seconds,
        error,
    }
}

/// A cell saying `job` gave no verdict.
fn error_cell(job: &Job, why: String) -> Cell {
    let (engine, subject, seed) = match &job.judge {
        Judge::Exit {
            engine,
            subject,
            seed,
            ..
        } => (engine.to_string(), subject.clone(), *seed),
        Judge::Fuzz {
            engine,
            subject,
            seed,
        } => (engine.to_string(), subject.clone(), *seed),
        Judge::Lines | Judge::Build => (
            job.engines.join("+"),
            format!("{}{}", super::DRIVER, job.label),
            0,
        ),
    };
    Cell {
        engine,
        subject,
        seed,
        caught: false,
        executions: 0,
        seconds: 0.0,
        error: Some(why),
    }
}

/// `torture threads --json`: the run of the target that caught (1-based), or all runs.
fn threads_runs(json: &Path) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).ok()?).ok()?;
    v["failure"]["run_of_target"]
        .as_u64()
        .or_else(|| v["total_runs"].as_u64())
}

/// libFuzzer's executions: its final stats, else the last `#N` status line.
fn fuzz_executions(text: &str) -> u64 {
    if let Some(n) = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
    {
        return n;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .last()
        .unwrap_or(0)
}
