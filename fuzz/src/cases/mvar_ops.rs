//! `mvar_ops`: 1–4 threads each run a short operation sequence (put, take, read, try_*, timed
//! operations with deadlines of 0–3 ms, swap) on one MVar, against a model: every value is put
//! at most once (ids are unique), no value is invented, none is removed twice, every value put
//! is removed exactly once by the end (takes, swaps, the resolver and the final drain), a value
//! refused by a failed put never appears, and no thread takes a value it puts only later.
//!
//! The threads are a pool reused across inputs, attached to a [`Sim`]: their deadlines run on a
//! virtual clock, and the harness sees when they all sleep. When every unfinished thread sleeps,
//! the harness acts at once, as the input's `env` list says (then by default): **serve** a
//! legitimate wait with a value of its own, or take one (exactly what a real program's other
//! participants would do); **expire** the earliest timed wait (the virtual clock jumps to its
//! deadline); both at once (the timeout races the grant); or wake a sleeper **spuriously**
//! (every wait must re-check its condition: this is how `mvar-if-not-while` is found). Every
//! thread, the harness included, may also spin 2–40 µs after each wake it issues (the input's
//! `wake_delay`), so that the woken thread runs before its waker goes on: the window in which a
//! waker that wakes before it publishes (`mvar-wake-before-grant`) loses the wake-up. A wait
//! nobody can end (takers asleep on a full box) is a hang, and the deadline watchdog reports it
//! after `FUZZ_DEADLINE_MS` of real time.
//!
//! `FUZZ_CONTROL`: `mvar-wake-before-grant`, `mvar-if-not-while`, `mvar-one-waiter-class` run
//! the same case on that negative control.

use arbitrary::Arbitrary;
use primitives::controls::{TakersOnly, WaitOnce, WakeBeforeGrant};
use primitives::mvar::{MVar, Policy, Reference};
use primitives::sync::sim::Sim;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Most threads and operations per thread a case runs.
const MAX_THREADS: usize = 4;
const MAX_OPS: usize = 12;
/// Values the harness itself puts to resolve a legitimate wait.
const RESOLVER: u32 = 0xf000_0000;

/// A short deadline, 0–3 ms (of the sim's virtual clock).
#[derive(Arbitrary, Clone, Copy)]
pub struct Ms(u8);

impl Ms {
    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0 % 4))
    }
}

impl std::fmt::Debug for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0 % 4)
    }
}

/// One operation.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Put,
    Take,
    Read,
    TryPut,
    TryTake,
    TryRead,
    PutTimeout(Ms),
    TakeTimeout(Ms),
    Swap,
}

/// What the harness does the next time every unfinished thread sleeps.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Env {
    /// Serve a waiter: put a value of its own for a taker/reader/swapper, or take the value for
    /// a putter.
    Serve,
    /// Time out the earliest timed wait.
    Expire,
    /// Time out the earliest timed wait and serve at once: the timeout races the grant.
    ExpireAndServe,
    /// Wake the k-th sleeper spuriously.
    Spurious(u8),
}

/// How long every thread (and the harness) spins after each wake it issues: 0, 2, 10 or 40 µs.
#[derive(Arbitrary, Clone, Copy)]
pub struct WakeDelay(u8);

impl WakeDelay {
    fn get(self) -> Duration {
        Duration::from_micros([0, 2, 10, 40][usize::from(self.0 % 4)])
    }
}

impl std::fmt::Debug for WakeDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}us", self.get().as_micros())
    }
}

/// The case: the delay after wakes, one operation list per thread, then the harness's choices.
#[derive(Arbitrary, Debug)]
pub struct Case {
    pub wake_delay: WakeDelay,
    pub threads: Vec<Vec<Op>>,
    pub env: Vec<Env>,
}

/// What one operation did.
#[derive(Debug, Clone, Copy)]
enum Done {
    Put(u32),
    Refused(u32),
    Took(u32),
    Read(u32),
    Swapped { new: u32, old: u32 },
    Nothing,
}

const RUNNING: u8 = 0;
const WANTS_EMPTY: u8 = 1;
const WANTS_FULL: u8 = 2;
const DONE: u8 = 3;

/// Decodes and runs one input (rejecting oversized ones).
pub fn fuzz(data: &[u8]) {
    let Some(mut case) = crate::decode::<Case>(data) else {
        return;
    };
    case.threads.truncate(MAX_THREADS);
    for t in &mut case.threads {
        t.truncate(MAX_OPS);
    }
    if case.threads.is_empty() {
        return;
    }
    crate::deadline::run("mvar_ops", &case, || match crate::control().as_deref() {
        None => run::<Reference>(&case),
        Some("mvar-wake-before-grant") => run::<WakeBeforeGrant>(&case),
        Some("mvar-if-not-while") => run::<WaitOnce>(&case),
        Some("mvar-one-waiter-class") => run::<TakersOnly>(&case),
        Some(other) => panic!("FUZZ_CONTROL={other}: not a control of mvar_ops"),
    });
}

fn id(thread: usize, op: usize) -> u32 {
    ((thread as u32 + 1) << 8) | op as u32
}

type Job = Box<dyn FnOnce() + Send>;

/// The worker threads, reused across inputs (spawning 1–4 threads per input costs more than
/// most inputs' operations).
fn pool() -> &'static Mutex<Vec<mpsc::Sender<Job>>> {
    static POOL: OnceLock<Mutex<Vec<mpsc::Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs `jobs` on the pool's first `jobs.len()` workers.
fn submit(jobs: Vec<Job>) {
    let mut pool = pool().lock().unwrap_or_else(|e| e.into_inner());
    while pool.len() < jobs.len() {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("mvar_ops-{}", pool.len()))
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawn a worker thread");
        pool.push(tx);
    }
    for (tx, job) in pool.iter().zip(jobs) {
        tx.send(job).expect("a worker thread is gone");
    }
}

/// One thread's share of a run: its state for the harness, its log when done.
struct Slot {
    state: AtomicU8,
    log: Mutex<Option<std::thread::Result<Vec<Done>>>>,
}

/// Runs one thread's operations.
fn ops<P: Policy>(m: &MVar<u32, P>, state: &AtomicU8, t: usize, ops: &[Op]) -> Vec<Done> {
    let mut log = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let v = id(t, i);
        let blocking = |s: u8| state.store(s, Ordering::SeqCst);
        let done = match *op {
            Op::Put => {
                blocking(WANTS_EMPTY);
                m.put(v);
                Done::Put(v)
            }
            Op::Take => {
                blocking(WANTS_FULL);
                Done::Took(m.take())
            }
            Op::Read => {
                blocking(WANTS_FULL);
                Done::Read(m.read())
            }
            Op::Swap => {
                blocking(WANTS_FULL);
                Done::Swapped {
                    new: v,
                    old: m.swap(v),
                }
            }
            Op::TryPut => match m.try_put(v) {
                Ok(()) => Done::Put(v),
                Err(e) => Done::Refused(e.into_inner()),
            },
            Op::TryTake => m.try_take().map_or(Done::Nothing, Done::Took),
            Op::TryRead => m.try_read().map_or(Done::Nothing, Done::Read),
            Op::PutTimeout(d) => {
                blocking(WANTS_EMPTY);
                match m.put_timeout(v, d.get()) {
                    Ok(()) => Done::Put(v),
                    Err(e) => Done::Refused(e.into_inner()),
                }
            }
            Op::TakeTimeout(d) => {
                blocking(WANTS_FULL);
                m.take_timeout(d.get()).map_or(Done::Nothing, Done::Took)
            }
        };
        state.store(RUNNING, Ordering::SeqCst);
        log.push(done);
    }
    log
}

/// The harness's side of a run: what it put and took itself.
struct Harness<'a, P: Policy> {
    m: &'a MVar<u32, P>,
    sim: &'a Sim,
    slots: &'a [Slot],
    env: std::slice::Iter<'a, Env>,
    resolver: Vec<Done>,
}

impl<P: Policy> Harness<'_, P> {
    /// Serves one waiter if the box lets it; returns whether it did.
    fn serve(&mut self) -> bool {
        let wants = |s: u8| {
            self.slots
                .iter()
                .any(|x| x.state.load(Ordering::SeqCst) == s)
        };
        if wants(WANTS_FULL) {
            let v = RESOLVER | self.resolver.len() as u32;
            if self.m.try_put(v).is_ok() {
                self.resolver.push(Done::Put(v));
                return true;
            }
        }
        if wants(WANTS_EMPTY) {
            if let Ok(v) = self.m.try_take() {
                self.resolver.push(Done::Took(v));
                return true;
            }
        }
        false
    }

    /// Everyone left sleeps: act once, as the input says, then by default (serve, else expire).
    /// Returns whether anything was done.
    fn act(&mut self) -> bool {
        let did = match self.env.next() {
            Some(Env::Serve) => self.serve(),
            Some(Env::Expire) => self.sim.expire_next() > 0,
            Some(Env::ExpireAndServe) => {
                let expired = self.sim.expire_next() > 0;
                self.serve() || expired
            }
            Some(Env::Spurious(k)) => self.sim.wake_spuriously(usize::from(*k)),
            None => false,
        };
        did || self.serve() || self.sim.expire_next() > 0
    }
}

/// Runs `case` on an MVar of policy `P` and checks it.
pub fn run<P: Policy>(case: &Case) {
    let m: Arc<MVar<u32, P>> = Arc::new(MVar::with_policy_empty());
    let sim = Sim::new();
    sim.set_wake_delay(case.wake_delay.get());
    let n = case.threads.len();
    let slots: Arc<Vec<Slot>> = Arc::new(
        (0..n)
            .map(|_| Slot {
                state: AtomicU8::new(RUNNING),
                log: Mutex::new(None),
            })
            .collect(),
    );
    let finished = Arc::new(AtomicUsize::new(0));
    // 1 + the first thread that panicked (0: none).
    let failed = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<Job> = case
        .threads
        .iter()
        .cloned()
        .enumerate()
        .map(|(t, list)| {
            let (m, sim, slots, finished, failed) = (
                m.clone(),
                sim.clone(),
                slots.clone(),
                finished.clone(),
                failed.clone(),
            );
            Box::new(move || {
                let r = {
                    let _attached = sim.attach();
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ops(&m, &slots[t].state, t, &list)
                    }))
                };
                let panicked = r.is_err();
                *slots[t].log.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                if panicked {
                    let _ = failed.compare_exchange(0, t + 1, Ordering::SeqCst, Ordering::SeqCst);
                }
                slots[t].state.store(DONE, Ordering::SeqCst);
                finished.fetch_add(1, Ordering::SeqCst);
            }) as Job
        })
        .collect();
    submit(jobs);
    // The harness serves waiters too: its wakes get the same delay.
    let _attached = sim.attach();
    let mut h = Harness {
        m: &m,
        sim: &sim,
        slots: &slots,
        env: case.env.iter(),
        resolver: Vec::new(),
    };
    // Wait for the threads; whenever all unfinished ones sleep, act.
    let mut idle = 0u32;
    loop {
        let done = finished.load(Ordering::SeqCst);
        if done == n {
            break;
        }
        if let Some(t) = failed.load(Ordering::SeqCst).checked_sub(1) {
            // A thread panicked (a broken invariant inside the MVar): fail now, whoever else
            // may still be blocked.
            if let Some(Err(p)) = slots[t]
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                std::panic::resume_unwind(p);
            }
        }
        if sim.asleep() >= n - done {
            // Let a thread that was just woken (it still counts as asleep) run first.
            let seen = sim.activity();
            std::thread::yield_now();
            if sim.activity() == seen
                && finished.load(Ordering::SeqCst) == done
                && sim.asleep() >= n - done
                && h.act()
            {
                idle = 0;
                continue;
            }
        }
        // Nothing to do yet: yield, and after a while sleep a little (a stuck case waits for
        // the deadline watchdog without burning a CPU).
        idle += 1;
        if idle < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(if idle < 1000 { 20 } else { 500 }));
        }
    }
    let logs: Vec<Vec<Done>> = slots
        .iter()
        .map(
            |s| match s.log.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(Ok(l)) => l,
                Some(Err(p)) => std::panic::resume_unwind(p),
                None => unreachable!("a finished thread left its log"),
            },
        )
        .collect();
    let last_value = m.try_take().ok();
    let resolver = std::mem::take(&mut h.resolver);
    check(&logs, &resolver, last_value, case);
}

fn check(logs: &[Vec<Done>], resolver: &[Done], last_value: Option<u32>, case: &Case) {
    let mut put: HashSet<u32> = HashSet::new();
    let mut removed: Vec<u32> = Vec::new();
    let mut refused: HashSet<u32> = HashSet::new();
    let mut read: Vec<u32> = Vec::new();
    let all = logs.iter().flatten().chain(resolver);
    for d in all {
        match *d {
            Done::Put(v) => assert!(put.insert(v), "value {v:#x} put twice: {case:?}"),
            Done::Refused(v) => {
                refused.insert(v);
            }
            Done::Took(v) => removed.push(v),
            Done::Read(v) => read.push(v),
            Done::Swapped { new, old } => {
                assert!(put.insert(new), "value {new:#x} put twice: {case:?}");
                removed.push(old);
            }
            Done::Nothing => {}
        }
    }
    removed.extend(last_value);
    let mut seen = HashSet::new();
    for v in &removed {
        assert!(put.contains(v), "invented value {v:#x} was taken: {case:?}");
        assert!(
            !refused.contains(v),
            "value {v:#x} refused by a put was taken: {case:?}"
        );
        assert!(seen.insert(*v), "value {v:#x} taken twice: {case:?}");
    }
    for v in &read {
        assert!(put.contains(v), "invented value {v:#x} was read: {case:?}");
    }
    assert_eq!(
        seen.len(),
        put.len(),
        "values lost: put {:?}, removed {:?}: {case:?}",
        put,
        removed
    );
    // A thread never gets a value it puts only later.
    for (t, log) in logs.iter().enumerate() {
        for (i, d) in log.iter().enumerate() {
            let got = match *d {
                Done::Took(v) | Done::Read(v) => v,
                Done::Swapped { old, .. } => old,
                _ => continue,
            };
            if got & RESOLVER == 0 && (got >> 8) as usize == t + 1 {
                assert!(
                    ((got & 0xff) as usize) < i,
                    "thread {t} op {i} got its own later value {got:#x}: {case:?}"
                );
            }
        }
    }
}
