//! The `orderpipe` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use orderpipe::cli::PluginCommand;
use orderpipe::config::{Config, Mode};
use orderpipe::server::Host;

/// mimalloc instead of glibc's malloc: on a cache-hit `GET` glibc's allocator (with its
/// consolidation) was about a fifth of the API's CPU (BENCHMARKS.md, 2026-12-04).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "orderpipe",
    version,
    about = "An order pipeline whose logic lives in WebAssembly plugins"
)]
struct Cli {
    /// Configuration file (default: ./orderpipe.toml when it exists).
    #[arg(long, global = true, env = "ORDERPIPE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and/or the worker.
    Serve {
        /// Which halves to run (overrides the configuration).
        #[arg(long, value_enum)]
        mode: Option<Mode>,
    },
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Author plugins: create a project, build its component, test it against fixtures.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        // No log subscriber: the plugin commands print for people, and `plugin test` shows a
        // plugin's log lines among the host calls it made.
        Command::Plugin { command } => orderpipe::cli::run(command, &config.plugins.limits).await,
        Command::Config => {
            orderpipe::telemetry::init_logging(&config.log);
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Command::Serve { mode } => {
            orderpipe::telemetry::init_logging(&config.log);
            if let Some(mode) = mode {
                config.mode = mode;
            }
            let host = Host::start(config).await?;
            let token = host.shutdown_token();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down: no new requests, finishing in-flight events");
                token.cancel();
            });
            host.wait().await
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
