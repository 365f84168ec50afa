//! Hosts as real `orderpipe serve` processes, configured through `ORDERPIPE_*` variables, for
//! tests where a host must be a process of its own (two hosts, SIGKILL).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orderpipe::config::{Config, Mode};

/// The environment that makes `orderpipe serve` use `config`.
pub fn environment(config: &Config) -> Vec<(String, String)> {
    let mode = match config.mode {
        Mode::All => "all",
        Mode::Api => "api",
        Mode::Worker => "worker",
    };
    let backend = |value: &dyn std::fmt::Debug| format!("{value:?}").to_lowercase();
    let env = vec![
        ("ORDERPIPE_MODE", mode.to_owned()),
        (
            "ORDERPIPE_BACKENDS__EVENT_LOG",
            backend(&config.backends.event_log),
        ),
        (
            "ORDERPIPE_BACKENDS__ORDER_STORE",
            backend(&config.backends.order_store),
        ),
        (
            "ORDERPIPE_BACKENDS__STATUS_CACHE",
            backend(&config.backends.status_cache),
        ),
        (
            "ORDERPIPE_BACKENDS__DATA_DIR",
            config.backends.data_dir.display().to_string(),
        ),
        ("ORDERPIPE_HTTP__ADDR", config.http.addr.to_string()),
        (
            "ORDERPIPE_HTTP__REQUEST_TIMEOUT_MS",
            config.http.request_timeout_ms.to_string(),
        ),
        (
            "ORDERPIPE_HTTP__UPLOAD_TIMEOUT_MS",
            config.http.upload_timeout_ms.to_string(),
        ),
        ("ORDERPIPE_KAFKA__BROKERS", config.kafka.brokers.clone()),
        ("ORDERPIPE_KAFKA__TOPIC", config.kafka.topic.clone()),
        (
            "ORDERPIPE_KAFKA__DEAD_LETTER_TOPIC",
            config.kafka.dead_letter_topic.clone(),
        ),
        ("ORDERPIPE_KAFKA__GROUP_ID", config.kafka.group_id.clone()),
        ("ORDERPIPE_CASSANDRA__NODES", config.cassandra.nodes.clone()),
        (
            "ORDERPIPE_CASSANDRA__KEYSPACE",
            config.cassandra.keyspace.clone(),
        ),
        ("ORDERPIPE_REDIS__URL", config.redis.url.clone()),
        (
            "ORDERPIPE_REDIS__KEY_PREFIX",
            config.redis.key_prefix.clone(),
        ),
        (
            "ORDERPIPE_PLUGINS__DIR",
            config.plugins.dir.display().to_string(),
        ),
        ("ORDERPIPE_PLUGINS__ORDER", config.plugins.order.clone()),
        (
            "ORDERPIPE_PLUGINS__REGISTRY_SCOPE",
            config.plugins.registry_scope.clone(),
        ),
        (
            "ORDERPIPE_PLUGINS__MAX_COMPONENT_BYTES",
            config.plugins.max_component_bytes.to_string(),
        ),
        (
            "ORDERPIPE_PLUGINS__WATCH_INTERVAL_MS",
            config.plugins.watch_interval_ms.to_string(),
        ),
        (
            "ORDERPIPE_PLUGINS__MAX_MEMORY_MIB",
            config.plugins.max_memory_mib.to_string(),
        ),
        (
            "ORDERPIPE_WORKER__PLUGIN_ATTEMPTS",
            config.worker.plugin_attempts.to_string(),
        ),
        ("ORDERPIPE_LOG__FILTER", "info".to_owned()),
    ];
    let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    // Every plugin limit, by name, so a new limit reaches the process without a change here.
    for name in orderpipe::plugin_limits::LIMIT_NAMES {
        if let Some(value) = config.plugins.limits.get(name) {
            env.push((
                format!("ORDERPIPE_PLUGINS__LIMITS__{}", name.to_uppercase()),
                value.to_string(),
            ));
        }
    }
    for (name, value) in [
        ("MAX_PER_CLIENT", config.stream.max_per_client as u64),
        ("MAX_TOTAL", config.stream.max_total as u64),
        ("HEARTBEAT_MS", config.stream.heartbeat_ms),
        ("MAX_LIFETIME_MS", config.stream.max_lifetime_ms),
        ("BUFFER", config.stream.buffer as u64),
    ] {
        env.push((format!("ORDERPIPE_STREAM__{name}"), value.to_string()));
    }
    // The settings tests, benches and profiling loops change from the defaults.
    for (name, value) in [
        (
            "PLUGINS__INSTANCE_SLOTS",
            config.plugins.instance_slots as u64,
        ),
        (
            "PLUGINS__RESIDENT_MEMORY_BYTES",
            config.plugins.resident_memory_bytes as u64,
        ),
        (
            "PLUGINS__LIMITS__INSTANCE_REUSE",
            u64::from(config.plugins.limits.instance_reuse),
        ),
        (
            "WORKER__EVENTS_IN_FLIGHT_PER_PARTITION",
            config.worker.events_in_flight_per_partition as u64,
        ),
        (
            "CASSANDRA__BATCHES_IN_FLIGHT",
            config.cassandra.batches_in_flight as u64,
        ),
        (
            "WORKER__INITIAL_BACKOFF_MS",
            config.worker.initial_backoff_ms,
        ),
        ("WORKER__MAX_BACKOFF_MS", config.worker.max_backoff_ms),
    ] {
        env.push((format!("ORDERPIPE_{name}"), value.to_string()));
    }
    env.push((
        "ORDERPIPE_WORKER__DECIDE_NEW_ORDERS_UNREAD".to_owned(),
        config.worker.decide_new_orders_unread.to_string(),
    ));
    env.push((
        "ORDERPIPE_PLUGINS__PERF_MAP".to_owned(),
        config.plugins.perf_map.to_string(),
    ));
    env.push((
        "ORDERPIPE_PLUGINS__RESET_INSTANCES".to_owned(),
        config.plugins.reset_instances.to_string(),
    ));
    if let Some(token) = &config.admin.token {
        env.push(("ORDERPIPE_ADMIN__TOKEN".to_owned(), token.clone()));
    }
    if let Some(instance) = &config.kafka.instance_id {
        env.push(("ORDERPIPE_KAFKA__INSTANCE_ID".to_owned(), instance.clone()));
    }
    env
}

/// Every setting of `intended` the process did not start with (`path: intended, started`),
/// from the configuration it logged: a field a test or bench sets but [`environment`] does
/// not pass would otherwise be silently left at its default. The log filter is the one
/// setting the harness changes on purpose.
fn settings_not_passed(intended: &Config, started: &serde_json::Value) -> Vec<String> {
    fn walk(
        path: &str,
        intended: &serde_json::Value,
        started: &serde_json::Value,
        out: &mut Vec<String>,
    ) {
        match (intended, started) {
            (serde_json::Value::Object(intended), serde_json::Value::Object(started)) => {
                for (key, value) in intended {
                    let inner = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        &inner,
                        value,
                        started.get(key).unwrap_or(&serde_json::Value::Null),
                        out,
                    );
                }
            }
            _ if intended != started && path != "log.filter" => {
                out.push(format!("{path}: {intended}, started {started}"))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", &intended.redacted(), started, &mut out);
    out
}

/// WARN and ERROR lines of a process log (count and the last few), for failure reports.
pub fn log_digest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let notable: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .collect();
    let mut out = format!(
        "--- {} ({} lines, {} WARN/ERROR) ---\n",
        path.display(),
        text.lines().count(),
        notable.len()
    );
    for line in &notable[notable.len().saturating_sub(12)..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The address a host's log says it listens on (its `listening addr=…` line), once it does.
pub fn listening_address(log: &Path) -> Option<std::net::SocketAddr> {
    logged_word_after(log, " listening addr=")?.parse().ok()
}

/// The word that follows the first `marker` in a process's log, once it is there: how a
/// server started on port 0 tells the test which port it took.
pub fn logged_word_after(log: &Path, marker: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let (_, rest) = text.split_once(marker)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// A running `orderpipe serve` process; killed when dropped.
pub struct HostProcess {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl HostProcess {
    /// Starts the process on a port it picks itself (port 0: no port chosen here can be taken
    /// by another process before the host binds it), reads the address from its `listening`
    /// log line, and waits (bounded) until `/healthz` answers.
    pub async fn start(config: &Config, name: &str) -> HostProcess {
        let mut config = config.clone();
        config.http.addr = "127.0.0.1:0".parse().expect("address");
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = log_dir.join(format!("{name}-{}.log", config.kafka.group_id));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orderpipe"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(environment(&config))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("orderpipe starts");
        let mut process = HostProcess {
            child,
            base: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        process.base = loop {
            if let Some(addr) = listening_address(&process.log) {
                break format!("http://{addr}");
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "host {name} exited ({status}) before listening:\n{}",
                    log_digest(&process.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "host {name} did not start listening; see {}",
                process.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let http = reqwest::Client::new();
        loop {
            if http
                .get(format!("{}/healthz", process.base))
                .send()
                .await
                .is_ok()
            {
                let differences = settings_not_passed(&config, &process.started_config());
                assert!(
                    differences.is_empty(),
                    "host {name} runs with other settings than its test gave it (pass them in \
                     `environment`): {}",
                    differences.join("; ")
                );
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "host {name} did not start; see {}",
                process.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The value of one metric sample (name and exact label set) in the host's `/metrics`, 0
    /// when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let http = reqwest::Client::new();
        super::metrics::sample_at(&http, &self.base, sample, Duration::from_secs(10)).await
    }

    /// Waits (up to `within`) until the metric sample reaches `at_least`; returns how long
    /// after `since` that was.
    pub async fn wait_for_metric(
        &self,
        sample: &str,
        at_least: f64,
        since: Instant,
        within: Duration,
    ) -> Duration {
        loop {
            if self.metric(sample).await >= at_least {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < within,
                "{}: {sample} stayed below {at_least} for {within:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The configuration the process runs with, as it logged it when starting (secrets
    /// redacted): what [`HostProcess::start`] holds the test's settings against, since the
    /// process sees only what [`environment`] passes.
    fn started_config(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.log).expect("host log");
        let line = text
            .lines()
            .find(|line| line.contains("starting orderpipe"))
            .expect("the host logged its configuration");
        let json = &line[line.find("config=").expect("config field") + "config=".len()..];
        serde_json::Deserializer::from_str(json)
            .into_iter::<serde_json::Value>()
            .next()
            .expect("a JSON value")
            .expect("the logged configuration is JSON")
    }

    /// The process id (for `/proc/<pid>/…`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a graceful exit.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
