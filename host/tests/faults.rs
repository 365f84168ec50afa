//! The fault-injection suite of issue 9: for each of Kafka, Cassandra, Redis, the worker
//! process and the whole host process, a steady load of about 40 orders per second on
//! loopback, the target SIGKILLed after 5 s, restarted 10 s later, 5 s more load, then a
//! bounded drain and exact counts: every order that got a 201 reaches its final status
//! (through GET, in Cassandra and in Redis), nothing is applied twice, no cache entry is
//! stale, nothing goes to the dead-letter topic, no answer takes more than 5 s, and every
//! answer is 201/202 or a 503 with a JSON error (never 500).
//!
//! The host runs as real separate processes (the `orderpipe` binary, configured through
//! `ORDERPIPE_*` variables) so it can be SIGKILLed; their logs go to
//! `target/tmp/faults/`. Its own test binary: it kills servers that other tests rely on,
//! and cargo runs test binaries one after another. Within it, every test holds `SERIAL`
//! for its whole duration, and a guard restarts a killed server even when a test fails.
//!
//! The load generator and the counting live in `support::load` (the soak uses them too).
//!
//! Run: `cargo xtask servers up`, then
//! `cargo test -p orderpipe --test faults -- --nocapture --test-threads=1`.

mod support;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orderpipe::config::{Config, Mode};
use support::load::{DRAIN_WITHIN, Load, Window, client, count};
use support::metrics;
use support::process::log_digest;
use tokio::process::{Child, Command};

/// Orders posted per second (each order with items is followed by a payment event).
const RATE_PER_SECOND: u64 = 40;
/// Load before the kill.
const LOAD_BEFORE: Duration = Duration::from_secs(5);
/// How long the target stays dead.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// Load after the target is back.
const LOAD_AFTER: Duration = Duration::from_secs(5);
/// A (re)started worker must record its first event within this long of its start.
const RECOVERY_WITHIN: Duration = Duration::from_secs(5);
/// Bound on a host process starting to answer `/healthz`.
const START_WITHIN: Duration = Duration::from_secs(90);

/// Tests in this binary kill shared servers: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------
// cargo xtask, servers
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The xtask binary next to `orderpipe`, built once (an older build is used if building
/// fails, e.g. while someone edits xtask); `None`: fall back to `cargo run`. Calling the
/// binary directly keeps a kill on time even when another build holds cargo's lock.
fn xtask_binary() -> Option<&'static PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let built = std::process::Command::new(env!("CARGO"))
                .current_dir(repo_root())
                .args(["build", "--quiet", "--package", "xtask"])
                .status()
                .is_ok_and(|s| s.success());
            let candidate = Path::new(env!("CARGO_BIN_EXE_orderpipe")).with_file_name("xtask");
            if !built {
                eprintln!(
                    "building xtask failed; using {} if it exists",
                    candidate.display()
                );
            }
            candidate.exists().then_some(candidate)
        })
        .as_ref()
}

/// Runs `cargo xtask <args>` (blocking).
fn xtask(args: &[&str]) -> Result<(), String> {
    let mut command = match xtask_binary() {
        Some(binary) => std::process::Command::new(binary),
        None => {
            let mut command = std::process::Command::new(env!("CARGO"));
            command.args(["run", "--quiet", "--package", "xtask", "--"]);
            command
        }
    };
    let status = command
        .current_dir(repo_root())
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo xtask {args:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo xtask {args:?} exited with {status}"))
    }
}

async fn xtask_async(args: &[&'static str]) -> Result<(), String> {
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || xtask(&args))
        .await
        .map_err(|e| format!("xtask task: {e}"))?
}

/// Brings a killed server back when dropped, unless [`RestoreServer::restored`] said it is
/// back already: later tests and test binaries find it running even after a failure here.
struct RestoreServer {
    name: &'static str,
    restored: bool,
}

impl Drop for RestoreServer {
    fn drop(&mut self) {
        if !self.restored
            && let Err(error) = xtask(&["servers", "up", "--only", self.name])
        {
            eprintln!("could not restore {}: {error}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------
// host processes
// ---------------------------------------------------------------------------------------

fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&dir).expect("log directory");
    dir
}

/// The names and settings shared by every process of one scenario (unique topic, group and
/// key prefix, as `support::config` makes them).
struct Setup {
    label: String,
    config: Config,
    suffix: String,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let config = support::config("order");
        let suffix = config
            .kafka
            .topic
            .rsplit('-')
            .next()
            .unwrap_or_default()
            .to_owned();
        let plugin = config.plugins.dir.join("order.wasm");
        assert!(
            plugin.exists(),
            "{} is missing: run `cargo xtask plugins` (or set ORDERPIPE_PLUGINS__DIR)",
            plugin.display()
        );
        Setup {
            label: label.to_owned(),
            config,
            suffix,
        }
    }

    /// The process environment (through `support::process::environment`, so it follows
    /// the configuration as it grows), in `mode` on `port`.
    fn env(&self, mode: &str, port: u16, role: &str) -> Vec<(String, String)> {
        let mut config = self.config.clone();
        config.mode = match mode {
            "api" => Mode::Api,
            "worker" => Mode::Worker,
            _ => Mode::All,
        };
        config.http.addr = format!("127.0.0.1:{port}").parse().expect("address");
        if mode != "api" {
            // Static group membership, as the README recommends for crash recovery: a stable
            // id per worker (its "pod name"), the same across a restart.
            config.kafka.instance_id = Some(format!("{}-{role}", config.kafka.group_id));
        }
        support::process::environment(&config)
    }
}

/// One `orderpipe serve` process.
struct HostProcess {
    role: String,
    child: Child,
    log: PathBuf,
    base: String,
    spawned_at: Instant,
}

impl HostProcess {
    /// Starts `orderpipe serve` in `mode` on `port` (0: a port the host picks itself, read
    /// from its log by [`HostProcess::wait_healthy`], so that no other process can take it
    /// between a test choosing it and the host binding it; a restart passes the port its
    /// predecessor had, [`HostProcess::port`]); `role` names it in logs (and gives a worker its
    /// static group member id, the same for a restarted process).
    fn spawn(setup: &Setup, mode: &str, port: u16, role: &str) -> HostProcess {
        let dir = log_dir();
        let mut n = 1;
        let log = loop {
            let candidate = dir.join(format!("{}-{}-{role}-{n}.log", setup.label, setup.suffix));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderpipe"));
        command
            .arg("serve")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ORDERPIPE_") {
                command.env_remove(&key);
            }
        }
        command.env_remove("RUST_LOG").env("NO_COLOR", "1");
        command.envs(setup.env(mode, port, role));
        let child = command.spawn().expect("starting orderpipe serve");
        println!(
            "[{}] started {role} ({mode}) pid {:?} on port {port} (0: one it picks), log {}",
            setup.label,
            child.id(),
            log.display()
        );
        HostProcess {
            role: role.to_owned(),
            child,
            log,
            base: match port {
                0 => String::new(),
                port => format!("http://127.0.0.1:{port}"),
            },
            spawned_at: Instant::now(),
        }
    }

    /// The port the host listens on (known once [`HostProcess::wait_healthy`] returned).
    fn port(&self) -> u16 {
        let (_, port) = self.base.rsplit_once(':').expect("a listening host");
        port.parse().expect("a port")
    }

    /// Waits until `/healthz` answers 200 (for a host spawned on port 0, first until its log
    /// names the address it listens on); fails if the process exits or takes too long.
    async fn wait_healthy(&mut self, http: &reqwest::Client) -> Result<Duration, String> {
        let deadline = self.spawned_at + START_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before answering; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            if self.base.is_empty()
                && let Some(addr) = support::process::listening_address(&self.log)
            {
                self.base = format!("http://{addr}");
            }
            if !self.base.is_empty()
                && let Ok(response) = http
                    .get(format!("{}/healthz", self.base))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                && response.status() == 200
            {
                return Ok(self.spawned_at.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not listening and healthy {START_WITHIN:?} after start; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `/readyz` answers 200.
    async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        let mut last = String::new();
        loop {
            if let Ok(response) = http
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                if response.status() == 200 {
                    return Ok(());
                }
                last = response.text().await.unwrap_or_default();
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready within {START_WITHIN:?}: {last}; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn sigkill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// SIGTERM, bounded wait, then SIGKILL.
    async fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(40), self.child.wait())
                .await
                .is_err()
            {
                println!(
                    "{} did not stop within 40 s of SIGTERM; killing it (log {})",
                    self.role,
                    self.log.display()
                );
                self.sigkill().await;
            }
        }
    }
}

/// Events the process at `base` has recorded or recognised as redelivered (`/metrics`).
async fn events_handled(http: &reqwest::Client, base: &str) -> Option<f64> {
    let mut total = 0.0;
    for name in [
        "orderpipe_events_processed_total",
        "orderpipe_events_redelivered_total",
    ] {
        total += metrics::total_at(http, base, name).await?;
    }
    Some(total)
}

/// How long after `spawned_at` the (worker) process at `base` handled its first event;
/// `None` if it did not within `within`.
async fn first_event_handled(
    http: &reqwest::Client,
    base: &str,
    spawned_at: Instant,
    within: Duration,
) -> Option<Duration> {
    let deadline = spawned_at + within;
    while Instant::now() < deadline {
        if events_handled(http, base).await.unwrap_or(0.0) > 0.0 {
            return Some(spawned_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

// ---------------------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    Server(&'static str),
    Worker,
    Host,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Server(name) => name,
            Fault::Worker => "worker",
            Fault::Host => "host",
        }
    }
}

/// Load, kill, wait, restart, load, drain, count; asserts the bar.
async fn run_fault(fault: Fault) {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let label = fault.label();
    let setup = Setup::new(label);
    let http = client();
    let mut failures: Vec<String> = Vec::new();
    if let Fault::Server(_) = fault {
        // Build (or find) xtask now, so the kill later happens on time.
        tokio::task::spawn_blocking(|| {
            xtask_binary();
        })
        .await
        .expect("xtask build");
    }

    // Processes: an all-mode host, or (worker fault) an API and a separate worker.
    let mut api = match fault {
        Fault::Worker => HostProcess::spawn(&setup, "api", 0, "api"),
        _ => HostProcess::spawn(&setup, "all", 0, "host"),
    };
    api.wait_healthy(&http).await.unwrap();
    let api_port = api.port();
    let mut worker = match fault {
        Fault::Worker => {
            let mut worker = HostProcess::spawn(&setup, "worker", 0, "worker");
            worker.wait_healthy(&http).await.unwrap();
            Some(worker)
        }
        _ => None,
    };
    let worker_port = worker.as_ref().map_or(0, HostProcess::port);
    api.wait_ready(&http).await.unwrap();
    if let Some(worker) = worker.as_mut() {
        worker.wait_ready(&http).await.unwrap();
    }
    let mut logs: Vec<PathBuf> = vec![api.log.clone()];
    logs.extend(worker.as_ref().map(|w| w.log.clone()));
    println!(
        "[{label}] processes up after {:.1} s; load {RATE_PER_SECOND}/s",
        started.elapsed().as_secs_f64()
    );

    let load = Load::start(&http, &api.base, RATE_PER_SECOND);
    tokio::time::sleep(LOAD_BEFORE).await;

    let killed_at = Instant::now();
    let mut restore = None;
    match fault {
        Fault::Server(name) => {
            restore = Some(RestoreServer {
                name,
                restored: false,
            });
            xtask_async(&["servers", "kill", name]).await.unwrap();
        }
        Fault::Worker => worker.as_mut().unwrap().sigkill().await,
        Fault::Host => api.sigkill().await,
    }
    println!(
        "[{label}] SIGKILLed at +{:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(DOWN_FOR.saturating_sub(killed_at.elapsed())).await;

    // Restart, and for a worker (or the whole host) measure how soon it handles an event.
    let mut first_event: Option<tokio::task::JoinHandle<Option<Duration>>> = None;
    let back_at = match fault {
        Fault::Server(name) => {
            let result = xtask_async(&["servers", "up", "--only", name]).await;
            if let Some(restore) = restore.as_mut() {
                restore.restored = result.is_ok();
            }
            result.unwrap();
            Instant::now()
        }
        Fault::Worker => {
            let mut restarted = HostProcess::spawn(&setup, "worker", worker_port, "worker");
            logs.push(restarted.log.clone());
            restarted.wait_healthy(&http).await.unwrap();
            let back_at = Instant::now();
            worker = Some(restarted);
            back_at
        }
        Fault::Host => {
            let mut restarted = HostProcess::spawn(&setup, "all", api_port, "host");
            logs.push(restarted.log.clone());
            restarted.wait_healthy(&http).await.unwrap();
            let back_at = Instant::now();
            api = restarted;
            back_at
        }
    };
    let restarted_worker = match fault {
        Fault::Worker => worker.as_ref(),
        Fault::Host => Some(&api),
        Fault::Server(_) => None,
    };
    let mut resumed: Option<tokio::task::JoinHandle<Option<Duration>>> = None;
    if let Fault::Server(_) = fault {
        // How soon after the server is back the worker handles events again.
        let http = http.clone();
        let base = api.base.clone();
        resumed = Some(tokio::spawn(async move {
            let baseline = events_handled(&http, &base).await.unwrap_or(0.0);
            while back_at.elapsed() < Duration::from_secs(90) {
                if events_handled(&http, &base).await.unwrap_or(0.0) > baseline {
                    return Some(back_at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }));
    }
    if let Some(process) = restarted_worker {
        let http = http.clone();
        let base = process.base.clone();
        let spawned_at = process.spawned_at;
        first_event = Some(tokio::spawn(async move {
            first_event_handled(&http, &base, spawned_at, Duration::from_secs(60)).await
        }));
    }
    println!(
        "[{label}] back at +{:.1} s ({:.1} s after the kill)",
        started.elapsed().as_secs_f64(),
        (back_at - killed_at).as_secs_f64()
    );
    tokio::time::sleep(LOAD_AFTER).await;
    let (posted, samples, placed) = load.finish().await;
    println!(
        "[{label}] load stopped at +{:.1} s: {posted} orders posted, {} acknowledged",
        started.elapsed().as_secs_f64(),
        placed.len()
    );

    let first_event_after_restart = match first_event {
        Some(handle) => {
            let measured = handle.await.expect("first-event probe");
            match measured {
                Some(after) if after <= RECOVERY_WITHIN => {}
                Some(after) => failures.push(format!(
                    "the restarted {label} handled its first event {} ms after its start (bar: {} ms)",
                    after.as_millis(),
                    RECOVERY_WITHIN.as_millis()
                )),
                None => failures.push(format!(
                    "the restarted {label} handled no event within 60 s of its start"
                )),
            }
            measured
        }
        None => None,
    };

    let window = Window {
        killed_at,
        back_at,
        answering_process_killed: matches!(fault, Fault::Host),
    };
    let mut figures = count(
        &setup.config,
        &http,
        &api.base,
        posted,
        &samples,
        &placed,
        Some(&window),
        DRAIN_WITHIN,
        &mut failures,
    )
    .await;
    figures.first_event_after_restart_ms = first_event_after_restart.map(|d| d.as_millis());
    if let Some(resumed) = resumed {
        figures.resumed_after_ms = resumed.await.expect("resume probe").map(|d| d.as_millis());
    }
    let worker_base = worker.as_ref().map_or(&api.base, |w| &w.base);
    figures.redelivered =
        metrics::total_at(&http, worker_base, "orderpipe_events_redelivered_total").await;
    println!("{}", figures.line(label));

    if let Some(worker) = worker.as_mut() {
        worker.terminate().await;
    }
    api.terminate().await;
    println!("[{label}] done in {:.1} s", started.elapsed().as_secs_f64());
    drop(restore);
    if !failures.is_empty() {
        let digests: Vec<String> = logs.iter().map(|l| log_digest(l)).collect();
        panic!(
            "fault={label}: {} failure(s):\n- {}\n{}",
            failures.len(),
            failures.join("\n- "),
            digests.join("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_killed_for_10s_under_load() {
    run_fault(Fault::Server("kafka")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_killed_for_10s_under_load() {
    run_fault(Fault::Server("cassandra")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_for_10s_under_load() {
    run_fault(Fault::Server("redis")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process_killed_for_10s_under_load() {
    run_fault(Fault::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_host_killed_for_10s_under_load() {
    run_fault(Fault::Host).await;
}

/// Orders produced while no worker ran at all are processed by the first worker of a
/// brand-new group, which starts handling them within 5 s of its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_produced_before_any_worker_ran_are_all_processed() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let label = "before-worker";
    let setup = Setup::new(label);
    let http = client();
    let mut failures = Vec::new();

    let mut api = HostProcess::spawn(&setup, "api", 0, "api");
    api.wait_healthy(&http).await.unwrap();
    api.wait_ready(&http).await.unwrap();

    // Two seconds of load with no worker anywhere.
    let load = Load::start(&http, &api.base, RATE_PER_SECOND);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (posted, samples, placed) = load.finish().await;
    println!(
        "[{label}] {posted} orders posted with no worker running, {} acknowledged",
        placed.len()
    );

    // The worker's group is brand new (the API's configured group never consumed).
    let mut config = setup.config.clone();
    config.kafka.group_id = format!("{}-fresh", setup.config.kafka.group_id);
    let worker_setup = Setup {
        label: setup.label.clone(),
        config,
        suffix: setup.suffix.clone(),
    };
    let mut worker = HostProcess::spawn(&worker_setup, "worker", 0, "worker");
    worker.wait_healthy(&http).await.unwrap();
    let first = first_event_handled(
        &http,
        &worker.base,
        worker.spawned_at,
        Duration::from_secs(60),
    )
    .await;
    match first {
        Some(after) if after <= RECOVERY_WITHIN => {}
        Some(after) => failures.push(format!(
            "the new worker handled its first event {} ms after its start (bar: {} ms)",
            after.as_millis(),
            RECOVERY_WITHIN.as_millis()
        )),
        None => failures.push("the new worker handled no event within 60 s of its start".into()),
    }

    let mut figures = count(
        &setup.config,
        &http,
        &api.base,
        posted,
        &samples,
        &placed,
        None,
        DRAIN_WITHIN,
        &mut failures,
    )
    .await;
    figures.first_event_after_restart_ms = first.map(|d| d.as_millis());
    figures.redelivered =
        metrics::total_at(&http, &worker.base, "orderpipe_events_redelivered_total").await;
    println!("{}", figures.line(label));

    worker.terminate().await;
    api.terminate().await;
    println!("[{label}] done in {:.1} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        panic!(
            "{label}: {} failure(s):\n- {}\n{}{}",
            failures.len(),
            failures.join("\n- "),
            log_digest(&api.log),
            log_digest(&worker.log)
        );
    }
}
