//! Process plumbing shared by every task: run a command and check it, start a detached server,
//! find a server again through its pid file, signal it, and lock files between concurrent xtasks.
//!
//! A pid file is the only handle on a server; nothing here ever looks a process up by name.
//! Beside the pid it records the process's start time (`pid.starttime`), so a pid the kernel
//! has since reused for another program (after a reboot, say) is never mistaken for our server,
//! and never signalled.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The two libc calls std does not wrap; std links libc already, so no crate is needed.
mod sys {
    unsafe extern "C" {
        pub fn setsid() -> i32;
        pub fn kill(pid: i32, signal: i32) -> i32;
    }
}

/// Runs a command with inherited stdio (its output streams through unmodified) and fails unless
/// it exits 0.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("{} exited with {status}", describe(command));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout; fails with its stderr unless it exits 0.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !out.status.success() {
        bail!(
            "{} exited with {}:\n{}{}",
            describe(command),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program arg arg …`, shortened: Cassandra's command line alone is 3 KB of JVM flags.
fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    if text.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("`{text}`")
}

/// Starts a long-running server in a session of its own, so it outlives this xtask and neither a
/// Ctrl-C here nor the terminal closing reaches it. Output is appended to `log`; the pid (and
/// its start time) go to `pid_file`.
pub fn spawn_detached(command: &mut Command, log: &Path, pid_file: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // SAFETY: runs in the forked child before exec; setsid is async-signal-safe and touches no
    // memory of ours.
    unsafe {
        command.pre_exec(|| {
            if sys::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", describe(command)))?;
    let pid = child.id();
    // Until the child is reaped it cannot vanish, so its start time is there to read.
    let started = start_time(pid).unwrap_or_default();
    write_atomically(&start_time_file(pid_file), &started)?;
    write_atomically(pid_file, &pid.to_string())?;
    Ok(pid)
}

/// The pid in `pid_file` if that process is alive (not a zombie) and is the one we started.
pub fn alive_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let (state, started) = stat(pid)?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Pid files written before start times were recorded have no `.starttime`: trust those.
    match fs::read_to_string(start_time_file(pid_file)) {
        Ok(recorded) if !recorded.trim().is_empty() && recorded.trim() != started => None,
        _ => Some(pid),
    }
}

/// Forgets a server's pid file.
pub fn remove_pid_file(pid_file: &Path) {
    let _ = fs::remove_file(pid_file);
    let _ = fs::remove_file(start_time_file(pid_file));
}

fn start_time_file(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".starttime");
    PathBuf::from(name)
}

fn start_time(pid: u32) -> Option<String> {
    stat(pid).map(|(_, started)| started)
}

/// A process's state letter and start time (clock ticks after boot) from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(String, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may itself hold spaces and parens):
    // state is field 3 of stat(5), starttime field 22.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_owned();
    let started = fields.nth(18)?.to_owned();
    Some((state, started))
}

fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    fs::write(&temporary, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Clone, Copy)]
pub enum Signal {
    Term = 15,
    Kill = 9,
}

/// Sends a signal to one process (not its group).
pub fn signal(pid: u32, signal: Signal) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) only takes integers; a pid of ours that has exited yields ESRCH, ignored.
    unsafe {
        sys::kill(pid, signal as i32);
    }
}

/// An exclusive lock on `path` (created if missing), held until the returned file is dropped.
/// Serialises xtasks that would otherwise start the same server twice or fetch the same jars
/// at once; says so, naming the likely `holder`, when it has to wait.
pub fn lock(path: &Path, holder: &str) -> anyhow::Result<fs::File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    if file.try_lock().is_err() {
        println!("    waiting for {holder} ({})", path.display());
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

/// Whether a program is on the PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Fails with a hint unless `program` is on the PATH.
pub fn require(program: &str, hint: &str) -> anyhow::Result<()> {
    if !on_path(program) {
        bail!("`{program}` is not on the PATH: {hint}");
    }
    Ok(())
}

/// Non-interactive `apt-get`, through `sudo` unless we are root already.
fn apt_get() -> Command {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    });
    if root || !on_path("sudo") {
        let mut command = Command::new("apt-get");
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    } else {
        let mut command = Command::new("sudo");
        command.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        command
    }
}

/// Installs Debian packages (`apt-get update`, then `install -y`).
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    run(apt_get().args(["update", "-qq"]))?;
    run(apt_get().args(["install", "-y", "-qq"]).args(packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_file_for(pid: u32, started: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let pid_file = dir.0.join("pid");
        fs::write(&pid_file, pid.to_string()).unwrap();
        fs::write(start_time_file(&pid_file), started).unwrap();
        (dir, pid_file)
    }

    #[test]
    fn a_live_process_with_its_recorded_start_time_is_alive() {
        let me = std::process::id();
        let (_dir, pid_file) = pid_file_for(me, &start_time(me).unwrap());
        assert_eq!(alive_pid(&pid_file), Some(me));
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_not_our_server() {
        let (_dir, pid_file) = pid_file_for(std::process::id(), "1");
        assert_eq!(alive_pid(&pid_file), None);
    }

    #[test]
    fn a_missing_process_is_not_alive() {
        let (_dir, pid_file) = pid_file_for(u32::MAX / 2, "1");
        assert_eq!(alive_pid(&pid_file), None);
    }

    /// A scratch folder removed on drop (std has no tempdir; this crate takes no dependencies).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);

        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "xtask-test-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
