//! Real Kafka (KRaft), Cassandra 5 and Redis on loopback, without Docker.
//!
//! Jars come from Maven Central (cached per version under `~/.cache/orderpipe/jars`), Redis
//! from Debian. Each server's data, configuration, log and pid file live under one state
//! directory, `$ORDERPIPE_SERVERS_DIR` or `~/.local/state/orderpipe/servers`, shared by every
//! clone on purpose: `up` in a second clone finds the servers already running and does
//! nothing. Every operation is idempotent; servers are stopped by pid, never by name.

mod cassandra;
mod kafka;
mod maven;
mod probe;
mod redis;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process;

/// How long `up` waits for a server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The environment the host and the tests use to reach these servers.
pub const ENV: &[(&str, &str)] = &[
    ("ORDERPIPE_KAFKA__BROKERS", "127.0.0.1:19092"),
    ("ORDERPIPE_CASSANDRA__NODES", "127.0.0.1:19042"),
    ("ORDERPIPE_REDIS__URL", "redis://127.0.0.1:16379"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Kafka,
    Cassandra,
    Redis,
}

const ALL: [Server; 3] = [Server::Kafka, Server::Cassandra, Server::Redis];

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Kafka => "kafka",
            Server::Cassandra => "cassandra",
            Server::Redis => "redis",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        ALL.into_iter()
            .find(|s| s.name() == name)
            .with_context(|| format!("unknown server {name:?} (kafka, cassandra, redis)"))
    }

    /// The port clients use.
    fn port(self) -> u16 {
        match self {
            Server::Kafka => kafka::PORT,
            Server::Cassandra => cassandra::PORT,
            Server::Redis => redis::PORT,
        }
    }

    fn dir(self) -> PathBuf {
        state_dir().join(self.name())
    }

    fn pid_file(self) -> PathBuf {
        self.dir().join("pid")
    }

    fn log_file(self) -> PathBuf {
        self.dir().join("server.log")
    }

    /// Fetches or installs what the server needs (idempotent).
    fn install(self) -> anyhow::Result<()> {
        match self {
            Server::Kafka => kafka::install(),
            Server::Cassandra => cassandra::install(),
            Server::Redis => redis::install(),
        }
    }

    /// Writes configuration and starts the process; returns its pid.
    fn start(self) -> anyhow::Result<u32> {
        std::fs::create_dir_all(self.dir())?;
        let mut command = match self {
            Server::Kafka => kafka::command(&self.dir())?,
            Server::Cassandra => cassandra::command(&self.dir())?,
            Server::Redis => redis::command(&self.dir())?,
        };
        process::spawn_detached(&mut command, &self.log_file(), &self.pid_file())
    }

    /// Whether the server answers its own protocol (not merely an open port).
    fn ready(self) -> bool {
        match self {
            Server::Kafka => probe::kafka(self.port()),
            Server::Cassandra => probe::cassandra(self.port()),
            Server::Redis => probe::redis(self.port()),
        }
    }
}

pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORDERPIPE_SERVERS_DIR") {
        return PathBuf::from(dir);
    }
    home().join(".local/state/orderpipe/servers")
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn selected(args: &[String]) -> anyhow::Result<Vec<Server>> {
    let mut only = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--only" => only = iter.next().cloned(),
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

pub fn command(args: &[String]) -> anyhow::Result<()> {
    let (action, rest) = args
        .split_first()
        .context("servers up|down|status|kill <name>|env")?;
    match action.as_str() {
        "up" => up(&selected(rest)?),
        "down" => down(&selected(rest)?),
        "status" => {
            status();
            Ok(())
        }
        "kill" => {
            let name = rest
                .first()
                .context("servers kill <kafka|cassandra|redis>")?;
            kill(Server::parse(name)?);
            Ok(())
        }
        "env" => {
            for (key, value) in ENV {
                println!("export {key}={value}");
            }
            Ok(())
        }
        other => bail!("unknown servers action {other:?} (up, down, status, kill, env)"),
    }
}

/// Installs and starts every selected server that is not already running, concurrently,
/// and waits until each answers.
pub fn up(servers: &[Server]) -> anyhow::Result<()> {
    crate::step(&format!(
        "servers up: {}",
        servers
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let results: Vec<(Server, anyhow::Result<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|&server| (server, scope.spawn(move || bring_up(server))))
            .collect();
        handles
            .into_iter()
            .map(|(server, handle)| {
                (
                    server,
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))),
                )
            })
            .collect()
    });
    let mut failed = Vec::new();
    for (server, result) in results {
        match result {
            Ok(note) => println!("    {:<10} {note}", server.name()),
            Err(error) => {
                println!("    {:<10} FAILED: {error:#}", server.name());
                print_log_tail(server);
                failed.push(server.name());
            }
        }
    }
    if !failed.is_empty() {
        bail!("servers failed to start: {}", failed.join(", "));
    }
    Ok(())
}

fn bring_up(server: Server) -> anyhow::Result<String> {
    let started = Instant::now();
    if process::alive_pid(&server.pid_file()).is_some() && server.ready() {
        return Ok(format!("already running on 127.0.0.1:{}", server.port()));
    }
    if let Some(pid) = process::alive_pid(&server.pid_file()) {
        // Running but not answering: maybe still starting. Give it the usual time first.
        if wait_ready(server, Duration::from_secs(60)) {
            return Ok(format!(
                "was starting (pid {pid}); ready on 127.0.0.1:{}",
                server.port()
            ));
        }
        stop(server);
    }
    server.install()?;
    let pid = server.start()?;
    if !wait_ready(server, READY_TIMEOUT) {
        let running = process::alive_pid(&server.pid_file()).is_some();
        bail!(
            "not ready after {} s ({})",
            READY_TIMEOUT.as_secs(),
            if running {
                "still running"
            } else {
                "the process exited"
            }
        );
    }
    Ok(format!(
        "started (pid {pid}), ready on 127.0.0.1:{} in {:.1} s",
        server.port(),
        started.elapsed().as_secs_f64()
    ))
}

fn wait_ready(server: Server, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.ready() {
            return true;
        }
        if process::alive_pid(&server.pid_file()).is_none() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

fn print_log_tail(server: Server) {
    if let Ok(text) = std::fs::read_to_string(server.log_file()) {
        let lines: Vec<&str> = text.lines().collect();
        println!("    --- last lines of {} ---", server.log_file().display());
        for line in &lines[lines.len().saturating_sub(25)..] {
            println!("    {line}");
        }
    }
}

/// Stops the server gracefully (TERM, then KILL after 30 s).
fn stop(server: Server) -> bool {
    let Some(pid) = process::alive_pid(&server.pid_file()) else {
        return false;
    };
    process::signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if process::alive_pid(&server.pid_file()).is_none() {
            let _ = std::fs::remove_file(server.pid_file());
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    process::signal(pid, "KILL");
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::fs::remove_file(server.pid_file());
    true
}

pub fn down(servers: &[Server]) -> anyhow::Result<()> {
    crate::step("servers down");
    for &server in servers {
        let note = if stop(server) {
            "stopped"
        } else {
            "was not running"
        };
        println!("    {:<10} {note}", server.name());
    }
    Ok(())
}

/// SIGKILL, for fault tests: the server gets no chance to shut down cleanly.
pub fn kill(server: Server) {
    match process::alive_pid(&server.pid_file()) {
        Some(pid) => {
            process::signal(pid, "KILL");
            let deadline = Instant::now() + Duration::from_secs(10);
            while process::alive_pid(&server.pid_file()).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            println!("    {:<10} killed (pid {pid})", server.name());
        }
        None => println!("    {:<10} was not running", server.name()),
    }
}

fn status() {
    println!("state directory: {}", state_dir().display());
    for server in ALL {
        match process::alive_pid(&server.pid_file()) {
            Some(pid) => {
                let answering = if server.ready() {
                    "ready"
                } else {
                    "not answering"
                };
                println!(
                    "    {:<10} running (pid {pid}), 127.0.0.1:{} {answering}",
                    server.name(),
                    server.port()
                );
            }
            None => println!("    {:<10} stopped", server.name()),
        }
    }
}
