//! `raw-sync`: a cross-process MVar built on the third-party crate [`raw_sync`] 0.1.5
//! (process-shared pthread `Mutex` and auto-reset `Event` placed in raw memory), in a POSIX shm
//! segment (`shm_open` + `mmap` through `nix`). COMMITS and READ (`is_full`); **not** ROBUST and
//! no HOLDER: `raw_sync::locks::Mutex` is a plain `PTHREAD_PROCESS_SHARED` mutex (not
//! `PTHREAD_MUTEX_ROBUST`) and does not expose its owner.
//!
//! # Design
//!
//! The segment (`create` leaves it in place; `destroy` `shm_unlink`s it) is a header followed
//! by the payload:
//!
//! | offset | what |
//! |---|---|
//! | 0   | `raw_sync` `Mutex` guarding `full` and the payload |
//! | 256 | `raw_sync` `Event` "filled" (auto-reset) |
//! | 512 | `raw_sync` `Event` "emptied" (auto-reset) |
//! | 768 | `magic`, `payload_len`, `full` (0/1), `commits` |
//! | 1024 | the payload bytes |
//!
//! `put`: loop { lock; if empty { copy in; full = 1; commits += 1; unlock; `filled.set(Signaled)`;
//! return Ok } unlock; wait on `emptied` for the time remaining }, `take` symmetric. A `Wait` of
//! zero is one attempt. An event is only a hint ("the box may have changed"): after every wake the
//! box itself is re-checked under the mutex, so a stale or coalesced signal costs a loop, never a
//! value. `full` and `commits` are atomics written under the mutex, so `is_full` / `commits` read
//! them without locking.
//!
//! # What torture found
//!
//! - **raw_sync bug: finite timeouts fail at random with EINVAL.** `raw_sync`'s
//!   `abs_timespec_from_duration` adds `Duration::subsec_nanos()` to `CLOCK_REALTIME`'s `tv_nsec`
//!   without carrying into `tv_sec`, so whenever the sum reaches 10^9 the deadline is an invalid
//!   timespec and `pthread_cond_timedwait` (inside `Event::wait(Timeout::Val(d))`) returns EINVAL;
//!   `Event::wait` reports it as the same "Failed waiting for signal" as a timeout. torture's
//!   workers always pass a finite safety valve, so the straight design (treat such an error as an
//!   error) fails a plain run within the first rounds: set `RAWSYNC_NO_WORKAROUND=1` to see it.
//!   The workaround used by default: wait in whole seconds while at least a second remains
//!   (`subsec_nanos() == 0` cannot overflow), and treat an `Event::wait` error before the
//!   deadline as a spurious wake (re-check the box and the clock, wait again); near the deadline
//!   that can spin for the fraction of a second during which `tv_nsec + rest >= 10^9`.
//! - Without kills the design passes: `mvar --impl raw-sync --procs 20` and `--procs 50`
//!   (10 rounds), five `--procs 50 --rounds 1000` runs and one `--procs 50 --rounds 3000`
//!   (300,100 commits in 1.6 s): every value accounted for, the box empty, linearizable where
//!   checked (runs of at most 1000 operations). No lost wake-up, duplicate or torn value.
//! - With kills (`--procs 50 --rounds 3000 --kill-rate 20`) it is not robust, as declared: every
//!   run (5 of 5) ended in "HANG after a kill" after 150-185 kills, all workers asleep in a futex.
//!   Reading the segment of a hung run (`/proc/PID/mem`) showed the *box's* mutex free and the
//!   pthread mutex *inside the "filled" `Event`* held (owner tid dead): a worker was killed inside
//!   `Event::set`/`Event::wait`, between raw_sync's internal lock and unlock. raw_sync gives no
//!   way to make either its `Mutex` or its `Event`s robust (no `PTHREAD_MUTEX_ROBUST`, no
//!   EOWNERDEAD handling), so this cannot be fixed from the outside; a worker killed holding the
//!   box's mutex, or between consuming an event and re-checking the box, would wedge it as well.

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::{fstat, Mode};
use raw_sync::events::{Event, EventImpl, EventInit, EventState};
use raw_sync::locks::{LockImpl, LockInit, Mutex};
use raw_sync::Timeout;
use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use torture::{Caps, CrossMVar, MVarHandle, Status, Wait};

/// The implementation.
pub struct RawSync;

pub(crate) const MUTEX_AT: usize = 0;
const FILLED_AT: usize = 256;
const EMPTIED_AT: usize = 512;
pub(crate) const HEADER_AT: usize = 768;
pub(crate) const PAYLOAD_AT: usize = 1024;
const MAGIC: u32 = 0x5241_5753; // "RAWS"

/// Our part of the header (after the three raw_sync objects).
#[repr(C)]
struct Header {
    magic: AtomicU32,
    full: AtomicU32,
    payload_len: AtomicU64,
    commits: AtomicU64,
}

/// A mapping of a whole segment.
pub(crate) struct Map {
    base: NonNull<c_void>,
    len: usize,
}

impl Map {
    pub(crate) fn open(name: &str, create: Option<usize>) -> Result<Map, String> {
        let flags = match create {
            Some(_) => OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
            None => OFlag::O_RDWR,
        };
        let fd = shm_open(name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("shm_open {name}: {e}"))?;
        let len = match create {
            Some(len) => {
                nix::unistd::ftruncate(&fd, len as i64).map_err(|e| format!("ftruncate: {e}"))?;
                len
            }
            None => fstat(&fd).map_err(|e| format!("fstat: {e}"))?.st_size as usize,
        };
        if len < PAYLOAD_AT {
            return Err(format!("{name}: segment of {len} bytes is too small"));
        }
        // SAFETY: a fresh shared mapping of the whole segment; nothing else is mapped there.
        let base = unsafe {
            mmap(
                None,
                NonZeroUsize::new(len).expect("len >= PAYLOAD_AT"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        Ok(Map { base, len })
    }

    pub(crate) fn at(&self, off: usize) -> *mut u8 {
        // SAFETY: every offset used is below PAYLOAD_AT + payload_len <= len.
        unsafe { self.base.as_ptr().cast::<u8>().add(off) }
    }

    fn header(&self) -> &Header {
        // SAFETY: HEADER_AT is page-offset 768 (aligned) and the header fits before PAYLOAD_AT;
        // all its fields are atomics, so shared references across processes are fine.
        unsafe { &*self.at(HEADER_AT).cast::<Header>() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer referenced (the raw_sync objects pointing into it
        // are dropped before it: they are declared first in `Handle`).
        let _ = unsafe { munmap(self.base, self.len) };
    }
}

impl CrossMVar for RawSync {
    fn caps(&self) -> Caps {
        Caps {
            robust: false,
            holder: false,
            commits: true,
            read: true,
        }
    }

    fn create(&self, name: &str, payload_len: usize) -> Result<(), String> {
        let map = Map::open(name, Some(PAYLOAD_AT + payload_len.max(1)))?;
        let init = || -> Result<(), String> {
            // SAFETY: fresh zeroed memory of the segment, sized by raw_sync's own size_of
            // (checked against the fixed slots below), not yet seen by any other process.
            unsafe {
                assert!(Mutex::size_of(None) <= FILLED_AT - MUTEX_AT);
                assert!(Event::size_of(None) + 8 <= EMPTIED_AT - FILLED_AT);
                Mutex::new(map.at(MUTEX_AT), map.at(PAYLOAD_AT)).map_err(|e| e.to_string())?;
                Event::new(map.at(FILLED_AT), true).map_err(|e| e.to_string())?;
                Event::new(map.at(EMPTIED_AT), true).map_err(|e| e.to_string())?;
            }
            let h = map.header();
            h.full.store(0, Ordering::Relaxed);
            h.commits.store(0, Ordering::Relaxed);
            h.payload_len.store(payload_len as u64, Ordering::Relaxed);
            h.magic.store(MAGIC, Ordering::Release);
            Ok(())
        };
        // The segment outlives this call (and this mapping): `destroy` unlinks it.
        init().inspect_err(|_| {
            let _ = shm_unlink(name);
        })
    }

    fn open(&self, name: &str) -> Result<Box<dyn MVarHandle>, String> {
        let map = Map::open(name, None)?;
        let h = map.header();
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(format!("{name}: not a raw-sync box"));
        }
        let payload_len = h.payload_len.load(Ordering::Relaxed) as usize;
        if PAYLOAD_AT + payload_len > map.len {
            return Err(format!("{name}: payload of {payload_len} does not fit"));
        }
        // SAFETY: the objects were initialised by `create` at these offsets.
        let (lock, filled, emptied) = unsafe {
            (
                Mutex::from_existing(map.at(MUTEX_AT), map.at(PAYLOAD_AT))
                    .map_err(|e| e.to_string())?
                    .0,
                Event::from_existing(map.at(FILLED_AT))
                    .map_err(|e| e.to_string())?
                    .0,
                Event::from_existing(map.at(EMPTIED_AT))
                    .map_err(|e| e.to_string())?
                    .0,
            )
        };
        Ok(Box::new(Handle {
            lock,
            filled,
            emptied,
            payload_len,
            workaround: std::env::var_os("RAWSYNC_NO_WORKAROUND").is_none(),
            map,
        }))
    }

    fn destroy(&self, name: &str) {
        let _ = shm_unlink(name);
    }
}

/// One process's handle (fields drop in order: the raw_sync objects before the mapping).
struct Handle {
    lock: Box<dyn LockImpl>,
    filled: Box<dyn EventImpl>,
    emptied: Box<dyn EventImpl>,
    payload_len: usize,
    /// Work around raw_sync's unnormalised timespec (see the module doc).
    workaround: bool,
    map: Map,
}

impl Handle {
    /// The MVar loop: `attempt` runs under the box's mutex with `full`, returns whether it did
    /// its part; on success `done` is signalled, otherwise `wake` is waited on.
    fn run(
        &self,
        wait: Wait,
        attempt: &mut dyn FnMut(*mut u8, &Header) -> bool,
        done: &dyn EventImpl,
        wake: &dyn EventImpl,
    ) -> Status {
        let deadline = wait.map(|d| Instant::now() + d);
        let h = self.map.header();
        loop {
            let did = match self.lock.lock() {
                Ok(_guard) => attempt(self.map.at(PAYLOAD_AT), h),
                Err(e) => return Status::Error(format!("raw_sync Mutex::lock: {e}")),
            };
            if did {
                return match done.set(EventState::Signaled) {
                    Ok(()) => Status::Ok,
                    Err(e) => Status::Error(format!("raw_sync Event::set: {e}")),
                };
            }
            let timeout = match deadline {
                None => Timeout::Infinite,
                Some(dl) => {
                    let left = dl.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Status::Timeout;
                    }
                    if self.workaround && left >= Duration::from_secs(1) {
                        Timeout::Val(Duration::from_secs(left.as_secs()))
                    } else {
                        Timeout::Val(left)
                    }
                }
            };
            if let Err(e) = wake.wait(timeout) {
                // raw_sync reports a timeout and any other failure alike.
                match deadline {
                    Some(dl) if Instant::now() >= dl => return Status::Timeout,
                    Some(_) if self.workaround => {} // EINVAL from its timespec: wait again
                    _ => return Status::Error(format!("raw_sync Event::wait: {e}")),
                }
            }
        }
    }
}

impl MVarHandle for Handle {
    fn put(&self, value: &[u8], wait: Wait) -> Status {
        let n = self.payload_len.min(value.len());
        self.run(
            wait,
            &mut |payload, h| {
                if h.full.load(Ordering::Relaxed) != 0 {
                    return false;
                }
                // SAFETY: the payload area holds payload_len bytes; we hold the box's mutex.
                unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), payload, n) };
                h.full.store(1, Ordering::Release);
                h.commits.fetch_add(1, Ordering::Release);
                true
            },
            &*self.filled,
            &*self.emptied,
        )
    }

    fn take(&self, out: &mut [u8], wait: Wait) -> Status {
        let n = self.payload_len.min(out.len());
        self.run(
            wait,
            &mut |payload, h| {
                if h.full.load(Ordering::Relaxed) == 0 {
                    return false;
                }
                // SAFETY: as in `put`.
                unsafe { std::ptr::copy_nonoverlapping(payload, out.as_mut_ptr(), n) };
                h.full.store(0, Ordering::Release);
                h.commits.fetch_add(1, Ordering::Release);
                true
            },
            &*self.emptied,
            &*self.filled,
        )
    }

    fn payload_len(&self) -> usize {
        self.payload_len
    }

    fn holder(&self) -> Option<Option<u32>> {
        None
    }

    fn commits(&self) -> Option<u64> {
        Some(self.map.header().commits.load(Ordering::Acquire))
    }

    fn is_full(&self) -> Option<bool> {
        Some(self.map.header().full.load(Ordering::Acquire) != 0)
    }
}
