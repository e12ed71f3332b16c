//! Running one row: set up, spawn the peer (and sleepers), measure, stop, clean up.
//!
//! Cleanup is by drop guards declared in order, so on any error the child is SIGKILLed
//! and reaped (`ChildProc`), mappings are unmapped, sleepers are killed and reaped, and
//! segment names are unlinked (`ShmNames`, declared first so it drops last).

use std::any::Any;
use std::os::unix::thread::JoinHandleExt;
use std::process::Stdio;
use std::thread::{Builder, JoinHandle};
use std::time::Duration;

use crate::child::ChildProc;
use crate::cli::Options;
use crate::kinds::{ProcessKind, ThreadKind, ThreadSleepers, STOP};
use crate::measure::{measure, Measurement, Probes};
use crate::sys::{clock_ns, own_thread_cpu_ns, process_cpu_clock, thread_cpu_clock, Res, ShmNames};

const READY_LIMIT: Duration = Duration::from_secs(10);
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// CPU consumed by the sleepers.
pub struct SleeperCpu {
    pub n: usize,
    /// During the measurement window, all sleepers together.
    pub window_ns: u64,
    /// Whole lifetime (start-up included), all sleepers together.
    pub lifetime_ns: u64,
}

pub enum Sleepers {
    NotAsked,
    Unsupported,
    Measured(SleeperCpu),
}

pub struct Measured {
    pub m: Measurement,
    pub sleepers: Sleepers,
}

fn sum_clocks(clocks: &[libc::clockid_t]) -> Res<u64> {
    clocks
        .iter()
        .try_fold(0u64, |acc, c| Ok(acc + clock_ns(*c)?))
}

/// Cross-process row.
pub fn run_process(kind: &'static dyn ProcessKind, opts: &Options) -> Res<Measured> {
    let mut shm = ShmNames::default();
    let mut sleepers: Vec<ChildProc> = Vec::new();
    let mut keep: Option<Box<dyn Any>> = None;
    let mut unsupported = false;
    if opts.sleepers > 0 {
        match kind.sleeper_setup(&mut shm) {
            None => unsupported = true,
            Some(spec) => {
                let spec = spec?;
                keep = Some(spec.keep);
                for _ in 0..opts.sleepers {
                    let stdin = spec.stdin.as_ref().map(|fd| fd.try_clone()).transpose()?;
                    let s =
                        ChildProc::spawn(kind.id(), "sleep", &spec.args, stdin, Stdio::piped())?;
                    sleepers.push(s);
                }
                for s in &mut sleepers {
                    s.wait_ready(READY_LIMIT)?;
                }
                // Every sleeper has its mapping: the names are no longer needed.
                shm.unlink_all();
            }
        }
    }
    let sleeper_clocks = sleepers
        .iter()
        .map(|s| process_cpu_clock(s.pid))
        .collect::<Result<Vec<_>, _>>()?;

    let (mut side, spec) = kind.setup(&mut shm)?;
    let mut child = ChildProc::spawn_echo(kind.id(), spec)?;
    let child_clock = process_cpu_clock(child.pid)?;
    let m = {
        let alive = || child.alive();
        let cpu = || -> Res<u64> { Ok(own_thread_cpu_ns() + clock_ns(child_clock)?) };
        let sleeper_cpu = || sum_clocks(&sleeper_clocks);
        let probes = Probes {
            cpu: &cpu,
            sleepers: (!sleepers.is_empty()).then_some(&sleeper_cpu as &dyn Fn() -> Res<u64>),
        };
        // After the first round trip the child has mapped everything: unlink the names.
        let m = measure(
            &mut *side,
            &alive,
            opts.secs,
            &mut || shm.unlink_all(),
            &probes,
        )?;
        let got = side.round_trip(STOP, &alive)?;
        if got != STOP {
            return Err(format!("echo mismatch on stop: got {got}").into());
        }
        m
    };
    let exit = child.wait_exit(EXIT_LIMIT)?;
    if !exit.success() {
        return Err(format!("echo child: {}", exit.describe()).into());
    }
    side.after_clean_exit();

    let sleepers = if unsupported {
        Sleepers::Unsupported
    } else if sleepers.is_empty() {
        Sleepers::NotAsked
    } else {
        let mut lifetime_ns = 0;
        for s in &mut sleepers {
            lifetime_ns += s.kill_and_reap()?.cpu_ns;
        }
        drop(keep);
        Sleepers::Measured(SleeperCpu {
            n: sleepers.len(),
            window_ns: m.sleepers_window_ns.unwrap_or(0),
            lifetime_ns,
        })
    };
    Ok(Measured { m, sleepers })
}

/// Sleeper threads; woken and joined on drop if not finished explicitly.
struct SleeperThreads {
    set: Box<dyn ThreadSleepers>,
    handles: Vec<JoinHandle<u64>>,
    clocks: Vec<libc::clockid_t>,
}

impl SleeperThreads {
    fn start(set: Box<dyn ThreadSleepers>, n: usize) -> Res<Self> {
        let mut this = Self {
            set,
            handles: Vec::new(),
            clocks: Vec::new(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        for _ in 0..n {
            let block = this.set.blocker();
            let ready = ready_tx.clone();
            let h = Builder::new()
                .name("pingpong-sleeper".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _ = ready.send(());
                    drop(ready);
                    block();
                    own_thread_cpu_ns()
                })?;
            this.clocks.push(thread_cpu_clock(h.as_pthread_t())?);
            this.handles.push(h);
        }
        for _ in 0..n {
            ready_rx
                .recv_timeout(READY_LIMIT)
                .map_err(|_| "sleeper threads not ready")?;
        }
        Ok(this)
    }

    /// Wakes and joins every sleeper; their total lifetime CPU, nanoseconds.
    fn finish(&mut self) -> Res<u64> {
        let handles = std::mem::take(&mut self.handles);
        if !self.set.wake_all(handles.len()) {
            return Err("could not wake the sleeper threads (left detached)".into());
        }
        handles.into_iter().try_fold(0u64, |acc, h| {
            Ok(acc + h.join().map_err(|_| "sleeper thread panicked")?)
        })
    }
}

impl Drop for SleeperThreads {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            let _ = self.finish();
        }
    }
}

/// In-process row.
pub fn run_thread(kind: &'static dyn ThreadKind, opts: &Options) -> Res<Measured> {
    let mut sleepers = None;
    let mut unsupported = false;
    if opts.sleepers > 0 {
        match kind.sleepers() {
            None => unsupported = true,
            Some(set) => sleepers = Some(SleeperThreads::start(set, opts.sleepers)?),
        }
    }

    let (mut side, echo) = kind.setup();
    // If anything below fails, the echo thread is left detached (it may be blocked).
    let handle = Builder::new().name("pingpong-echo".into()).spawn(echo)?;
    let echo_clock = thread_cpu_clock(handle.as_pthread_t())?;
    let alive = || !handle.is_finished();
    let cpu = || -> Res<u64> { Ok(own_thread_cpu_ns() + clock_ns(echo_clock)?) };
    let sleeper_cpu = || sum_clocks(sleepers.as_ref().map_or(&[][..], |s| &s.clocks));
    let probes = Probes {
        cpu: &cpu,
        sleepers: sleepers
            .is_some()
            .then_some(&sleeper_cpu as &dyn Fn() -> Res<u64>),
    };
    let m = measure(&mut *side, &alive, opts.secs, &mut || {}, &probes)?;
    let got = side.round_trip(STOP, &alive)?;
    if got != STOP {
        return Err(format!("echo mismatch on stop: got {got}").into());
    }
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("echo thread: {e}").into()),
        Err(_) => return Err("echo thread panicked".into()),
    }

    let sleepers = match (unsupported, sleepers) {
        (true, _) => Sleepers::Unsupported,
        (false, None) => Sleepers::NotAsked,
        (false, Some(mut s)) => Sleepers::Measured(SleeperCpu {
            n: s.handles.len(),
            window_ns: m.sleepers_window_ns.unwrap_or(0),
            lifetime_ns: s.finish()?,
        }),
    };
    Ok(Measured { m, sleepers })
}
