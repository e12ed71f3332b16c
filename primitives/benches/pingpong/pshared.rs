//! (a) "pthread pshared MVar": one MVar per POSIX shared-memory segment, holding ONE
//! `pthread_mutex_t` and TWO `pthread_cond_t` ("not full", "not empty") initialised in
//! place with `PTHREAD_PROCESS_SHARED`, plus a full flag and a `u64` payload.
//!
//! The mutex is also `PTHREAD_MUTEX_ROBUST`: if a peer dies holding it, the next locker
//! gets `EOWNERDEAD` (reported as an error) instead of hanging. Condition variables use
//! `CLOCK_MONOTONIC` so the parent can wait in slices and notice a dead child.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::kinds::{ChildSpec, ParentSide, ProcessKind, SleeperSpec, STOP};
use crate::sys::{Error, Res, ShmMap, ShmNames};

/// Written last by the creator; checked by openers.
const MAGIC: u64 = 0x7074_6d76_6172_0001;
/// The parent waits in slices of this length and checks the child between slices.
const SLICE_NS: i64 = 100_000_000;

/// The segment's layout. `full` and `payload` are only accessed with `mutex` held.
#[repr(C)]
struct RawMVar {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    not_full: UnsafeCell<libc::pthread_cond_t>,
    not_empty: UnsafeCell<libc::pthread_cond_t>,
    full: UnsafeCell<u32>,
    payload: UnsafeCell<u64>,
    magic: AtomicU64,
}

fn check(r: c_int, what: &str) -> Res<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(format!("{what}: {}", io::Error::from_raw_os_error(r)).into())
    }
}

/// A process-shared MVar living in its own segment (mapped for as long as this lives).
struct PsharedMVar {
    map: ShmMap,
}

impl PsharedMVar {
    /// Creates the segment `name` and initialises the MVar in place, empty.
    fn create(name: &str) -> Res<Self> {
        let this = Self {
            map: ShmMap::create(name, size_of::<RawMVar>())?,
        };
        this.init()?;
        Ok(this)
    }

    /// Maps an MVar created by another process.
    fn open(name: &str) -> Res<Self> {
        let this = Self {
            map: ShmMap::open(name, size_of::<RawMVar>())?,
        };
        if this.raw().magic.load(Ordering::Acquire) != MAGIC {
            return Err(format!("segment {name} holds no initialised MVar").into());
        }
        Ok(this)
    }

    fn raw(&self) -> &RawMVar {
        // SAFETY: the mapping is page-aligned, >= size_of::<RawMVar>() (checked at create/open),
        // lives as long as `self`; every field is valid for any bit pattern, and shared mutation
        // goes through `UnsafeCell` (under the mutex) or the atomic.
        unsafe { &*self.map.as_ptr().cast::<RawMVar>() }
    }

    fn init(&self) -> Res<()> {
        let raw = self.raw();
        let mut mattr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `mattr` is writable storage for an attribute object.
        let r = unsafe { libc::pthread_mutexattr_init(mattr.as_mut_ptr()) };
        check(r, "pthread_mutexattr_init")?;
        let mattr = mattr.as_mut_ptr();
        let result = (|| {
            // SAFETY: `mattr` was initialised by pthread_mutexattr_init above.
            let r =
                unsafe { libc::pthread_mutexattr_setpshared(mattr, libc::PTHREAD_PROCESS_SHARED) };
            check(r, "pthread_mutexattr_setpshared")?;
            // SAFETY: as above.
            let r = unsafe { libc::pthread_mutexattr_setrobust(mattr, libc::PTHREAD_MUTEX_ROBUST) };
            check(r, "pthread_mutexattr_setrobust")?;
            // SAFETY: the mutex storage is in the mapping, not yet used by anyone (the
            // segment was just created with O_EXCL and no other process knows it yet).
            let r = unsafe { libc::pthread_mutex_init(raw.mutex.get(), mattr) };
            check(r, "pthread_mutex_init")
        })();
        // SAFETY: `mattr` is initialised and no longer needed.
        unsafe { libc::pthread_mutexattr_destroy(mattr) };
        result?;

        let mut cattr = MaybeUninit::<libc::pthread_condattr_t>::uninit();
        // SAFETY: `cattr` is writable storage for an attribute object.
        let r = unsafe { libc::pthread_condattr_init(cattr.as_mut_ptr()) };
        check(r, "pthread_condattr_init")?;
        let cattr = cattr.as_mut_ptr();
        let result = (|| {
            // SAFETY: `cattr` was initialised by pthread_condattr_init above.
            let r =
                unsafe { libc::pthread_condattr_setpshared(cattr, libc::PTHREAD_PROCESS_SHARED) };
            check(r, "pthread_condattr_setpshared")?;
            // SAFETY: as above.
            let r = unsafe { libc::pthread_condattr_setclock(cattr, libc::CLOCK_MONOTONIC) };
            check(r, "pthread_condattr_setclock")?;
            for cv in [&raw.not_full, &raw.not_empty] {
                // SAFETY: storage in the mapping, not yet used by anyone (see above).
                let r = unsafe { libc::pthread_cond_init(cv.get(), cattr) };
                check(r, "pthread_cond_init")?;
            }
            Ok::<(), Error>(())
        })();
        // SAFETY: `cattr` is initialised and no longer needed.
        unsafe { libc::pthread_condattr_destroy(cattr) };
        result?;

        // `full` and `payload` are already 0 (fresh segment). Publish.
        raw.magic.store(MAGIC, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> Res<Locked<'_>> {
        let raw = self.raw();
        // SAFETY: the mutex was initialised in place (magic checked) and is mapped.
        let r = unsafe { libc::pthread_mutex_lock(raw.mutex.get()) };
        if r != 0 && r != libc::EOWNERDEAD {
            return Err(format!("pthread_mutex_lock: {}", io::Error::from_raw_os_error(r)).into());
        }
        // From here on we hold the mutex; the guard releases it.
        let guard = Locked { raw };
        if r == libc::EOWNERDEAD {
            return Err(guard.owner_died());
        }
        Ok(guard)
    }

    /// Puts `v`, waiting while full. `peer_alive`: wait in slices and give up once it is
    /// false; `None`: wait indefinitely.
    fn put(&self, v: u64, peer_alive: Option<&dyn Fn() -> bool>) -> Res<()> {
        let g = self.lock()?;
        while g.full() {
            g.wait(&g.raw.not_full, peer_alive)?;
        }
        g.fill(v);
        g.signal(&g.raw.not_empty)
    }

    /// Takes the value, waiting while empty (see [`Self::put`] for `peer_alive`).
    fn take(&self, peer_alive: Option<&dyn Fn() -> bool>) -> Res<u64> {
        let g = self.lock()?;
        while !g.full() {
            g.wait(&g.raw.not_empty, peer_alive)?;
        }
        let v = g.empty();
        g.signal(&g.raw.not_full)?;
        Ok(v)
    }

    /// Destroys the mutex and condition variables.
    ///
    /// # Safety
    /// No thread of any process may be using or waiting on them, now or later.
    unsafe fn destroy(&self) {
        let raw = self.raw();
        raw.magic.store(0, Ordering::Release);
        // SAFETY: initialised in place; unused by anyone per the caller's contract.
        unsafe {
            libc::pthread_cond_destroy(raw.not_full.get());
            libc::pthread_cond_destroy(raw.not_empty.get());
            libc::pthread_mutex_destroy(raw.mutex.get());
        }
    }
}

/// Proof that the calling thread holds the MVar's mutex; unlocks on drop.
struct Locked<'a> {
    raw: &'a RawMVar,
}

impl Locked<'_> {
    fn full(&self) -> bool {
        // SAFETY: `full` is only accessed with the mutex held, which `self` proves.
        unsafe { *self.raw.full.get() != 0 }
    }

    fn fill(&self, v: u64) {
        // SAFETY: only accessed with the mutex held, which `self` proves.
        unsafe {
            *self.raw.payload.get() = v;
            *self.raw.full.get() = 1;
        }
    }

    fn empty(&self) -> u64 {
        // SAFETY: only accessed with the mutex held, which `self` proves.
        unsafe {
            *self.raw.full.get() = 0;
            *self.raw.payload.get()
        }
    }

    fn signal(&self, cv: &UnsafeCell<libc::pthread_cond_t>) -> Res<()> {
        // SAFETY: the condition variable was initialised in place and is mapped.
        let r = unsafe { libc::pthread_cond_signal(cv.get()) };
        check(r, "pthread_cond_signal")
    }

    /// One wait on `cv` (callers loop on their predicate).
    fn wait(
        &self,
        cv: &UnsafeCell<libc::pthread_cond_t>,
        peer_alive: Option<&dyn Fn() -> bool>,
    ) -> Res<()> {
        let r = match peer_alive {
            // SAFETY: `cv` and the mutex are initialised in place; we hold the mutex.
            None => unsafe { libc::pthread_cond_wait(cv.get(), self.raw.mutex.get()) },
            Some(alive) => {
                let mut deadline = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `deadline` is a valid, writable timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut deadline) };
                deadline.tv_nsec += SLICE_NS;
                if deadline.tv_nsec >= 1_000_000_000 {
                    deadline.tv_nsec -= 1_000_000_000;
                    deadline.tv_sec += 1;
                }
                // SAFETY: as for pthread_cond_wait; `deadline` is a valid timespec on the
                // condition variable's clock (CLOCK_MONOTONIC).
                let r = unsafe {
                    libc::pthread_cond_timedwait(cv.get(), self.raw.mutex.get(), &deadline)
                };
                if r == libc::ETIMEDOUT {
                    return if alive() {
                        Ok(())
                    } else {
                        Err("the peer process is gone".into())
                    };
                }
                r
            }
        };
        match r {
            0 => Ok(()),
            libc::EOWNERDEAD => Err(self.owner_died()),
            r => Err(format!("pthread_cond_wait: {}", io::Error::from_raw_os_error(r)).into()),
        }
    }

    /// We hold the mutex after its previous owner died holding it: mark it consistent
    /// (so it stays usable) and report the death.
    fn owner_died(&self) -> Error {
        // SAFETY: robust mutex, held by us after EOWNERDEAD.
        unsafe { libc::pthread_mutex_consistent(self.raw.mutex.get()) };
        "a peer process died while holding the MVar mutex".into()
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the mutex (that is what a `Locked` proves).
        unsafe { libc::pthread_mutex_unlock(self.raw.mutex.get()) };
    }
}

/// (a) See the module documentation.
pub struct PthreadPshared;

struct Parent {
    ping: PsharedMVar,
    pong: PsharedMVar,
}

impl ParentSide for Parent {
    fn round_trip(&mut self, v: u64, peer_alive: &dyn Fn() -> bool) -> Res<u64> {
        self.ping.put(v, Some(peer_alive))?;
        self.pong.take(Some(peer_alive))
    }

    fn after_clean_exit(&mut self) {
        // SAFETY: the child has exited normally (it was not waiting), and the parent is
        // done with both MVars; nobody else knows the (already unlinked) segments.
        unsafe {
            self.ping.destroy();
            self.pong.destroy();
        }
    }
}

impl ProcessKind for PthreadPshared {
    fn id(&self) -> &'static str {
        "pthread"
    }

    fn label(&self) -> &'static str {
        crate::kinds::BASELINE
    }

    fn setup(&self, shm: &mut ShmNames) -> Res<(Box<dyn ParentSide>, ChildSpec)> {
        let (ping_name, pong_name) = (shm.fresh(), shm.fresh());
        let ping = PsharedMVar::create(&ping_name)?;
        let pong = PsharedMVar::create(&pong_name)?;
        let spec = ChildSpec {
            args: vec![ping_name, pong_name],
            stdin: None,
            stdout: None,
        };
        Ok((Box::new(Parent { ping, pong }), spec))
    }

    fn child_loop(&self, args: &[String]) -> Res<()> {
        let [ping, pong] = args else {
            return Err("expected two segment names".into());
        };
        let (ping, pong) = (PsharedMVar::open(ping)?, PsharedMVar::open(pong)?);
        loop {
            let v = ping.take(None)?;
            pong.put(v, None)?;
            if v == STOP {
                return Ok(());
            }
        }
    }

    fn sleeper_setup(&self, shm: &mut ShmNames) -> Option<Res<SleeperSpec>> {
        let name = shm.fresh();
        Some(PsharedMVar::create(&name).map(|mvar| SleeperSpec {
            // Never destroyed: sleepers are SIGKILLed while waiting on its condvar.
            keep: Box::new(mvar),
            args: vec![name],
            stdin: None,
        }))
    }

    fn child_sleep(&self, args: &[String], ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
        let [name] = args else {
            return Err("expected one segment name".into());
        };
        let mvar = PsharedMVar::open(name)?;
        ready()?;
        mvar.take(None)?;
        Ok(())
    }
}
