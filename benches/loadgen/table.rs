//! The comparison table: medians over rounds of each row, per server.

use std::collections::BTreeMap;
use std::path::Path;

use crate::stats::Report;

/// Median of the values (mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Figures of one server on one row, medians over its rounds.
struct Cell {
    rounds: usize,
    ops_per_sec: Option<f64>,
    p99_ms: Option<f64>,
    cpu_ms_per_op: Option<f64>,
    errors: u64,
}

fn cell(reports: &[&Report], section: usize) -> Cell {
    let sec = |r: &&Report| r.sections.get(section).cloned();
    Cell {
        rounds: reports.len(),
        ops_per_sec: median(
            reports
                .iter()
                .filter_map(sec)
                .map(|s| s.ops_per_sec)
                .collect(),
        ),
        p99_ms: median(reports.iter().filter_map(sec).map(|s| s.p99_ms).collect()),
        // CPU is measured for the whole run, so it is shown on the first
        // section's line only.
        cpu_ms_per_op: if section == 0 {
            median(
                reports
                    .iter()
                    .filter_map(|r| r.server_cpu_ms_per_op)
                    .collect(),
            )
        } else {
            None
        },
        errors: reports.iter().map(|r| r.total_errors()).sum(),
    }
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

pub fn print(results: &Path, ours: &str, reference: &str, markdown: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| format!("reading {}: {e}", results.display()))?;
    let mut reports = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Report = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", results.display(), n + 1))?;
        reports.push(r);
    }
    // Rows in the order they first appear.
    let mut order: Vec<String> = Vec::new();
    let mut by_row: BTreeMap<(String, String), Vec<&Report>> = BTreeMap::new();
    for r in &reports {
        if !order.contains(&r.row) {
            order.push(r.row.clone());
        }
        by_row
            .entry((r.row.clone(), r.label.clone()))
            .or_default()
            .push(r);
    }
    let header = [
        "workload".to_string(),
        "conns".into(),
        format!("{ours} ops/s"),
        format!("{reference} ops/s"),
        "ratio".into(),
        format!("{ours} CPU ms/op"),
        format!("{reference} CPU ms/op"),
        "CPU ratio".into(),
        format!("{ours} p99 ms"),
        format!("{reference} p99 ms"),
        "rounds".into(),
        "errors".into(),
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let empty = Vec::new();
    for row in &order {
        let a = by_row
            .get(&(row.clone(), ours.to_string()))
            .unwrap_or(&empty);
        let b = by_row
            .get(&(row.clone(), reference.to_string()))
            .unwrap_or(&empty);
        let sections = a
            .iter()
            .chain(b.iter())
            .map(|r| r.sections.len())
            .max()
            .unwrap_or(0);
        for s in 0..sections {
            let (ca, cb) = (cell(a, s), cell(b, s));
            let any = a.iter().chain(b.iter()).find_map(|r| r.sections.get(s));
            let name = match (sections, any) {
                (1, _) | (_, None) => row.clone(),
                (_, Some(sec)) => format!("{row} ({})", sec.name),
            };
            let ratio_of = |x: Option<f64>, y: Option<f64>| {
                x.zip(y)
                    .and_then(|(x, y)| if y > 0.0 { Some(x / y) } else { None })
            };
            let ratio = ratio_of(ca.ops_per_sec, cb.ops_per_sec);
            // From the unrounded medians: the columns beside it are rounded.
            let cpu_ratio = ratio_of(ca.cpu_ms_per_op, cb.cpu_ms_per_op);
            rows.push(vec![
                name,
                any.map_or("-".into(), |s| s.connections.to_string()),
                fmt(ca.ops_per_sec, 1),
                fmt(cb.ops_per_sec, 1),
                ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                fmt(ca.cpu_ms_per_op, 3),
                fmt(cb.cpu_ms_per_op, 3),
                fmt(cpu_ratio, 2),
                fmt(ca.p99_ms, 2),
                fmt(cb.p99_ms, 2),
                format!("{}/{}", ca.rounds, cb.rounds),
                (ca.errors + cb.errors).to_string(),
            ]);
        }
    }
    if markdown {
        println!("| {} |", header.join(" | "));
        println!(
            "|{}",
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { " --- |" } else { " ---: |" })
                .collect::<String>()
        );
        for r in &rows {
            println!("| {} |", r.join(" | "));
        }
    } else {
        let mut widths: Vec<usize> = header.iter().map(String::len).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.len());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(&header));
        for r in &rows {
            println!("{}", line(r));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
