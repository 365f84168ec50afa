//! Builds the plugin workspace (`plugins/`) to wasm32-wasip2 components in `plugins/dist/`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::process;

const TARGET: &str = "wasm32-wasip2";

/// Builds every plugin and copies `<crate>_plugin.wasm` to `dist/<crate>.wasm`; returns `dist/`.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = crate::repo_root();
    let installed =
        process::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == TARGET) {
        crate::step(&format!("rustup target add {TARGET}"));
        process::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    crate::step("building plugins for wasm32-wasip2");
    let manifest = root.join("plugins/Cargo.toml");
    process::run(Command::new(env!("CARGO")).args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--manifest-path",
        &manifest.to_string_lossy(),
    ]))?;
    let built = root.join("plugins/target").join(TARGET).join("release");
    let dist = root.join("plugins/dist");
    fs::create_dir_all(&dist)?;
    let mut copied = Vec::new();
    for entry in fs::read_dir(&built)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".wasm") else {
            continue;
        };
        let plugin = stem.strip_suffix("_plugin").unwrap_or(stem);
        fs::copy(&path, dist.join(format!("{plugin}.wasm")))?;
        copied.push(format!(
            "{plugin}.wasm ({} KiB)",
            fs::metadata(&path)?.len() / 1024
        ));
    }
    println!("    plugins/dist: {}", copied.join(", "));
    Ok(dist)
}
