#![no_main]
//! `RUSTFLAGS="--cfg shuttle" CARGO_TARGET_DIR=fuzz/target-shuttle cargo fuzz run -s none schedule`:
//! the fuzzer's bytes choose the interleaving of a catalogue scenario under shuttle (set
//! `FUZZ_CONTROL=<name>` to fuzz a negative control instead); see `fuzz/src/schedule.rs`.
//!
//! This target needs `RUSTFLAGS="--cfg shuttle"`: built without it (as `cargo fuzz build` does
//! for the other targets) it is empty and accepts every input.

#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives_fuzz::schedule::fuzz(data));

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
