//! The worker: hammer threads on the shared locks and logger, a main thread that forks, and the
//! child's body (see the module docs of [`super`]).

use super::Spec;
use crate::prng::SplitMix64;
use crate::procs::ledger::{now_ns, Op, Record, Writer};
use crate::procs::WorkerArgs;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use primitives::lock::{Mode, Mutex, RawMutex, ReentrantLock, Validator};
use primitives::msg::{Message, MessageLog, MessageSink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sink that keeps a count and the last text (a little work under the sink lock).
#[derive(Default)]
struct Tally {
    delivered: u64,
    last: String,
}

impl MessageSink for Tally {
    fn deliver(&mut self, m: Message) {
        self.delivered += 1;
        self.last.clear();
        self.last.push_str(&m.text);
    }
}

/// What the hammer threads and the children share.
struct Shared {
    outer: ReentrantLock<AtomicU64>,
    inner: ReentrantLock<AtomicU64>,
    counter: Mutex<u64>,
    raw: RawMutex,
    log: MessageLog<Tally>,
    stop: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        let v = Validator::new(Mode::Off);
        let log = MessageLog::with_class(Tally::default(), &v.class("fork.sink", false));
        Shared {
            outer: ReentrantLock::tracked(AtomicU64::new(0), &v.class("fork.outer", true)),
            inner: ReentrantLock::tracked(AtomicU64::new(0), &v.class("fork.inner", true)),
            counter: Mutex::new(0),
            raw: RawMutex::new("fork.raw"),
            log,
            stop: AtomicBool::new(false),
        }
    }
}

/// One hammer thread: nested locks, a log line under them (staged, delivered at the outermost
/// release), the counter mutex, the raw mutex, and now and then a log line without locks.
fn hammer(s: &Shared, me: u32) {
    let mut n: u64 = 0;
    while !s.stop.load(Ordering::Relaxed) {
        n += 1;
        {
            let a = s.outer.lock();
            let _again = s.outer.lock();
            let b = s.inner.lock();
            a.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(1, Ordering::Relaxed);
            s.log.log(format!("hammer {me} round {n} under locks"));
            s.counter.lock().with_mut(|c| *c += 1);
        }
        s.raw.lock();
        std::hint::black_box(n);
        // SAFETY: this thread took `raw` on the line above.
        unsafe { s.raw.unlock() };
        if n % 4 == 0 {
            s.log.log(format!("hammer {me} round {n}"));
        }
    }
}

/// Runs the worker; its exit code (0, 1: a child failed or hung, 2: setup).
pub fn run(w: &WorkerArgs) -> u8 {
    let spec: Spec = match w.spec() {
        Ok(s) => s,
        Err(e) => {
            crate::out::warn!("fork worker: {e}");
            return 2;
        }
    };
    let mut ledger = match Writer::open(&w.ledger) {
        Ok(l) => l,
        Err(e) => {
            crate::out::warn!("fork worker: ledger: {e}");
            return 2;
        }
    };
    let dir = w.ledger.parent().unwrap_or(Path::new(".")).to_path_buf();
    if spec.control.is_some() {
        primitives::controls::without_fork_handling();
    }
    let shared = Arc::new(Shared::new());
    let threads: Vec<_> = (0..spec.threads)
        .map(|i| {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("hammer-{i}"))
                .spawn(move || hammer(&s, i))
        })
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            crate::out::warn!("fork worker: cannot start a hammer thread: {e}");
            std::process::exit(2)
        });
    let code = fork_rounds(&spec, &shared, &dir, &mut ledger);
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    code
}

/// Forks at random moments until `forks` or `duration`; waits for each child.
fn fork_rounds(spec: &Spec, s: &Shared, dir: &Path, ledger: &mut Writer) -> u8 {
    let mut rng = SplitMix64::new(spec.seed);
    let start = Instant::now();
    let duration = Duration::from_millis(spec.duration_ms);
    let limit = Duration::from_millis(spec.child_limit_ms);
    let parent = std::process::id();
    // Let the hammer threads get going.
    std::thread::sleep(Duration::from_millis(5));
    for n in 1..=u64::from(spec.forks) {
        if start.elapsed() >= duration {
            break;
        }
        // A random moment: 0–500 µs from now.
        std::thread::sleep(Duration::from_micros(rng.below(500) as u64));
        ledger.record(&Record::Begin {
            op: Op::Fork,
            id: Some(n),
            start_ns: now_ns(),
            deadline_ns: None,
        });
        // SAFETY: the child runs `child`, which calls only the primitives (made fork-safe by
        // their atfork handlers: what this scenario tests), malloc (fork-safe in glibc),
        // system calls, and `_exit` — never std's locks (stdout, stderr) another thread may
        // have held.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => child(s, dir, n, parent, limit),
            Ok(ForkResult::Parent { child }) => match wait_child(child, limit) {
                Some(WaitStatus::Exited(_, 0)) => ledger.record(&Record::Done {
                    op: Op::Fork,
                    id: Some(n),
                    end_ns: Some(now_ns()),
                }),
                Some(st) => {
                    crate::out::warn!("fork worker: child {child} of fork {n} ended with {st:?}");
                    return 1;
                }
                None => {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    crate::out::warn!(
                        "fork worker: child {child} of fork {n} still running after {limit:?}; killed"
                    );
                    return 1;
                }
            },
            Err(e) => {
                crate::out::warn!("fork worker: fork: {e}");
                return 2;
            }
        }
    }
    0
}

/// Waits up to `limit` for `pid` to end.
fn wait_child(pid: Pid, limit: Duration) -> Option<WaitStatus> {
    let until = Instant::now() + limit;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(st) => return Some(st),
            Err(_) => return None,
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The child's ledger path for fork `n`.
fn child_ledger(dir: &Path, n: u64, pid: u32) -> PathBuf {
    dir.join(format!("child-{n}-{pid}.ledger"))
}

/// The child: every lock, a staged and an unstaged log line, then `_exit`. Never returns.
fn child(s: &Shared, dir: &Path, n: u64, parent: u32, limit: Duration) -> ! {
    // Dies with the worker's forking thread; and, a safety valve only, by itself long after
    // the runner would have judged it.
    // SAFETY: prctl and alarm are async-signal-safe system calls without pointer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::alarm(limit.as_secs() as u32 + 5);
    }
    let code = match Writer::open(&child_ledger(dir, n, std::process::id())) {
        Ok(mut l) => use_everything(s, &mut l, n, parent),
        Err(_) => 3,
    };
    // SAFETY: `_exit` ends the child at once, without the parent's atexit handlers or
    // destructors (the other threads' state is not ours to tear down).
    unsafe { libc::_exit(code) }
}

fn begin(l: &mut Writer, op: Op, id: u64) {
    l.record(&Record::Begin {
        op,
        id: Some(id),
        start_ns: now_ns(),
        deadline_ns: None,
    });
}

fn taken(l: &mut Writer, k: u64, vanished: bool, parent: u32) {
    if vanished {
        l.record(&Record::Recovered {
            op: Op::Lock,
            from: parent,
        });
    }
    l.record(&Record::Done {
        op: Op::Lock,
        id: Some(k),
        end_ns: None,
    });
}

/// Takes every lock (in the hammer threads' order), logs under them and after; its exit code.
fn use_everything(s: &Shared, l: &mut Writer, n: u64, parent: u32) -> i32 {
    begin(l, Op::Lock, 0);
    let a = s.outer.lock();
    taken(l, 0, a.owner_vanished_in_fork(), parent);
    begin(l, Op::Lock, 1);
    let b = s.inner.lock();
    taken(l, 1, b.owner_vanished_in_fork(), parent);
    begin(l, Op::Lock, 2);
    let c = s.counter.lock();
    taken(l, 2, c.owner_vanished_in_fork(), parent);
    drop(c);
    begin(l, Op::Lock, 3);
    let took = s.raw.acquire(None);
    taken(l, 3, took.is_some_and(|t| t.owner_vanished()), parent);
    // SAFETY: this thread took `raw` just above (`acquire(None)` waits until it has it).
    unsafe { s.raw.unlock() };
    begin(l, Op::Log, n);
    s.log.log(format!("child of fork {n} under locks")); // staged
    let before = s.log.with_sink(|t| t.delivered);
    drop((b, a)); // the outermost release flushes the stage: the sink lock
    s.log.log(format!("child of fork {n}")); // straight to the sink
    let after = s.log.with_sink(|t| t.delivered);
    l.record(&Record::Done {
        op: Op::Log,
        id: Some(n),
        end_ns: None,
    });
    l.record(&Record::Released { op: Op::Lock });
    if after != before + 2 {
        return 4;
    }
    0
}
