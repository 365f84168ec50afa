//! Small process helpers: run a command and check it, start a detached server, pid files.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Runs a command, streaming its output, and fails unless it exits 0.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} exited with {status}");
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout; fails with its stderr unless it exits 0.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts a long-running server in its own process group (so it outlives this xtask and a
/// Ctrl-C here does not reach it), output appended to `log`, and writes its pid to `pid_file`.
pub fn spawn_detached(command: &mut Command, log: &Path, pid_file: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log_file = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    fs::write(pid_file, child.id().to_string())?;
    Ok(child.id())
}

/// The pid in `pid_file` if that process is alive (not a zombie).
pub fn alive_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state is the field after the parenthesised command name.
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    (state != "Z" && state != "X").then_some(pid)
}

/// Sends a signal (`TERM`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Whether a program is on the PATH.
pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
