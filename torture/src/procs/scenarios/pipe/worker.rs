//! The two worker processes: the client sends requests on the request pipe and checks every
//! response on the response pipe; the server answers each request. Both record in their ledgers
//! `begin put N` / `done put N` around writing message N and `begin take N` / `done take N`
//! around reading it (`torn N` for a damaged one).
//!
//! - **Reference**: both fds nonblocking, `poll(2)` on both directions at once; write what fits,
//!   read what is there. Neither side ever sleeps in a write while the other might too: a full
//!   pipe only means "read first". The server stops reading requests while [`BACKLOG`]
//!   responses are queued (bounded memory); the client always reads, so that cannot wedge.
//! - **Control `pipe-blocking`**: blocking fds; the client writes every request whole before
//!   reading any response, the server writes each response whole before reading the next
//!   request. Once a message exceeds the pipe buffer both end up in a blocking write — seed
//!   004's pipe-buffer deadlock.

use super::wire::{self, HEADER, REQUEST, RESPONSE};
use super::{Role, Spec};
use crate::procs::ledger::{now_ns, Op, Record, Writer};
use crate::procs::WorkerArgs;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::collections::VecDeque;
use std::os::fd::{AsFd, FromRawFd as _, OwnedFd};

/// Responses the server queues before it stops reading requests.
const BACKLOG: usize = 2;

/// A damaged or missing message (exit 1) or a setup / I/O error (exit 2).
enum Failure {
    Data(String),
    Setup(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Setup(s)
    }
}

/// Runs a worker; its exit code.
pub fn run(w: &WorkerArgs) -> u8 {
    let role = w.spec::<Spec>().map_or("pipe", |s| s.role.name());
    match inner(w) {
        Ok(()) => 0,
        Err(Failure::Data(e)) => {
            crate::out::warn!("pipe {role}: {e}");
            1
        }
        Err(Failure::Setup(e)) => {
            crate::out::warn!("pipe {role}: {e}");
            2
        }
    }
}

/// Takes ownership of pipe end `n`, which the runner left open (not close-on-exec) for this
/// process, after checking that it is a pipe end open for `mode`.
fn take_fd(n: i32, mode: OFlag) -> Result<OwnedFd, String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{n}"))
        .map_err(|e| format!("fd {n} from the spec is not open: {e}"))?;
    if !link.to_string_lossy().starts_with("pipe:") {
        return Err(format!("fd {n} is {}, not a pipe", link.display()));
    }
    // SAFETY: fd `n` is open (its /proc link was just read) and is the pipe end the runner
    // passed to this process for this purpose; nothing else in this process owns or closes
    // it, so the OwnedFd becomes its only owner.
    let fd = unsafe { OwnedFd::from_raw_fd(n) };
    let flags = OFlag::from_bits_truncate(
        fcntl(&fd, FcntlArg::F_GETFL).map_err(|e| format!("fcntl fd {n}: {e}"))?,
    );
    if flags & OFlag::O_ACCMODE != mode {
        return Err(format!("fd {n} is not open for {mode:?}"));
    }
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| format!("fd {n}: {e}"))?;
    Ok(fd)
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), String> {
    let flags =
        OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(|e| format!("fcntl: {e}"))?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
        .map(drop)
        .map_err(|e| format!("fcntl: {e}"))
}

struct Ends {
    ledger: Writer,
    rd: OwnedFd,
    wr: Option<OwnedFd>,
    spec: Spec,
}

impl Ends {
    fn begin(&mut self, op: Op, seq: u64) {
        self.ledger.record(&Record::Begin {
            op,
            id: Some(seq),
            start_ns: now_ns(),
            deadline_ns: None,
        });
    }

    fn done(&mut self, op: Op, seq: u64) {
        self.ledger.record(&Record::Done {
            op,
            id: Some(seq),
            end_ns: None,
        });
    }

    /// Checks a received frame; a bad one is recorded as torn.
    fn check(&mut self, f: &[u8], kind: u32, seq: u64) -> Result<(), Failure> {
        let size = self.spec.size as usize;
        let mut r = wire::check(f, kind, seq, size);
        if r.is_ok() && kind == RESPONSE {
            let want = wire::response_to(&wire::request(self.spec.seed, seq, size));
            if f != want.as_slice() {
                r = Err(format!(
                    "response {seq}: well-formed but not the answer to request {seq}"
                ));
            }
        }
        r.map_err(|e| {
            self.ledger.record(&Record::Torn { id: seq });
            Failure::Data(e)
        })
    }
}

fn inner(w: &WorkerArgs) -> Result<(), Failure> {
    let spec: Spec = w.spec()?;
    let ledger = w.writer()?;
    let rd = take_fd(spec.read_fd, OFlag::O_RDONLY)?;
    let wr = take_fd(spec.write_fd, OFlag::O_WRONLY)?;
    let blocking = spec.control.is_some();
    if !blocking {
        set_nonblocking(&rd)?;
        set_nonblocking(&wr)?;
    }
    let role = spec.role;
    let mut e = Ends {
        ledger,
        rd,
        wr: Some(wr),
        spec,
    };
    match (role, blocking) {
        (Role::Client, false) => polled_client(&mut e),
        (Role::Server, false) => polled_server(&mut e),
        (Role::Client, true) => blocking_client(&mut e),
        (Role::Server, true) => blocking_server(&mut e),
    }
}

/// Reads what is there into `buf[*got..]`: `Ok(false)` at end of file.
fn read_some(fd: &OwnedFd, buf: &mut [u8], got: &mut usize) -> Result<bool, String> {
    match nix::unistd::read(fd, &mut buf[*got..]) {
        Ok(0) => Ok(false),
        Ok(n) => {
            *got += n;
            Ok(true)
        }
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(true),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Writes what fits of `buf[*pos..]`.
fn write_some(fd: &OwnedFd, buf: &[u8], pos: &mut usize) -> Result<(), String> {
    match nix::unistd::write(fd, &buf[*pos..]) {
        Ok(n) => {
            *pos += n;
            Ok(())
        }
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(()),
        Err(e) => Err(format!("write: {e}")),
    }
}

/// Waits until the read end is readable (`want_read`) or the write end writable; returns
/// (readable or hung up, writable or in error). Never blocks on one direction alone while the
/// other one could move.
fn wait(e: &Ends, want_read: bool, want_write: bool) -> Result<(bool, bool), String> {
    let mut fds = Vec::with_capacity(2);
    if want_read {
        fds.push(PollFd::new(e.rd.as_fd(), PollFlags::POLLIN));
    }
    let wr = e.wr.as_ref().filter(|_| want_write);
    if let Some(wr) = wr {
        fds.push(PollFd::new(wr.as_fd(), PollFlags::POLLOUT));
    }
    if fds.is_empty() {
        return Ok((false, false));
    }
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(format!("poll: {err}")),
        }
    }
    let ready = |f: &PollFd| !f.revents().unwrap_or(PollFlags::empty()).is_empty();
    let r = want_read && ready(&fds[0]);
    let w = wr.is_some() && ready(&fds[fds.len() - 1]);
    Ok((r, w))
}

fn frame_len(spec: &Spec) -> usize {
    HEADER + spec.size as usize
}

fn polled_client(e: &mut Ends) -> Result<(), Failure> {
    let n = u64::from(e.spec.requests);
    let (seed, size) = (e.spec.seed, e.spec.size as usize);
    let mut inbuf = vec![0u8; frame_len(&e.spec)];
    let mut got = 0;
    let mut next_req = e.spec.first;
    let mut next_resp = e.spec.first;
    let mut out: Option<(u64, Vec<u8>, usize)> = None;
    e.begin(Op::Take, e.spec.first);
    loop {
        if out.is_none() {
            if next_req <= n {
                e.begin(Op::Put, next_req);
                out = Some((next_req, wire::request(seed, next_req, size), 0));
                next_req += 1;
            } else {
                // Every request is sent: end of file for the server.
                e.wr = None;
            }
        }
        let (readable, writable) = wait(e, true, out.is_some())?;
        if writable {
            if let (Some((seq, frame, pos)), Some(wr)) = (&mut out, &e.wr) {
                write_some(wr, frame, pos)?;
                if *pos == frame.len() {
                    let seq = *seq;
                    out = None;
                    e.done(Op::Put, seq);
                }
            }
        }
        if readable {
            if !read_some(&e.rd, &mut inbuf, &mut got)? {
                if next_resp <= n {
                    return Err(Failure::Data(format!(
                        "the server closed the response pipe after {} of {n} responses",
                        next_resp - 1
                    )));
                }
                return Ok(());
            }
            if next_resp > n && got > 0 {
                return Err(Failure::Data(format!(
                    "{got} bytes after the last response: invented data"
                )));
            }
            if got == inbuf.len() {
                e.check(&inbuf, RESPONSE, next_resp)?;
                e.done(Op::Take, next_resp);
                got = 0;
                next_resp += 1;
                if next_resp <= n {
                    e.begin(Op::Take, next_resp);
                }
            }
        }
    }
}

fn polled_server(e: &mut Ends) -> Result<(), Failure> {
    let n = u64::from(e.spec.requests);
    let mut inbuf = vec![0u8; frame_len(&e.spec)];
    let mut got = 0;
    let mut next_req = e.spec.first;
    let mut queue: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut pos = 0;
    let mut begun = false;
    let mut eof = false;
    e.begin(Op::Take, e.spec.first);
    loop {
        if eof && queue.is_empty() {
            return Ok(());
        }
        let (readable, writable) = wait(e, !eof && queue.len() < BACKLOG, !queue.is_empty())?;
        if writable {
            if let Some(&(seq, _)) = queue.front() {
                if !begun {
                    begun = true;
                    e.begin(Op::Put, seq);
                }
            }
            let mut sent = None;
            if let (Some((seq, frame)), Some(wr)) = (queue.front(), &e.wr) {
                write_some(wr, frame, &mut pos)?;
                if pos == frame.len() {
                    sent = Some(*seq);
                }
            }
            if let Some(seq) = sent {
                queue.pop_front();
                pos = 0;
                begun = false;
                e.done(Op::Put, seq);
            }
        }
        if readable {
            if !read_some(&e.rd, &mut inbuf, &mut got)? {
                if got != 0 || next_req <= n {
                    return Err(Failure::Data(format!(
                        "the client closed the request pipe after {} of {n} requests ({got} bytes of a frame)",
                        next_req - 1
                    )));
                }
                eof = true;
                continue;
            }
            if next_req > n && got > 0 {
                return Err(Failure::Data(format!(
                    "{got} bytes after the last request: invented data"
                )));
            }
            if got == inbuf.len() {
                e.check(&inbuf, REQUEST, next_req)?;
                e.done(Op::Take, next_req);
                queue.push_back((next_req, wire::response_to(&inbuf)));
                got = 0;
                next_req += 1;
                if next_req <= n {
                    e.begin(Op::Take, next_req);
                }
            }
        }
    }
}

/// A blocking `write(2)` of all of `buf`.
fn write_all(fd: &OwnedFd, buf: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    while pos < buf.len() {
        write_some(fd, buf, &mut pos)?;
    }
    Ok(())
}

/// Blocking reads until `buf` is full or end of file; the bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, String> {
    let mut got = 0;
    while got < buf.len() && read_some(fd, buf, &mut got)? {}
    Ok(got)
}

fn blocking_client(e: &mut Ends) -> Result<(), Failure> {
    let n = u64::from(e.spec.requests);
    let (seed, size) = (e.spec.seed, e.spec.size as usize);
    let wr =
        e.wr.take()
            .ok_or_else(|| Failure::Setup("no request pipe".into()))?;
    for seq in e.spec.first..=n {
        e.begin(Op::Put, seq);
        write_all(&wr, &wire::request(seed, seq, size))?;
        e.done(Op::Put, seq);
    }
    drop(wr);
    let mut inbuf = vec![0u8; frame_len(&e.spec)];
    for seq in e.spec.first..=n {
        e.begin(Op::Take, seq);
        let got = read_full(&e.rd, &mut inbuf)?;
        if got < inbuf.len() {
            return Err(Failure::Data(format!(
                "the server closed the response pipe inside response {seq} ({got} bytes)"
            )));
        }
        e.check(&inbuf, RESPONSE, seq)?;
        e.done(Op::Take, seq);
    }
    match read_full(&e.rd, &mut inbuf[..1])? {
        0 => Ok(()),
        _ => Err(Failure::Data("bytes after the last response".into())),
    }
}

fn blocking_server(e: &mut Ends) -> Result<(), Failure> {
    let n = u64::from(e.spec.requests);
    let wr =
        e.wr.take()
            .ok_or_else(|| Failure::Setup("no response pipe".into()))?;
    let mut inbuf = vec![0u8; frame_len(&e.spec)];
    for seq in e.spec.first..=n {
        e.begin(Op::Take, seq);
        let got = read_full(&e.rd, &mut inbuf)?;
        if got < inbuf.len() {
            return Err(Failure::Data(format!(
                "the client closed the request pipe inside request {seq} ({got} bytes)"
            )));
        }
        e.check(&inbuf, REQUEST, seq)?;
        e.done(Op::Take, seq);
        e.begin(Op::Put, seq);
        write_all(&wr, &wire::response_to(&inbuf))?;
        e.done(Op::Put, seq);
    }
    match read_full(&e.rd, &mut inbuf[..1])? {
        0 => Ok(()),
        _ => Err(Failure::Data("bytes after the last request".into())),
    }
}
