//! The seam between `torture mvar` and the cross-process MVar it tortures: the reference
//! ([`reference`](mod@reference), `primitives::mvar::SharedMVar`, or one of its negative-control flavours) or a
//! user's C library loaded with `--impl-lib` ([`clib`], the ABI of
//! `torture/include/torture_mvar.h`).
//!
//! - [`MVarHandle`]: one process's handle on the box — put and take with a timeout on byte
//!   payloads ([`Status`]), and what torture may read about the box when the implementation
//!   can say it (its lock holder, its commit count, whether it is full);
//! - [`Caps`]: what the implementation promises (ROBUST, HOLDER, COMMITS, READ); a check that
//!   needs a missing capability is skipped and listed in the report as *not checked*;
//! - [`Implementation`]: creates, opens and destroys boxes by name, and names itself and its
//!   operations in reports. Workers re-executed by the runner get the same one from their spec
//!   (the control's name, or the library's absolute path);
//! - [`Created`]: the runner's box, destroyed when dropped (pass, fail, Ctrl-C/SIGTERM: every
//!   exit path of the runner drops it);
//! - [`probe`]: a library is first loaded in a child process (`torture __probe-lib PATH`), so
//!   that one crashing in its constructor, in `abi_version` or in `create` costs one line and
//!   exit 2, never the runner.

pub mod clib;
pub mod judge;
pub mod lock;
pub mod plugin;
pub mod reference;

use crate::procs::ledger::Op;
use primitives::mvar::SharedMVar;
use primitives::shm::ShmName;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a put or a take returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// The timeout passed (nothing happened).
    Timeout,
    /// Done, after recovering the box from a participant that died holding it.
    OwnerDied,
    /// Anything else.
    Error(String),
}

/// What an implementation promises (`TORTURE_CAP_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Caps {
    /// A participant killed at any instruction loses nothing and wedges no one.
    pub robust: bool,
    /// It names the pid holding the box's lock.
    pub holder: bool,
    /// It counts completed puts and takes.
    pub commits: bool,
    /// It can copy the value without taking it.
    pub read: bool,
}

impl Caps {
    /// Every capability (the reference).
    pub const ALL: Caps = Caps {
        robust: true,
        holder: true,
        commits: true,
        read: true,
    };

    /// From `TORTURE_CAP_*` bits.
    pub fn from_bits(bits: u32) -> Caps {
        Caps {
            robust: bits & 1 != 0,
            holder: bits & 2 != 0,
            commits: bits & 4 != 0,
            read: bits & 8 != 0,
        }
    }

    /// `ROBUST|HOLDER` (or `none`).
    pub fn words(&self) -> String {
        cap_words(&[
            (self.robust, "ROBUST"),
            (self.holder, "HOLDER"),
            (self.commits, "COMMITS"),
            (self.read, "READ"),
        ])
    }
}

/// The capabilities that are on, as `A|B` (or `none`).
pub fn cap_words(caps: &[(bool, &str)]) -> String {
    let on: Vec<&str> = caps.iter().filter(|(on, _)| *on).map(|(_, w)| *w).collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join("|")
    }
}

/// How long an operation may wait: `None` as long as needed, zero never (a try).
pub type Wait = Option<Duration>;

/// One process's handle on a shared box (used from one thread).
pub trait MVarHandle {
    /// Puts `value` (`payload_len` bytes), waiting while the box is full.
    fn put(&self, value: &[u8], wait: Wait) -> Status;
    /// Takes the value into `out` (`payload_len` bytes), waiting while the box is empty.
    fn take(&self, out: &mut [u8], wait: Wait) -> Status;
    /// Bytes per value.
    fn payload_len(&self) -> usize;
    /// `Some(pid)` holding the box's lock (`Some(None)`: free); `None` without HOLDER.
    fn holder(&self) -> Option<Option<u32>>;
    /// Completed puts + takes since creation; `None` without COMMITS.
    fn commits(&self) -> Option<u64>;
    /// Whether the box is full; `None` if the implementation cannot say without taking.
    fn is_full(&self) -> Option<bool>;
    /// The reference's own handle, for what only it can tell (sleep statistics, waiters).
    fn reference(&self) -> Option<&SharedMVar> {
        None
    }
}

/// The MVar a run tortures.
#[derive(Clone)]
pub enum Implementation {
    /// `primitives::mvar::SharedMVar` (or the control named here).
    Reference(Option<String>),
    /// A C library (`--impl-lib`).
    Lib(Arc<clib::Lib>),
    /// A Rust implementation registered by the running binary (`--impl NAME`).
    Plugin(&'static str, Arc<dyn plugin::CrossMVar>),
}

impl Implementation {
    /// The one a worker's spec names: a control (or the reference), or a library's path.
    pub fn select(
        control: Option<&str>,
        lib: Option<&Path>,
        plugin: Option<&str>,
    ) -> Result<Implementation, String> {
        if let Some(name) = plugin {
            return Implementation::plugin(name);
        }
        match lib {
            Some(p) => Ok(Implementation::Lib(Arc::new(clib::Lib::load(p)?))),
            None => {
                crate::procs::controls::flavor(control)
                    .ok_or_else(|| format!("unknown control {control:?}"))?;
                Ok(Implementation::Reference(control.map(str::to_string)))
            }
        }
    }

    /// The registered implementation `name` of this binary (`--impl`).
    pub fn plugin(name: &str) -> Result<Implementation, String> {
        let (name, imp) = plugin::resolve(name)?;
        Ok(Implementation::Plugin(name, imp))
    }

    /// The library's path, if it is one.
    pub fn lib_path(&self) -> Option<PathBuf> {
        match self {
            Implementation::Lib(l) => Some(l.path().to_path_buf()),
            Implementation::Reference(_) | Implementation::Plugin(..) => None,
        }
    }

    /// The registered implementation's name, if it is one.
    pub fn plugin_name(&self) -> Option<String> {
        match self {
            Implementation::Plugin(n, _) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Implementation::Reference(None) => "reference protocol".into(),
            Implementation::Reference(Some(c)) => format!("CONTROL {c}"),
            Implementation::Lib(l) => format!("C library {}", l.path().display()),
            Implementation::Plugin(n, _) => format!("implementation {n:?}"),
        }
    }

    /// What it promises.
    pub fn caps(&self) -> Caps {
        match self {
            Implementation::Reference(_) => Caps::ALL,
            Implementation::Lib(l) => l.caps(),
            Implementation::Plugin(_, p) => p.caps(),
        }
    }

    /// Its operation `op`, as a hang report names it.
    pub fn op_name(&self, op: Op) -> String {
        match self {
            Implementation::Reference(_) => op.to_string(),
            Implementation::Lib(_) => format!("torture_mvar_{op}"),
            Implementation::Plugin(n, _) => format!("{n}::{op}"),
        }
    }

    /// Creates the box `name` and opens the runner's handle on it; destroyed when dropped.
    pub fn create(
        &self,
        name: &ShmName,
        payload_len: usize,
        participants: u32,
    ) -> Result<Created, String> {
        let handle: Box<dyn MVarHandle> = match self {
            Implementation::Reference(c) => Box::new(reference::Reference::create(
                name,
                payload_len,
                participants,
                c.as_deref(),
            )?),
            Implementation::Lib(l) => {
                l.create(name.as_str(), payload_len)?;
                match clib::Handle::open(l, name.as_str(), payload_len) {
                    Ok(h) => Box::new(h),
                    Err(e) => {
                        l.destroy(name.as_str());
                        return Err(e);
                    }
                }
            }
            Implementation::Plugin(_, p) => {
                p.create(name.as_str(), payload_len)?;
                match p.open(name.as_str()) {
                    Ok(h) => h,
                    Err(e) => {
                        p.destroy(name.as_str());
                        return Err(e);
                    }
                }
            }
        };
        Ok(Created {
            imp: self.clone(),
            name: name.as_str().to_string(),
            handle: Some(handle),
        })
    }

    /// Opens the box `name` in this process.
    pub fn open(&self, name: &str, payload_len: usize) -> Result<Box<dyn MVarHandle>, String> {
        Ok(match self {
            Implementation::Reference(c) => {
                Box::new(reference::Reference::open(name, c.as_deref())?)
            }
            Implementation::Lib(l) => Box::new(clib::Handle::open(l, name, payload_len)?),
            Implementation::Plugin(_, p) => p.open(name)?,
        })
    }
}

/// The runner's box: its handle, and the box destroyed when dropped (`torture_mvar_destroy`, or
/// the reference's segment unlinked).
pub struct Created {
    imp: Implementation,
    name: String,
    handle: Option<Box<dyn MVarHandle>>,
}

impl Created {
    /// The runner's handle.
    pub fn handle(&self) -> &dyn MVarHandle {
        self.handle.as_deref().expect("present until dropped")
    }

    /// The box's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        let h = self.handle.take();
        match &self.imp {
            Implementation::Reference(_) => {
                if let Some(r) = h.as_deref().and_then(|h| h.reference()) {
                    let _ = r.segment().unlink();
                }
            }
            Implementation::Lib(l) => {
                drop(h);
                l.destroy(&self.name);
            }
            Implementation::Plugin(_, p) => {
                drop(h);
                p.destroy(&self.name);
            }
        }
    }
}

/// Why `--impl name` names no `kind` implementation of this binary.
pub fn unknown(name: &str, kind: &str, names: Vec<&'static str>) -> String {
    if names.is_empty() {
        format!(
            "no {kind} implementation named {name:?}: this binary registers none (--impl is \
                 for a binary that calls torture::main with a Registry; a C library goes with \
                 --impl-lib)"
        )
    } else {
        format!(
            "no {kind} implementation named {name:?}; this binary registers: {}",
            names.join(", ")
        )
    }
}

/// The library at `path`, validated in a child process first (see [`probe`]), then loaded
/// here; the error is the rest of one line.
pub fn load_lib(path: &Path) -> Result<Implementation, String> {
    let abs = std::fs::canonicalize(path).map_err(|e| format!("cannot open: {e}"))?;
    probe(&abs, Abi::MVar)?;
    Implementation::select(None, Some(&abs), None)
}

/// The implementation `--impl-lib` / `--impl` name (`None`: the reference), or the line a
/// scenario `cmd` prints before exiting 2.
pub fn from_flags(
    cmd: &str,
    lib: Option<&Path>,
    name: Option<&str>,
) -> Result<Option<Implementation>, String> {
    match (lib, name) {
        (_, Some(name)) => Implementation::plugin(name)
            .map(Some)
            .map_err(|e| format!("torture {cmd}: --impl {name}: {e}")),
        (None, None) => Ok(None),
        (Some(path), None) => load_lib(path)
            .map(Some)
            .map_err(|e| format!("torture {cmd}: --impl-lib {}: {e}", path.display())),
    }
}

/// Which C ABI a library is probed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Abi {
    /// `torture_mvar.h`.
    #[value(name = "mvar")]
    MVar,
    /// `torture_lock.h`.
    Lock,
}

/// Validates the library at `path` in a child process (`torture __probe-lib --abi ABI PATH`):
/// loads it, checks its symbols, ABI version and capabilities, creates, opens, uses, closes and
/// destroys an object. `Ok(capability bits)`, or the one-line reason it cannot be used (the
/// child crashed, hung, or said why).
pub fn probe(path: &Path, abi: Abi) -> Result<u32, String> {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this binary to re-execute it: {e}"))?;
    // The object's name is chosen here, so that what a library crashing between making its
    // segment and returning leaves behind is removed (if it named its segment after it).
    let name = ShmName::unique("probe");
    let _unlink = UnlinkName(name.as_str().to_string());
    let mut cmd = Command::new(exe);
    cmd.arg("__probe-lib")
        .arg("--name")
        .arg(name.as_str())
        .arg("--abi")
        .arg(match abi {
            Abi::MVar => "mvar",
            Abi::Lock => "lock",
        })
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = crate::procs::tied::Tied::spawn(&mut cmd)
        .map_err(|e| format!("cannot start the probe process: {e}"))?;
    let reader = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(
        child
            .child()
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
    );
    let err = reader(
        child
            .child()
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
    );
    let status = child.wait_timeout(PROBE_LIMIT);
    let timed_out = status.is_none();
    let status = status.or_else(|| child.kill());
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let stage = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("stage "))
        .unwrap_or("loading")
        .to_string();
    if timed_out {
        return Err(format!(
            "did not return within {} s while {stage}",
            PROBE_LIMIT.as_secs()
        ));
    }
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Some(s) if s.success() => out
            .lines()
            .find_map(|l| l.strip_prefix("caps "))
            .and_then(|b| b.trim().parse::<u32>().ok())
            .ok_or_else(|| "the probe process said nothing".to_string()),
        Some(s) => match s.signal() {
            Some(sig) => Err(format!(
                "crashed while {stage} ({})",
                nix::sys::signal::Signal::try_from(sig)
                    .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
            )),
            None => Err(err
                .lines()
                .rev()
                .find(|l| l.starts_with(PROBE_SAYS))
                .map(|l| l[PROBE_SAYS.len()..].to_string())
                .unwrap_or_else(|| format!("the probe process ended with {s} while {stage}"))),
        },
        None => Err("the probe process could not be reaped".into()),
    }
}

/// Removes the shared-memory object of this name when dropped (what a probe left, if any).
struct UnlinkName(String);

impl Drop for UnlinkName {
    fn drop(&mut self) {
        if let Ok(c) = std::ffi::CString::new(self.0.as_str()) {
            // SAFETY: a valid C string; nothing there (the usual case) changes nothing.
            unsafe { libc::shm_unlink(c.as_ptr()) };
        }
    }
}

/// How long the probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// The prefix of the probe's reason on its stderr.
const PROBE_SAYS: &str = "probe: ";

/// `torture __probe-lib --abi ABI PATH` (in the child [`probe`] starts): prints `stage WHAT`
/// before each step and `caps BITS` at the end (exit 0), or `probe: REASON` on stderr (exit 3).
/// A crash is the runner's to name, from the last stage.
pub fn probe_main(path: &Path, abi: Abi, name: &str) -> u8 {
    use std::io::Write as _;
    let stage = |s: &str| {
        let mut o = std::io::stdout();
        let _ = writeln!(o, "stage {s}");
        let _ = o.flush();
    };
    let fail = |e: String| {
        eprintln!("{PROBE_SAYS}{e}");
        3
    };
    // The default actions: a library that raises SIGSEGV must die of it, as it would in a
    // C program (Rust's runtime handler would let a raised one return).
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
        // SAFETY: restoring a default disposition; no handler of ours is relied upon here.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    if abi == Abi::Lock {
        return match lock::probe_steps(path, name, &stage) {
            Ok(bits) => {
                println!("caps {bits}");
                0
            }
            Err(e) => fail(e),
        };
    }
    stage("loading");
    let lib = match clib::Lib::load(path) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    stage("creating a box");
    if let Err(e) = lib.create(name, 64) {
        return fail(e);
    }
    stage("opening a box");
    let lib = Arc::new(lib);
    match clib::Handle::open(&lib, name, 64) {
        Ok(h) => {
            stage("closing a box");
            drop(h);
        }
        Err(e) => {
            lib.destroy(name);
            return fail(e);
        }
    }
    stage("destroying a box");
    lib.destroy(name);
    println!("caps {}", lib.caps_bits());
    0
}
