//! Death beacons: how the kernel tells a sleeper that a participant *process* died, so that
//! robust sleepers need not poll (`/proc`) to find a dead lock holder.
//!
//! ## The mechanism: the kernel's robust-futex list, on a thread of our own
//! When a thread exits — SIGKILL included — Linux walks the *robust list* the thread
//! registered with `set_robust_list(2)` (`kernel/futex/core.c`, `exit_robust_list` →
//! `handle_futex_death`): for each entry, at `entry + futex_offset`, a 32-bit word whose
//! low 30 bits (`FUTEX_TID_MASK`) equal the dying thread's tid is set to
//! `(word & FUTEX_WAITERS) | FUTEX_OWNER_DIED` (tid cleared), and if `FUTEX_WAITERS` was set,
//! **one** waiter of that word is woken (a *shared* futex wake). Words whose tid bits name
//! another thread are left alone; the walk stops at a fault or after 2048 entries.
//!
//! glibc owns the robust list of every thread that runs user code (pthread robust mutexes —
//! e.g. the C plug-in `examples/c-pthread-lock` — rely on it), so this crate does not touch
//! those. Instead each process that joins a segment starts, once, a **beacon thread**: it
//! registers a robust list of its own (its glibc registration is replaced, which loses
//! nothing: the thread never takes a pthread mutex) and then sleeps forever in a futex wait
//! on a private word nobody wakes (no CPU, no wake-ups). Each process-level participant slot
//! of the process ([`super::participants`]) holds a **beacon word** = `beacon tid | WAITERS`
//! and an entry of that list (`Slot::beacon_next`; `futex_offset` is the distance from it to
//! `Slot::beacon`, the same for every slot). When the process dies, its beacon thread's exit
//! marks every beacon word `OWNER_DIED` and wakes one sleeper on each; that sleeper passes the
//! wake on to the others (`futex_wake` all) and runs the usual liveness check, which stays the
//! authority ([`super::identity`]: `/proc` says zombie or gone) — the beacon thread can exit a
//! moment before the process's other threads stop, so a fired beacon means "dying": the
//! sleeper then polls in 1 ms slices until `/proc` agrees.
//!
//! One beacon per process, not per thread: participants that can die on their own are
//! processes (SIGKILL takes the whole thread group). A *thread* that exits holding a lock
//! (a leaked guard) while its process lives is not reported by any beacon; the sleepers' long
//! fallback slice ([`super::watch`]) finds it.
//!
//! The list is kept in step with a private copy of its entries (addresses), under a process
//! lock: entries are linked in before the slot goes `LIVE` and unlinked before the slot is
//! released and before its mapping is unmapped ([`unlink_range`]); the `next` pointers in
//! shared memory are only ever *written* by their owner and read by its kernel, never read
//! back by us — a peer that scribbles on them cannot make this process dereference anything.
//! (It can make our kernel's walk at our death stop early, or mark a word of ours whose tid
//! bits equal our beacon's: it can already corrupt the segment it shares with us.)
//!
//! ## Alternatives weighed
//! * **pidfd** (`pidfd_open` + `poll`): reports a process's exit exactly, but `poll` cannot wait
//!   on a futex word at the same time, so a sleeper would need a helper thread per wait or an
//!   eventfd hand-off from every waker — a system call on every unlock/commit.
//! * **glibc's robust list** (put our lock words on the threads' own lists): glibc owns and
//!   rewrites it (`__pthread_mutex_lock` links, `pthread_create` registers), and our tokens are
//!   not tids; every lock/unlock would also pay a list update.
//! * **A beacon per thread**: would need a helper thread per participant thread.
//!
//! If anything fails (no `set_robust_list`, the thread cannot be spawned, the list is full),
//! the slot's beacon word stays 0 and sleepers watching it keep today's 1–50 ms polling.

use super::WAITERS;
use crate::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sync::futex::{self, Scope};

/// The tid bits of a robust futex word (the kernel's `FUTEX_TID_MASK`; the other two bits are
/// [`WAITERS`] and [`super::OWNER_DIED`], the kernel's `FUTEX_WAITERS` and `FUTEX_OWNER_DIED`).
const TID_MASK: u32 = 0x3fff_ffff;

/// Entries we link at most (the kernel walks at most 2048; beyond ours, nothing).
const MAX_ENTRIES: usize = 1024;

/// `struct robust_list_head` of the kernel's uapi. Lives forever (leaked) once registered.
#[repr(C)]
struct RobustListHead {
    /// `list.next`: the first entry, or the head itself when the list is empty.
    next: AtomicUsize,
    /// From an entry to its futex word.
    futex_offset: isize,
    /// `list_op_pending`: unused (links and unlinks are single stores).
    pending: AtomicUsize,
}

/// The process's beacon (per pid: a forked child starts its own).
struct Beacon {
    pid: u32,
    /// The beacon thread's tid (`None`: beacons unavailable in this process).
    tid: Option<u32>,
    head: Option<&'static RobustListHead>,
    /// The list's entries, in order (addresses of `Slot::beacon_next` fields).
    entries: Vec<usize>,
}

static BEACON: crate::sync::BookMutex<Option<Beacon>> = crate::sync::BookMutex::new(None);

/// A private word the beacon thread sleeps on; nobody ever changes or wakes it.
static PARKED: AtomicU32 = AtomicU32::new(0);

/// The robust list's `futex_offset`: from an entry (a slot's `beacon_next`) to its word (the
/// slot's `beacon`), the same in every slot (the participant table asserts its layout).
pub(super) const FUTEX_OFFSET: isize = -4;

fn futex_offset() -> isize {
    FUTEX_OFFSET
}

/// Starts the beacon thread: it registers its robust list and reports its tid.
fn start() -> Beacon {
    let pid = std::process::id();
    let none = Beacon {
        pid,
        tid: None,
        head: None,
        entries: Vec::new(),
    };
    let head: &'static RobustListHead = Box::leak(Box::new(RobustListHead {
        next: AtomicUsize::new(0),
        futex_offset: futex_offset(),
        pending: AtomicUsize::new(0),
    }));
    // Empty circular list: the head points at itself.
    head.next
        .store(&head.next as *const AtomicUsize as usize, Ordering::SeqCst);
    let (tx, rx) = crate::sync::book_mpsc::channel::<Option<u32>>();
    let spawned = std::thread::Builder::new()
        .name("shm-beacon".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // SAFETY: `head` is a valid robust_list_head that lives forever; its length is
            // the kernel's `sizeof(struct robust_list_head)`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_set_robust_list,
                    head as *const RobustListHead,
                    core::mem::size_of::<RobustListHead>(),
                )
            };
            let _ = tx.send((r == 0).then(super::identity::gettid));
            drop(tx);
            if r != 0 {
                return;
            }
            loop {
                futex::wait_in(Scope::Private, &PARKED, 0, None);
            }
        });
    if spawned.is_err() {
        return none;
    }
    match rx.recv() {
        Ok(Some(tid)) if tid != 0 && tid & !TID_MASK == 0 => Beacon {
            pid,
            tid: Some(tid),
            head: Some(head),
            entries: Vec::new(),
        },
        _ => none,
    }
}

/// Arms the beacon of a process-level slot this process is claiming (before it goes `LIVE`):
/// links the slot into the beacon thread's robust list and stores `tid | WAITERS`. Leaves the
/// word 0 if beacons are unavailable.
pub(super) fn arm(beacon: &AtomicU32, beacon_next: &AtomicU64) {
    let mut g = crate::sync::book_lock(&BEACON);
    if !g.as_ref().is_some_and(|b| b.pid == std::process::id()) {
        *g = Some(start());
    }
    let b = g.as_mut().expect("set above");
    let (Some(tid), Some(head)) = (b.tid, b.head) else {
        return;
    };
    if b.entries.len() >= MAX_ENTRIES {
        return;
    }
    let entry = beacon_next as *const AtomicU64 as usize;
    if b.entries.contains(&entry) {
        return;
    }
    // Push at the front: the new entry points at the old first one, then the head at it;
    // only then is the word armed, so an armed word is always on the list (a death in
    // between finds a word without our tid, which the kernel leaves alone).
    beacon_next.store(head.next.load(Ordering::SeqCst) as u64, Ordering::SeqCst);
    head.next.store(entry, Ordering::SeqCst);
    b.entries.insert(0, entry);
    beacon.store(tid | WAITERS, Ordering::SeqCst);
}

/// Unlinks the entries that lie in `[base, base + len)` (a mapping about to be unmapped).
pub(super) fn unlink_range(base: usize, len: usize) {
    unlink_where(|e| e >= base && e < base + len);
}

/// Unlinks `slot` from this process's list, clears its beacon and wakes its watchers (the
/// participant is leaving: they look again). Nothing if the slot is not ours.
pub(super) fn disarm(beacon: &AtomicU32, beacon_next: &AtomicU64) {
    let entry = beacon_next as *const AtomicU64 as usize;
    if unlink_where(|e| e == entry) {
        beacon.store(0, Ordering::SeqCst);
        futex::wake_in(Scope::Shared, beacon, u32::MAX);
    }
}

/// Unlinks every entry matching `pick`; whether any did. The predecessor of each is found in
/// the private copy, so no pointer is read back from shared memory.
fn unlink_where(pick: impl Fn(usize) -> bool) -> bool {
    let mut g = crate::sync::book_lock(&BEACON);
    let Some(b) = g.as_mut().filter(|b| b.pid == std::process::id()) else {
        return false;
    };
    let Some(head) = b.head else {
        return false;
    };
    let mut any = false;
    let mut i = 0;
    while i < b.entries.len() {
        if !pick(b.entries[i]) {
            i += 1;
            continue;
        }
        let next = b
            .entries
            .get(i + 1)
            .copied()
            .unwrap_or(&head.next as *const AtomicUsize as usize);
        if i == 0 {
            head.next.store(next, Ordering::SeqCst);
        } else {
            // SAFETY: every address in `entries` is the `beacon_next` field of a slot in a
            // mapping that is still mapped (entries are unlinked before their mapping goes).
            let prev = unsafe { &*(b.entries[i - 1] as *const AtomicU64) };
            prev.store(next as u64, Ordering::SeqCst);
        }
        b.entries.remove(i);
        any = true;
    }
    any
}

/// Whether `v` is a live beacon (a tid with `WAITERS`, not marked dead by the kernel).
pub(crate) fn armed(v: u32) -> bool {
    v & WAITERS != 0 && v & super::OWNER_DIED == 0 && v & TID_MASK != 0
}
