//! Shared plumbing for `flotte-bench`: figures, the machine description, and
//! writing one section of BENCHMARKS.md without disturbing the others.

use std::fmt::Write;
use std::path::Path;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub note: String,
}

impl Figure {
    pub fn new(
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
        note: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value,
            unit: unit.into(),
            note: note.into(),
        }
    }
}

/// CPU model, cores and memory, as the figures are only comparable on the same machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| {
                    l.strip_prefix("MemTotal:")
                        .map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                })
                .flatten()
        })
        .unwrap_or(0);
    format!("{model}, {cores} cores, {} GiB RAM", mem_kb / (1024 * 1024))
}

/// Render figures as a Markdown table.
pub fn table(figures: &[Figure]) -> String {
    let mut out =
        String::from("| measurement | value | unit | note |\n| --- | ---: | --- | --- |\n");
    for f in figures {
        let value = if f.value.abs() >= 100.0 {
            format!("{:.0}", f.value)
        } else {
            format!("{:.2}", f.value)
        };
        let _ = writeln!(out, "| {} | {} | {} | {} |", f.name, value, f.unit, f.note);
    }
    out
}

/// Replace (or append) the section headed `## {title}` in the file at `path`.
pub fn write_section(path: &Path, title: &str, body: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nWritten by `scripts/bench.sh` (the `flotte-bench` binary). Each section is \
         replaced when its benchmark runs again; compare ratios within one run, as these machines \
         are noisy.\n"
            .to_owned()
    });
    let heading = format!("## {title}");
    let section = format!("{heading}\n\n{}\n", body.trim_end());
    let mut out = String::new();
    let mut lines = existing.lines().peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.trim_end() == heading {
            out.push_str(&section);
            out.push('\n');
            replaced = true;
            while let Some(next) = lines.peek() {
                if next.starts_with("## ") {
                    break;
                }
                lines.next();
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&section);
    }
    std::fs::write(path, out)
}

/// p-th percentile (0..=100) of durations in milliseconds.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        write_section(&path, "Apple", "first").unwrap();
        write_section(&path, "Windows", "win").unwrap();
        write_section(&path, "Apple", "second").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("## Apple\n\nsecond"));
        assert!(!text.contains("first"));
        assert!(text.contains("## Windows\n\nwin"));
        assert!(
            text.find("## Apple").unwrap() < text.find("## Windows").unwrap(),
            "order kept"
        );
    }

    #[test]
    fn percentiles_pick_from_the_sorted_samples() {
        let samples: Vec<_> = (1..=100).map(std::time::Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 50.0), 51.0);
        assert_eq!(percentile_ms(&samples, 99.0), 99.0);
    }
}
