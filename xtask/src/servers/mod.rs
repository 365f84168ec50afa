//! Real Kafka (KRaft), Cassandra 5, Redis and Keycloak (the OpenID Connect issuer the auth tests
//! use) on loopback, without Docker: `cargo xtask servers up|down|status|kill|env`.
//!
//! This module owns each server's life cycle; the per-server modules only say how to install,
//! configure and start one, and `probe` how to tell that it answers. Jars come from Maven
//! Central (cached per version under `~/.cache/orderpipe/jars`), Redis from Debian. Each
//! Keycloak's distribution zip comes from Maven Central too. Each
//! server's configuration, data, log and pid file live in one folder of a state directory,
//! `$ORDERPIPE_SERVERS_DIR` or `~/.local/state/orderpipe/servers`, shared by every clone on
//! purpose: `up` in a second clone finds the servers already running and does nothing.
//!
//! Every operation is idempotent and takes the server's lock file, so concurrent xtasks (two
//! test runs, a fault test restarting Kafka) never start a server twice. Servers are stopped by
//! the pid in their pid file, never by name.

mod cassandra;
pub mod kafka;
mod keycloak;
mod maven;
mod probe;
mod redis;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{self, Signal};

/// How long `up` waits for a started server to answer. Cassandra needs 10–15 s on an idle
/// 2-core machine, but several times that while a large build runs beside it.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a process that is running but not answering yet may still be starting up (a
/// concurrent `up` started it) before it is restarted.
const STARTING_GRACE: Duration = Duration::from_secs(60);

/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a slow start prints that it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// The environment the host and the tests use to reach these servers (the host reads
/// `ORDERPIPE_*`, `__` separating levels).
pub const ENV: &[(&str, &str)] = &[
    ("ORDERPIPE_KAFKA__BROKERS", "127.0.0.1:19092"),
    ("ORDERPIPE_CASSANDRA__NODES", "127.0.0.1:19042"),
    ("ORDERPIPE_REDIS__URL", "redis://127.0.0.1:16379"),
    ("ORDERPIPE_BACKENDS__EVENT_LOG", "kafka"),
    ("ORDERPIPE_BACKENDS__ORDER_STORE", "cassandra"),
    ("ORDERPIPE_BACKENDS__STATUS_CACHE", "redis"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Kafka,
    Cassandra,
    Redis,
    Keycloak,
}

pub const ALL: [Server; 4] = [
    Server::Kafka,
    Server::Cassandra,
    Server::Redis,
    Server::Keycloak,
];

/// The servers the pipeline itself runs on (benchmarks and soaks need no issuer).
pub const PIPELINE: [Server; 3] = [Server::Kafka, Server::Cassandra, Server::Redis];

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Kafka => "kafka",
            Server::Cassandra => "cassandra",
            Server::Redis => "redis",
            Server::Keycloak => "keycloak",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        ALL.into_iter()
            .find(|s| s.name() == name.trim())
            .with_context(|| format!("unknown server {name:?} (kafka, cassandra, redis, keycloak)"))
    }

    /// The loopback port clients use.
    fn port(self) -> u16 {
        match self {
            Server::Kafka => kafka::PORT,
            Server::Cassandra => cassandra::PORT,
            Server::Redis => redis::PORT,
            Server::Keycloak => keycloak::PORT,
        }
    }

    fn dir(self) -> anyhow::Result<PathBuf> {
        Ok(state_dir()?.join(self.name()))
    }

    fn pid_file(self) -> anyhow::Result<PathBuf> {
        Ok(self.dir()?.join("pid"))
    }

    fn log_file(self) -> anyhow::Result<PathBuf> {
        Ok(self.dir()?.join("server.log"))
    }

    /// Held while this xtask starts, stops or kills the server.
    fn lock(self) -> anyhow::Result<std::fs::File> {
        process::lock(
            &self.dir()?.join("lock"),
            &format!("another xtask starting or stopping {}", self.name()),
        )
    }

    /// The pid of the server's process if it is alive.
    fn pid(self) -> Option<u32> {
        process::alive_pid(&self.pid_file().ok()?)
    }

    /// Fetches or installs what the server needs (idempotent).
    fn install(self) -> anyhow::Result<()> {
        match self {
            Server::Kafka => kafka::install(),
            Server::Cassandra => cassandra::install(),
            Server::Redis => redis::install(),
            Server::Keycloak => keycloak::install(),
        }
    }

    /// Writes the configuration and starts the process; returns its pid.
    fn start(self) -> anyhow::Result<u32> {
        let dir = self.dir()?;
        std::fs::create_dir_all(&dir)?;
        let mut command = match self {
            Server::Kafka => kafka::command(&dir)?,
            Server::Cassandra => cassandra::command(&dir)?,
            Server::Redis => redis::command(&dir)?,
            Server::Keycloak => keycloak::command(&dir)?,
        };
        // One log per run, the previous run's kept beside it: a failure shows only its own lines.
        let log = self.log_file()?;
        if log.exists() {
            std::fs::rename(&log, log.with_extension("log.previous"))?;
        }
        process::spawn_detached(&mut command, &log, &self.pid_file()?)
    }

    /// Whether the server answers its own protocol (not merely an open port).
    fn ready(self) -> bool {
        match self {
            Server::Kafka => probe::kafka(self.port()),
            Server::Cassandra => probe::cassandra(self.port()),
            Server::Redis => probe::redis(self.port()),
            Server::Keycloak => probe::http_ok(self.port(), &keycloak::ready_path()),
        }
    }

    /// Prints one line about this server, aligned with the others.
    fn say(self, message: &str) {
        println!("    {:<10} {message}", self.name());
    }
}

/// `$ORDERPIPE_SERVERS_DIR` (made absolute) or `~/.local/state/orderpipe/servers`.
pub fn state_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("ORDERPIPE_SERVERS_DIR") {
        Some(dir) if !dir.is_empty() => Ok(std::path::absolute(PathBuf::from(dir))?),
        _ => Ok(home()?.join(".local/state/orderpipe/servers")),
    }
}

pub fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// The servers named by `--only a,b` (all four without it).
fn selected(args: &[String]) -> anyhow::Result<Vec<Server>> {
    let mut only = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--only" => only = Some(iter.next().context("--only needs a list")?.clone()),
            other if other.starts_with("--only=") => {
                only = Some(other["--only=".len()..].to_owned())
            }
            other => bail!("unexpected argument {other:?}"),
        }
    }
    match only {
        None => Ok(ALL.to_vec()),
        Some(list) => list.split(',').map(Server::parse).collect(),
    }
}

const USAGE: &str = "cargo xtask servers up|down [--only kafka,cassandra,redis,keycloak] | status | \
                     kill <kafka|cassandra|redis|keycloak> | env";

pub fn command(args: &[String]) -> anyhow::Result<()> {
    let (action, rest) = args.split_first().context(USAGE)?;
    match action.as_str() {
        "up" => up(&selected(rest)?),
        "down" => down(&selected(rest)?),
        "status" => status(),
        "kill" => {
            let name = rest.first().context(USAGE)?;
            kill(Server::parse(name)?)
        }
        "env" => {
            for (key, value) in ENV {
                println!("export {key}={value}");
            }
            println!(
                "export ORDERPIPE_PLUGINS__DIR={}",
                crate::plugins::dist_dir().display()
            );
            // Not exported: a host stays in `[auth] mode = "none"` unless asked otherwise.
            println!(
                "# with [auth] mode = \"jwt\": ORDERPIPE_AUTH__MODE=jwt \
                 ORDERPIPE_AUTH__JWT__ISSUER=http://127.0.0.1:{}/realms/{}",
                keycloak::PORT,
                keycloak::REALM
            );
            Ok(())
        }
        other => bail!("unknown servers action {other:?}; usage: {USAGE}"),
    }
}

/// Installs and starts every selected server that is not already answering, concurrently, and
/// waits until each answers. Fails (after printing the tail of its log) if one does not.
pub fn up(servers: &[Server]) -> anyhow::Result<()> {
    let names: Vec<_> = servers.iter().map(|s| s.name()).collect();
    crate::step(&format!(
        "servers up: {} (state in {})",
        names.join(", "),
        state_dir()?.display()
    ));
    let results: Vec<(Server, anyhow::Result<()>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|&server| (server, scope.spawn(move || bring_up(server))))
            .collect();
        handles
            .into_iter()
            .map(|(server, handle)| {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")));
                (server, result)
            })
            .collect()
    });
    let mut failed = Vec::new();
    for (server, result) in results {
        if let Err(error) = result {
            server.say(&format!("FAILED: {error:#}"));
            print_log_tail(server);
            failed.push(server.name());
        }
    }
    if !failed.is_empty() {
        bail!("servers failed to start: {}", failed.join(", "));
    }
    Ok(())
}

fn bring_up(server: Server) -> anyhow::Result<()> {
    let started = Instant::now();
    let _lock = server.lock()?;
    let port = server.port();
    match server.pid() {
        Some(pid) if server.ready() => {
            server.say(&format!("already running (pid {pid}) on 127.0.0.1:{port}"));
            return Ok(());
        }
        Some(pid) => {
            server.say(&format!(
                "running (pid {pid}) but not answering yet; waiting"
            ));
            if wait_ready(server, STARTING_GRACE, started) {
                server.say(&format!(
                    "ready on 127.0.0.1:{port} after {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            server.say(&format!("pid {pid} never answered; restarting it"));
            stop(server)?;
        }
        None if server.ready() => {
            // Something answers on our port but this state directory did not start it
            // (another ORDERPIPE_SERVERS_DIR, or one started by hand). Use it; we cannot stop it.
            server.say(&format!(
                "answering on 127.0.0.1:{port} but not started from {}; using it as is",
                state_dir()?.display()
            ));
            return Ok(());
        }
        None => {
            if server.pid_file()?.exists() {
                server.say("stale pid file (the process is gone); starting it again");
                process::remove_pid_file(&server.pid_file()?);
            }
        }
    }
    server.install()?;
    let pid = server.start()?;
    server.say(&format!(
        "starting (pid {pid}), log {}",
        server.log_file()?.display()
    ));
    if !wait_ready(server, READY_TIMEOUT, started) {
        let why = match server.pid() {
            Some(_) => "still running but not answering",
            None => "the process exited",
        };
        bail!(
            "not ready on 127.0.0.1:{port} after {} s ({why})",
            started.elapsed().as_secs()
        );
    }
    server.say(&format!(
        "ready on 127.0.0.1:{port} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Polls until the server answers; gives up early if its process exits.
fn wait_ready(server: Server, within: Duration, since: Instant) -> bool {
    let deadline = Instant::now() + within;
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        if server.ready() {
            return true;
        }
        if server.pid().is_none() || Instant::now() >= deadline {
            return false;
        }
        if Instant::now() >= next_progress {
            server.say(&format!("still starting ({} s)", since.elapsed().as_secs()));
            next_progress += PROGRESS_EVERY;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn print_log_tail(server: Server) {
    let Ok(log) = server.log_file() else { return };
    if let Ok(text) = std::fs::read_to_string(&log) {
        let lines: Vec<&str> = text.lines().collect();
        println!("    --- last lines of {} ---", log.display());
        for line in &lines[lines.len().saturating_sub(30)..] {
            println!("    {line}");
        }
    }
}

/// Stops the server: SIGTERM, then SIGKILL if it has not exited in time. The caller holds the
/// server's lock. Returns whether there was a process to stop.
fn stop(server: Server) -> anyhow::Result<bool> {
    let pid_file = server.pid_file()?;
    let Some(pid) = process::alive_pid(&pid_file) else {
        process::remove_pid_file(&pid_file);
        return Ok(false);
    };
    process::signal(pid, Signal::Term);
    if !wait_exit(&pid_file, STOP_TIMEOUT) {
        server.say(&format!(
            "pid {pid} ignored SIGTERM for {} s; SIGKILL",
            STOP_TIMEOUT.as_secs()
        ));
        process::signal(pid, Signal::Kill);
        wait_exit(&pid_file, Duration::from_secs(10));
    }
    process::remove_pid_file(&pid_file);
    Ok(true)
}

fn wait_exit(pid_file: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while process::alive_pid(pid_file).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

pub fn down(servers: &[Server]) -> anyhow::Result<()> {
    crate::step("servers down");
    for &server in servers {
        let started = Instant::now();
        let _lock = server.lock()?;
        if stop(server)? {
            server.say(&format!(
                "stopped in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        } else {
            server.say("was not running");
        }
    }
    Ok(())
}

/// SIGKILL, for fault tests: the server gets no chance to shut down cleanly. The pid file
/// stays, so a later `up` reports it stale and starts the server again.
pub fn kill(server: Server) -> anyhow::Result<()> {
    let _lock = server.lock()?;
    let pid_file = server.pid_file()?;
    match process::alive_pid(&pid_file) {
        Some(pid) => {
            process::signal(pid, Signal::Kill);
            if !wait_exit(&pid_file, Duration::from_secs(10)) {
                bail!("{} (pid {pid}) survived SIGKILL for 10 s", server.name());
            }
            server.say(&format!("killed (pid {pid})"));
        }
        None => server.say("was not running"),
    }
    Ok(())
}

fn status() -> anyhow::Result<()> {
    println!("state directory: {}", state_dir()?.display());
    for server in ALL {
        let port = server.port();
        let answering = if server.ready() {
            "answering"
        } else {
            "not answering"
        };
        match server.pid() {
            Some(pid) => server.say(&format!(
                "running  pid {pid:<7} 127.0.0.1:{port}  {answering}"
            )),
            None => server.say(&format!(
                "stopped               127.0.0.1:{port}  {answering}"
            )),
        }
    }
    Ok(())
}

/// The JVM option that logs every collection pause of a server's JVM to `gc.log` in its folder
/// (two files of 8 MiB at most, rotated), as upstream Kafka's start script does: the soak reads
/// the pauses that fell in its load (on two cores each one stalls every order that needs it).
fn gc_log_option(dir: &Path) -> String {
    format!(
        "-Xlog:gc:file={}:time,uptime:filecount=2,filesize=8m",
        dir.join(GC_LOG).display()
    )
}

/// The file in a JVM server's folder that [`gc_log_option`] names.
const GC_LOG: &str = "gc.log";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_only_every_server_is_selected() {
        assert_eq!(selected(&[]).unwrap(), ALL.to_vec());
    }

    #[test]
    fn only_selects_the_named_servers_in_either_spelling() {
        let wanted = vec![Server::Kafka, Server::Redis];
        assert_eq!(selected(&args(&["--only", "kafka,redis"])).unwrap(), wanted);
        assert_eq!(selected(&args(&["--only=kafka,redis"])).unwrap(), wanted);
    }

    #[test]
    fn an_unknown_server_or_argument_is_an_error() {
        assert!(selected(&args(&["--only", "mongo"])).is_err());
        assert!(selected(&args(&["--only"])).is_err());
        assert!(selected(&args(&["kafka"])).is_err());
    }
}
