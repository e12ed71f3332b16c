//! Fork handling (seed 002): a child forked while another thread holds a lock or is inside a
//! log's sink can use them at once (see `primitives::sync::fork`).
//!
//! Every test forks through [`in_child`]: the child runs a short closure that calls only this
//! crate's locks and logs (no printing, no panicking on purpose) and `_exit`s with a code the
//! parent checks; the parent waits for it with a deadline and kills it past that, so a hanging
//! child fails the test instead of hanging it.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::{LockClass, Mode, Mutex, ReentrantLock, Validator};
use primitives::msg::{Message, MessageLog, MessageSink};
use primitives::sync::fork;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Forks; the child runs `f` and `_exit`s with its code (99 if it panicked); the parent returns
/// the child's exit code, or `None` if it had not ended after `limit` (it is then killed).
fn in_child(limit: Duration, f: impl FnOnce() -> i32) -> Option<i32> {
    // SAFETY: the child calls only this crate's locks and logs (made fork-safe by the crate's
    // atfork handlers, which is what is tested), malloc (fork-safe in glibc) and `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let until = Instant::now() + limit;
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, with a valid pointer to a c_int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if Instant::now() > until {
            // SAFETY: our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `hold` on a new thread until it says it holds what it should, then `forked` in a child
/// while that thread still holds it; the thread is released after the child ended.
fn fork_while_held(
    hold: impl FnOnce(&mpsc::Sender<()>, &mpsc::Receiver<()>) + Send + 'static,
    forked: impl FnOnce() -> i32,
) -> Option<i32> {
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let t = std::thread::spawn(move || hold(&held_tx, &go_rx));
    held_rx.recv().expect("the holder holds");
    let code = in_child(Duration::from_secs(10), forked);
    go_tx.send(()).unwrap();
    t.join().unwrap();
    code
}

#[test]
fn a_child_takes_over_locks_held_by_a_thread_that_did_not_come_through_the_fork() {
    let v = Validator::new(Mode::Panic);
    let outer = std::sync::Arc::new(ReentrantLock::tracked(0u32, &v.class("outer", true)));
    let plain = std::sync::Arc::new(Mutex::new(7u32));
    let (o, p) = (outer.clone(), plain.clone());
    let code = fork_while_held(
        move |held, go| {
            let _a = o.lock();
            let _b = o.lock(); // nested: the vanished owner's count is discarded
            let _c = p.lock();
            held.send(()).unwrap();
            go.recv().unwrap();
        },
        || {
            let before = fork::takeovers();
            let Ok(g) = outer.lock_timeout(Duration::from_secs(2)) else {
                return 1;
            };
            if !g.owner_vanished_in_fork() {
                return 2;
            }
            let again = outer.lock(); // a re-entry of the new owner
            if again.owner_vanished_in_fork() {
                return 3;
            }
            drop((again, g));
            let Ok(m) = plain.lock_timeout(Duration::from_secs(2)) else {
                return 4;
            };
            if !m.owner_vanished_in_fork() || m.with(|x| *x) != 7 {
                return 5;
            }
            drop(m);
            // Released normally: the next acquisition is an ordinary one.
            if outer.lock().owner_vanished_in_fork() || plain.lock().owner_vanished_in_fork() {
                return 6;
            }
            if fork::takeovers() != before + 2 || fork::generation() == 0 {
                return 7;
            }
            0
        },
    );
    assert_eq!(code, Some(0));
    // The parent is untouched: its holder released normally.
    assert!(!outer.lock().owner_vanished_in_fork());
    assert!(!plain.lock().owner_vanished_in_fork());
}

#[test]
fn a_lock_the_forking_thread_holds_stays_its_own() {
    let lock = ReentrantLock::new(());
    let m = Mutex::new(());
    let g = lock.lock();
    let mg = m.lock();
    let code = in_child(Duration::from_secs(10), || {
        // The forking thread came through: a re-entry, not a takeover; a try of the plain
        // mutex it holds fails (it is held, by this very thread) instead of stealing it.
        let again = lock.lock();
        if again.owner_vanished_in_fork() || m.try_lock().is_ok() {
            return 1;
        }
        0
    });
    drop((mg, g));
    assert_eq!(code, Some(0));
}

#[test]
fn without_fork_handling_the_child_cannot_get_the_lock() {
    let lock = std::sync::Arc::new(Mutex::new(()));
    let l = lock.clone();
    let code = fork_while_held(
        move |held, go| {
            let _g = l.lock();
            held.send(()).unwrap();
            go.recv().unwrap();
        },
        || {
            // The control's switch, thrown in the child only (it is process-wide).
            primitives::controls::without_fork_handling();
            match lock.lock_timeout(Duration::from_millis(300)) {
                Err(_) => 0, // seed 002: it would sleep forever without the deadline
                Ok(_) => 1,
            }
        },
    );
    assert_eq!(code, Some(0));
}

/// A sink that says when it is inside `deliver` and stays there a while.
struct SlowSink {
    inside: mpsc::SyncSender<()>,
    got: Vec<String>,
}

impl MessageSink for SlowSink {
    fn deliver(&mut self, m: Message) {
        let _ = self.inside.try_send(());
        std::thread::sleep(Duration::from_millis(100));
        self.got.push(m.text);
    }
}

#[test]
fn a_child_logs_at_once_even_if_another_thread_was_inside_the_sink() {
    let (tx, rx) = mpsc::sync_channel(1);
    let log = MessageLog::new(SlowSink {
        inside: tx,
        got: Vec::new(),
    });
    let l = log.clone();
    let t = std::thread::spawn(move || l.log("from a thread"));
    rx.recv().unwrap(); // the thread is inside deliver: prepare waits for it to leave
    let code = in_child(Duration::from_secs(10), || {
        log.log("from the child");
        let got = log.with_sink(|s| s.got.clone());
        if got == ["from a thread", "from the child"] {
            0
        } else {
            1
        }
    });
    t.join().unwrap();
    assert_eq!(code, Some(0));
}

#[test]
fn what_the_forking_thread_staged_is_delivered_by_the_parent_only() {
    let v = Validator::new(Mode::Off);
    let class: LockClass = v.class("app", true);
    let log = MessageLog::new(Vec::<Message>::new());
    let app = ReentrantLock::tracked((), &class);
    let g = app.lock();
    log.log("staged before the fork");
    // The closure owns the guard: the child releases it (its outermost release flushes the
    // child's stage); in the parent the unrun closure is dropped, which releases it there.
    let l = &log;
    let code = in_child(Duration::from_secs(10), move || {
        drop(g);
        l.flush();
        match l.with_sink(|s| s.len()) {
            0 => 0, // the parent's message, not delivered twice
            _ => 1,
        }
    });
    assert_eq!(code, Some(0));
    let texts: Vec<String> = log.with_sink(|s| s.iter().map(|m| m.text.clone()).collect());
    assert_eq!(texts, ["staged before the fork"]);
}
