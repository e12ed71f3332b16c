//! Small OS helpers: error type, CPU clocks, shared-memory names and mappings.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;

/// Error type used throughout the benchmark: any error, with a message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Res<T> = Result<T, Error>;

/// Reads a clock, in nanoseconds.
pub fn clock_ns(clock: libc::clockid_t) -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// CPU time (user + system) consumed so far by the calling thread, in nanoseconds.
pub fn own_thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// The CPU-time clock of another process (user + system of all its threads).
pub fn process_cpu_clock(pid: libc::pid_t) -> io::Result<libc::clockid_t> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: `id` is a valid out-pointer for the duration of the call.
    let r = unsafe { libc::clock_getcpuclockid(pid, &mut id) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(id)
}

/// The CPU-time clock of a thread of this process. Valid while the thread is not joined.
pub fn thread_cpu_clock(thread: libc::pthread_t) -> io::Result<libc::clockid_t> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: `thread` comes from a live `JoinHandle` (not yet joined); `id` is a valid
    // out-pointer.
    let r = unsafe { libc::pthread_getcpuclockid(thread, &mut id) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(id)
}

/// Converts a `timeval` to nanoseconds.
pub fn timeval_ns(tv: libc::timeval) -> u64 {
    u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(tv.tv_usec).unwrap_or(0) * 1_000
}

static SHM_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Hands out unique segment names (`/torture-bench-<pid>-<counter>`) and removes every
/// name it handed out when dropped (or earlier, via [`ShmNames::unlink_all`]), so that no
/// segment outlives the run, whatever the error path.
#[derive(Default)]
pub struct ShmNames {
    names: Vec<String>,
}

impl ShmNames {
    /// A fresh name, unique for this run, to be created by the caller.
    pub fn fresh(&mut self) -> String {
        let n = SHM_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("/torture-bench-{}-{n}", std::process::id());
        self.names.push(name.clone());
        name
    }

    /// Unlinks every name handed out so far. Mappings stay valid; the segments are freed
    /// when the last mapping goes. Called as soon as all processes have attached.
    pub fn unlink_all(&mut self) {
        for name in self.names.drain(..) {
            // ENOENT (never created, or already unlinked by its owner) is fine.
            let _ = shm_unlink(name.as_str());
        }
    }
}

impl Drop for ShmNames {
    fn drop(&mut self) {
        self.unlink_all();
    }
}

/// A read-write `MAP_SHARED` mapping of a POSIX shared-memory segment; unmapped on drop.
pub struct ShmMap {
    ptr: NonNull<c_void>,
    len: NonZeroUsize,
}

impl ShmMap {
    /// Creates the segment `name` (`O_CREAT | O_EXCL`, mode 0600), sizes it to `len` bytes
    /// (zero-filled) and maps it.
    pub fn create(name: &str, len: usize) -> Res<Self> {
        let len = NonZeroUsize::new(len).ok_or("empty segment")?;
        let fd = shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| format!("shm_open({name}, O_CREAT|O_EXCL): {e}"))?;
        let size = libc::off_t::try_from(len.get())?;
        nix::unistd::ftruncate(&fd, size).map_err(|e| format!("ftruncate({name}): {e}"))?;
        Self::map(File::from(fd), len, name)
    }

    /// Opens and maps an existing segment, checking it holds at least `len` bytes.
    pub fn open(name: &str, len: usize) -> Res<Self> {
        let len = NonZeroUsize::new(len).ok_or("empty segment")?;
        let fd = shm_open(name, OFlag::O_RDWR, Mode::empty())
            .map_err(|e| format!("shm_open({name}): {e}"))?;
        let file = File::from(fd);
        let have = file.metadata()?.len();
        if have < u64::try_from(len.get())? {
            return Err(format!("segment {name} has {have} bytes, expected {len}").into());
        }
        Self::map(file, len, name)
    }

    fn map(file: File, len: NonZeroUsize, name: &str) -> Res<Self> {
        // SAFETY: a fresh mapping at a kernel-chosen address (`None`) cannot overlap any
        // memory Rust already uses; the file is at least `len` bytes long.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| format!("mmap({name}): {e}"))?;
        // The descriptor is no longer needed once mapped: `file` closes here.
        Ok(Self { ptr, len })
    }

    /// Start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }
}

impl Drop for ShmMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and this is the only unmap.
        // Every pointer derived from the mapping is owned by a value that owns this one.
        let _ = unsafe { munmap(self.ptr, self.len.get()) };
    }
}
