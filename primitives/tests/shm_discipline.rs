//! Process discipline of shared segments outside a lab (issue 8, item 6): start-up cleanup only
//! ever removes the caller's own regular files and never judges a segment made in another PID
//! namespace that shares `/dev/shm`; creating a segment that `/dev/shm` cannot hold is a clear
//! error at creation, not a `SIGBUS` in a worker later.
//!
//! Real segments and real processes. Children are this test binary re-executed (`helper`, mode
//! chosen by [`HELPER_ENV`]), started through `torture/src/procs/tied.rs` (they die with the
//! test thread that started them, lead their own process group, and are killed with it and
//! reaped); every name and file a test makes is removed by a guard on every path. The tests
//! that need root or `unshare` say why on stderr and pass when they cannot run.
#![cfg(not(any(loom, shuttle)))]

use primitives::lock::SharedReentrantLock;
use primitives::mvar::SharedMVar;
use primitives::shm::identity::Identity;
use primitives::shm::{self, ShmName};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Env var selecting the helper mode of a re-executed copy of this binary.
const HELPER_ENV: &str = "SHM_DISCIPLINE_HELPER";
/// Env var naming the segment the helper creates.
const NAME_ENV: &str = "SHM_DISCIPLINE_NAME";
/// A pid above the kernel's largest `pid_max` (2^22): never a live process.
const DEAD_PID: u32 = 4_194_999;
/// Creator-pid and creator-start-time offsets in a segment header (see `primitives::shm`).
const OFF_CREATOR_PID: usize = 64;
const OFF_CREATOR_START: usize = 72;
/// Payload of the helper's MVar in the tiny `/dev/shm`: the segment is about 2 MiB.
const BIG_PAYLOAD: usize = 1 << 20;

#[allow(dead_code)]
#[path = "../../torture/src/procs/tied.rs"]
mod tied;
use tied::Tied;

/// Kills and reaps the child (dropping its `Tied`), unlinks the segment names and removes the
/// files when dropped.
struct Guard {
    child: Option<Tied>,
    names: Vec<ShmName>,
    paths: Vec<PathBuf>,
}

impl Guard {
    fn new(names: Vec<ShmName>, paths: Vec<PathBuf>) -> Guard {
        Guard {
            child: None,
            names,
            paths,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.child.take());
        for n in &self.names {
            let _ = nix::sys::mman::shm_unlink(n.as_str());
        }
        for p in &self.paths {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                let _ = std::fs::remove_dir(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn shm_path(name: &ShmName) -> PathBuf {
    PathBuf::from(format!("/dev/shm{}", name.as_str()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn have_unshare() -> bool {
    Command::new("unshare")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running helper: its stdout lines arrive on `lines`, its stderr is collected in the
/// background.
struct Helper {
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts this test binary in helper `mode` for segment `name`, behind the `wrapper` command
/// (e.g. `unshare …`; empty: directly), tied to this process: the child gets `SIGKILL` when this
/// thread ends, and leads its own process group, which `Tied::kill` (and the guard) kills.
///
/// Behind a wrapper, the tied process is the wrapper:
/// * `unshare --pid --fork --kill-child …` forks, and its child (pid 1 of the new namespace, the
///   helper) does not inherit the death signal `tie` set (fork clears it); `--kill-child` gives
///   it its own: `SIGKILL` when `unshare` dies — so it still dies with this thread. It also
///   stays in `unshare`'s process group, so killing the group reaches it directly.
/// * `unshare --mount … sh -c '… exec "$0" "$@"'` does not fork: `unshare`, `sh` and the helper
///   are one process, and the death signal and the process group survive the `exec`s (none is
///   set-user-ID).
fn spawn_helper(
    guard: &mut Guard,
    wrapper: &[&str],
    mode: &str,
    name: &ShmName,
) -> std::io::Result<Helper> {
    let exe = std::env::current_exe()?;
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["--exact", "helper", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, mode)
        .env(NAME_ENV, name.as_str())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Tied::spawn(&mut cmd)?;
    let stdout = child.child().stdout.take().expect("piped stdout");
    let mut stderr = child.child().stderr.take().expect("piped stderr");
    guard.child = Some(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Ok(Helper { lines, stderr })
}

/// The first stdout line of the helper that contains `marker`, from the marker on (the test
/// harness may print `test helper ... ` before it on the same line), within `limit`; `None` if
/// the helper ended (or the time ran out) without one.
fn wait_line(helper: &Helper, marker: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = helper.lines.recv_timeout(left).ok()?;
        if let Some(at) = line.find(marker) {
            return Some(line[at..].to_string());
        }
    }
}

/// Waits (bounded) for the guard's child to exit; after `limit` it is killed (its whole process
/// group) and reaped, and the result is `None`.
fn wait_exit(guard: &mut Guard, limit: Duration) -> Option<ExitStatus> {
    let status = guard.child.as_mut()?.wait_timeout(limit);
    drop(guard.child.take());
    status
}

/// Sets the modification time of `p` (not following a symlink) two minutes into the past, so
/// that cleanup's age rule for unreadable segments does not protect it.
fn age(p: &Path) {
    let then = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 120;
    let t = nix::sys::time::TimeSpec::new(then as libc::time_t, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", p.display()));
}

/// Helper child (does nothing unless [`HELPER_ENV`] is set):
/// * `create-and-exit`: creates a reentrant lock segment that outlives this process;
/// * `create-and-sleep`: creates one, holds its lock and sleeps until killed;
/// * `too-big`: creates a ~2 MiB MVar segment (meant to run where `/dev/shm` is 64 KiB) and
///   reports the error; if creation wrongly succeeds, touches every page of the object (which
///   then raises `SIGBUS`).
#[test]
fn helper() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    let name = ShmName::parse(&std::env::var(NAME_ENV).expect("segment name")).expect("name");
    match mode.as_str() {
        "create-and-exit" => {
            let lock = SharedReentrantLock::create_with_participants(&name, 4).expect("create");
            drop(lock.lock().expect("lock"));
            lock.segment().set_unlink_on_drop(false);
            println!("CREATED pid={}", std::process::id());
        }
        "create-and-sleep" => {
            let lock = SharedReentrantLock::create_with_participants(&name, 4).expect("create");
            let _held = lock.lock().expect("lock");
            println!("CREATED pid={}", std::process::id());
            std::thread::sleep(Duration::from_secs(120));
        }
        "too-big" => match SharedMVar::create(&name, BIG_PAYLOAD) {
            Err(e) => {
                let unlinked = !shm_path(&name).exists();
                println!("ERROR unlinked={unlinked} {e}");
            }
            Ok(m) => {
                println!("CREATED");
                let seg = m.segment();
                let base = seg.object_ptr().as_ptr();
                for off in (0..seg.layout().object_len as usize).step_by(4096) {
                    // SAFETY: `off` is inside the object area of the live mapping `seg` holds;
                    // the object is ours alone (nobody else knows the name), so the write
                    // races with nothing.
                    unsafe { base.add(off).write_volatile(1) };
                }
                println!("TOUCHED");
            }
        },
        other => panic!("unknown helper mode {other:?}"),
    }
}

/// Cleanup opens, maps and unlinks only regular files: a FIFO, a symlink (to a garbage regular
/// file outside `/dev/shm`) and a directory named like abandoned segments (dead pid in the
/// name, old) stay; a garbage regular file with the same kind of name — the control — goes.
#[test]
fn cleanup_skips_fifos_symlinks_and_directories() {
    if std::env::var(HELPER_ENV).is_ok() {
        return;
    }
    let tag = format!("{DEAD_PID}-{}-kinds-", std::process::id());
    let dev = Path::new("/dev/shm");
    let fifo = dev.join(format!("{}{tag}fifo", shm::NAME_PREFIX));
    let link = dev.join(format!("{}{tag}link", shm::NAME_PREFIX));
    let dir = dev.join(format!("{}{tag}dir", shm::NAME_PREFIX));
    let regular = dev.join(format!("{}{tag}regular", shm::NAME_PREFIX));
    let target = std::env::temp_dir().join(format!("shm-discipline-{}", std::process::id()));
    let _g = Guard::new(
        vec![],
        vec![
            fifo.clone(),
            link.clone(),
            dir.clone(),
            regular.clone(),
            target.clone(),
        ],
    );
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .expect("mkfifo");
    std::fs::write(&target, b"garbage, not a segment").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(&regular, b"garbage, not a segment").unwrap();
    for p in [&fifo, &link, &dir, &regular, &target] {
        age(p);
    }

    let cleaned = shm::cleanup(&tag).unwrap();

    let names: Vec<&str> = cleaned.iter().map(|c| c.name.as_str()).collect();
    let regular_name = format!("/{}", regular.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        names,
        [regular_name.as_str()],
        "only the garbage regular file may go: {cleaned:?}"
    );
    assert!(
        !regular.exists(),
        "control: the regular leftover was removed"
    );
    let kind = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.file_type());
    assert!(
        kind(&fifo).is_ok_and(|t| t.is_fifo()),
        "the FIFO is still there"
    );
    assert!(
        kind(&link).is_ok_and(|t| t.is_symlink()),
        "the symlink is still there"
    );
    assert!(
        kind(&dir).is_ok_and(|t| t.is_dir()),
        "the directory is still there"
    );
    assert!(
        kind(&target).is_ok_and(|t| t.is_file()),
        "the symlink's target is untouched"
    );
}

/// Cleanup never removes another user's file: an abandoned segment (its creator exited) owned
/// by uid 65534 stays; chowned back to us — the control — it is removed.
#[test]
fn cleanup_skips_a_segment_of_another_uid() {
    if std::env::var(HELPER_ENV).is_ok() {
        return;
    }
    if !is_root() {
        eprintln!("SKIP cleanup_skips_a_segment_of_another_uid: needs root to chown a segment");
        return;
    }
    let tag = format!("{DEAD_PID}-{}-uid-", std::process::id());
    let name = ShmName::parse(&format!("{}{tag}lock", shm::NAME_PREFIX)).unwrap();
    let path = shm_path(&name);
    let mut g = Guard::new(vec![name.clone()], vec![]);
    let helper = spawn_helper(&mut g, &[], "create-and-exit", &name).expect("spawn helper");
    let created = wait_line(&helper, "CREATED", Duration::from_secs(30));
    let status = wait_exit(&mut g, Duration::from_secs(30));
    let err = helper.stderr.join().unwrap_or_default();
    assert!(
        created.is_some() && status.is_some_and(|s| s.success()),
        "helper failed ({status:?}): {err}"
    );
    assert!(path.exists(), "the helper left its segment behind");

    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let cleaned = shm::cleanup(&tag).unwrap();
    assert!(
        cleaned.is_empty(),
        "another user's segment was judged: {cleaned:?}"
    );
    assert!(path.exists(), "another user's segment was removed");

    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    let cleaned = shm::cleanup(&tag).unwrap();
    assert_eq!(
        cleaned.len(),
        1,
        "control: our own abandoned segment goes: {cleaned:?}"
    );
    assert!(
        !path.exists(),
        "control: our own abandoned segment was removed"
    );
}

/// Cleanup leaves a live segment whose creator runs in another PID namespace that shares
/// `/dev/shm`: the creator is pid 1 there, and the creator identity in the header (pid + start
/// time) names no live process here — so only the namespace check keeps it.
#[test]
fn cleanup_leaves_a_live_segment_of_another_pid_namespace() {
    if std::env::var(HELPER_ENV).is_ok() {
        return;
    }
    if !is_root() || !have_unshare() {
        eprintln!(
            "SKIP cleanup_leaves_a_live_segment_of_another_pid_namespace: needs root and \
             util-linux unshare"
        );
        return;
    }
    let tag = format!("{DEAD_PID}-{}-pidns-", std::process::id());
    let name = ShmName::parse(&format!("{}{tag}lock", shm::NAME_PREFIX)).unwrap();
    let path = shm_path(&name);
    let mut g = Guard::new(vec![name.clone()], vec![]);
    let wrapper = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];
    let helper = spawn_helper(&mut g, &wrapper, "create-and-sleep", &name).expect("spawn");
    let Some(created) = wait_line(&helper, "CREATED", Duration::from_secs(30)) else {
        let status = wait_exit(&mut g, Duration::from_secs(5));
        let err = helper.stderr.join().unwrap_or_default();
        if err.contains("unshare:") {
            eprintln!("SKIP cleanup_leaves_a_live_segment_of_another_pid_namespace: {err}");
            return;
        }
        panic!("helper in a new PID namespace failed ({status:?}): {err}");
    };
    assert!(path.exists(), "the helper made its segment");

    // Precondition: seen from here, the creator recorded in the header is not alive (its pid
    // means another process in this namespace, or none) — a pid-only judgement would remove
    // the segment.
    let bytes = std::fs::read(&path).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let creator = Identity {
        pid: u32_at(OFF_CREATOR_PID),
        tid: 0,
        pid_start: u64_at(OFF_CREATOR_START),
        tid_start: 0,
    };
    assert!(
        !creator.is_alive(),
        "precondition: the foreign creator ({created}, header pid {}) must look dead here",
        creator.pid
    );

    let cleaned = shm::cleanup(&tag).unwrap();
    assert!(
        cleaned.is_empty(),
        "a live foreign-namespace segment was judged: {cleaned:?}"
    );
    assert!(
        path.exists(),
        "a live foreign-namespace segment was removed"
    );

    // Kill the namespace (its process group: unshare and the helper; the helper also gets
    // SIGKILL when unshare dies) and reap unshare; the guard unlinks the segment.
    drop(g.child.take());
    drop(helper.stderr.join());
}

/// Creating a segment bigger than `/dev/shm` has room for is a clear error at creation, and the
/// half-made segment is unlinked — not a `SIGBUS` when a page is first touched. Runs in a child
/// in a private mount namespace with a 64 KiB tmpfs over `/dev/shm`; the host's `/dev/shm` is
/// never touched.
#[test]
fn creating_a_segment_larger_than_dev_shm_is_an_error_not_sigbus() {
    if std::env::var(HELPER_ENV).is_ok() {
        return;
    }
    if !is_root() || !have_unshare() {
        eprintln!(
            "SKIP creating_a_segment_larger_than_dev_shm_is_an_error_not_sigbus: needs root \
             and util-linux unshare"
        );
        return;
    }
    let host_dev = std::fs::metadata("/dev/shm").unwrap().dev();
    let name = ShmName::unique("discipline-too-big");
    let mut g = Guard::new(vec![name.clone()], vec![]);
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs -o size=64k,mode=1777 tmpfs /dev/shm && exec \"$0\" \"$@\"",
    ];
    let helper = spawn_helper(&mut g, &wrapper, "too-big", &name).expect("spawn");
    let status = wait_exit(&mut g, Duration::from_secs(60));
    let err = helper.stderr.join().unwrap_or_default();
    // The reader thread ends at the child's EOF, which disconnects the channel.
    let lines: Vec<String> =
        std::iter::from_fn(|| helper.lines.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let result = lines.iter().find_map(|l| {
        let at = l.find("ERROR ").or_else(|| l.find("CREATED"))?;
        Some(&l[at..])
    });

    assert_eq!(
        std::fs::metadata("/dev/shm").unwrap().dev(),
        host_dev,
        "the host's /dev/shm was replaced"
    );
    assert!(
        !shm_path(&name).exists(),
        "the segment appeared in the host's /dev/shm"
    );
    let Some(result) = result else {
        if status.is_some_and(|s| s.signal() == Some(libc::SIGBUS)) {
            panic!("the helper died of SIGBUS: {err}");
        }
        if err.contains("unshare:") || err.contains("mount:") {
            eprintln!("SKIP creating_a_segment_larger_than_dev_shm_is_an_error_not_sigbus: {err}");
            return;
        }
        panic!("helper reported nothing ({status:?}): {lines:?} {err}");
    };
    assert!(
        result.starts_with("ERROR"),
        "a ~2 MiB segment was created in a 64 KiB /dev/shm (then {status:?}{}): {lines:?}",
        if status.is_some_and(|s| s.signal() == Some(libc::SIGBUS)) {
            ", SIGBUS on first touch"
        } else {
            ""
        }
    );
    assert!(
        result.contains("no space in /dev/shm"),
        "the error says why: {result}"
    );
    assert!(
        result.starts_with("ERROR unlinked=true"),
        "the half-made segment was unlinked: {result}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "helper: {status:?} {err}"
    );
}
