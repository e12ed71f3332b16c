#![no_main]
//! `cargo fuzz run lock_ops`: see `fuzz/src/cases/lock_ops.rs`.

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives_fuzz::cases::lock_ops::fuzz(data));

// Built with `--cfg shuttle` (for the `schedule` target) this target is empty.
#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
