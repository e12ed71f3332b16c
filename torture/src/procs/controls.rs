//! The cross-process negative controls the process scenarios can run: the entries of the one
//! registry (`primitives::controls`) that are a flavour of the robust MVar's protocol, selected
//! by name (`--control NAME`) and handed to workers as that name.

use primitives::controls::{self, Control, Home};
use primitives::mvar::Flavor;

/// The storm's controls: process controls of the registry that are a protocol flavour.
pub fn mvar_controls() -> impl Iterator<Item = &'static Control> {
    controls::CONTROLS
        .iter()
        .filter(|c| c.home == Home::Process && controls::flavor(c.name).is_some())
}

/// The storm control called `name`.
pub fn find(name: &str) -> Option<&'static Control> {
    mvar_controls().find(|c| c.name == name)
}

/// The flavour a worker runs: the reference, or a control's.
pub fn flavor(control: Option<&str>) -> Option<Flavor> {
    match control {
        None => Some(Flavor::REFERENCE),
        Some(c) => find(c).and_then(|c| controls::flavor(c.name)),
    }
}

/// `--control` of the scenarios on the shared MVar: a storm control's name, or the error clap
/// prints.
pub fn parse(s: &str) -> Result<String, String> {
    let known: Vec<&str> = mvar_controls().map(|c| c.name).collect();
    super::pick_control(s, &known)
}

/// The registry's process controls that the engine `torture NAME` (its `caught_by` name) is
/// expected to catch: the `--control` choices of a scenario that is not a protocol flavour.
pub fn caught_by(engine: &'static str) -> impl Iterator<Item = &'static Control> {
    controls::CONTROLS
        .iter()
        .filter(move |c| c.home == Home::Process && c.caught_by.contains(&engine))
}

/// `--control` of such a scenario: a name [`caught_by`] `engine` lists, or the error clap prints.
pub fn parse_for(engine: &'static str, s: &str) -> Result<String, String> {
    let known: Vec<&str> = caught_by(engine).map(|c| c.name).collect();
    super::pick_control(s, &known)
}
