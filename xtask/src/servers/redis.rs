//! Redis from Debian's `redis-server` on 127.0.0.1:16379, without persistence (it is only a
//! cache): owns installing the package when it is missing and the server's command line;
//! `super` owns starting and stopping.

use std::path::Path;
use std::process::Command;

use crate::process;

pub const PORT: u16 = 16379;

pub fn install() -> anyhow::Result<()> {
    if process::on_path("redis-server") {
        return Ok(());
    }
    crate::step("installing redis-server from Debian");
    process::require(
        "apt-get",
        "install Redis 7 yourself so that `redis-server` is on the PATH",
    )?;
    process::apt_install(&["redis-server", "redis-tools"])
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
