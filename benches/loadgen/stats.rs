//! Latency histograms, error collection, the server's CPU time from
//! `/proc/<pid>/stat`, and the report a run prints.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// How many error messages a run keeps to print; the rest are only counted.
const KEPT_ERRORS: usize = 5;

/// Latencies in microseconds, 1 µs to 10 minutes, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// Errors seen by all workers of one group: a count and the first few texts.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Errors {
    pub fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().expect("errors lock");
        if first.len() < KEPT_ERRORS {
            first.push(what);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> Vec<String> {
        self.first.lock().expect("errors lock").clone()
    }
}

/// utime + stime of a process, in seconds (children not included).
pub fn process_cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| format!("{path}: no command field"))?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {n} missing"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// `getconf CLK_TCK`; 100 (what Linux reports on every common platform)
/// when getconf is missing.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One kind of operation measured in a run (a mixed run has two).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub connections: usize,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub first_errors: Vec<String>,
}

impl Section {
    pub fn new(
        name: &str,
        connections: usize,
        h: &Histogram<u64>,
        seconds: f64,
        errors: &Errors,
    ) -> Section {
        let ms = |us: u64| us as f64 / 1000.0;
        let ops = h.len();
        Section {
            name: name.to_string(),
            connections,
            ops,
            ops_per_sec: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            p50_ms: if ops > 0 {
                ms(h.value_at_quantile(0.50))
            } else {
                0.0
            },
            p99_ms: if ops > 0 {
                ms(h.value_at_quantile(0.99))
            } else {
                0.0
            },
            max_ms: if ops > 0 { ms(h.max()) } else { 0.0 },
            errors: errors.count(),
            first_errors: errors.first(),
        }
    }
}

/// What one `run` measured; printed as text or as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub workload: String,
    /// Row of the comparison table this run belongs to.
    pub row: String,
    pub url: String,
    /// Free text the caller attaches (e.g. the server's name), for tables.
    pub label: String,
    pub measured_secs: f64,
    pub sections: Vec<Section>,
    /// Server CPU (user + system) during the measured window.
    pub server_cpu_secs: Option<f64>,
    /// Server CPU per operation of all sections, in milliseconds.
    pub server_cpu_ms_per_op: Option<f64>,
    pub server_rss_kib: Option<u64>,
}

impl Report {
    pub fn total_errors(&self) -> u64 {
        self.sections.iter().map(|s| s.errors).sum()
    }

    pub fn print_text(&self) {
        println!(
            "workload {} against {} ({:.1} s measured){}",
            self.workload,
            self.url,
            self.measured_secs,
            if self.label.is_empty() {
                String::new()
            } else {
                format!(" [{}]", self.label)
            }
        );
        for s in &self.sections {
            println!(
                "  {:<8} conns {:>4}  ops {:>8}  {:>10.1} ops/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  errors {}",
                s.name, s.connections, s.ops, s.ops_per_sec, s.p50_ms, s.p99_ms, s.max_ms, s.errors
            );
            for e in &s.first_errors {
                println!("    error: {e}");
            }
        }
        match (self.server_cpu_secs, self.server_cpu_ms_per_op) {
            (Some(cpu), Some(per_op)) => println!(
                "  server CPU {cpu:.2} s, {per_op:.3} ms per operation{}",
                self.server_rss_kib
                    .map(|k| format!(", RSS {} MiB", k / 1024))
                    .unwrap_or_default()
            ),
            _ => println!("  server CPU not measured (no --server-pid)"),
        }
    }
}
