//! `torture list`: every command, scenario and negative control, with its story and blind spots.

use primitives::controls::{Home, CONTROLS};
use primitives::scenarios::catalogue::SCENARIOS;
use serde::Serialize;
use std::fmt::Write as _;

use crate::cli::ListArgs;
use crate::procs::scenarios::CATALOGUE;

#[derive(Serialize)]
struct Item {
    name: &'static str,
    kind: &'static str,
    about: String,
}

fn items() -> Vec<Item> {
    let mut v = Vec::new();
    for e in SCENARIOS {
        v.push(Item {
            name: e.name,
            kind: "thread scenario",
            about: e.about.to_string(),
        });
    }
    for c in CONTROLS {
        v.push(Item {
            name: c.name,
            kind: match c.home {
                Home::Thread => "thread control",
                Home::Process => "process control",
                Home::Fuzz => "fuzz control",
            },
            about: format!(
                "seed {}: {}; caught by {}{}",
                c.story,
                c.defect,
                c.caught_by.join(", "),
                if c.blind_spots.is_empty() {
                    String::new()
                } else {
                    format!("; blind spots: {}", c.blind_spots)
                }
            ),
        });
    }
    for s in CATALOGUE {
        v.push(Item {
            name: s.name(),
            kind: "process scenario",
            about: s
                .command()
                .get_about()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        });
    }
    v
}

/// The listing as text.
pub fn text() -> String {
    let mut s = String::new();
    let mut cmd = crate::cli::command();
    let _ = writeln!(s, "Commands:");
    for sub in cmd.get_subcommands_mut().filter(|c| !c.is_hide_set()) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(s, "  {:10}  {about}", sub.get_name());
    }
    let w = SCENARIOS
        .iter()
        .map(|e| e.name.len())
        .chain(CONTROLS.iter().map(|c| c.name.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "\nThread scenarios (torture threads; all by default, or --scenario NAME):"
    );
    for e in SCENARIOS {
        let _ = writeln!(s, "  {:w$}  {}", e.name, e.about);
    }
    let _ = writeln!(
        s,
        "\nProcess scenarios (torture NAME; see torture NAME --help):"
    );
    for p in CATALOGUE {
        let about = p
            .command()
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = writeln!(s, "  {:w$}  {about}", p.name());
    }
    let _ = writeln!(
        s,
        "\nNegative controls (one seeded defect each; every engine listed must catch it):"
    );
    for (home, how) in [
        (
            Home::Thread,
            "on threads: torture threads --control NAME, loom, shuttle, proptest",
        ),
        (Home::Process, "across processes"),
        (
            Home::Fuzz,
            "in a fuzz target: FUZZ_CONTROL=NAME cargo fuzz run TARGET",
        ),
    ] {
        let _ = writeln!(s, "  {how}:");
        for c in CONTROLS.iter().filter(|c| c.home == home) {
            let runs = match process_command(c.name) {
                Some(cmd) => format!(" [torture {cmd} --control {}]", c.name),
                None => String::new(),
            };
            let _ = writeln!(s, "    {:w$}  seed {}: {}{runs}", c.name, c.story, c.defect);
            let _ = writeln!(s, "    {:w$}    caught by: {}", "", c.caught_by.join(", "));
            if !c.blind_spots.is_empty() {
                let _ = writeln!(s, "    {:w$}    blind spots: {}", "", c.blind_spots);
            }
        }
    }
    s
}

/// The process scenario that runs control `name` with `--control`, if one does.
fn process_command(name: &str) -> Option<&'static str> {
    CATALOGUE
        .iter()
        .find(|p| p.controls().iter().any(|(n, _)| *n == name))
        .map(|p| p.name())
}

/// Runs `torture list`.
pub fn main(args: &ListArgs) -> u8 {
    crate::out::say_raw!("{}", text());
    if let Some(path) = &args.json {
        if let Err(e) = crate::report::write_json(path, &items()) {
            crate::out::warn!("torture list: error: {e}");
            return 2;
        }
    }
    0
}
