//! A user's own binary with the whole torture program inside, and its cross-process MVars
//! registered: `rust-cross-mvar mvar --impl shared --procs 50 --kill-rate 20` runs seed 000's
//! master/slaves against the implementation named `shared`, re-executing this binary for every
//! worker; `rust-cross-mvar locks --impl shared --procs 8 --kill-rate 20` does the same with its
//! cross-process locks. Every other subcommand and flag of `torture` works as well.

mod rawsync;
mod rawsync_lock;
mod shared;
mod shared_lock;

fn main() -> std::process::ExitCode {
    torture::main(
        torture::Registry::new()
            .mvar("shared", shared::Shared)
            .mvar("raw-sync", rawsync::RawSync)
            .lock("shared", shared_lock::SharedLock)
            .lock("raw-sync", rawsync_lock::RawSyncLock),
    )
}
