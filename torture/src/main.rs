//! `torture`: see the library docs and `torture --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let exit = torture::main_with_args(std::env::args_os());
    if exit.abandon_threads {
        // A hung run's threads are blocked for good and cannot be killed or joined: end the
        // process now (output is already flushed).
        std::process::exit(i32::from(exit.code));
    }
    ExitCode::from(exit.code)
}
