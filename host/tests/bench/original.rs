//! The original design as processes: `bench/original/` (Flask under `gunicorn -w 4`, one
//! kafka-python consumer, cassandra-driver, redis-py), run from the virtualenv `cargo xtask
//! bench --against-original` installs (`ORDERPIPE_BENCH_ORIGINAL_VENV`), against the same
//! servers as orderpipe but with its own keyspace, topic, consumer group and Redis prefix.
//!
//! It only starts, feeds and stops those processes; what is measured, and in which order, is
//! `comparison`'s.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orderpipe::config::Config;
use uuid::Uuid;

use crate::support::process::logged_word_after;

/// The variable naming the virtualenv that holds `bench/original/requirements.txt`.
pub const VENV_VARIABLE: &str = "ORDERPIPE_BENCH_ORIGINAL_VENV";
/// The original's keyspace (never orderpipe's).
const KEYSPACE: &str = "original_orders";
/// gunicorn workers, as the original's README runs it.
const API_WORKERS: &str = "4";

/// One deployment of the original: a topic, consumer group and Redis prefix of its own.
pub struct Original {
    venv: PathBuf,
    source: PathBuf,
    env: Vec<(String, String)>,
}

impl Original {
    /// A fresh deployment on the servers `config` points at (its names are ignored).
    pub fn new(config: &Config) -> Original {
        let venv = std::env::var_os(VENV_VARIABLE)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "{VENV_VARIABLE} is not set: run this with `cargo xtask bench \
                     --against-original`, which installs the original into a virtualenv"
                )
            });
        let suffix = Uuid::new_v4().simple().to_string()[..10].to_owned();
        let env = [
            ("ORIGINAL_KAFKA_BROKERS", config.kafka.brokers.clone()),
            ("ORIGINAL_KAFKA_TOPIC", format!("original-orders-{suffix}")),
            ("ORIGINAL_KAFKA_GROUP_ID", format!("original-{suffix}")),
            (
                "ORIGINAL_KAFKA_PARTITIONS",
                config.kafka.partitions.max(1).to_string(),
            ),
            ("ORIGINAL_CASSANDRA_NODES", config.cassandra.nodes.clone()),
            ("ORIGINAL_CASSANDRA_KEYSPACE", KEYSPACE.to_owned()),
            ("ORIGINAL_REDIS_URL", config.redis.url.clone()),
            ("ORIGINAL_REDIS_PREFIX", format!("original-{suffix}")),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        Original {
            venv,
            source: crate::repo_root().join("bench/original"),
            env,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.venv.join("bin").join(program));
        command
            .current_dir(&self.source)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    fn run_script(&self, args: &[&str]) {
        let output = self
            .command("python")
            .args(args)
            .output()
            .expect("the original's python runs");
        assert!(
            output.status.success(),
            "python {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Its keyspace, table and topic, made if missing (`schema.py`).
    pub fn create_schema(&self) {
        self.run_script(&["schema.py"]);
    }

    /// `count` orders without items queued on its topic (`preload.py`).
    pub fn preload(&self, count: u64) {
        self.run_script(&["preload.py", &count.to_string()]);
    }

    fn spawn(&self, name: &str, mut command: Command) -> PythonProcess {
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = log_dir.join(format!("{name}-{}.log", Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("log file");
        // A process group of its own, so stopping it stops gunicorn's workers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("the original starts");
        PythonProcess { child, log }
    }

    /// The API: `gunicorn -w 4` on a loopback port it picks itself (port 0, read from its
    /// `Listening at:` log line, so no other process can take it first), once `/healthz`
    /// answers.
    pub async fn start_api(&self) -> (PythonProcess, String) {
        let mut command = self.command("gunicorn");
        command.args([
            "-w",
            API_WORKERS,
            "-b",
            "127.0.0.1:0",
            "--no-control-socket",
            "app:app",
        ]);
        let api = self.spawn("original-api", command);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(base) = logged_word_after(&api.log, "Listening at: ")
                && http.get(format!("{base}/healthz")).send().await.is_ok()
            {
                return (api, base);
            }
            assert!(
                Instant::now() < deadline,
                "the original's API did not start; see {}",
                api.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The consumer (`consumer.py`); it prints `processed <n>` every 100 orders.
    pub fn start_consumer(&self) -> PythonProcess {
        let mut command = self.command("python");
        command.arg("consumer.py");
        self.spawn("original-consumer", command)
    }
}

/// A running process of the original (with its children); stopped when dropped.
pub struct PythonProcess {
    child: Child,
    log: PathBuf,
}

impl PythonProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many orders the consumer has reported processed (its last `processed <n>` line).
    pub fn processed(&self) -> u64 {
        last_processed(&self.log)
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .status();
    }

    /// SIGTERM to the process group, then (bounded) wait; SIGKILL if it lingers.
    pub async fn stop(mut self) {
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal_group("-KILL");
            let _ = self.child.wait();
        }
    }
}

fn last_processed(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("processed ")?.trim().parse().ok())
        .unwrap_or(0)
}
