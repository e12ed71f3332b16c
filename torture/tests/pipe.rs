//! `torture pipe` (seed 004) with real processes and real pipes: the poll-driven reference
//! passes; the blocking control is caught as a two-process wait cycle on the pipe buffers; the
//! same deadlock with one side stopped is *not* called a cycle; nothing is left behind.

mod common;

use common::{cmdline, live_processes_mentioning, pids, reader, torture_env, Reaper};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh `TMPDIR` for the runner; removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(label: &str) -> Tmp {
        let p =
            std::env::temp_dir().join(format!("torture-pipe-test-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("create a test TMPDIR");
        Tmp(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    fn json(&self) -> String {
        format!("{}/report.json", self.path())
    }

    /// Reads and removes the JSON report, then checks nothing else is left.
    fn report_and_nothing_left(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.json()).expect("JSON report written");
        std::fs::remove_file(self.json()).expect("remove the report");
        let left: Vec<_> = std::fs::read_dir(&self.0)
            .expect("read TMPDIR")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
        assert_eq!(live_processes_mentioning(self.path()), Vec::<u32>::new());
        serde_json::from_str(&text).expect("valid JSON")
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `/proc/<pid>/stat` fields after the command name: (state, ppid).
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s.rsplit_once(") ")?.1.split(' ');
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

fn finding(v: &serde_json::Value) -> (String, String) {
    let f = &v["findings"][0];
    (
        f["kind"].as_str().unwrap_or("").to_string(),
        f["text"].as_str().unwrap_or("").to_string(),
    )
}

/// The pid after `role (pid ` in `text`.
fn pid_in(text: &str, role: &str) -> u32 {
    let at = text.find(&format!("{role} (pid ")).expect(role) + role.len() + 6;
    text[at..]
        .split(')')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid")
}

#[test]
fn reference_passes_and_the_blocking_control_is_a_wait_cycle() {
    let tmp = Tmp::new("cycle");
    let env = [("TMPDIR", tmp.path())];
    let json = tmp.json();
    let r = torture_env(
        &["pipe", "--seed", "4", "--json", &json],
        &env,
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    let v = tmp.report_and_nothing_left();
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(v["command"], "pipe", "{v}");
    assert_eq!(v["figures"]["checked"], 50, "{v}");
    assert_eq!(v["figures"]["size"], 262_144, "{v}");
    assert!(
        v["figures"]["mib_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{v}"
    );

    let r = torture_env(
        &[
            "pipe",
            "--seed",
            "4",
            "--hang-timeout",
            "500ms",
            "--control",
            "pipe-blocking",
            "--json",
            &json,
        ],
        &env,
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stdout.contains("CAUGHT: control pipe-blocking"),
        "{}",
        r.all()
    );
    let v = tmp.report_and_nothing_left();
    assert_eq!(v["verdict"], "caught", "{v}");
    assert_eq!(
        v["replay"]
            .as_str()
            .unwrap_or("")
            .split_once(" pipe ")
            .map(|x| x.1),
        Some("--requests 50 --size 262144 --hang-timeout 500ms --seed 4 --control pipe-blocking"),
        "{v}"
    );
    let (kind, text) = finding(&v);
    assert_eq!(kind, "hang", "{v}");
    let (client, server) = (pid_in(&text, "client"), pid_in(&text, "server"));
    assert_ne!(client, server);
    assert!(
        text.contains(&format!(
            "wait cycle: client (pid {client}) blocks writing the request pipe, full, whose reader server (pid {server}) blocks writing the response pipe, full, whose reader is client (pid {client})"
        )),
        "{text}"
    );
    for pid in [client, server] {
        assert!(
            matches!(stat(pid), None | Some(('Z' | 'X', _))),
            "worker {pid} still alive"
        );
    }
}

/// The control's deadlock with the server stopped (SIGSTOP) before the runner looks: the
/// client still sleeps on a full pipe, but a stopped process waits on nobody — no progress,
/// and no wait cycle.
#[test]
fn a_stopped_worker_is_never_part_of_a_cycle() {
    let tmp = Tmp::new("stopped");
    let json = tmp.json();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torture"));
    let mut child = torture::procs::tied::tie(&mut cmd)
        .args(["pipe", "--seed", "4", "--hang-timeout", "1500ms"])
        .args(["--control", "pipe-blocking", "--json", &json])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn torture");
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let runner = child.id();
    let mut reaper = Reaper(Some(child));
    let start = Instant::now();
    let server = loop {
        let found = pids().into_iter().find(|&p| {
            stat(p).is_some_and(|(_, ppid)| ppid == runner)
                && cmdline(p).contains("\"role\":\"server\"")
        });
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no server");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Let both block (the deadlock forms within milliseconds), then stop the server.
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("stop the server");
    let status = loop {
        let c = reaper.0.as_mut().expect("child");
        if let Some(s) = c.try_wait().expect("wait") {
            reaper.0 = None;
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "runner still running"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let all = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    assert_eq!(status.code(), Some(1), "{all}");
    let v = tmp.report_and_nothing_left();
    let (kind, text) = finding(&v);
    assert_eq!(kind, "wedged", "{v}");
    assert!(!text.contains("wait cycle:"), "{text}");
    assert!(text.contains("no wait cycle"), "{text}");
    assert!(
        text.contains(&format!("server pid {server}: state T")) && text.contains("STOPPED"),
        "{text}"
    );
    assert!(
        matches!(stat(server), None | Some(('Z' | 'X', _))),
        "the stopped server {server} is still alive"
    );
}

/// `--kill-rate`: a side killed at a random moment, the pair replaced on new pipes from the
/// first response not yet checked; every response is still checked exactly once, in order, and
/// the survivor of a kill never reports its peer's death as its own failure.
#[test]
fn kills_restart_the_pair_and_every_response_is_checked_once() {
    let tmp = Tmp::new("kills");
    let env = [("TMPDIR", tmp.path())];
    let json = tmp.json();
    let r = torture_env(
        &[
            "pipe",
            "--requests",
            "400",
            "--kill-rate",
            "20",
            "--seed",
            "3",
            "--json",
            &json,
        ],
        &env,
        Duration::from_secs(60),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(r.stderr.trim(), "", "{}", r.all());
    let v = tmp.report_and_nothing_left();
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(v["figures"]["checked"], 400, "{v}");
    assert!(v["figures"]["kills"].as_u64().unwrap_or(0) > 0, "{v}");
}
