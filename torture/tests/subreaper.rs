//! Workers must not outlive their runner when it is SIGKILLed under a *subreaper* (systemd user
//! sessions, CI agents adopt orphans instead of PID 1). This test process makes itself a
//! subreaper and kills runners at random moments of their start-up, where a worker that checks
//! "is my parent pid 1?" would miss its runner's death. It is the only test of its binary: it
//! reaps every orphan adopted by this process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Live (not zombie) children of this process whose command line holds `needle`.
fn adopted_workers(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut f = rest.split(' ');
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == me && state != "Z" && String::from_utf8_lossy(&cmd).contains(needle) {
            v.push(pid);
        }
    }
    v
}

#[test]
fn workers_die_with_a_runner_killed_under_a_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    assert_eq!(rc, 0, "cannot become a subreaper");
    let tmp = std::env::temp_dir().join(format!("torture-test-subreaper-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("test TMPDIR");
    let needle = tmp.to_str().expect("utf-8").to_string();
    let mut survivors = Vec::new();
    for trial in 0..12u64 {
        let mut runner = Command::new(env!("CARGO_BIN_EXE_torture"))
            .args(["storm", "--procs", "6", "--kills", "1000000", "--seed"])
            .arg(trial.to_string())
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn torture");
        // Kill it at a different moment of its start-up each time: while it spawns workers,
        // and once they run.
        std::thread::sleep(Duration::from_millis(5 + trial * 12));
        let _ = runner.kill();
        let _ = runner.wait();
        let until = Instant::now() + Duration::from_secs(3);
        let left = loop {
            // Reap adopted orphans that died (we are their parent now).
            while let Ok(s) = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            ) {
                if s == nix::sys::wait::WaitStatus::StillAlive {
                    break;
                }
            }
            let left = adopted_workers(&needle);
            if left.is_empty() || Instant::now() > until {
                break left;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        survivors.extend(left.into_iter().map(|p| (trial, p)));
    }
    while nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(-1), None).is_ok() {}
    // The killed runners' segments: abandoned (every user dead), so cleanup removes them.
    // (The filter is a prefix of what follows "torture-": the creator pid, so "" for all.)
    let _ = primitives::shm::cleanup("");
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        survivors.is_empty(),
        "workers outlived their SIGKILLed runner under a subreaper (trial, pid): {survivors:?}"
    );
}
