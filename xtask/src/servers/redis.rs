//! Redis from Debian's `redis-server`, without persistence (a cache).

use std::path::Path;
use std::process::Command;

use crate::process;

pub const PORT: u16 = 16379;

pub fn install() -> anyhow::Result<()> {
    if process::on_path("redis-server") {
        return Ok(());
    }
    crate::step("installing redis-server from Debian");
    process::run(Command::new("apt-get").args(["update", "-qq"]))?;
    process::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "redis-server", "redis-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

pub fn command(dir: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        &PORT.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        &dir.to_string_lossy(),
    ]);
    Ok(command)
}
