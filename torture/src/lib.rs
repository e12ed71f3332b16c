//! The torture runner: one program, one command line (clap), one verdict and report type.
//!
//! - [`cli`]: the command line — `threads` (the default), one subcommand per process scenario,
//!   `list`, and the hidden worker entry;
//! - [`units`]: durations (exact both ways) and shell quoting for replay lines;
//! - [`threads`]: the scenario catalogue on real OS threads under a hang watchdog;
//! - [`procs`]: the process harness (crew, ledger, capture, controls) and the process scenarios;
//!   `procs::impls` is the seam through which `torture mvar` tortures a user's cross-process MVar
//!   (a C library, `--impl-lib`, or a Rust [`CrossMVar`] registered with [`main`], `--impl`);
//! - [`report`]: the verdict and the report envelope (text, `--json`);
//! - [`list`]: `torture list`;
//! - [`out`], [`signals`]: output that survives a closed stdout; SIGINT/SIGTERM that clean up;
//! - [`prng`]: the seeded generator.
//!
//! Exit codes: 0 pass (or, with `--control`, NOT CAUGHT), 1 bug found (or control caught),
//! 2 usage or setup error.

pub mod out;

pub mod cli;
pub mod list;
pub mod matrix;
pub mod prng;
pub mod procs;
pub mod report;
pub mod signals;
pub mod threads;
pub mod units;

use std::ffi::OsString;

pub use procs::impls::lock::reference::RefLock as ReferenceLock;
pub use procs::impls::lock::{CrossLock, LockCaps, LockHandle};
pub use procs::impls::plugin::{CrossMVar, Registry};
pub use procs::impls::{Caps, MVarHandle, Status, Wait};

/// The torture program inside a user's own binary, with that binary's implementations
/// registered: `fn main() -> ExitCode { torture::main(Registry::new().mvar("mine", Mine)) }`.
/// Every subcommand works as in the `torture` binary; `torture mvar --impl mine` (run as this
/// binary) tortures the registered implementation, and the workers it starts are this binary
/// again, so they find the same registry.
pub fn main(registry: Registry) -> std::process::ExitCode {
    procs::impls::plugin::install(registry);
    let exit = main_with_args(std::env::args_os());
    if exit.abandon_threads {
        // A hung run's threads are blocked for good: end the process at once.
        std::process::exit(i32::from(exit.code));
    }
    std::process::ExitCode::from(exit.code)
}

use crate::cli::{Command, Fixed, Parsed};

/// How the process should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (0 pass, 1 bug found, 2 usage/setup error).
    pub code: u8,
    /// True when threads of a hung run are still blocked: end the process with
    /// `std::process::exit` at once (they cannot be killed or joined).
    pub abandon_threads: bool,
}

impl Exit {
    fn code(code: u8) -> Exit {
        Exit {
            code,
            abandon_threads: false,
        }
    }
}

/// The whole program, minus the final `exit`: parses `argv`, runs, prints, writes the JSON.
pub fn main_with_args<I, T>(argv: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let program = argv
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "torture".to_string());
    match cli::parse(argv) {
        Parsed::Info(text) => {
            out::say_raw!("{text}");
            Exit::code(0)
        }
        Parsed::Usage(line) => {
            out::warn!("{line}");
            Exit::code(2)
        }
        Parsed::Run(cmd) => match *cmd {
            Command::Fixed(Fixed::Threads(args)) => threads::main(&program, &args),
            Command::Fixed(Fixed::List(args)) => Exit::code(list::main(&args)),
            Command::Fixed(Fixed::Matrix(args)) => Exit::code(matrix::main(&args)),
            Command::Fixed(Fixed::All(args)) => Exit::code(procs::all::main(&program, &args)),
            Command::Fixed(Fixed::Worker(w)) => Exit::code(procs::scenarios::worker_main(&w)),
            Command::Fixed(Fixed::ProbeLib(p)) => {
                Exit::code(procs::impls::probe_main(&p.path, p.abi, &p.name))
            }
            Command::Proc(scenario, flags) => Exit::code(scenario.main(&program, &flags)),
        },
    }
}
