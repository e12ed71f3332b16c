//! The registry of negative controls is complete: every control the thread catalogue runs, the
//! storm's flavours, the fuzz targets' `FUZZ_CONTROL` choices and the regression files named
//! after a control are listed in `primitives::controls::CONTROLS`, once each.
#![cfg(not(any(loom, shuttle)))]

use primitives::controls::{find, flavor, Home, CONTROLS};
use primitives::scenarios::catalogue;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The string literals `"…"` on `line` (no escapes needed for control names).
fn literals(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

#[test]
fn names_are_unique_and_complete() {
    let mut seen = HashSet::new();
    for c in CONTROLS {
        assert!(seen.insert(c.name), "control {:?} listed twice", c.name);
        assert!(
            ["000", "001", "002", "003", "004"].contains(&c.story),
            "{}: story {:?} is not a seed",
            c.name,
            c.story
        );
        assert!(
            !c.defect.is_empty() && !c.caught_by.is_empty(),
            "{}",
            c.name
        );
        assert!(
            find(c.name).is_some_and(|f| std::ptr::eq(f, c)),
            "find({:?})",
            c.name
        );
    }
    assert!(find("no-such-control").is_none());
}

#[test]
fn every_catalogue_control_is_registered_with_its_story_and_defect() {
    for c in catalogue::CONTROLS {
        let r =
            find(c.name).unwrap_or_else(|| panic!("catalogue control {:?} unregistered", c.name));
        assert_eq!(r.home, Home::Thread, "{}", c.name);
        assert_eq!((r.story, r.defect), (c.seed, c.defect), "{}", c.name);
        for (engine, _) in c.blind_spots {
            assert!(
                r.blind_spots.contains(engine) && !r.caught_by.contains(engine),
                "{}: the catalogue says {engine} cannot catch it; the registry disagrees",
                c.name
            );
        }
        assert!(catalogue::control(c.name).is_some());
    }
    for r in CONTROLS.iter().filter(|r| r.home == Home::Thread) {
        assert!(
            catalogue::control(r.name).is_some(),
            "thread control {:?} is not in the catalogue",
            r.name
        );
    }
}

#[test]
fn storm_flavours_are_registered_process_controls() {
    let flavoured: Vec<_> = CONTROLS
        .iter()
        .filter(|c| flavor(c.name).is_some())
        .collect();
    assert_eq!(
        flavoured.len(),
        3,
        "private-futex, no-recovery, stale-waiter-count"
    );
    for c in flavoured {
        assert_eq!(c.home, Home::Process, "{}", c.name);
        assert_ne!(
            flavor(c.name),
            Some(primitives::mvar::Flavor::REFERENCE),
            "{}",
            c.name
        );
    }
    // Names a storm runner lists (`STORM_CONTROLS` in torture, while it keeps its own list).
    for file in rust_files(&repo().join("torture/src")) {
        let text = fs::read_to_string(&file).unwrap();
        let Some(start) = text.find("STORM_CONTROLS: &[") else {
            continue;
        };
        let block = &text[start..start + text[start..].find("];").unwrap()];
        for line in block.lines() {
            if let Some(name) = literals(line).first().filter(|s| !s.contains(' ')) {
                let c = find(name).unwrap_or_else(|| panic!("storm control {name:?} unregistered"));
                assert!(
                    flavor(name).is_some(),
                    "storm control {name:?} has no flavour"
                );
                assert_eq!(c.home, Home::Process);
            }
        }
    }
}

#[test]
fn every_fuzz_control_is_registered() {
    let mut names = HashSet::new();
    for file in rust_files(&repo().join("fuzz/src")) {
        let text = fs::read_to_string(&file).unwrap();
        if !text.contains("crate::control()") {
            continue;
        }
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("Some(\"") && t.contains("=>")
                || t.contains("control().as_deref() == Some(\"")
            {
                names.extend(literals(line).into_iter().take(1).map(str::to_owned));
            }
        }
    }
    for dir in fs::read_dir(repo().join("fuzz/regressions"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let file = f.file_name().to_string_lossy().into_owned();
            if let Some(rest) = file.strip_prefix("control-") {
                names.insert(rest.split('.').next().unwrap_or(rest).to_owned());
            }
        }
    }
    for must in [
        "mvar-wake-before-grant",
        "lockdep-off",
        "logger-self-deadlock",
        "unvalidated-header",
    ] {
        assert!(
            names.contains(must),
            "the scan of fuzz/ missed {must:?}: {names:?}"
        );
    }
    for n in &names {
        assert!(
            find(n).is_some(),
            "fuzz control {n:?} is not in the registry"
        );
    }
}
