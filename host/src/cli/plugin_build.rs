//! `orderpipe plugin build`: the project's component, built by its language's toolchain (cargo
//! for wasm32-wasip2; npm and jco's QuickJS backend; componentize-py), and the facts a deployment
//! needs about it (path, size, sha256).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context as _;
use serde::Deserialize;

use super::language::Language;
use super::project::{self, TARGET};
use super::{npm_project, python_project};
use crate::plugin::sha256_hex;

/// One line of cargo's `--message-format=json` output; only artifacts matter here.
#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

/// A component the build made.
#[derive(Debug)]
pub(crate) struct Built {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Builds the plugin project in `dir` with its language's toolchain and prints each component
/// it produced.
pub(crate) fn run(dir: &Path) -> anyhow::Result<()> {
    let language = Language::detect(dir)?;
    let started = Instant::now();
    let built = match language {
        Language::Rust => build(dir)?,
        Language::TypeScript => vec![facts(npm_project::build(dir)?)?],
        Language::Python => vec![facts(python_project::build(dir)?)?],
    };
    if language != Language::Rust {
        eprintln!(
            "built the {} component in {:.1} s",
            language.label(),
            started.elapsed().as_secs_f64()
        );
    }
    for component in &built {
        println!("component  {}", component.path.display());
        println!(
            "size       {} bytes ({})",
            component.bytes,
            readable_size(component.bytes)
        );
        println!("sha256     {}", component.sha256);
    }
    Ok(())
}

/// `bytes` in KiB, or in MiB from 1 MiB on.
fn readable_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// A Rust project: `cargo build --release --target wasm32-wasip2` in `dir` (adding the target
/// first if the toolchain lacks it); cargo's own progress and diagnostics go to stderr as usual.
pub(crate) fn build(dir: &Path) -> anyhow::Result<Vec<Built>> {
    let manifest = project::manifest(dir)?;
    project::ensure_target(dir)?;
    eprintln!(
        "building {} for {TARGET}: cargo build --release --target {TARGET}",
        dir.display()
    );
    let started = Instant::now();
    let mut command = project::cargo(dir);
    command
        .args(["build", "--release", "--target", TARGET])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|e| project::spawn_error(&command, e))?;
    let mut components = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            let Ok(message) = serde_json::from_str::<Message>(&line) else {
                continue;
            };
            if message.reason == "compiler-artifact" {
                components.extend(
                    message
                        .filenames
                        .into_iter()
                        .filter(|file| file.extension().is_some_and(|ext| ext == "wasm")),
                );
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    anyhow::ensure!(status.success(), "cargo build failed ({status})");
    anyhow::ensure!(
        !components.is_empty(),
        "cargo built no component: the plugin needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`"
    );
    eprintln!(
        "built {} component(s) in {:.1} s",
        components.len(),
        started.elapsed().as_secs_f64()
    );
    components.into_iter().map(facts).collect()
}

/// The size and sha256 of the component at `path`.
fn facts(path: PathBuf) -> anyhow::Result<Built> {
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Built {
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        path,
    })
}
