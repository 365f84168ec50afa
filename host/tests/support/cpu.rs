//! CPU time per request, per process: the host and each local server (their pids from the
//! servers' state directory, `$ORDERPIPE_SERVERS_DIR` or `~/.local/state/orderpipe/servers`),
//! read from `/proc/<pid>/stat` around a run. It says where a request's cost goes when the
//! two cores are the limit.

use std::path::PathBuf;

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The local servers' state directory: a folder per server with its pid file and logs.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("ORDERPIPE_SERVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".local/state/orderpipe/servers")
        })
}

/// User + system CPU seconds a process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_of(&stat)?.1)
}

/// The name and user + system CPU seconds in the text of a `/proc/<pid>/stat` or
/// `/proc/<pid>/task/<tid>/stat`.
pub fn stat_of(stat: &str) -> Option<(&str, f64)> {
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (user + system) / TICKS_PER_SECOND))
}

/// The processes to watch: `host` plus every local server that runs.
pub fn processes(host: Option<(&str, u32)>) -> Vec<(String, u32)> {
    let mut watched: Vec<(String, u32)> = host
        .map(|(name, pid)| (name.to_owned(), pid))
        .into_iter()
        .collect();
    for server in ["kafka", "cassandra", "redis"] {
        let pid = std::fs::read_to_string(servers_dir().join(server).join("pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok());
        if let Some(pid) = pid.filter(|pid| cpu_seconds(*pid).is_some()) {
            watched.push((server.to_owned(), pid));
        }
    }
    watched
}

/// CPU seconds of each watched process at one moment.
pub struct CpuMeter {
    start: Vec<(String, u32, f64)>,
}

impl CpuMeter {
    pub fn start(processes: &[(String, u32)]) -> CpuMeter {
        CpuMeter {
            start: processes
                .iter()
                .filter_map(|(name, pid)| Some((name.clone(), *pid, cpu_seconds(*pid)?)))
                .collect(),
        }
    }

    /// "orderpipe 0.45 ms, cassandra 0.70 ms, …": CPU per unit of work since `start`.
    pub fn per(&self, units: u64) -> String {
        let units = units.max(1) as f64;
        let parts: Vec<String> = self
            .start
            .iter()
            .filter_map(|(name, pid, before)| {
                let used = cpu_seconds(*pid)? - before;
                Some(format!("{name} {:.2} ms", used * 1000.0 / units))
            })
            .collect();
        parts.join(", ")
    }
}
