// The benchmark proper (included by `sleepers.rs` for real builds only). It reuses the
// pingpong bench's kinds and child-process machinery.

#[allow(dead_code)]
#[path = "../pingpong/child.rs"]
mod child;
#[allow(dead_code)]
#[path = "../pingpong/fdkinds.rs"]
mod fdkinds;
#[allow(dead_code)]
#[path = "../pingpong/kinds.rs"]
mod kinds;
#[allow(dead_code)]
#[path = "../pingpong/ours.rs"]
mod ours;
#[allow(dead_code)]
#[path = "../pingpong/pshared.rs"]
mod pshared;
#[allow(dead_code)]
#[path = "../pingpong/registry.rs"]
mod registry;
#[allow(dead_code)]
#[path = "../pingpong/sys.rs"]
mod sys;
#[allow(dead_code)]
#[path = "../pingpong/threads.rs"]
mod threads;
/// The repository's one way to start a child process (std + libc only).
#[allow(dead_code)]
#[path = "../../../torture/src/procs/tied.rs"]
mod tied;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use child::{ChildProc, CHILD_FLAG};
use kinds::ProcessKind;
use primitives::lock::SharedReentrantLock;
use primitives::shm::ShmName;
use sys::{clock_ns, process_cpu_clock, Res, ShmNames};

const USAGE: &str = "\
usage: cargo bench -p primitives --bench sleepers -- [--sleepers N] [--secs S] [--trials T]

  --sleepers N   idle sleeper processes per row (default 50)
  --secs S       idle window per row, seconds (default 3)
  --trials T     takeover trials per row (default 100)

SLEEPERS_FALLBACK_MS=N sets the children's fallback slice (default: the library's).";

/// Child kind of the latency trials (holder and waiters of a `SharedReentrantLock`).
const LOCK_KIND: &str = "lock";
/// Child kind: the `SharedMVar` sleeper with beacon watching off (polling, as before).
const POLLING_KIND: &str = "ours-polling";
/// Environment: the children's fallback slice in ms (default: the library's).
const FALLBACK_ENV: &str = "SLEEPERS_FALLBACK_MS";
const READY_LIMIT: Duration = Duration::from_secs(20);

struct Options {
    sleepers: usize,
    secs: f64,
    trials: usize,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        sleepers: 50,
        secs: 3.0,
        trials: 100,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |n: &str| it.next().cloned().ok_or(format!("{n} needs a value"));
        match a.as_str() {
            "--sleepers" => o.sleepers = val(a)?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--secs" => o.secs = val(a)?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--trials" => o.trials = val(a)?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--bench" => {}
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.trials == 0 || o.secs <= 0.0 {
        return Err("--trials and --secs must be positive".into());
    }
    Ok(Some(o))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD_FLAG) {
        std::process::exit(child_entry(&mut args[1..]));
    }
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("sleepers: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(table) => print!("{table}"),
        Err(e) => {
            eprintln!("sleepers: {e}");
            std::process::exit(1);
        }
    }
}

/// `--child <kind> <role> <args...>`: our own kinds, else the pingpong kinds.
fn child_entry(args: &mut [String]) -> i32 {
    // For experiments: the sleepers' fallback slice (the library's default otherwise).
    if let Some(ms) = std::env::var(FALLBACK_ENV).ok().and_then(|v| v.parse().ok()) {
        primitives::shm::set_fallback_slice(Duration::from_millis(ms));
    }
    let r = match (args.first().map(String::as_str), args.get(1).map(String::as_str)) {
        (Some(LOCK_KIND), Some(role)) => lock_child(role, &args[2..]),
        (Some(POLLING_KIND), _) => {
            primitives::shm::set_beacon_watching(false);
            args[0] = ours::OURS_SHARED_MVAR.id().to_string();
            return child::child_main(args);
        }
        _ => return child::child_main(args),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sleepers child ({}): {e}", args.join(" "));
            1
        }
    }
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// `hold NAME`: lock, say "r", sleep until killed. `wait NAME [poll]`: say "r", lock, print
/// "<monotonic ns> <recovered pid or 0>".
fn lock_child(role: &str, args: &[String]) -> Res<()> {
    let name = ShmName::parse(args.first().ok_or("expected a segment name")?)?;
    let lock = SharedReentrantLock::open(&name)?;
    lock.segment().set_unlink_on_drop(false);
    let mut out = std::io::stdout().lock();
    match role {
        "hold" => {
            let _g = lock.lock()?;
            out.write_all(b"r")?;
            out.flush()?;
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "wait" => {
            if args.get(1).map(String::as_str) == Some("poll") {
                primitives::shm::set_beacon_watching(false);
            }
            out.write_all(b"r")?;
            out.flush()?;
            let g = lock.lock_timeout(Duration::from_secs(30))?;
            let t = monotonic_ns();
            writeln!(out, "{t} {}", g.recovered().map_or(0, |w| w.pid))?;
            out.flush()?;
            Ok(())
        }
        other => Err(format!("unknown role {other:?}").into()),
    }
}

/// Idle CPU of `n` sleepers of `kind` over `secs`: (total ns of CPU, wall ns).
fn idle_row(kind: &dyn ProcessKind, child_kind: &str, opts: &Options) -> Res<(u64, u64)> {
    let mut shm = ShmNames::default();
    let spec = kind
        .sleeper_setup(&mut shm)
        .ok_or("kind has no sleepers")??;
    let mut procs = Vec::new();
    for _ in 0..opts.sleepers {
        let stdin = spec.stdin.as_ref().map(|fd| fd.try_clone()).transpose()?;
        procs.push(ChildProc::spawn(
            child_kind,
            "sleep",
            &spec.args,
            stdin,
            Stdio::piped(),
        )?);
    }
    for p in &mut procs {
        p.wait_ready(READY_LIMIT)?;
    }
    shm.unlink_all();
    // Let every sleeper get past its spin and first slices into its steady state.
    std::thread::sleep(Duration::from_millis(500));
    let clocks = procs
        .iter()
        .map(|p| process_cpu_clock(p.pid))
        .collect::<Result<Vec<_>, _>>()?;
    let sum = || -> Res<u64> { clocks.iter().try_fold(0, |a, c| Ok(a + clock_ns(*c)?)) };
    let (c0, t0) = (sum()?, monotonic_ns());
    std::thread::sleep(Duration::from_secs_f64(opts.secs));
    let (c1, t1) = (sum()?, monotonic_ns());
    for p in &mut procs {
        if !p.alive() {
            return Err(format!("sleeper {} ended during the window", p.pid).into());
        }
        p.kill_and_reap()?;
    }
    drop(spec.keep);
    Ok((c1.saturating_sub(c0), t1.saturating_sub(t0)))
}

/// One takeover: ns from the holder's SIGKILL to the waiter's recovered lock.
fn trial(poll: bool) -> Res<u64> {
    let mut shm = ShmNames::default();
    let name = shm.fresh();
    let lock = SharedReentrantLock::create(&ShmName::parse(&name)?)?;
    lock.segment().set_unlink_on_drop(false);
    let mut holder = ChildProc::spawn(LOCK_KIND, "hold", std::slice::from_ref(&name), None, Stdio::piped())?;
    holder.wait_ready(READY_LIMIT)?;
    let mut wargs = vec![name];
    if poll {
        wargs.push("poll".into());
    }
    let mut waiter = ChildProc::spawn(LOCK_KIND, "wait", &wargs, None, Stdio::piped())?;
    waiter.wait_ready(READY_LIMIT)?;
    // The waiter spins briefly, then sleeps: give it time to be asleep when the holder dies
    // (and the polling waiter time to reach its longer slices, as a real idle waiter would).
    std::thread::sleep(Duration::from_millis(120));
    let t0 = monotonic_ns();
    // SAFETY: kill(2) on our own unreaped child's pid.
    unsafe { libc::kill(holder.pid, libc::SIGKILL) };
    let out = waiter.stdout_take().ok_or("no waiter output")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let mut it = line.split_whitespace();
    let t1: u64 = it.next().ok_or("waiter said nothing")?.parse()?;
    let pid: i32 = it.next().ok_or("waiter gave no pid")?.parse()?;
    if pid != holder.pid {
        return Err(format!("waiter recovered from {pid}, the holder was {}", holder.pid).into());
    }
    holder.kill_and_reap()?;
    waiter.wait_exit(Duration::from_secs(10))?;
    drop(lock);
    shm.unlink_all();
    Ok(t1.saturating_sub(t0))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn run(opts: &Options) -> Res<String> {
    let mut t = String::new();
    use std::fmt::Write as _;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(
        t,
        "Linux {}, {cpus} CPUs. `cargo bench -p primitives --bench sleepers -- --sleepers {} --secs {} --trials {}`\n",
        kernel.trim(),
        opts.sleepers,
        opts.secs,
        opts.trials
    )?;
    writeln!(
        t,
        "| {} idle sleeper processes, blocked in a take nobody serves | CPU, all sleepers (% of one CPU) | CPU per sleeper (us/s) | vs pthread |",
        opts.sleepers
    )?;
    writeln!(t, "|---|--:|--:|--:|")?;
    let rows: [(&str, &dyn ProcessKind, &str); 3] = [
        ("pthread pshared MVar", &pshared::PthreadPshared, "pthread"),
        (
            "ours: SharedMVar, polling slices (before beacons)",
            &ours::OURS_SHARED_MVAR,
            POLLING_KIND,
        ),
        (
            "ours: SharedMVar, death beacons",
            &ours::OURS_SHARED_MVAR,
            ours::OURS_SHARED_MVAR.id(),
        ),
    ];
    let mut base = None;
    for (label, kind, child_kind) in rows {
        eprintln!("sleepers: idle {label} ...");
        let (cpu, wall) = idle_row(kind, child_kind, opts)?;
        let pct = 100.0 * cpu as f64 / wall.max(1) as f64;
        let per = cpu as f64 / 1e3 / (wall.max(1) as f64 / 1e9) / opts.sleepers.max(1) as f64;
        let ratio = match base {
            None => {
                base = Some(pct);
                "1".to_string()
            }
            Some(b) if b > 0.0 => format!("{:.1}x", pct / b),
            Some(_) => "-".to_string(),
        };
        writeln!(t, "| {label} | {pct:.3}% | {per:.2} | {ratio} |")?;
    }
    writeln!(
        t,
        "\n| takeover after SIGKILL of the holder ({} trials) | p50 (ms) | p99 (ms) | max (ms) |",
        opts.trials
    )?;
    writeln!(t, "|---|--:|--:|--:|")?;
    for (label, poll) in [
        ("ours: RobustWord lock, polling waiter (before beacons)", true),
        ("ours: RobustWord lock, beacon-watching waiter", false),
    ] {
        eprintln!("sleepers: takeover {label} ...");
        let mut v = Vec::with_capacity(opts.trials);
        for _ in 0..opts.trials {
            v.push(trial(poll)?);
        }
        v.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        writeln!(
            t,
            "| {label} | {:.2} | {:.2} | {:.2} |",
            ms(percentile(&v, 0.5)),
            ms(percentile(&v, 0.99)),
            ms(*v.last().unwrap_or(&0))
        )?;
    }
    Ok(t)
}
