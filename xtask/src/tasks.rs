//! The composite tasks: `test` (what CI runs) and `run` (the main job).

use std::process::Command;

use crate::{plugins, process, servers};

fn with_server_env(command: &mut Command, plugins_dir: &std::path::Path) {
    for (key, value) in servers::ENV {
        command.env(key, value);
    }
    command.env("ORDERPIPE_PLUGINS__DIR", plugins_dir);
}

/// Servers up, plugins built, formatting and lints checked, then every test (plugins' native unit
/// tests and the whole workspace against the real servers).
pub fn test(cargo_args: &[String]) -> anyhow::Result<()> {
    servers::up(&[
        servers::Server::Kafka,
        servers::Server::Cassandra,
        servers::Server::Redis,
    ])?;
    let dist = plugins::build()?;
    let root = crate::repo_root();
    crate::step("cargo fmt --check");
    process::run(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["fmt", "--all", "--check"]),
    )?;
    process::run(
        Command::new(env!("CARGO"))
            .current_dir(root.join("plugins"))
            .args(["fmt", "--all", "--check"]),
    )?;
    crate::step("cargo clippy -D warnings");
    process::run(Command::new(env!("CARGO")).current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    process::run(Command::new(env!("CARGO")).current_dir(&root).args([
        "clippy",
        "--manifest-path",
        "plugins/Cargo.toml",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::step("plugin unit tests (native)");
    process::run(Command::new(env!("CARGO")).current_dir(&root).args([
        "test",
        "--manifest-path",
        "plugins/Cargo.toml",
    ]))?;
    crate::step("workspace tests against the real servers");
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(cargo_args);
    with_server_env(&mut command, &dist);
    process::run(&mut command)?;
    crate::step("all tests passed");
    Ok(())
}

/// Servers up, plugins built, then the host in the foreground on port 5000.
pub fn run(host_args: &[String]) -> anyhow::Result<()> {
    servers::up(&[
        servers::Server::Kafka,
        servers::Server::Cassandra,
        servers::Server::Redis,
    ])?;
    let dist = plugins::build()?;
    crate::step("orderpipe serve on http://127.0.0.1:5000 (Ctrl-C stops it)");
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(crate::repo_root())
        .args(["run", "--quiet", "--package", "orderpipe", "--", "serve"])
        .args(host_args);
    with_server_env(&mut command, &dist);
    process::run(&mut command)
}
