//! What the soak and the benchmark share to describe a run and keep its figures: the
//! machine, process memory from `/proc`, percentiles, and their sections of `BENCHMARKS.md`
//! (each command owns the text between its two HTML comment markers).

use std::path::{Path, PathBuf};

/// The trimmed standard output of a command that succeeded.
pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// CPUs, their model, memory and the compiler: `2 CPUs (…), 23.5 GiB memory, rustc 1.x`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown model".into());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or("unknown".into(), |kib| {
            format!("{:.1}", kib / 1024.0 / 1024.0)
        });
    let rustc = command_output("rustc", &["--version"]).unwrap_or_else(|| "rustc unknown".into());
    format!("{cpus} CPUs ({model}), {memory_gib} GiB memory, {rustc}")
}

/// A `/proc/<pid>/status` field in KiB, e.g. `VmRSS` (resident now) or `VmHWM` (peak).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The marker lines around one command's section of `BENCHMARKS.md`.
pub struct Markers {
    pub begin: &'static str,
    pub end: &'static str,
}

/// `existing` with the section between `markers` replaced by `section`, or with the section
/// appended when it has none. A marker counts only on a line of its own (the text may
/// mention it).
pub fn replace_section(existing: &str, markers: &Markers, section: &str) -> String {
    let block = format!("{}\n{}\n{}", markers.begin, section.trim_end(), markers.end);
    let marker = |marker: &str, from: usize| {
        let mut offset = 0;
        for line in existing.split_inclusive('\n') {
            if offset >= from && line.trim_end() == marker {
                return Some(offset);
            }
            offset += line.len();
        }
        None
    };
    let begin = marker(markers.begin, 0);
    let end = begin.and_then(|begin| marker(markers.end, begin));
    match (begin, end) {
        (Some(begin), Some(end)) => format!(
            "{}{block}{}",
            &existing[..begin],
            &existing[end + markers.end.len()..]
        ),
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    }
}

/// Replaces a section of `BENCHMARKS.md` at the repository root (creating the file with its
/// header if it is missing).
pub fn write_benchmarks_section(markers: &Markers, section: &str) -> std::io::Result<PathBuf> {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = host.parent().unwrap_or(host).join("BENCHMARKS.md");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => format!(
            "# Benchmarks\n\nThe latest benchmark and soak figures of orderpipe. Each section is \
             rewritten in place by the command that measures it (`cargo xtask bench` and \
             `cargo xtask soak` own theirs, between their HTML comment markers).\n\nMachine: \
             {}; Linux, with Kafka, Cassandra and Redis on the same machine (`cargo xtask \
             servers up`). Each section names the machine and load it was measured on.\n",
            machine()
        ),
        Err(error) => return Err(error),
    };
    std::fs::write(&path, replace_section(&existing, markers, section))?;
    Ok(path)
}
