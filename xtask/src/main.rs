//! `cargo xtask`: the developer's one entry point.
//!
//! - `servers up|down|status|kill|env [--only kafka,cassandra,redis]`: real Kafka (KRaft),
//!   Cassandra 5 and Redis on loopback, installed and started without Docker.
//! - `plugins`: build the plugin workspace to wasm32-wasip2 into `plugins/dist/`.
//! - `test [cargo test args]`: servers up, plugins, format check, every test. CI runs this.
//! - `run`: servers up, plugins, then `orderpipe serve` on port 5000.

mod plugins;
mod process;
mod servers;
mod tasks;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("help", &[]));
    match command {
        "servers" => servers::command(rest),
        "plugins" => plugins::build().map(|_| ()),
        "test" => tasks::test(rest),
        "run" => tasks::run(rest),
        "help" | "--help" | "-h" => {
            println!(
                "{}",
                include_str!("main.rs")
                    .lines()
                    .take_while(|l| l.starts_with("//!"))
                    .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            Ok(())
        }
        other => bail!("unknown command {other:?}; try `cargo xtask help`"),
    }
    .with_context(|| format!("cargo xtask {}", args.join(" ")))
}

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repo")
        .to_path_buf()
}

/// Prints a step header with the time since the xtask started.
pub fn step(message: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    println!("==> [{:>5.1}s] {message}", start.elapsed().as_secs_f64());
}
