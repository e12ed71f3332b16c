//! A user's own binary with the whole torture program inside, and its cross-process MVars
//! registered: `rust-cross-mvar mvar --impl shared --procs 50 --kill-rate 20` runs seed 000's
//! master/slaves against the implementation named `shared`, re-executing this binary for every
//! worker. Every other subcommand and flag of `torture` works as well.

mod rawsync;
mod shared;

fn main() -> std::process::ExitCode {
    torture::main(
        torture::Registry::new()
            .mvar("shared", shared::Shared)
            .mvar("raw-sync", rawsync::RawSync),
    )
}
