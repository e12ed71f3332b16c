//! The Linux `futex(2)` system calls under the facade's [`futex`](super::futex) (real threads),
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
    let ts = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WaitResult::TimedOut;
            }
            Some(libc::timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            })
        }
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
