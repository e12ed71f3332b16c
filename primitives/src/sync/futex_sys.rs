//! The Linux `futex(2)` and `futex_waitv(2)` system calls under the facade's [`futex`](super::futex) (real threads),
//! and the types both share. [`futex`](super::futex) adds chaos and the harness's
//! [`sim`](super::sim) on top; the sim sleeps and wakes through these calls directly.

#[cfg(not(any(loom, shuttle)))]
use super::atomic::AtomicU32;
#[cfg(not(any(loom, shuttle)))]
use std::time::Instant;

/// Which futex key space a word lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only threads of this process wait on the word (cheaper for the kernel).
    Private,
    /// The word lives in memory shared between processes.
    Shared,
}

/// Why a [`futex::wait`](super::futex::wait) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken, interrupted, spurious, or the word did not hold `expected`: re-check.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// What is left of a deadline.
#[cfg(not(any(loom, shuttle)))]
enum Left {
    Forever,
    Due,
    For(std::time::Duration),
}

#[cfg(not(any(loom, shuttle)))]
fn left(deadline: Option<Instant>) -> Left {
    match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
        None => Left::Forever,
        Some(l) if l.is_zero() => Left::Due,
        Some(l) => Left::For(l),
    }
}

#[cfg(not(any(loom, shuttle)))]
fn op(base: libc::c_int, scope: Scope) -> libc::c_int {
    match scope {
        Scope::Private => base | libc::FUTEX_PRIVATE_FLAG,
        Scope::Shared => base,
    }
}

/// `FUTEX_WAIT` on `word` while it holds `expected`, until woken or `deadline`.
#[cfg(not(any(loom, shuttle)))]
pub fn wait(
    scope: Scope,
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> WaitResult {
    let ts = match left(deadline) {
        Left::Forever => None,
        Left::Due => return WaitResult::TimedOut,
        Left::For(left) => Some(libc::timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        }),
    };
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the whole call; FUTEX_WAIT only reads it and
    // `ts_ptr` is null or points to a timespec that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op(libc::FUTEX_WAIT, scope),
            expected,
            ts_ptr,
            core::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        WaitResult::TimedOut
    } else {
        // 0 = woken (or spurious), EAGAIN = value changed, EINTR = signal: all "re-check".
        WaitResult::Woken
    }
}

/// `FUTEX_WAKE` of up to `n` waiters on `word`.
#[cfg(not(any(loom, shuttle)))]
pub fn wake(scope: Scope, word: &AtomicU32, n: u32) {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: FUTEX_WAKE does not access the word's memory; it only uses the address as
    // the wait-queue key, and `word` is live for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op(libc::FUTEX_WAKE, scope),
            n,
        );
    }
}

/// One word of a [`wait_any`]: the sleep lasts while `word` holds `expected`.
#[cfg(not(any(loom, shuttle)))]
#[derive(Clone, Copy, Debug)]
pub struct WaitOn<'a> {
    /// The futex word.
    pub word: &'a AtomicU32,
    /// The value it must hold for the sleep to start.
    pub expected: u32,
    /// Its key space.
    pub scope: Scope,
}

/// Why a [`wait_any`] returned.
#[cfg(not(any(loom, shuttle)))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitAny {
    /// Woken by a `futex_wake` on word `i`.
    Woken(usize),
    /// A word did not hold its expected value, or a signal or chaos mode interrupted the
    /// sleep: re-check everything.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or refused these words (more than
    /// [`WAIT_ANY_MAX`]): the caller must sleep some other way.
    Unsupported,
}

/// Most words one [`wait_any`] can wait on (the kernel's `FUTEX_WAITV_MAX`).
#[cfg(not(any(loom, shuttle)))]
pub const WAIT_ANY_MAX: usize = 128;

/// `futex_waitv(2)` on `words` until one is woken or differs, or `deadline` passes.
#[cfg(not(any(loom, shuttle)))]
pub fn wait_any(words: &[WaitOn<'_>], deadline: Option<Instant>) -> WaitAny {
    /// `struct futex_waitv` of the kernel's uapi.
    #[repr(C)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    const FUTEX2_SIZE_U32: u32 = 0x02;
    const FUTEX2_PRIVATE: u32 = 128;
    if words.is_empty() || words.len() > WAIT_ANY_MAX {
        return WaitAny::Unsupported;
    }
    let v: Vec<FutexWaitv> = words
        .iter()
        .map(|w| FutexWaitv {
            val: u64::from(w.expected),
            uaddr: w.word.as_ptr() as usize as u64,
            flags: FUTEX2_SIZE_U32
                | match w.scope {
                    Scope::Private => FUTEX2_PRIVATE,
                    Scope::Shared => 0,
                },
            reserved: 0,
        })
        .collect();
    // futex_waitv takes an *absolute* CLOCK_MONOTONIC timeout: now + what is left.
    let ts = match left(deadline) {
        Left::Forever => None,
        Left::Due => return WaitAny::TimedOut,
        Left::For(left) => {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid out-pointer; CLOCK_MONOTONIC always exists.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            let secs = (now.tv_sec as u64)
                .saturating_add(left.as_secs())
                .saturating_add(nanos / 1_000_000_000)
                .min(i64::MAX as u64 / 2);
            Some(libc::timespec {
                tv_sec: secs as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            })
        }
    };
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v` is an array of `v.len()` initialised `futex_waitv` records whose addresses
    // are live, aligned u32 words (borrowed for the whole call); the kernel only reads them;
    // `ts_ptr` is null or points to a timespec that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            v.len() as libc::c_uint,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitAny::Woken(r as usize);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => WaitAny::TimedOut,
        Some(libc::ENOSYS) | Some(libc::EINVAL) => WaitAny::Unsupported,
        // EAGAIN: a word differed; EINTR: a signal; anything else: re-check.
        _ => WaitAny::Changed,
    }
}
