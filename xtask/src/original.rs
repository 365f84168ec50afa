//! The original design the benchmark compares orderpipe with (`bench/original/`, Python):
//! its virtualenv under `target/`, holding exactly the pinned `requirements.txt`. Made on
//! first use and again whenever that file changes; otherwise left alone.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::process;

/// The virtualenv with the original's requirements installed, made if missing or stale.
pub fn install() -> anyhow::Result<PathBuf> {
    let requirements = crate::repo_root().join("bench/original/requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = crate::target_dir().join("original-venv");
    // A copy of the requirements the venv was made from, written once pip succeeded.
    let stamp = venv.join("requirements.txt");
    if fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(venv);
    }
    crate::step(&format!(
        "installing the original design (Flask, gunicorn, kafka-python, cassandra-driver, \
         redis-py; pinned) into {}",
        venv.display()
    ));
    process::require(
        "python3",
        "install Python 3 (with venv), e.g. `apt-get install python3-venv`",
    )?;
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    process::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    process::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(venv)
}
