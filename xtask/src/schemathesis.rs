//! `cargo xtask schemathesis`: fuzzes the HTTP API against its own OpenAPI document.
//!
//! Installs schemathesis (pinned, from PyPI) into a virtualenv under `target/`, builds the host,
//! starts it with its embedded backends, the orders and invoices pipelines of
//! `orderpipe.example.toml` and an admin token on a free loopback port, and runs schemathesis
//! on `/openapi.json` with a fixed seed and a bounded number of examples per operation. It
//! fails on any `5xx` and on any answer that does not conform to the document (status code,
//! content type, headers, body schema).
//!
//! The live streams (`…/stream`, Server-Sent Events) are left out: a valid request is
//! answered `200` with a body that only ends at `stream.max_lifetime_ms` (30 minutes by
//! default), and schemathesis reads each body to its end, so every generated request would
//! hang there. `tests/order_stream.rs` and `tests/http_edge.rs` check those routes instead
//! (their refusals and framing, bounded by timeouts).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::process;

/// The schemathesis release the run is pinned to.
const VERSION: &str = "4.32.5";
/// The seed of every run, so a failure reproduces.
const SEED: &str = "20261203";
/// Examples generated per operation and phase.
const MAX_EXAMPLES: &str = "100";
/// What each answer is checked for: no server error, and conformance to the document.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";
/// The operations left out: the live streams, whose bodies last (see the module doc).
const STREAMING_PATHS: &str = "/stream$";
/// The admin token of the fuzzed host (it exists only for this run).
const TOKEN: &str = "schemathesis-admin-token";
/// How long the host may take to answer `/healthz` after it is started.
const START_LIMIT: Duration = Duration::from_secs(120);

/// The `st` command of a virtualenv holding schemathesis [`VERSION`], made if missing.
fn install(target: &Path) -> anyhow::Result<PathBuf> {
    let venv = target.join(format!("schemathesis-{VERSION}"));
    let st = venv.join("bin/st");
    if st.exists() {
        return Ok(st);
    }
    crate::step(&format!(
        "installing schemathesis {VERSION} into {}",
        venv.display()
    ));
    process::require(
        "python3",
        "install Python 3 (with venv), e.g. `apt-get install python3-venv`",
    )?;
    process::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    process::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        &format!("schemathesis=={VERSION}"),
    ]))?;
    ensure!(
        st.exists(),
        "schemathesis installed but {} is missing",
        st.display()
    );
    Ok(st)
}

/// Kills the host when the run ends, however it ends.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn answers_health(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Runs schemathesis against a fresh host; `dist` holds the built plugins.
pub fn run(dist: &Path) -> anyhow::Result<()> {
    let root = crate::repo_root();
    let target = crate::target_dir();
    let st = install(&target)?;
    let binary = crate::build_dev_host("the host schemathesis fuzzes")?;
    let work = target.join("schemathesis");
    let data = work.join("data");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = fs::File::create(work.join("host.log"))?;
    let host = Command::new(&binary)
        .arg("serve")
        .env("ORDERPIPE_CONFIG", root.join("orderpipe.example.toml"))
        .env("ORDERPIPE_HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("ORDERPIPE_BACKENDS__DATA_DIR", &data)
        .env("ORDERPIPE_PLUGINS__DIR", dist)
        .env("ORDERPIPE_ADMIN__TOKEN", TOKEN)
        .env("ORDERPIPE_LOG__FILTER", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the host")?;
    let mut host = HostProcess(host);
    let started = Instant::now();
    while !answers_health(port) {
        if let Some(status) = host.0.try_wait()? {
            bail!(
                "the host exited with {status}; see {}",
                work.join("host.log").display()
            );
        }
        ensure!(
            started.elapsed() < START_LIMIT,
            "the host did not answer within {START_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://127.0.0.1:{port}/openapi.json");
    crate::step(&format!(
        "schemathesis {VERSION} on {url} (seed {SEED}, {MAX_EXAMPLES} examples per operation)"
    ));
    let hooks = root.join("xtask/schemathesis");
    let status = Command::new(&st)
        .current_dir(&work)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &hooks)
        .args([
            "run",
            &url,
            "--checks",
            CHECKS,
            "--max-examples",
            MAX_EXAMPLES,
        ])
        .args(["--seed", SEED, "--workers", "2"])
        .args(["--exclude-path-regex", STREAMING_PATHS])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .status()
        .context("starting schemathesis")?;
    drop(host);
    ensure!(
        status.success(),
        "schemathesis found server errors or answers that do not conform to /openapi.json \
         (reproduce: cargo xtask schemathesis; host log in {})",
        work.join("host.log").display()
    );
    Ok(())
}
