#![no_main]
//! `cargo fuzz run any_log`: the reference buffered `MessageLog` through
//! `primitives::check::fuzz::log` (a user's target for their own `LogApi` is the same line).

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives::check::fuzz::log(
    primitives::scenarios::catalogue::reference_log,
    data
));

#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
