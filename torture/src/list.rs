//! `torture list`: every command, scenario and negative control, with its story and blind spots.

use primitives::scenarios::catalogue::{CONTROLS, SCENARIOS};
use serde::Serialize;
use std::fmt::Write as _;

use crate::cli::ListArgs;
use crate::procs::CATALOGUE;

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
            kind: "thread control",
            about: format!("seed {}: {}", c.seed, c.defect),
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
        for (name, defect) in s.controls() {
            v.push(Item {
                name,
                kind: "process control",
                about: format!("torture {} --control {name}: {defect}", s.name()),
            });
        }
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
        "\nThread controls (torture threads --control NAME; one seeded defect each, expected to be caught):"
    );
    for c in CONTROLS {
        let _ = writeln!(s, "  {:w$}  seed {}: {}", c.name, c.seed, c.defect);
        for (engine, why) in c.blind_spots {
            let _ = writeln!(s, "  {:w$}    blind spot ({engine}): {why}", "");
        }
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
        for (name, defect) in p.controls() {
            let _ = writeln!(s, "  {:w$}    control {name}: {defect}", "");
        }
    }
    s
}

/// Runs `torture list`.
pub fn main(args: &ListArgs) -> u8 {
    crate::say_raw!("{}", text());
    if let Some(path) = &args.json {
        if let Err(e) = crate::report::write_json(path, &items()) {
            crate::warn!("torture list: error: {e}");
            return 2;
        }
    }
    0
}
