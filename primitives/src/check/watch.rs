//! Watched calls: what each thread of a check is doing inside the primitive under test, kept
//! without adding synchronisation between those threads, so a hang report can name the
//! operation every thread is stuck in — for a user's type too, which never registers in the
//! crate's own [wait registry](crate::track::waitreg).
//!
//! Each thread owns one slot (registered once, at its first watched call); a call stores its
//! operation, the object's address and its start time there with relaxed stores to the
//! thread's own slot, and bumps the slot's count of finished calls when it returns. Readers
//! (the watchdog) only ever load. No lock is taken per call, so watching does not order the
//! threads' operations (a global lock per call would hide races).

use crate::sync::{
    book_lock, BookArc, BookAtomicU64, BookMutex, BookOnceLock, BookOrdering as Ordering,
};
use std::time::{Duration, Instant};

/// One thread's slot.
#[derive(Debug)]
struct Slot {
    name: String,
    /// [`WatchedOp`] + 1; 0: not inside a watched call.
    op: BookAtomicU64,
    object: BookAtomicU64,
    /// Nanoseconds since [`epoch`] when the call began.
    since: BookAtomicU64,
    /// Watched calls that returned.
    done: BookAtomicU64,
}

/// The operations a watched call can be (its index + 1 is stored in a slot: no lookup per call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchedOp {
    /// `put`.
    Put,
    /// `take`.
    Take,
    /// `try_put`.
    TryPut,
    /// `try_take`.
    TryTake,
    /// `put_timeout`.
    PutTimeout,
    /// `take_timeout`.
    TakeTimeout,
    /// `read`.
    Read,
    /// `try_read`.
    TryRead,
    /// `swap`.
    Swap,
    /// `lock`.
    Lock,
    /// `lock_timeout`.
    LockTimeout,
    /// `try_lock`.
    TryLock,
    /// `log`.
    Log,
    /// `flush`.
    Flush,
}

/// The names, in the order of [`WatchedOp`].
const OPS: &[&str] = &[
    "put",
    "take",
    "try_put",
    "try_take",
    "put_timeout",
    "take_timeout",
    "read",
    "try_read",
    "swap",
    "lock",
    "lock_timeout",
    "try_lock",
    "log",
    "flush",
];

static SLOTS: BookMutex<Vec<BookArc<Slot>>> = BookMutex::new(Vec::new());

fn epoch() -> Instant {
    static EPOCH: BookOnceLock<Instant> = BookOnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

struct Mine(BookArc<Slot>);
impl Drop for Mine {
    fn drop(&mut self) {
        book_lock(&SLOTS).retain(|s| !BookArc::ptr_eq(s, &self.0));
    }
}

std::thread_local! {
    static MINE: Mine = {
        let slot = BookArc::new(Slot {
            name: {
                let me = std::thread::current();
                me.name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{:?}", me.id()))
            },
            op: BookAtomicU64::new(0),
            object: BookAtomicU64::new(0),
            since: BookAtomicU64::new(0),
            done: BookAtomicU64::new(0),
        });
        book_lock(&SLOTS).push(slot.clone());
        Mine(slot)
    };
}

/// Runs `f` as the watched call `op` on `object`.
pub(crate) fn call<R>(op: WatchedOp, object: usize, f: impl FnOnce() -> R) -> R {
    let code = op as u64 + 1;
    let slot = MINE.try_with(|m| m.0.clone()).ok();
    if let Some(s) = &slot {
        s.since
            .store(epoch().elapsed().as_nanos() as u64, Ordering::Relaxed);
        s.object.store(object as u64, Ordering::Relaxed);
        s.op.store(code, Ordering::Relaxed);
    }
    let r = f();
    if let Some(s) = &slot {
        s.op.store(0, Ordering::Relaxed);
        s.done.fetch_add(1, Ordering::Relaxed);
    }
    r
}

/// Watched calls finished so far, all threads.
pub(crate) fn progress() -> u64 {
    book_lock(&SLOTS)
        .iter()
        .map(|s| s.done.load(Ordering::Relaxed))
        .sum()
}

/// One line per thread now inside a watched call, longest first: "thread 'x' in take on
/// 0x… for 2.1 s".
pub(crate) fn inside() -> Vec<String> {
    let now = epoch().elapsed().as_nanos() as u64;
    let mut v: Vec<(u64, String)> = book_lock(&SLOTS)
        .iter()
        .filter_map(|s| {
            let op = s.op.load(Ordering::Relaxed);
            let op = OPS.get((op as usize).checked_sub(1)?)?;
            let since = s.since.load(Ordering::Relaxed);
            let waited = Duration::from_nanos(now.saturating_sub(since));
            Some((
                since,
                format!(
                    "thread '{}' in {op} on {:#x} for {:.1} s",
                    s.name,
                    s.object.load(Ordering::Relaxed),
                    waited.as_secs_f64()
                ),
            ))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, s)| s).collect()
}
