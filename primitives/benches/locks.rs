//! Reentrant-lock costs, side by side in one run: a nested acquisition (lock, lock again,
//! unlock, unlock) on one thread, uncontended, and the same by two threads contending for one
//! lock; this crate's `ReentrantLock` without a validator, with the lock-order validator in
//! `Report` mode, against parking_lot's `ReentrantMutex` (and std's `Mutex`, not reentrant,
//! taken twice in a row, as the floor). Prints a Markdown table: nested pairs per second and
//! the ratio to parking_lot's.
//!
//! `cargo bench -p primitives --bench locks -- [--secs N]`

// The model engines (`--cfg loom` / `--cfg shuttle`) have nothing real to measure.
#[cfg(any(loom, shuttle))]
fn main() {}

#[cfg(not(any(loom, shuttle)))]
fn main() {
    real::main();
}

#[cfg(not(any(loom, shuttle)))]
mod real {
    use primitives::lock::{Mode, ReentrantLock, Validator};
    use std::hint::black_box;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// One nested pair (two acquisitions, two releases).
    type Op = Arc<dyn Fn() + Send + Sync>;

    /// Nested pairs per second on `threads` threads for `secs`.
    fn rate(op: &Op, threads: usize, secs: Duration) -> f64 {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (op, stop) = (Arc::clone(op), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            op();
                        }
                        n += 256;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(secs);
        stop.store(true, Ordering::Relaxed);
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        total as f64 / start.elapsed().as_secs_f64()
    }

    pub fn main() {
        let mut secs = Duration::from_secs(1);
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--secs" => match args.next().and_then(|s| s.parse::<f64>().ok()) {
                    Some(s) if s > 0.0 => secs = Duration::from_secs_f64(s),
                    _ => {
                        eprintln!("locks: --secs needs a positive number");
                        std::process::exit(2);
                    }
                },
                "--bench" => {} // cargo bench passes it
                other => {
                    eprintln!("locks: unknown argument {other:?} (usage: --secs N)");
                    std::process::exit(2);
                }
            }
        }
        let ours = Arc::new(ReentrantLock::new(0u64));
        let validator = Validator::new(Mode::Report);
        let class = validator.class("bench", true);
        let tracked = Arc::new(ReentrantLock::tracked(0u64, &class));
        let pl = Arc::new(parking_lot::ReentrantMutex::new(0u64));
        let std_m = Arc::new(std::sync::Mutex::new(0u64));
        let rows: Vec<(&str, Op)> = vec![
            ("parking_lot `ReentrantMutex`", {
                let l = Arc::clone(&pl);
                Arc::new(move || {
                    let a = l.lock();
                    let b = l.lock();
                    black_box((&*a, &*b));
                })
            }),
            ("ours: `ReentrantLock`, no validator", {
                let l = Arc::clone(&ours);
                Arc::new(move || {
                    let a = l.lock();
                    let b = l.lock();
                    black_box((&*a, &*b));
                })
            }),
            ("ours: `ReentrantLock`, validator `Report`", {
                let l = Arc::clone(&tracked);
                Arc::new(move || {
                    let a = l.lock();
                    let b = l.lock();
                    black_box((&*a, &*b));
                })
            }),
            (
                "std `Mutex`, locked twice in a row (not reentrant: the floor)",
                {
                    let l = Arc::clone(&std_m);
                    Arc::new(move || {
                        drop(black_box(l.lock()));
                        drop(black_box(l.lock()));
                    })
                },
            ),
        ];
        println!("| lock | 1 thread: nested pairs/s | vs parking_lot | 2 threads contending: nested pairs/s | vs parking_lot |");
        println!("|---|--:|--:|--:|--:|");
        let mut base = (0.0, 0.0);
        for (i, (label, op)) in rows.iter().enumerate() {
            let one = rate(op, 1, secs);
            let two = rate(op, 2, secs);
            if i == 0 {
                base = (one, two);
            }
            println!(
                "| {label} | {one:.0} | {:.2} | {two:.0} | {:.2} |",
                one / base.0,
                two / base.1
            );
        }
        if !validator.violations().is_empty() {
            eprintln!("locks: the validator reported a violation on a single lock");
            std::process::exit(1);
        }
    }
}
