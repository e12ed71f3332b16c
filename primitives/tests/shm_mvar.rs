//! The shared-memory MVar and segments: API, hostile segments, cross-process use and recovery
//! from a participant killed while holding the box's lock. Kill storms are in `torture`.
#![cfg(not(any(loom, shuttle)))]

use primitives::mvar::{SharedMVar, SharedMVarError};
use primitives::shm::{self, Kind, ShmError, ShmName};
use std::time::Duration;

/// Unlinks a segment name when dropped (even if the test fails).
struct Unlink(ShmName);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = nix::sys::mman::shm_unlink(self.0.as_str());
    }
}

fn fresh(label: &str, len: usize) -> (SharedMVar, Unlink) {
    let name = ShmName::unique(label);
    let m = SharedMVar::create(&name, len).expect("create");
    (m, Unlink(name))
}

#[test]
fn put_take_read_try_timeout_swap_in_one_process() {
    let (m, _u) = fresh("api", 4);
    assert!(!m.is_full());
    m.put(&[1, 2, 3, 4]).unwrap();
    assert!(matches!(m.try_put(&[9; 4]), Err(SharedMVarError::Full)));
    assert!(matches!(
        m.put_timeout(&[9; 4], Duration::from_millis(20)),
        Err(SharedMVarError::Timeout)
    ));
    let mut b = [0u8; 4];
    m.read(&mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4]);
    let mut old = [0u8; 4];
    m.swap(&[5, 6, 7, 8], &mut old).unwrap();
    assert_eq!(old, [1, 2, 3, 4]);
    assert_eq!(m.take().unwrap().value, vec![5, 6, 7, 8]);
    assert!(matches!(m.try_take(&mut b), Err(SharedMVarError::Empty)));
    assert!(matches!(
        m.take_timeout(&mut b, Duration::from_millis(20)),
        Err(SharedMVarError::Timeout)
    ));
    assert!(matches!(
        m.put(&[1, 2, 3]),
        Err(SharedMVarError::Length {
            expected: 4,
            got: 3
        })
    ));
    assert_eq!(m.generation(), 3, "put, swap, take");
    assert_eq!(m.recoveries(), 0);
}

#[test]
fn two_threads_hand_off_every_value_once() {
    let (m, _u) = fresh("threads", 8);
    let n = 20_000u64;
    let m2 = m.clone();
    let taker = std::thread::spawn(move || {
        let mut sum = 0u64;
        let mut b = [0u8; 8];
        for _ in 0..n {
            m2.take_into(&mut b).unwrap();
            sum += u64::from_le_bytes(b);
        }
        sum
    });
    for i in 0..n {
        m.put(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(taker.join().unwrap(), n * (n - 1) / 2);
    assert_eq!(m.generation(), 2 * n);
}

#[test]
fn opening_a_missing_wrong_or_corrupted_segment_is_a_clear_error() {
    let missing = ShmName::unique("missing");
    assert!(matches!(
        SharedMVar::open(&missing),
        Err(ShmError::NotFound(_))
    ));
    let (m, u) = fresh("corrupt", 16);
    assert!(matches!(
        primitives::lock::SharedReentrantLock::open(&u.0),
        Err(ShmError::WrongKind {
            found: Kind::MVar,
            ..
        })
    ));
    let path = format!("/dev/shm{}", u.0.as_str());
    let good = std::fs::read(&path).unwrap();
    type Case = (
        &'static str,
        Box<dyn Fn(&mut Vec<u8>)>,
        fn(&ShmError) -> bool,
    );
    let cases: Vec<Case> = vec![
        ("magic", Box::new(|b| b[0] ^= 0xff), |e| {
            matches!(e, ShmError::NotOurs)
        }),
        ("version", Box::new(|b| b[8] = 99), |e| {
            matches!(e, ShmError::Version { found: 99, .. })
        }),
        ("checksum", Box::new(|b| b[40] ^= 1), |e| {
            matches!(e, ShmError::Corrupted(_))
        }),
        ("truncated", Box::new(|b| b.truncate(200)), |e| {
            matches!(e, ShmError::Truncated { .. })
        }),
        ("tiny", Box::new(|b| b.truncate(10)), |e| {
            matches!(e, ShmError::Truncated { .. })
        }),
        ("empty", Box::new(|b| b.clear()), |e| {
            matches!(e, ShmError::Truncated { .. })
        }),
    ];
    for (what, damage, expect) in cases {
        let mut bytes = good.clone();
        damage(&mut bytes);
        let name = ShmName::unique(what);
        let _u2 = Unlink(name.clone());
        std::fs::write(format!("/dev/shm{}", name.as_str()), &bytes).unwrap();
        match SharedMVar::open(&name) {
            Err(e) => assert!(expect(&e), "{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: a damaged segment opened"),
        }
    }
    drop(m);
}

#[test]
fn garbage_in_the_state_words_never_hangs_or_panics() {
    let (m, u) = fresh("garbage", 8);
    let path = format!("/dev/shm{}", u.0.as_str());
    let off = shm::HEADER_LEN + shm::SLOT_LEN * 256;
    // Lock word naming a participant that does not exist, huge waiter counts, odd commit word.
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(off as u64)).unwrap();
    f.write_all(&[0xff; 48]).unwrap();
    drop(f);
    let mut b = [0u8; 8];
    // Full (bit 0 set) with a dead owner: the take recovers the lock and returns a value.
    let o = m.take_timeout(&mut b, Duration::from_secs(2)).unwrap();
    assert!(o.recovered.is_some(), "the bogus owner was taken over");
    m.put(&[7; 8]).unwrap();
    m.take_into(&mut b).unwrap();
    assert_eq!(b, [7; 8]);
}

#[test]
fn the_last_user_unlinks_and_cleanup_removes_abandoned_segments() {
    let name = ShmName::unique("lifetime");
    let path = format!("/dev/shm{}", name.as_str());
    {
        let _u = Unlink(name.clone());
        let m = SharedMVar::create(&name, 8).unwrap();
        let m2 = SharedMVar::open(&name).unwrap();
        drop(m);
        assert!(
            std::path::Path::new(&path).exists(),
            "a user is still attached"
        );
        drop(m2);
        assert!(
            !std::path::Path::new(&path).exists(),
            "the last user unlinked"
        );
    }
    // A segment left by a process that died: header names a dead creator.
    let name = ShmName::unique("abandoned");
    let _u = Unlink(name.clone());
    let m = SharedMVar::create(&name, 8).unwrap();
    m.segment().set_unlink_on_drop(false);
    let bytes = std::fs::read(format!("/dev/shm{}", name.as_str())).unwrap();
    drop(m);
    let dead = ShmName::parse(&format!(
        "torture-4194999-0-0-abandoned-copy-{}",
        std::process::id()
    ))
    .unwrap();
    let _u3 = Unlink(dead.clone());
    std::fs::write(format!("/dev/shm{}", dead.as_str()), b"garbage").unwrap();
    let cleaned = shm::cleanup("4194999-").unwrap();
    assert_eq!(cleaned.len(), 1, "{cleaned:?}");
    assert!(!std::path::Path::new(&format!("/dev/shm{}", dead.as_str())).exists());
    // Our own (live creator) segment is not touched by a cleanup of our pid.
    std::fs::write(format!("/dev/shm{}", name.as_str()), &bytes).unwrap();
    let cleaned = shm::cleanup(&format!("{}-", std::process::id())).unwrap();
    assert!(
        cleaned.iter().all(|c| c.name != name.as_str()),
        "{cleaned:?}"
    );
}
