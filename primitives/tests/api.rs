//! The primitives' API on real threads: values given back, timeouts, FIFO fairness, the
//! reentrant lock's owner identity, the validator's reports, the ordered multi-lock and the
//! buffered log's staging, flushing and overflow accounting.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::{
    lock_many, LockError, Mode, Mutex, ReentrantLock, Validator, ViolationKind,
};
use primitives::msg::{Message, MessageLog};
use primitives::mvar::{MVar, PutTimeoutError, TakeTimeoutError, TryPutError, TryTakeError};
use primitives::track::waitreg;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Waits until `n` threads sleep in `op` on `object` (so arrival order is known).
fn wait_sleepers<T>(op: &str, object: &T, n: usize) {
    let addr = object as *const T as usize;
    let start = Instant::now();
    while waitreg::snapshot()
        .iter()
        .filter(|e| e.op == op && e.object == addr)
        .count()
        < n
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{n} sleepers in {op} never showed up"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn try_operations_give_values_back() {
    let m = MVar::new_full(1u32);
    assert_eq!(m.try_put(2), Err(TryPutError::Full(2)));
    assert_eq!(m.try_read(), Ok(1));
    assert_eq!(m.try_take(), Ok(1));
    assert_eq!(m.try_take(), Err(TryTakeError::Empty));
    assert_eq!(m.try_read(), Err(TryTakeError::Empty));
    assert_eq!(m.try_put(3), Ok(()));
    assert_eq!(m.swap(4), 3);
    assert_eq!(m.read(), 4);
    assert_eq!(m.take(), 4);
}

#[test]
fn timeouts_expire_and_give_the_value_back() {
    let m = MVar::new_empty();
    assert_eq!(
        m.take_timeout(Duration::from_millis(20)),
        Err(TakeTimeoutError::Timeout)
    );
    m.put(String::from("x"));
    let e = m
        .put_timeout(String::from("y"), Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(e, PutTimeoutError::Timeout(String::from("y")));
    assert_eq!(
        m.take_timeout(Duration::from_millis(20)),
        Ok(String::from("x"))
    );
    // A zero timeout is a try.
    assert_eq!(m.put_timeout(String::from("z"), Duration::ZERO), Ok(()));
}

#[test]
fn blocked_takers_are_served_in_fifo_order() {
    let m = Arc::new(MVar::<usize>::new_empty());
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for i in 0..5 {
        let (m2, order2) = (m.clone(), order.clone());
        hs.push(thread::spawn(move || {
            let v = m2.take();
            order2.lock().unwrap().push((i, v));
        }));
        wait_sleepers("MVar::take", &*m, i + 1);
    }
    for v in 0..5 {
        m.put(v);
    }
    for h in hs {
        h.join().unwrap();
    }
    let mut got = order.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        (0..5).map(|i| (i, i)).collect::<Vec<_>>(),
        "taker i must get the i-th value"
    );
}

#[test]
fn blocked_putters_are_served_in_fifo_order_and_timeouts_keep_it() {
    let m = Arc::new(MVar::new_full(100usize));
    let mut hs = Vec::new();
    for i in 0..4 {
        let m2 = m.clone();
        hs.push(thread::spawn(move || {
            if i == 1 {
                // Gives up; must leave the queue without disturbing the others' order.
                assert_eq!(
                    m2.put_timeout(i, Duration::from_millis(50)),
                    Err(PutTimeoutError::Timeout(i))
                );
            } else {
                m2.put(i);
            }
        }));
        wait_sleepers("MVar::put", &*m, i + 1);
    }
    hs.remove(1).join().unwrap();
    let taken: Vec<usize> = (0..4).map(|_| m.take()).collect();
    assert_eq!(taken, vec![100, 0, 2, 3]);
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn read_serves_every_reader_before_the_taker() {
    let m = Arc::new(MVar::<u64>::new_empty());
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let m2 = m.clone();
            thread::spawn(move || m2.read())
        })
        .collect();
    wait_sleepers("MVar::read", &*m, 3);
    let m2 = m.clone();
    let taker = thread::spawn(move || m2.take());
    wait_sleepers("MVar::take", &*m, 1);
    m.put(7);
    assert_eq!(taker.join().unwrap(), 7);
    for r in readers {
        assert_eq!(r.join().unwrap(), 7);
    }
    assert_eq!(m.try_take(), Err(TryTakeError::Empty));
}

#[test]
fn reentrant_lock_nests_and_excludes() {
    let l = Arc::new(ReentrantLock::new(5));
    let g1 = l.lock();
    let g2 = l.lock();
    assert_eq!(*g2, 5);
    let l2 = l.clone();
    assert_eq!(
        thread::spawn(move || l2
            .lock_timeout(Duration::from_millis(20))
            .map(|_| ())
            .unwrap_err())
        .join()
        .unwrap(),
        LockError::Timeout
    );
    drop(g2);
    drop(g1);
    let l2 = l.clone();
    assert!(
        thread::spawn(move || l2.lock_timeout(Duration::from_secs(5)).is_ok())
            .join()
            .unwrap()
    );
}

/// Rust issue 123458: a guard leaked on a thread that exits must not let a new thread — which
/// may reuse the old thread's TLS addresses — believe it owns the lock.
#[test]
fn leaked_guard_on_exited_thread_does_not_transfer_ownership() {
    let l = Arc::new(ReentrantLock::new(()));
    let l2 = l.clone();
    thread::spawn(move || std::mem::forget(l2.lock()))
        .join()
        .unwrap();
    for _ in 0..20 {
        let l3 = l.clone();
        let r = thread::spawn(move || l3.try_lock().map(|_| ()).unwrap_err())
            .join()
            .unwrap();
        assert_eq!(
            r,
            LockError::Timeout,
            "a new thread became the owner of a lock held by a dead one"
        );
    }
}

#[test]
fn validator_reports_a_three_class_cycle_with_both_chains() {
    let v = Validator::new(Mode::Report);
    let (a, b, c) = (
        v.class("A", false),
        v.class("B", false),
        v.class("C", false),
    );
    let la = Arc::new(Mutex::tracked((), &a));
    let lb = Arc::new(Mutex::tracked((), &b));
    let lc = Arc::new(Mutex::tracked((), &c));
    let pairs = [
        (la.clone(), lb.clone()),
        (lb.clone(), lc.clone()),
        (lc.clone(), la.clone()),
    ];
    for (x, y) in pairs {
        // One thread at a time: the orders are *seen*, no deadlock ever happens.
        thread::spawn(move || {
            let _gx = x.lock();
            let _gy = y.lock();
        })
        .join()
        .unwrap();
    }
    let vs = v.violations();
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert_eq!(vs[0].kind, ViolationKind::Inversion);
    assert_eq!(vs[0].cycle.first(), vs[0].cycle.last());
    assert_eq!(vs[0].cycle.len(), 4, "A->B->C->A: {:?}", vs[0].cycle);
    assert_eq!(vs[0].this_chain.len(), 2);
    assert_eq!(
        vs[0].earlier_chain.len(),
        4,
        "two earlier edges, two acquisitions each"
    );
    let text = vs[0].to_string();
    assert!(
        text.contains("api.rs"),
        "chains name source locations: {text}"
    );
}

#[test]
fn validator_accepts_consistent_order_and_reentry_and_reports_aa() {
    let v = Validator::new(Mode::Report);
    let r = ReentrantLock::tracked((), &v.class("R", true));
    let m = Mutex::tracked((), &v.class("M", false));
    for _ in 0..3 {
        let _g1 = r.lock();
        let _g2 = r.lock();
        let _g3 = m.lock();
    }
    assert!(v.violations().is_empty());
    let g = m.lock();
    // try_lock of a held non-reentrant lock does not block, so it is not an AA report.
    assert!(m.try_lock().is_err());
    drop(g);
    let v2 = Validator::new(Mode::Panic);
    let m2 = Arc::new(Mutex::tracked((), &v2.class("M2", false)));
    let r = thread::spawn(move || {
        let _g = m2.lock();
        let _g2 = m2.lock(); // AA: panics instead of hanging
    })
    .join();
    assert!(
        r.is_err(),
        "AA on a non-reentrant lock must be reported before it hangs"
    );
    assert_eq!(v2.violations()[0].kind, ViolationKind::Recursive);
}

#[test]
fn validator_off_records_nothing() {
    let v = Validator::new(Mode::Off);
    let a = Mutex::tracked((), &v.class("A", false));
    let b = Mutex::tracked((), &v.class("B", false));
    {
        let _x = a.lock();
        let _y = b.lock();
    }
    {
        let _y = b.lock();
        let _x = a.lock();
    }
    assert!(v.violations().is_empty());
}

#[test]
fn lock_many_locks_a_shared_bucket_once_in_global_order() {
    let v = Validator::new(Mode::Panic);
    let class = v.class("bucket", false);
    let table: Vec<Mutex<u32>> = (0..4).map(|i| Mutex::tracked(i, &class)).collect();
    let mut g = lock_many(&table, &[2, 2]);
    assert_eq!(g.indices(), vec![2]);
    g.with_mut(2, |v| *v += 10);
    drop(g);
    let g = lock_many(&table, &[3, 0, 3, 1]);
    assert_eq!(g.indices(), vec![0, 1, 3]);
    drop(g);
    assert_eq!(table[2].lock().with(|v| *v), 12);
}

fn texts(log: &MessageLog<Vec<Message>>) -> Vec<String> {
    log.with_sink(|s| s.iter().map(|m| m.text.clone()).collect())
}

#[test]
fn log_under_a_lock_is_staged_and_flushed_at_the_outermost_release() {
    let v = Validator::new(Mode::Panic);
    let log = MessageLog::with_class(Vec::new(), &v.class("sysmsg", false));
    let odb = ReentrantLock::tracked((), &v.class("odb", true));
    log.log("before");
    let g1 = odb.lock();
    let g2 = odb.lock();
    log.log("under");
    drop(g2);
    assert_eq!(
        texts_without_lock(&log),
        1,
        "still staged: the outer level is held"
    );
    drop(g1);
    assert_eq!(texts(&log), vec!["before", "under"]);
    log.with_sink(|s| {
        assert!(!s[0].staged && s[1].staged);
        assert!(s[0].seq < s[1].seq);
    });
    assert!(v.violations().is_empty());
}

/// Counts delivered messages without taking the sink lock under `odb` (peeks via a thread
/// that holds no lock).
fn texts_without_lock(log: &MessageLog<Vec<Message>>) -> usize {
    let l = log.clone();
    thread::spawn(move || l.with_sink(|s| s.len()))
        .join()
        .unwrap()
}

#[test]
fn a_thread_that_exits_holding_a_lock_still_delivers_its_staged_messages() {
    let log = MessageLog::new(Vec::new());
    let v = Validator::new(Mode::Off);
    let lock = Arc::new(ReentrantLock::tracked((), &v.class("odb", true)));
    let (l, k) = (log.clone(), lock.clone());
    thread::spawn(move || {
        std::mem::forget(k.lock());
        l.log("last words");
    })
    .join()
    .unwrap();
    assert_eq!(texts(&log), vec!["last words"]);
}

#[test]
fn a_full_stage_counts_and_reports_the_overflow() {
    let v = Validator::new(Mode::Off);
    let log = MessageLog::with_stage_capacity(Vec::new(), &v.class("sysmsg", false), 2);
    let lock = ReentrantLock::tracked((), &v.class("odb", true));
    {
        let _g = lock.lock();
        for i in 0..5 {
            log.log(format!("m{i}"));
        }
    }
    assert_eq!(log.overflowed(), 3);
    let t = texts(&log);
    assert_eq!(&t[..2], &["m0", "m1"]);
    assert!(t[2].contains("3 message(s) dropped"), "{t:?}");
}

#[test]
fn shared_futex_flavour_wakes_a_waiter() {
    use primitives::sync::atomic::{AtomicU32, Ordering};
    use primitives::sync::futex::{wait_in, wake_in, Scope, WaitResult};
    let w = Arc::new(AtomicU32::new(0));
    let w2 = w.clone();
    let h = thread::spawn(move || {
        while w2.load(Ordering::Acquire) == 0 {
            wait_in(Scope::Shared, &w2, 0, None);
        }
    });
    thread::sleep(Duration::from_millis(20));
    w.store(1, Ordering::Release);
    wake_in(Scope::Shared, &w, 1);
    h.join().unwrap();
    let deadline = Instant::now() + Duration::from_millis(10);
    assert_eq!(
        wait_in(Scope::Shared, &w, 1, Some(deadline)),
        WaitResult::TimedOut
    );
}

/// Controls whose defect the validator or an invariant check sees on real threads.
#[test]
fn lockdep_controls_are_caught_on_real_threads() {
    use primitives::scenarios::{catalogue::control, Params};
    for name in [
        "abba-odb-sysmsg",
        "logger-self-deadlock",
        "exch-same-bucket",
    ] {
        let c = control(name).unwrap();
        let p = Params::for_engine();
        let r = thread::spawn(move || (c.run)(&p)).join();
        assert!(
            r.is_err(),
            "{name} not caught on real threads with lockdep on"
        );
    }
}

#[test]
fn reference_scenarios_pass_on_real_threads() {
    use primitives::scenarios::{catalogue::SCENARIOS, Params};
    for s in SCENARIOS {
        for _ in 0..20 {
            (s.run)(&Params::for_engine());
        }
    }
}
