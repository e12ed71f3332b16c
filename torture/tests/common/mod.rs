//! Running the `torture` binary as a real child process in tests: every child is reaped, and
//! killed if it outlives its time limit (also when a test panics, by the guard's `Drop`).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A finished child.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Kills the child unless it has been reaped.
pub struct Reaper(pub Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Runs `torture args…`; panics (after killing it) if it is still running after `limit`.
pub fn torture(args: &[&str], limit: Duration) -> Run {
    torture_env(args, &[], limit)
}

/// As [`torture`], with extra environment variables.
pub fn torture_env(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torture"));
    let mut child = torture::procs::tied::tie(&mut cmd)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("TORTURE_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn torture");
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let mut reaper = Reaper(Some(child));
    let start = Instant::now();
    let status = loop {
        let c = reaper.0.as_mut().expect("child present");
        if let Some(st) = c.try_wait().expect("wait for torture") {
            reaper.0 = None;
            break Some(st);
        }
        if start.elapsed() > limit {
            drop(reaper);
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "torture {args:?} still running after {limit:?}; killed\n{}",
        run.all()
    );
    run
}

/// A fresh folder to serve as the runner's `TMPDIR`; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!(
            "torture-test-{label}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir(&p).expect("create a test TMPDIR");
        TempDir(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    /// What the runner left in it.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Live (not zombie) processes whose command line mentions `needle`.
pub fn live_processes_mentioning(needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(needle) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if !matches!(state, Some('Z' | 'X') | None) {
            v.push(pid);
        }
    }
    v
}

/// Segments in `/dev/shm` created by process `pid`.
pub fn segments_of(pid: u32) -> Vec<String> {
    let prefix = format!("torture-{pid}-");
    std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Waits up to `limit` for `cond`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn json_of(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("JSON report written");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The command line of `pid`, arguments separated by spaces.
pub fn cmdline(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// A finished scenario run whose JSON report was read back.
pub struct Checked {
    pub code: Option<i32>,
    pub out: String,
    pub report: serde_json::Value,
}

/// Runs `torture SCENARIO ARGS --json ...` in a fresh TMPDIR (within `limit`), reads the report
/// back, and checks the run left nothing behind: no file in TMPDIR, no segment of the runner
/// (its pid from the report's `runner_pid` figure), no process mentioning TMPDIR.
pub fn run_clean(scenario: &str, label: &str, args: &[&str], limit: Duration) -> Checked {
    let tmp = TempDir::new(label);
    let json = Path::new(tmp.path()).join("report.json");
    let json_arg = json.to_str().expect("utf-8").to_string();
    let mut a = vec![scenario, "--json", &json_arg];
    a.extend_from_slice(args);
    let r = torture_env(&a, &[("TMPDIR", tmp.path())], limit);
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}\n{}", r.all()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    std::fs::remove_file(&json).expect("remove the report");
    assert_eq!(tmp.leftovers(), Vec::<String>::new(), "{}", r.all());
    let pid = v["figures"]["runner_pid"].as_u64().expect("runner pid") as u32;
    assert_eq!(segments_of(pid), Vec::<String>::new(), "{}", r.all());
    assert_eq!(live_processes_mentioning(tmp.path()), Vec::<u32>::new());
    Checked {
        code: r.code,
        out: r.all(),
        report: v,
    }
}
