//! The scenario catalogue: code that exercises a primitive, written once against the public
//! [`traits`](crate::traits) and the [`sync`](crate::sync) facade's threads, and run by every
//! engine — loom (`tests/loom.rs`), shuttle (`tests/shuttle.rs`), real threads (the `torture`
//! binary) — against the reference primitives, a user's own, or a negative control.
//!
//! A scenario checks its own invariants and panics with a message naming the broken one; a
//! scenario that cannot finish is a hang, which the engine reports (loom and shuttle: "deadlock";
//! torture: its watchdog).

pub mod catalogue;
// The recorded MVar scenarios of the promised properties (one file each, and what they share).
mod mvar_common;
pub mod mvar_deadlines;
pub mod mvar_fifo;
pub mod mvar_read;
pub mod mvar_swap;

// Lock and log scenarios, one file each (their bodies are public, for direct use).
mod delivery;
pub mod lock_nesting_overflow;
pub mod lock_owner_after_exit;
pub mod lock_try_never_waits;
pub mod log_delivered_at_release;
pub mod log_drop_without_flush;
pub mod log_exit_without_flush;
pub mod log_overflow_announced;

use crate::lock::{lock_many, LockClass, Mutex};
use crate::msg::{Message, MessageSink};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{current_thread_id, thread, Arc};
use crate::traits::{LockApi, LogApi, MVarApi};

/// How a scenario makes an MVar of `u64` values: each call, a new, empty one.
pub type MakeMVar<M> = dyn Fn() -> M + Send + Sync;
/// How a scenario makes a lock: each call, a new, free one, tracked as the given class.
pub type MakeLock<L> = dyn Fn(&LockClass) -> L + Send + Sync;
/// How a scenario makes a log: each call, a new one delivering into the given sink, its own
/// sink lock tracked as the given class.
pub type MakeLog<G> = dyn Fn(Delivered, &LockClass) -> G + Send + Sync;

/// A sink that records delivered texts, shared between a log and the scenario checking it.
#[derive(Clone, Debug)]
pub struct Delivered(Arc<crate::lock::Mutex<Vec<String>>>);

impl Default for Delivered {
    fn default() -> Self {
        Delivered::new()
    }
}

impl Delivered {
    /// An empty record.
    pub fn new() -> Delivered {
        Delivered(Arc::new(crate::lock::Mutex::new(Vec::new())))
    }
    /// Records one delivered text (call it from the log's sink).
    pub fn push(&self, text: String) {
        self.0.lock().with_mut(|v| v.push(text));
    }
    /// The texts delivered so far, in delivery order.
    pub fn texts(&self) -> Vec<String> {
        self.0.lock().with(|v| v.clone())
    }
}

impl MessageSink for Delivered {
    fn deliver(&mut self, m: Message) {
        self.push(m.text);
    }
}

/// Sizes of a scenario run. Scale them with the checker: tiny under loom, larger for real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Worker threads (slaves, lockers, loggers).
    pub threads: usize,
    /// Rounds per worker (values, nesting depth, messages).
    pub rounds: usize,
    /// Mode of the lock-order validator that tracks the scenario's locks.
    pub lockdep: crate::lock::Mode,
    /// How the engine schedules threads (some properties are observable only under some).
    pub schedule: Schedule,
}

/// How the engine running a scenario schedules its threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Real threads on real cores: time passes, sleeping lets others run.
    Real,
    /// A randomized scheduler (shuttle random, PCT, uniform random walk): any thread may be
    /// delayed, but a thread that yields many times in a row almost surely lets the others
    /// reach their blocking points first.
    Random,
    /// An exhaustive (or adversarial) scheduler (loom, shuttle DFS, a fuzzed schedule): every
    /// interleaving counts, including those where a thread never runs while another yields.
    Exhaustive,
}

/// What a scenario run checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// It ran and every invariant held.
    Yes,
    /// It did not apply, and why (a capability not declared, a property this engine cannot
    /// observe); engines report it as "not checked", never as a pass of the property.
    Skipped(&'static str),
}

/// A scenario generic over the primitive: `F` is how it makes one (e.g. `dyn Fn() -> M`).
pub struct Scenario<F: ?Sized + 'static> {
    /// Name used on command lines and in reports.
    pub name: &'static str,
    /// The contract property it checks.
    pub about: &'static str,
    /// Runs it once on primitives made by the maker; panics on a broken invariant.
    pub run: fn(&Params, &F) -> Checked,
}

impl<F: ?Sized + 'static> Clone for Scenario<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F: ?Sized + 'static> Copy for Scenario<F> {}
impl<F: ?Sized + 'static> core::fmt::Debug for Scenario<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .finish()
    }
}

impl Params {
    /// The default for the active engine: loom explores every interleaving, so it gets the
    /// smallest size that still shows each defect.
    pub fn for_engine() -> Self {
        if cfg!(loom) {
            Params {
                threads: 2,
                rounds: 1,
                lockdep: crate::lock::Mode::Panic,
                schedule: Schedule::Exhaustive,
            }
        } else if cfg!(shuttle) {
            Params {
                threads: 3,
                rounds: 3,
                lockdep: crate::lock::Mode::Panic,
                schedule: Schedule::Random,
            }
        } else {
            Params {
                threads: 4,
                rounds: 100,
                lockdep: crate::lock::Mode::Panic,
                schedule: Schedule::Real,
            }
        }
    }

    /// The same sizes under `schedule`.
    pub fn with_schedule(self, schedule: Schedule) -> Self {
        Params { schedule, ..self }
    }

    /// The same sizes with the validator in `mode`.
    pub fn with_lockdep(self, mode: crate::lock::Mode) -> Self {
        Params {
            lockdep: mode,
            ..self
        }
    }
}

/// Producer/consumer hand-off: one producer puts `1..=n`, the consumer takes `n` values; with
/// one producer the MVar must deliver them in order, each once, and end empty.
pub fn mvar_handoff<M: MVarApi<u64> + 'static>(m: Arc<M>, n: u64) {
    let p = m.clone();
    let producer = thread::spawn(move || {
        for v in 1..=n {
            p.put(v);
        }
    });
    for want in 1..=n {
        let got = m.take();
        assert_eq!(
            got, want,
            "handoff: value out of order, duplicated or invented"
        );
    }
    producer.join().expect("producer panicked");
    assert_eq!(m.try_take(), None, "handoff: a value was invented");
}

/// Timed and non-blocking operations racing blocking ones: the producer offers with a timeout
/// and `try_put` (falling back to `put` with the value it got back); the consumer takes with a
/// timeout (falling back to `take`). Every value must arrive exactly once, in order.
pub fn mvar_timeouts<M: MVarApi<u64> + 'static>(m: Arc<M>, n: u64) {
    use crate::sync::time::Duration;
    let p = m.clone();
    let producer = thread::spawn(move || {
        for v in 1..=n {
            let v = match p.put_timeout(v, Duration::from_millis(1)) {
                Ok(()) => continue,
                Err(v) => v,
            };
            if let Err(v) = p.try_put(v) {
                p.put(v);
            }
        }
    });
    for want in 1..=n {
        let got = m
            .take_timeout(Duration::from_millis(1))
            .or_else(|| m.try_take())
            .unwrap_or_else(|| m.take());
        assert_eq!(
            got, want,
            "timeouts: value lost, duplicated or out of order"
        );
    }
    producer.join().expect("producer panicked");
    assert_eq!(m.try_take(), None, "timeouts: a value was invented");
}

/// Ping-pong between two MVars: the peer takes from `a` and puts `v + 1` into `b`.
pub fn mvar_ping_pong<M: MVarApi<u64> + 'static>(a: Arc<M>, b: Arc<M>, rounds: u64) {
    let (pa, pb) = (a.clone(), b.clone());
    let peer = thread::spawn(move || {
        for _ in 0..rounds {
            let v = pa.take();
            pb.put(v + 1);
        }
    });
    for i in 0..rounds {
        a.put(2 * i);
        assert_eq!(b.take(), 2 * i + 1, "ping-pong: wrong reply");
    }
    peer.join().expect("peer panicked");
}

/// Seed 000's master/slaves: the master puts one value per slave; each slave takes and puts
/// back `rounds` times, then takes once. Every value must be taken finally exactly once, and
/// the MVar must end empty.
pub fn mvar_master_slaves<M: MVarApi<u64> + 'static>(m: Arc<M>, slaves: usize, rounds: usize) {
    let handles: Vec<_> = (0..slaves)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..rounds {
                    let v = m.take();
                    m.put(v);
                }
                m.take()
            })
        })
        .collect();
    for v in 0..slaves as u64 {
        m.put(v);
    }
    let mut finals: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().expect("slave panicked"))
        .collect();
    finals.sort_unstable();
    let want: Vec<u64> = (0..slaves as u64).collect();
    assert_eq!(
        finals, want,
        "master/slaves: a value was lost, duplicated or invented"
    );
    assert_eq!(
        m.try_take(),
        None,
        "master/slaves: MVar not empty at the end"
    );
}

/// Nested locking: `threads` threads each, `repeats` times, take the lock `depth` times nested
/// (once if it is not reentrant); inside, an owner word checks mutual exclusion.
pub fn nested_locking<L: LockApi + 'static>(
    lock: Arc<L>,
    threads: usize,
    depth: usize,
    repeats: usize,
) {
    let owner = Arc::new(AtomicU64::new(0));
    let depth = if lock.is_reentrant() { depth.max(1) } else { 1 };
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, owner) = (lock.clone(), owner.clone());
            thread::spawn(move || {
                let me = current_thread_id();
                for _ in 0..repeats {
                    let mut guards = Vec::new();
                    for level in 0..depth {
                        guards.push(lock.lock());
                        if level == 0 {
                            let prev = owner.swap(me, Ordering::SeqCst);
                            assert_eq!(prev, 0, "nested lock: two threads inside the lock at once");
                        } else {
                            assert_eq!(
                                owner.load(Ordering::SeqCst),
                                me,
                                "nested lock: lost ownership while nested"
                            );
                        }
                    }
                    assert_eq!(
                        owner.swap(0, Ordering::SeqCst),
                        me,
                        "nested lock: two threads inside the lock at once"
                    );
                    while guards.pop().is_some() {}
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("locker panicked");
    }
}

/// Logging under locks: each thread logs `msgs` messages, alternately while holding `lock` and
/// not. After all threads end, `delivered()` (the sink's texts) must hold every message exactly
/// once, each thread's in order.
pub fn logging_under_locks<G, L>(
    log: Arc<G>,
    lock: Arc<L>,
    threads: usize,
    msgs: usize,
    delivered: impl FnOnce() -> Vec<String>,
) where
    G: LogApi + 'static,
    L: LockApi + 'static,
{
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (log, lock) = (log.clone(), lock.clone());
            thread::spawn(move || {
                for i in 0..msgs {
                    if i % 2 == 0 {
                        let _g = lock.lock();
                        log.log(format!("t{t}-{i}"));
                    } else {
                        log.log(format!("t{t}-{i}"));
                    }
                }
                log.flush();
            })
        })
        .collect();
    for h in handles {
        h.join().expect("logger panicked");
    }
    log.flush();
    let texts = delivered();
    for t in 0..threads {
        let mine: Vec<usize> = texts
            .iter()
            .filter_map(|s| {
                s.strip_prefix(&format!("t{t}-"))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        let want: Vec<usize> = (0..msgs).collect();
        assert_eq!(
            mine, want,
            "logging: thread {t}'s messages lost, duplicated or reordered"
        );
    }
}

/// Seed 001's self-deadlock: code running under the log's own (SYSMSG) lock logs, while
/// another thread logs normally. A buffered log stages the message; an unbuffered one re-takes
/// its sink lock.
pub fn log_inside_sink_lock<G: LogApi + 'static>(
    log: Arc<G>,
    delivered: impl FnOnce() -> Vec<String>,
) {
    let other = log.clone();
    let peer = thread::spawn(move || other.log("logged by a peer".to_string()));
    let l = log.clone();
    log.under_sink_lock(&mut || l.log("logged under the sink lock".to_string()));
    log.flush();
    peer.join().expect("peer logger panicked");
    let texts = delivered();
    for want in ["logged under the sink lock", "logged by a peer"] {
        assert_eq!(
            texts.iter().filter(|t| t.as_str() == want).count(),
            1,
            "log under sink lock: {want:?} lost or duplicated"
        );
    }
}

/// Seed 001's ODB/SYSMSG pair: a client holds ODB and (like `cm_msg`) takes SYSMSG; the
/// watchdog takes them in `watchdog_order` (`false`: ODB first, like everyone; `true`: SYSMSG
/// first — the inversion).
pub fn odb_sysmsg<L: LockApi + 'static>(odb: Arc<L>, sysmsg: Arc<L>, inverted_watchdog: bool) {
    let (o, s) = (odb.clone(), sysmsg.clone());
    let client = thread::spawn(move || {
        let _odb = o.lock();
        let _sysmsg = s.lock();
    });
    {
        if inverted_watchdog {
            let _sysmsg = sysmsg.lock();
            let _odb = odb.lock();
        } else {
            let _odb = odb.lock();
            let _sysmsg = sysmsg.lock();
        }
    }
    client.join().expect("client panicked");
}

/// How an `exch` locks its two buckets.
pub type ExchFn = fn(&[Mutex<u64>], usize, usize);

/// The reference `exch`: [`lock_many`] locks both buckets in index order, a shared bucket once.
pub fn exch_ordered(table: &[Mutex<u64>], a: usize, b: usize) {
    let mut g = lock_many(table, &[a, b]);
    let va = g.with_mut(a, |v| *v);
    let vb = g.with_mut(b, |v| *v);
    g.with_mut(a, |v| *v = vb);
    g.with_mut(b, |v| *v = va);
}

/// Seed 004's `exch`: concurrent exchanges over a bucket table; `pairs[i]` are the buckets
/// thread `i` exchanges, `repeats` times. Values must stay a permutation of the initial ones.
pub fn exch(
    exch_fn: ExchFn,
    table: Arc<Vec<Mutex<u64>>>,
    pairs: &[(usize, usize)],
    repeats: usize,
) {
    let handles: Vec<_> = pairs
        .iter()
        .map(|&(a, b)| {
            let table = table.clone();
            thread::spawn(move || {
                for _ in 0..repeats {
                    exch_fn(&table, a, b)
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("exch panicked");
    }
    let mut vals: Vec<u64> = table.iter().map(|m| m.lock().with(|v| *v)).collect();
    vals.sort_unstable();
    let want: Vec<u64> = (0..table.len() as u64).collect();
    assert_eq!(vals, want, "exch: a value was lost or duplicated");
}
