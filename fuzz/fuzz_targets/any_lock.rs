#![no_main]
//! `cargo fuzz run any_lock`: the reference `ReentrantLock` through
//! `primitives::check::fuzz::lock` (a user's target for their own `LockApi` is the same line).

#[cfg(not(shuttle))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives::check::fuzz::lock(
    |class: &primitives::LockClass| primitives::ReentrantLock::tracked((), class),
    data
));

#[cfg(shuttle)]
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
