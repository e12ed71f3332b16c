//! The shared lock-order graph across real processes (seed 001: ODB→SYSMSG in one process,
//! SYSMSG→ODB in another, never at the same time).
//!
//! A parent test re-executes this test binary (`--exact <child test>`) with the role and the
//! segment names in environment variables; a child test returns at once when its variable is
//! absent, so in a normal run the child tests are no-ops. The parent holds the segments open
//! while its children run (a segment is unlinked when its last user goes), reaps the children
//! and unlinks the names on every exit path (drop guards).
// Real processes and real shared memory: not built under the model engines.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::order::RemoteAcquisition;
use primitives::lock::order_shared::SharedError;
use primitives::lock::{Mode, ReentrantLock, SharedReentrantLock, Validator, ViolationKind};
use primitives::shm::identity::Identity;
use primitives::shm::{Kind, Segment, ShmName};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Role of a child process; absent in a normal test run.
const ROLE_ENV: &str = "ORDER_SHARED_ROLE";
/// Name of the lock-order graph segment.
const GRAPH_ENV: &str = "ORDER_SHARED_GRAPH";
/// Names of the two lock segments.
const ODB_ENV: &str = "ORDER_SHARED_ODB";
const SYSMSG_ENV: &str = "ORDER_SHARED_SYSMSG";
/// Pid of the process whose order the child should see.
const PEER_ENV: &str = "ORDER_SHARED_PEER";
/// Unix time (ms) at which concurrent children start registering.
const START_ENV: &str = "ORDER_SHARED_START_MS";

const ROLE_FORWARD: &str = "forward";
const ROLE_REVERSE: &str = "reverse";
const ROLE_REGISTER: &str = "register";

/// A child that takes longer than this is hung: killed, and the test fails.
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// Delay before concurrent children start (lets both get to the start line).
const START_DELAY: Duration = Duration::from_millis(300);
/// Class names registered concurrently.
const REGISTERED: usize = 40;
/// Prefix of a child's report of a class index.
const INDEX_LINE: &str = "INDEX ";
/// Printed by a child whose Panic-mode validator panicked as expected.
const PANIC_CAUGHT: &str = "PANIC-CAUGHT";
/// Printed by a child that saw no violation.
const NO_VIOLATION: &str = "NO-VIOLATION";
/// Start of a report line of the validator in Report mode.
const REPORT_LINE: &str = "lockdep: lock-order inversion";

fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

fn env_name(var: &str) -> ShmName {
    ShmName::parse(&std::env::var(var).expect("segment name in the environment")).expect("name")
}

/// Unlinks a segment name when dropped (ignoring "already gone").
struct Unlink(ShmName);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = nix::sys::mman::shm_unlink(self.0.as_str());
    }
}

#[allow(dead_code)]
#[path = "../../torture/src/procs/tied.rs"]
mod tied;

/// A child process, tied to this one: killed (its whole process group) and reaped if still
/// running when dropped.
struct Child {
    child: tied::Tied,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

/// What a finished child left.
struct Finished {
    pid: u32,
    success: bool,
    stdout: String,
    stderr: String,
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

impl Child {
    fn spawn(test: &str, env: &[(&str, String)]) -> Child {
        let exe = std::env::current_exe().expect("current test binary");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = tied::Tied::spawn(&mut cmd).expect("spawn child test");
        let out = child.child().stdout.take().map(reader);
        let err = child.child().stderr.take().map(reader);
        Child { child, out, err }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child (at most [`CHILD_LIMIT`]); panics if it hangs (it is then killed
    /// and reaped when `self` drops).
    fn finish(mut self) -> Finished {
        let status = self
            .child
            .wait_timeout(CHILD_LIMIT)
            .unwrap_or_else(|| panic!("child {} hung (over {CHILD_LIMIT:?})", self.pid()));
        let stdout = self.out.take().map(|h| h.join().unwrap_or_default());
        let stderr = self.err.take().map(|h| h.join().unwrap_or_default());
        Finished {
            pid: self.pid(),
            success: status.success(),
            stdout: stdout.unwrap_or_default(),
            stderr: stderr.unwrap_or_default(),
        }
    }
}

/// The graph and the two locks of the MIDAS story, held open by the parent.
struct Midas {
    graph: ShmName,
    odb: ShmName,
    sysmsg: ShmName,
    _validator: Validator,
    _locks: [SharedReentrantLock; 2],
    _unlink: [Unlink; 3],
}

impl Midas {
    fn new() -> Midas {
        let graph = ShmName::unique("order-graph");
        let odb = ShmName::unique("order-odb");
        let sysmsg = ShmName::unique("order-sysmsg");
        let unlink = [
            Unlink(graph.clone()),
            Unlink(odb.clone()),
            Unlink(sysmsg.clone()),
        ];
        let validator = Validator::shared(Mode::Report, &graph).expect("graph");
        let locks = [
            SharedReentrantLock::create(&odb).expect("ODB lock"),
            SharedReentrantLock::create(&sysmsg).expect("SYSMSG lock"),
        ];
        Midas {
            graph,
            odb,
            sysmsg,
            _validator: validator,
            _locks: locks,
            _unlink: unlink,
        }
    }

    fn env(&self, role: &str) -> Vec<(&'static str, String)> {
        vec![
            (ROLE_ENV, role.to_string()),
            (GRAPH_ENV, self.graph.as_str().to_string()),
            (ODB_ENV, self.odb.as_str().to_string()),
            (SYSMSG_ENV, self.sysmsg.as_str().to_string()),
        ]
    }
}

/// A child's validator on the shared graph and its two tracked locks.
fn child_setup(mode: Mode) -> (Validator, SharedReentrantLock, SharedReentrantLock) {
    let v = Validator::shared(mode, &env_name(GRAPH_ENV)).expect("open graph");
    let odb_class = v.class("ODB", true);
    let sys_class = v.class("SYSMSG", true);
    assert!(odb_class.shared_index().is_some() && sys_class.shared_index().is_some());
    let odb = SharedReentrantLock::open(&env_name(ODB_ENV))
        .expect("ODB")
        .tracked(&odb_class);
    let sys = SharedReentrantLock::open(&env_name(SYSMSG_ENV))
        .expect("SYSMSG")
        .tracked(&sys_class);
    (v, odb, sys)
}

/// Child: ODB then SYSMSG, with re-entries (also of ODB while holding SYSMSG), in Report mode.
#[test]
fn child_forward() {
    if role().as_deref() != Some(ROLE_FORWARD) {
        return;
    }
    let (v, odb, sys) = child_setup(Mode::Report);
    for _ in 0..2 {
        let _o = odb.lock().expect("ODB");
        let _o2 = odb.lock().expect("ODB re-entered");
        let _s = sys.lock().expect("SYSMSG");
        let _o3 = odb.lock().expect("ODB re-entered under SYSMSG");
        let _s2 = sys.lock().expect("SYSMSG re-entered");
    }
    assert!(v.violations().is_empty(), "{:?}", v.violations());
    println!("{NO_VIOLATION}");
}

/// Child: SYSMSG then ODB (twice), in Report mode; then again with a Panic-mode validator.
#[test]
fn child_reverse() {
    if role().as_deref() != Some(ROLE_REVERSE) {
        return;
    }
    let peer: u32 = std::env::var(PEER_ENV)
        .expect("peer pid")
        .parse()
        .expect("pid");
    let (v, odb, sys) = child_setup(Mode::Report);
    for _ in 0..2 {
        let _s = sys.lock().expect("SYSMSG");
        let _o = odb.lock().expect("ODB");
    }
    let vs = v.violations();
    assert_eq!(vs.len(), 1, "{vs:?}");
    let x = &vs[0];
    assert_eq!(x.kind, ViolationKind::Inversion);
    assert_eq!(x.cycle, ["SYSMSG", "ODB", "SYSMSG"]);
    let here: Vec<_> = x.this_chain.iter().map(|a| a.class).collect();
    assert_eq!(here, ["SYSMSG", "ODB"]);
    assert!(x.earlier_chain.is_empty());
    let there: Vec<_> = x.remote_chain.iter().map(|a| a.class).collect();
    assert_eq!(there, ["ODB", "SYSMSG"], "{x}");
    for RemoteAcquisition { pid, tid, at, .. } in &x.remote_chain {
        assert_eq!(*pid, peer, "{x}");
        assert_ne!(*tid, 0, "{x}");
        let at = at.as_deref().unwrap_or("");
        assert!(at.contains("shm_lockorder.rs:"), "{x}");
    }
    let text = x.to_string();
    assert!(
        text.contains(&format!("SYSMSG -> ODB here (pid {}", std::process::id())),
        "{text}"
    );
    assert!(
        text.contains(&format!("earlier ODB -> SYSMSG in pid {peer}")),
        "{text}"
    );

    // A second, Panic-mode validator of this process: it panics at the acquisition of ODB,
    // before it could block, naming the other process.
    let (_p, odb, sys) = child_setup(Mode::Panic);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _s = sys.lock().expect("SYSMSG");
        let _o = odb.lock().expect("ODB");
    }));
    std::panic::set_hook(hook);
    let payload = r.expect_err("the Panic-mode validator should have panicked");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains(&format!("in pid {peer}")), "{msg}");
    assert!(
        odb.owner().is_none() && sys.owner().is_none(),
        "both released"
    );
    println!("{PANIC_CAUGHT}");
}

/// Child: registers [`REGISTERED`] names from the start time on and prints their indices.
#[test]
fn child_register() {
    if role().as_deref() != Some(ROLE_REGISTER) {
        return;
    }
    let v = Validator::shared(Mode::Report, &env_name(GRAPH_ENV)).expect("open graph");
    let start_ms: u128 = std::env::var(START_ENV)
        .expect("start time")
        .parse()
        .expect("ms");
    while unix_ms() < start_ms {
        std::hint::spin_loop();
    }
    for name in class_names() {
        let c = v.try_class(name, true).expect("registered");
        println!("{INDEX_LINE}{name} {}", c.shared_index().expect("shared"));
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn class_names() -> Vec<&'static str> {
    (0..REGISTERED)
        .map(|i| &*Box::leak(format!("class-{i:02}").into_boxed_str()))
        .collect()
}

fn indices(stdout: &str) -> BTreeMap<String, usize> {
    stdout
        .lines()
        .filter_map(|l| l.split(INDEX_LINE).nth(1))
        .filter_map(|l| {
            let (name, i) = l.split_once(' ')?;
            Some((name.to_string(), i.parse().ok()?))
        })
        .collect()
}

#[test]
fn an_inversion_across_two_processes_is_reported_once_with_both_chains() {
    let m = Midas::new();
    let a = Child::spawn("child_forward", &m.env(ROLE_FORWARD)).finish();
    assert!(a.success, "A failed:\n{}\n{}", a.stdout, a.stderr);
    assert!(a.stdout.contains(NO_VIOLATION), "{}", a.stdout);
    assert!(!a.stderr.contains("lockdep:"), "A reported: {}", a.stderr);

    let mut env = m.env(ROLE_REVERSE);
    env.push((PEER_ENV, a.pid.to_string()));
    let b = Child::spawn("child_reverse", &env).finish();
    assert!(b.success, "B failed:\n{}\n{}", b.stdout, b.stderr);
    assert!(b.stdout.contains(PANIC_CAUGHT), "{}", b.stdout);
    let reports: Vec<_> = b
        .stderr
        .lines()
        .filter(|l| l.starts_with(REPORT_LINE))
        .collect();
    assert_eq!(reports.len(), 1, "exactly one report:\n{}", b.stderr);
    assert!(
        b.stderr.contains(&format!("in pid {}", a.pid)),
        "{}",
        b.stderr
    );
    eprintln!("B's report:\n{}", b.stderr.trim_end());
}

#[test]
fn the_same_order_in_two_processes_is_no_violation() {
    let m = Midas::new();
    for _ in 0..2 {
        let c = Child::spawn("child_forward", &m.env(ROLE_FORWARD)).finish();
        assert!(c.success, "child failed:\n{}\n{}", c.stdout, c.stderr);
        assert!(c.stdout.contains(NO_VIOLATION), "{}", c.stdout);
        assert!(!c.stderr.contains("lockdep:"), "{}", c.stderr);
    }
}

#[test]
fn a_name_registered_by_two_processes_at_once_gets_one_index() {
    let graph = ShmName::unique("order-register");
    let _unlink = Unlink(graph.clone());
    let parent = Validator::shared(Mode::Report, &graph).expect("graph");
    let start = unix_ms() + START_DELAY.as_millis();
    let env = [
        (ROLE_ENV, ROLE_REGISTER.to_string()),
        (GRAPH_ENV, graph.as_str().to_string()),
        (START_ENV, start.to_string()),
    ];
    let children = [
        Child::spawn("child_register", &env),
        Child::spawn("child_register", &env),
    ];
    let maps: Vec<_> = children
        .into_iter()
        .map(|c| {
            let f = c.finish();
            assert!(f.success, "child failed:\n{}\n{}", f.stdout, f.stderr);
            indices(&f.stdout)
        })
        .collect();
    assert_eq!(maps[0].len(), REGISTERED);
    assert_eq!(maps[0], maps[1], "both processes agree on every index");
    let mut used: Vec<usize> = maps[0].values().copied().collect();
    used.sort_unstable();
    assert_eq!(
        used,
        (0..REGISTERED).collect::<Vec<_>>(),
        "one entry per name"
    );
    let c = parent.class("class-07", true);
    assert_eq!(c.shared_index(), maps[0].get("class-07").copied());
}

#[test]
fn threads_with_their_own_mappings_agree_on_indices() {
    const THREADS: usize = 4;
    let graph = ShmName::unique("order-threads");
    let _unlink = Unlink(graph.clone());
    let barrier = std::sync::Barrier::new(THREADS);
    let names = class_names();
    let maps: Vec<BTreeMap<&str, usize>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let (graph, barrier, names) = (&graph, &barrier, &names);
                s.spawn(move || {
                    // Every thread creates-or-opens at once (the creation race), then registers.
                    let v = Validator::shared(Mode::Report, graph);
                    barrier.wait();
                    let v = v.expect("graph");
                    let mut order = names.clone();
                    if t % 2 == 1 {
                        order.reverse();
                    }
                    let map = order
                        .iter()
                        .map(|&n| (n, v.try_class(n, true).unwrap().shared_index().unwrap()))
                        .collect();
                    map
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for m in &maps[1..] {
        assert_eq!(m, &maps[0]);
    }
    let mut used: Vec<usize> = maps[0].values().copied().collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), REGISTERED);
}

#[test]
fn opposite_orders_recorded_at_once_are_reported_at_least_once() {
    const ROUNDS: usize = 30;
    for _ in 0..ROUNDS {
        let graph = ShmName::unique("order-dekker");
        let _unlink = Unlink(graph.clone());
        let barrier = std::sync::Barrier::new(2);
        let reported: usize = std::thread::scope(|s| {
            let hs: Vec<_> = [["A", "B"], ["B", "A"]]
                .into_iter()
                .map(|order| {
                    // Own validator and own locks: the two halves only meet in the graph.
                    let v = Validator::shared_with_capacity(Mode::Report, &graph, 4).unwrap();
                    let locks = order.map(|n| ReentrantLock::tracked((), &v.class(n, true)));
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        {
                            let _first = locks[0].lock();
                            let _second = locks[1].lock();
                        }
                        v.violations().len()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!(reported >= 1, "an inversion recorded at once was missed");
    }
}

#[test]
fn a_full_table_is_an_error_and_the_class_is_tracked_locally() {
    let graph = ShmName::unique("order-full");
    let _unlink = Unlink(graph.clone());
    let v = Validator::shared_with_capacity(Mode::Report, &graph, 4).expect("graph");
    let first: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| v.try_class(n, true).expect("room"))
        .collect();
    let idx: Vec<_> = first.iter().map(|c| c.shared_index()).collect();
    assert_eq!(idx, [Some(0), Some(1), Some(2), Some(3)]);
    match v.try_class("e", true) {
        Err(e @ SharedError::TableFull { capacity: 4, .. }) => {
            assert!(e.to_string().contains("full"), "{e}");
        }
        other => panic!("expected TableFull, got {other:?}"),
    }
    let e = v.class("e", true);
    assert_eq!(e.shared_index(), None, "tracked locally only");
    assert_eq!(v.shared_errors().len(), 2);
    assert_eq!(
        v.class("a", true).shared_index(),
        Some(0),
        "known names still resolve"
    );
    let too_long = "x".repeat(200).leak();
    assert!(matches!(
        v.try_class(too_long, true),
        Err(SharedError::NameTooLong { .. })
    ));
    // The local graph still sees an inversion involving the local-only class.
    let a = ReentrantLock::tracked((), &first[0]);
    let el = ReentrantLock::tracked((), &e);
    {
        let _a = a.lock();
        let _e = el.lock();
    }
    {
        let _e = el.lock();
        let _a = a.lock();
    }
    let vs = v.violations();
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert!(vs[0].remote_chain.is_empty() && !vs[0].earlier_chain.is_empty());
}

#[test]
fn off_mode_touches_no_segment() {
    let graph = ShmName::unique("order-off");
    let _unlink = Unlink(graph.clone());
    let v = Validator::shared(Mode::Off, &graph).expect("off");
    assert!(v.shared_segment().is_none());
    assert_eq!(v.class("ODB", true).shared_index(), None);
    assert!(matches!(
        Segment::open(&graph, Kind::LockOrder),
        Err(primitives::shm::ShmError::NotFound(_))
    ));
}

/// xorshift64: a reproducible stream of garbage.
fn garbage(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Fills the graph's object area with words from `next`.
fn scribble(seg: &Segment, mut next: impl FnMut(usize) -> u64) {
    let words = seg.layout().object_len as usize / 8;
    let base = seg.object_ptr().as_ptr().cast::<u64>();
    for i in 0..words {
        // SAFETY: `i < object_len / 8` words into the 64-aligned object area of a live mapping;
        // no validator of this process is using the graph while it is scribbled over.
        unsafe { base.add(i).write_volatile(next(i)) };
    }
}

/// Registers classes and takes locks in both orders on a scribbled-over graph: must neither
/// panic nor hang; the local inversion is still reported.
fn exercise(graph: &ShmName) -> Validator {
    let v = Validator::shared(Mode::Report, graph).expect("open scribbled graph");
    let classes: Vec<_> = ["A", "B", "C", "D"]
        .iter()
        .map(|n| v.class(n, true))
        .collect();
    let locks: Vec<_> = classes
        .iter()
        .map(|c| ReentrantLock::tracked((), c))
        .collect();
    for (x, y) in [(0, 1), (1, 2), (2, 3), (1, 0), (3, 0)] {
        let _x = locks[x].lock();
        let _y = locks[y].lock();
    }
    let vs = v.violations();
    assert!(
        vs.iter()
            .any(|x| x.cycle.contains(&"A") && x.cycle.contains(&"B")),
        "{vs:?}"
    );
    for x in &vs {
        let _ = x.to_string(); // garbage text is printable
    }
    v
}

#[test]
fn a_scribbled_graph_neither_panics_nor_hangs() {
    const SEEDS: u64 = 12;
    for seed in 0..SEEDS {
        let graph = ShmName::unique("order-hostile");
        let _unlink = Unlink(graph.clone());
        let holder = Validator::shared_with_capacity(Mode::Report, &graph, 8).expect("graph");
        let seg = holder.shared_segment().expect("shared");
        let mut next = garbage(seed);
        scribble(seg, |_| next());
        exercise(&graph);
    }

    // Every state word "being written" by this (live) process: registrations wait at most
    // CLASS_WAIT each, then give up with `Busy` and the classes are tracked locally only (the
    // four `Busy` errors below are that bound at work; how long the waits took is not asserted).
    let graph = ShmName::unique("order-hostile-busy");
    let _unlink = Unlink(graph.clone());
    let holder = Validator::shared_with_capacity(Mode::Report, &graph, 8).expect("graph");
    let me = Identity::current_process();
    let writing = (1u64 << 62) | (me.pid_start << 22) | u64::from(me.pid);
    scribble(holder.shared_segment().expect("shared"), |i| {
        if i % 8 == 0 {
            writing
        } else {
            0
        }
    });
    let v = exercise(&graph);
    let errors = v.shared_errors();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors.iter().all(|e| matches!(e, SharedError::Busy { .. })));
}
