// Shared by the fuzz crate and by `primitives/tests/regressions.rs` (which includes the case
// files with `#[path]`): case files use `crate::control()`, `crate::MAX_INPUT`,
// `crate::decode` and `crate::deadline`.

/// Largest input a target accepts (bigger inputs are rejected, not truncated: libFuzzer then
/// learns to stay small).
pub const MAX_INPUT: usize = 4096;

/// The negative control selected with the `FUZZ_CONTROL` environment variable, if any. A name
/// that is not in the registry of controls (`primitives::controls::CONTROLS`) is a usage error:
/// one line on stderr, exit status 2.
pub fn control() -> Option<String> {
    let name = std::env::var("FUZZ_CONTROL")
        .ok()
        .filter(|s| !s.is_empty())?;
    if primitives::controls::find(&name).is_none() {
        let known: Vec<&str> = primitives::controls::CONTROLS
            .iter()
            .map(|c| c.name)
            .collect();
        eprintln!(
            "FUZZ_CONTROL={name}: no such negative control; known: {}",
            known.join(", ")
        );
        std::process::exit(2);
    }
    Some(name)
}

/// Decodes a whole input into a case: `None` for an input over [`MAX_INPUT`] (rejected, not
/// truncated) or one `arbitrary` cannot decode. Checks `FUZZ_CONTROL` first (see [`control`]),
/// so that an unknown name stops the run at its first input, whatever the input.
pub fn decode<T: for<'a> arbitrary::Arbitrary<'a>>(data: &[u8]) -> Option<T> {
    control();
    if data.len() > MAX_INPUT {
        return None;
    }
    T::arbitrary_take_rest(arbitrary::Unstructured::new(data)).ok()
}
