//! The shared reentrant lock: nesting, exclusion between threads and processes, and robustness —
//! a process killed while holding it (nested) is detected by the next locker, which is told
//! (`recovered()`), and the "no dead-owner recovery" control wedges instead.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::{SharedLockError, SharedReentrantLock};
use primitives::shm::ShmName;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "SHM_LOCK_CHILD_NAME";

#[allow(dead_code)]
#[path = "../../torture/src/procs/tied.rs"]
mod tied;
use tied::Tied;

/// Kills and reaps the child (dropping the `Tied`), then unlinks the name, when dropped (even if
/// the test fails).
struct Guard(ShmName, Option<Tied>);
impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.1.take());
        let _ = nix::sys::mman::shm_unlink(self.0.as_str());
    }
}

/// Child: locks the lock named in the environment twice (nested), says so, and sleeps until
/// killed.
#[test]
fn child_holds_the_lock_until_killed() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let lock = SharedReentrantLock::open(&ShmName::parse(&name).unwrap()).unwrap();
    let outer = lock.lock().unwrap();
    let inner = lock.lock().unwrap();
    assert_eq!(inner.depth(), 2);
    println!("LOCKED pid={}", std::process::id());
    std::thread::sleep(Duration::from_secs(60));
    drop((inner, outer));
}

/// Starts a child that holds `name` and waits until it says so (killed and reaped on the way
/// out if it never does).
fn holder(name: &ShmName) -> (Tied, u32) {
    let mut child = Tied::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_holds_the_lock_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, name.as_str())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let out = child.child().stdout.take().unwrap();
    let mut pid = 0;
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(p) = line.split("LOCKED pid=").nth(1) {
            pid = p.trim().parse().unwrap();
            break;
        }
    }
    assert_ne!(pid, 0, "the child never locked");
    (child, pid)
}

#[test]
fn nests_and_excludes_other_threads() {
    let name = ShmName::unique("lock-threads");
    let lock = Arc::new(SharedReentrantLock::create(&name).unwrap());
    let _g = Guard(name, None);
    {
        let a = lock.lock().unwrap();
        let b = lock.try_lock().unwrap();
        assert_eq!(b.depth(), 2);
        assert!(a.recovered().is_none());
        let other = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                matches!(
                    lock.lock_timeout(Duration::from_millis(30)),
                    Err(SharedLockError::Timeout)
                )
            })
        };
        assert!(other.join().unwrap(), "another thread must not get in");
        drop(b);
        assert_eq!(a.depth(), 1);
    }
    // Four threads, each incrementing a non-atomic-style counter under the lock.
    let inside = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (lock, inside) = (lock.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let _g = lock.lock().unwrap();
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two threads inside"
                    );
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(lock.recoveries(), 0);
}

#[test]
fn a_killed_owner_is_detected_and_the_next_owner_is_told() {
    let name = ShmName::unique("lock-kill");
    let lock = SharedReentrantLock::create(&name).unwrap();
    let mut g = Guard(name.clone(), None);
    let (child, pid) = holder(&name);
    g.1 = Some(child);
    assert_eq!(lock.owner().map(|w| w.pid), Some(pid));
    assert!(
        matches!(lock.try_lock(), Err(SharedLockError::Timeout)),
        "held by a live process"
    );
    let mut c = g.1.take().unwrap();
    c.kill().expect("killed and reaped");
    let got = lock
        .lock_timeout(Duration::from_secs(5))
        .expect("recovered within the deadline");
    assert_eq!(
        got.recovered().map(|w| w.pid),
        Some(pid),
        "told whose death it inherited"
    );
    assert_eq!(got.depth(), 1, "the dead owner's nesting is gone");
    drop(got);
    assert_eq!(lock.recoveries(), 1);
    let again = lock.lock().unwrap();
    assert!(again.recovered().is_none(), "recovery is reported once");
}

/// A waiter asleep behind a live owner hears of the owner's death from the kernel (the owner
/// process's death beacon), not from the end of a slice: with the fallback slice set to an
/// hour, the takeover still happens, and the wake-up is counted as a beacon's.
#[test]
fn a_sleeping_waiter_is_woken_by_the_owners_death() {
    primitives::shm::set_fallback_slice(Duration::from_secs(3600));
    let name = ShmName::unique("lock-beacon");
    let lock = Arc::new(SharedReentrantLock::create(&name).unwrap());
    let mut g = Guard(name.clone(), None);
    let (child, pid) = holder(&name);
    g.1 = Some(child);
    let before = primitives::shm::beacon_wakes();
    let waiter = {
        let lock = Arc::clone(&lock);
        std::thread::spawn(move || {
            let got = lock
                .lock_timeout(Duration::from_secs(120))
                .expect("woken by the death, long before the deadline");
            got.recovered().map(|w| w.pid)
        })
    };
    // Let the waiter fall asleep (no timing is asserted: if it is not asleep yet, it finds the
    // owner dead when it looks).
    std::thread::sleep(Duration::from_millis(300));
    let mut c = g.1.take().unwrap();
    c.kill().expect("killed and reaped");
    assert_eq!(
        waiter.join().unwrap(),
        Some(pid),
        "took over from the dead owner"
    );
    assert!(
        primitives::shm::beacon_wakes() > before,
        "the waiter was woken by the owner's death beacon"
    );
}

#[test]
fn control_without_recovery_wedges_behind_a_dead_owner() {
    let name = ShmName::unique("lock-norecover");
    let lock = SharedReentrantLock::create(&name)
        .unwrap()
        .without_recovery();
    let mut g = Guard(name.clone(), None);
    let (mut child, _pid) = holder(&name);
    child.kill().expect("killed and reaped");
    g.1 = None;
    let r = lock.lock_timeout(Duration::from_millis(300));
    assert!(
        matches!(r, Err(SharedLockError::Timeout)),
        "the control must wedge: {r:?}"
    );
}
