//! The crate's layers import only downward (the order is written in `src/lib.rs`): no file of a
//! layer names a module of a higher one — in code or in a doc link — and only `sync/` names
//! `std::sync`, `loom` or `shuttle`.
#![cfg(not(any(loom, shuttle)))]

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first.
const LAYERS: &[&str] = &[
    "sync",
    "traits",
    "track",
    "shm",
    "lock",
    "msg",
    "mvar",
    "controls",
    "history",
    "scenarios",
    "check",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The identifier starting at the beginning of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level modules `line` names: `crate::X`, and `super::…::X` chains that climb out of the
/// file's own top-level module (`depth` = how many `super::` reach the crate root).
fn named(line: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        out.push(ident(&line[i + "crate::".len()..]).to_string());
    }
    let mut rest = line;
    while let Some(i) = rest.find("super::") {
        let before = &rest[..i];
        if before.ends_with("super::") {
            rest = &rest[i + 7..];
            continue;
        }
        let mut tail = &rest[i..];
        let mut ups = 0;
        while let Some(t) = tail.strip_prefix("super::") {
            ups += 1;
            tail = t;
        }
        if ups >= depth {
            out.push(ident(tail).to_string());
        }
        rest = tail;
    }
    out
}

#[test]
fn no_file_names_a_higher_layer_and_only_sync_names_the_engines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let parts: Vec<_> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let top = parts[0].trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        let me = rank(&top).unwrap_or_else(|| panic!("{} is in no layer of LAYERS", rel.display()));
        // `a/mod.rs` and `a.rs` sit one module below the root; `a/b.rs` two, and so on.
        let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod.rs"));
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for m in named(line, depth) {
                if rank(&m).is_some_and(|r| r > me) {
                    problems.push(format!(
                        "{}:{}: {top} names {m}: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
            let code = line.trim_start();
            if top != "sync"
                && !code.starts_with("//")
                && ["std::sync", "loom::", "shuttle::"]
                    .iter()
                    .any(|e| code.contains(e))
            {
                problems.push(format!(
                    "{}:{}: names an engine outside sync: {code}",
                    rel.display(),
                    n + 1
                ));
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} files checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself sees an upward name (so the test above can fail).
#[test]
fn the_scan_sees_upward_names() {
    assert_eq!(named("use crate::mvar::MVar;", 2), ["mvar"]);
    assert_eq!(named("use super::super::msg::flush;", 2), ["msg"]);
    assert!(named("use super::order::LockClass;", 2).is_empty());
    assert_eq!(named("use super::held;", 1), ["held"]);
}
