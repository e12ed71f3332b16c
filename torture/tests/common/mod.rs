//! Running the `torture` binary as a real child process in tests: every child is reaped, and
//! killed if it outlives its time limit (also when a test panics, by the guard's `Drop`).

#![allow(dead_code)]

use std::io::Read;
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
