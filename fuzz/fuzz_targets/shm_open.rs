#![no_main]
//! `cargo fuzz run shm_open`: see `fuzz/src/cases/shm_open.rs`.

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives_fuzz::cases::shm_open::fuzz(data));

// Built with `--cfg shuttle` (for the `schedule` target) this target is empty.
#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
