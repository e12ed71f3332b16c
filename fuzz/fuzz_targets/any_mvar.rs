#![no_main]
//! `cargo fuzz run any_mvar`: the reference `MVar<u64>` through `primitives::check::fuzz::mvar`,
//! exactly as a user's target for their own `MVarApi<u64>` would be (one line): sequential
//! operation sequences decoded from the input, checked against the sequential model.

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives::check::fuzz::mvar(
    primitives::MVar::<u64>::new_empty,
    data
));

// Built with `--cfg shuttle` (for the `schedule` target) this target is empty.
#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
