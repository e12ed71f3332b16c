//! The matrix as a Markdown table and as an SVG heat map (engines × controls, coloured by the
//! median time to detect, a crossed cell where an engine ran and never caught, blank where it
//! does not apply; a last row of false positives per engine).

use super::{Matrix, Summary};
use std::fmt::Write as _;

/// Controls in the registry's order, then any other subject.
fn rows(m: &Matrix) -> Vec<&str> {
    let mut v: Vec<&str> = primitives::controls::CONTROLS
        .iter()
        .map(|c| c.name)
        .filter(|n| m.controls.contains_key(*n))
        .collect();
    for k in m.controls.keys() {
        if !v.contains(&k.as_str()) {
            v.push(k);
        }
    }
    v
}

/// Engines with at least one cell.
fn columns(m: &Matrix) -> Vec<&str> {
    m.engines
        .iter()
        .filter(|e| m.cells.iter().any(|c| &c.engine == *e))
        .map(String::as_str)
        .collect()
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// One table cell: `2/2: 17 (max 40) ex, 12 ms` or `✗ 0/2`.
fn md_cell(s: &Summary) -> String {
    if s.caught == 0 {
        return if s.errors == s.runs {
            format!("error ×{}", s.errors)
        } else {
            format!("✗ 0/{}", s.runs)
        };
    }
    let ex = match (s.median_executions, s.max_executions) {
        (Some(a), Some(b)) if a != b => format!("{}–{}", count(a), count(b)),
        (Some(a), _) => count(a),
        _ => "?".into(),
    };
    format!(
        "{}/{}: {ex} ex, {}",
        s.caught,
        s.runs,
        s.median_seconds.map_or("?".into(), seconds)
    )
}

/// The Markdown report: the table, the false positives, what was not run.
pub fn markdown(m: &Matrix) -> String {
    let cols = columns(m);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Detection matrix ({} budget, {:.0} s): caught/runs: median–max executions to first detection, median time",
        m.profile, m.seconds
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| control | {} |", cols.join(" | "));
    let _ = writeln!(s, "|---|{}", "---|".repeat(cols.len()));
    for r in rows(m) {
        let by = &m.controls[r];
        let cells: Vec<String> = cols
            .iter()
            .map(|e| by.get(*e).map_or(String::new(), md_cell))
            .collect();
        let _ = writeln!(s, "| {r} | {} |", cells.join(" | "));
    }
    let fp: Vec<String> = cols
        .iter()
        .map(|e| {
            m.false_positives
                .get(*e)
                .map_or(String::new(), |(n, of)| format!("**{n}**/{of}"))
        })
        .collect();
    let _ = writeln!(s, "| *false positives* | {} |", fp.join(" | "));
    let _ = writeln!(s);
    let refs: std::collections::BTreeSet<&str> = m
        .cells
        .iter()
        .filter(|c| c.is_reference())
        .map(|c| c.subject.as_str())
        .collect();
    let _ = writeln!(
        s,
        "False positives: caught cells on the {} correct subjects (the reference scenarios of every engine, the C examples).",
        refs.len()
    );
    if !m.missed.is_empty() {
        let _ = writeln!(s, "\nNot caught by any engine: {}.", m.missed.join(", "));
    }
    if !m.by_chance.is_empty() {
        let _ = writeln!(
            s,
            "(Documented as found only by chance, so not failing the run: {}.)",
            m.by_chance.join(", ")
        );
    }
    for n in &m.not_run {
        let _ = writeln!(s, "\nNot run: {n}.");
    }
    let errors: Vec<String> = m
        .cells
        .iter()
        .filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("{} / {} seed {}: {e}", c.engine, c.subject, c.seed))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nCells without a verdict:");
        for e in errors {
            let _ = writeln!(s, "- {e}");
        }
    }
    s
}

/// Escapes text for SVG.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The colour of a median time to detect: green (≤ 1 ms) through yellow to red (≥ 60 s),
/// on a log scale.
fn colour(secs: f64) -> String {
    let x = ((secs.max(1e-3).log10() + 3.0) / (60f64.log10() + 3.0)).clamp(0.0, 1.0);
    // Hue 120 (green) to 0 (red) at saturation 70 %, lightness 60 %, as #rrggbb (every SVG
    // renderer reads it; not all read hsl()).
    let (h, sat, l) = (120.0 * (1.0 - x), 0.7, 0.6);
    let c = (1.0 - (2.0 * l - 1.0f64).abs()) * sat;
    let hp = h / 60.0;
    let xx = c * (1.0 - (hp % 2.0 - 1.0f64).abs());
    let (r, g, b) = if hp < 1.0 { (c, xx, 0.0) } else { (xx, c, 0.0) };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b))
}

/// The SVG heat map.
pub fn svg(m: &Matrix) -> String {
    let cols = columns(m);
    let rs = rows(m);
    let (label_w, cell_w, cell_h, head_h) = (190.0, 74.0, 22.0, 96.0);
    let width = label_w + cell_w * cols.len() as f64 + 20.0;
    let height = head_h + cell_h * (rs.len() + 1) as f64 + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="8" y="16" font-size="13" font-weight="bold">Detection matrix ({}): median time to first detection</text>"#,
        esc(&m.profile)
    );
    for (j, e) in cols.iter().enumerate() {
        let x = label_w + cell_w * j as f64 + cell_w / 2.0;
        let _ = writeln!(
            s,
            r#"<text transform="translate({x:.0},{:.0}) rotate(-40)" text-anchor="start">{}</text>"#,
            head_h - 6.0,
            esc(e)
        );
    }
    let cell_rect = |s: &mut String, x: f64, y: f64, fill: &str| {
        let _ = writeln!(
            s,
            r##"<rect x="{x:.0}" y="{y:.0}" width="{:.0}" height="{:.0}" fill="{fill}" stroke="#bbb"/>"##,
            cell_w - 2.0,
            cell_h - 2.0
        );
    };
    for (i, r) in rs.iter().enumerate() {
        let y = head_h + cell_h * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + cell_h * 0.65,
            esc(r)
        );
        for (j, e) in cols.iter().enumerate() {
            let x = label_w + cell_w * j as f64;
            let Some(sm) = m.controls[*r].get(*e) else {
                continue; // not applicable: blank
            };
            if sm.caught == 0 {
                cell_rect(&mut s, x, y, "#eeeeee");
                let _ = writeln!(
                    s,
                    r##"<path d="M{:.0},{:.0} L{:.0},{:.0} M{:.0},{:.0} L{:.0},{:.0}" stroke="#999"/>"##,
                    x + 2.0,
                    y + 2.0,
                    x + cell_w - 4.0,
                    y + cell_h - 4.0,
                    x + cell_w - 4.0,
                    y + 2.0,
                    x + 2.0,
                    y + cell_h - 4.0
                );
                continue;
            }
            let t = sm.median_seconds.unwrap_or(0.0);
            cell_rect(&mut s, x, y, &colour(t));
            let label = if sm.caught < sm.runs {
                format!("{} ({}/{})", seconds(t), sm.caught, sm.runs)
            } else {
                seconds(t)
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">{}</text>"#,
                x + cell_w / 2.0 - 1.0,
                y + cell_h * 0.65,
                esc(&label)
            );
        }
    }
    // False positives.
    let y = head_h + cell_h * rs.len() as f64;
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="end" font-style="italic">false positives</text>"#,
        label_w - 6.0,
        y + cell_h * 0.65
    );
    for (j, e) in cols.iter().enumerate() {
        let x = label_w + cell_w * j as f64;
        if let Some((n, of)) = m.false_positives.get(*e) {
            cell_rect(&mut s, x, y, if *n == 0 { "#ffffff" } else { "#ff4444" });
            let _ = writeln!(
                s,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">{n} / {of}</text>"#,
                x + cell_w / 2.0 - 1.0,
                y + cell_h * 0.65
            );
        }
    }
    // Legend.
    let ly = y + cell_h + 18.0;
    let mut lx = 8.0;
    for (t, name) in [
        (1e-3, "1 ms"),
        (0.1, "100 ms"),
        (3.0, "3 s"),
        (60.0, "60 s"),
    ] {
        cell_rect(&mut s, lx, ly, &colour(t));
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">{name}</text>"#,
            lx + cell_w / 2.0,
            ly + cell_h * 0.65
        );
        lx += cell_w;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="{:.0}">crossed: ran, never caught; blank: not applicable; (k/n): caught in k of n seeds</text>"#,
        lx + 8.0,
        ly + cell_h * 0.65
    );
    let _ = writeln!(s, "</svg>");
    s
}
