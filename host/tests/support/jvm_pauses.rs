//! The stop-the-world pauses of the local servers' JVMs (Kafka, Cassandra) during a run, read
//! from the `gc.log` that `cargo xtask servers` has each JVM write in its folder. On two
//! cores a collection pause stalls every order that touches that server, so a run's tail is
//! read beside them.

use std::path::PathBuf;

use super::cpu::servers_dir;

/// The servers that run on a JVM and log their collections.
const JVM_SERVERS: [&str; 2] = ["kafka", "cassandra"];

/// Where each JVM server's collection log ended when a run started.
pub struct PauseLog {
    logs: Vec<(&'static str, PathBuf, u64)>,
}

impl PauseLog {
    /// Notes where each server's `gc.log` ends now (servers without one are left out: started
    /// before the option, or not running).
    pub fn start() -> PauseLog {
        let logs = JVM_SERVERS
            .iter()
            .filter_map(|server| {
                let path = servers_dir().join(server).join("gc.log");
                let length = std::fs::metadata(&path).ok()?.len();
                Some((*server, path, length))
            })
            .collect();
        PauseLog { logs }
    }

    /// `cassandra 14 pauses, longest 167 ms, 1.76 s in all; kafka …` for the pauses logged
    /// since [`PauseLog::start`]; `None` when no server logs its collections.
    pub fn summary(&self) -> Option<String> {
        if self.logs.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .logs
            .iter()
            .map(|(server, path, start)| {
                let text = std::fs::read(path).unwrap_or_default();
                // A log rotated during the run starts over: read all of the new one.
                let since = if (text.len() as u64) < *start {
                    &text[..]
                } else {
                    &text[*start as usize..]
                };
                let pauses = pause_millis(&String::from_utf8_lossy(since));
                let longest = pauses.iter().copied().fold(0.0, f64::max);
                let total: f64 = pauses.iter().sum();
                let count = match pauses.len() {
                    1 => "1 pause".to_owned(),
                    n => format!("{n} pauses"),
                };
                format!(
                    "{server} {count}, longest {longest:.0} ms, {:.2} s in all",
                    total / 1000.0
                )
            })
            .collect();
        Some(parts.join("; "))
    }
}

/// The length in milliseconds of every pause in a JVM's `-Xlog:gc` text: the lines that name a
/// `Pause` and end in its duration, e.g.
/// `[…][12.3s] GC(12) Pause Young (Normal) (G1 Evacuation Pause) 512M->120M(1024M) 74.123ms`.
pub fn pause_millis(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|line| line.contains(" Pause "))
        .filter_map(|line| {
            line.rsplit(' ')
                .next()?
                .strip_suffix("ms")?
                .parse::<f64>()
                .ok()
        })
        .collect()
}
