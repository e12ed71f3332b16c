//! `raw-sync` (lock): the `raw_sync` crate's process-shared `Mutex` (a pthread mutex in the
//! segment, default type) as a cross-process lock, through the public plug-in traits.
//! Capabilities: none — not robust (a holder killed leaves it locked), cannot name its holder,
//! not reentrant (torture's traffic then never re-enters).
//!
//! Timeouts go through `try_lock(Timeout::Val(d))`, whose deadline has the same unnormalised
//! timespec as `Event::wait` (see `rawsync.rs`): the same workaround (whole seconds while a
//! second remains; an error before the deadline is tried again) unless `RAWSYNC_NO_WORKAROUND`.

use crate::rawsync::{Map, HEADER_AT, MUTEX_AT, PAYLOAD_AT};
use raw_sync::locks::{LockImpl, LockInit, Mutex};
use raw_sync::Timeout;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use torture::{CrossLock, LockCaps, LockHandle, Status, Wait};

/// The implementation.
pub struct RawSyncLock;

/// Written last at creation: a segment without it is not (yet) a lock.
const MAGIC: u32 = 0x5241_574c; // "RAWL"

fn magic(map: &Map) -> &AtomicU32 {
    // SAFETY: HEADER_AT is inside the mapping (at least PAYLOAD_AT bytes) and aligned.
    unsafe { &*map.at(HEADER_AT).cast::<AtomicU32>() }
}

impl CrossLock for RawSyncLock {
    fn caps(&self) -> LockCaps {
        LockCaps::default()
    }

    fn create(&self, name: &str) -> Result<(), String> {
        let map = Map::open(name, Some(PAYLOAD_AT))?;
        // SAFETY: the mutex area is inside the fresh mapping and large enough (asserted).
        let made = unsafe {
            assert!(Mutex::size_of(None) <= HEADER_AT - MUTEX_AT);
            Mutex::new(map.at(MUTEX_AT), map.at(PAYLOAD_AT - 1))
        };
        match made {
            Ok(_) => {
                magic(&map).store(MAGIC, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let _ = nix::sys::mman::shm_unlink(name);
                Err(e.to_string())
            }
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn LockHandle>, String> {
        let map = Map::open(name, None)?;
        if magic(&map).load(Ordering::Acquire) != MAGIC {
            return Err(format!("{name}: not a raw-sync lock"));
        }
        // SAFETY: a mutex initialised by `create` in this segment.
        let lock = unsafe { Mutex::from_existing(map.at(MUTEX_AT), map.at(PAYLOAD_AT - 1)) }
            .map_err(|e| e.to_string())?
            .0;
        Ok(Box::new(Handle {
            lock,
            workaround: std::env::var_os("RAWSYNC_NO_WORKAROUND").is_none(),
            _map: map,
        }))
    }

    fn destroy(&self, name: &str) {
        let _ = nix::sys::mman::shm_unlink(name);
    }
}

/// One process's handle (the mutex object before the mapping it points into).
struct Handle {
    lock: Box<dyn LockImpl>,
    workaround: bool,
    _map: Map,
}

impl LockHandle for Handle {
    fn acquire(&self, wait: Wait) -> Status {
        let Some(d) = wait else {
            return match self.lock.lock() {
                Ok(g) => {
                    // Held until `release` (the seam's acquire/release pair).
                    std::mem::forget(g);
                    Status::Ok
                }
                Err(e) => Status::Error(format!("raw_sync Mutex::lock: {e}")),
            };
        };
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = if self.workaround && left >= Duration::from_secs(1) {
                Duration::from_secs(left.as_secs())
            } else {
                left
            };
            match self.lock.try_lock(Timeout::Val(chunk)) {
                Ok(g) => {
                    std::mem::forget(g);
                    return Status::Ok;
                }
                // raw_sync reports a timeout and any other failure alike.
                Err(_) if Instant::now() >= deadline => return Status::Timeout,
                Err(_) if self.workaround => {}
                Err(e) => return Status::Error(format!("raw_sync Mutex::try_lock: {e}")),
            }
        }
    }

    fn release(&self) -> Status {
        match self.lock.release() {
            Ok(()) => Status::Ok,
            Err(e) => Status::Error(format!("raw_sync Mutex::release: {e}")),
        }
    }

    fn holder(&self) -> Option<Option<u32>> {
        None
    }
}
