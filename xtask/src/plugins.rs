//! `cargo xtask plugins`: builds the plugin workspace (`plugins/Cargo.toml`) to wasm32-wasip2
//! components and publishes them to `plugins/dist/<name>.wasm`, the folder the host loads
//! (`ORDERPIPE_PLUGINS__DIR`). It never edits the plugins' sources.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::process;

const TARGET: &str = "wasm32-wasip2";

/// Where built plugins are published: `<repo>/plugins/dist`.
pub fn dist_dir() -> PathBuf {
    crate::repo_root().join("plugins/dist")
}

/// Builds every plugin in release mode and copies `<crate>.wasm` to `dist/<crate>.wasm`, minus
/// a `_plugin` suffix (`order_plugin.wasm` → `order.wasm`); returns `dist/`.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = crate::repo_root();
    let manifest = root.join("plugins/Cargo.toml");
    anyhow::ensure!(
        manifest.exists(),
        "{} does not exist: no plugin workspace to build",
        manifest.display()
    );
    ensure_target_installed()?;
    crate::step(&format!("plugins: cargo build --release --target {TARGET}"));
    // An explicit target dir: a CARGO_TARGET_DIR in the environment must not move the output.
    let target_dir = root.join("plugins/target");
    process::run(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--manifest-path",
        &manifest.to_string_lossy(),
        "--target-dir",
        &target_dir.to_string_lossy(),
    ]))?;
    let built = target_dir.join(TARGET).join("release");
    let dist = dist_dir();
    fs::create_dir_all(&dist)?;
    let mut published = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(&built)
        .with_context(|| format!("reading {}", built.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wasm"))
        else {
            continue;
        };
        let plugin = stem.strip_suffix("_plugin").unwrap_or(stem);
        let size = publish(&path, &dist.join(format!("{plugin}.wasm")))?;
        published.push(format!("{plugin}.wasm ({} KiB)", size / 1024));
    }
    anyhow::ensure!(
        !published.is_empty(),
        "no .wasm in {}: does a plugin crate have crate-type = [\"cdylib\"]?",
        built.display()
    );
    println!("    {}: {}", dist.display(), published.join(", "));
    Ok(dist)
}

/// `rustup target add wasm32-wasip2` unless it is installed. Without rustup (a distribution's
/// Rust) there is nothing to check: cargo says so if the target is missing.
fn ensure_target_installed() -> anyhow::Result<()> {
    if !process::on_path("rustup") {
        return Ok(());
    }
    let installed =
        process::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == TARGET) {
        crate::step(&format!("rustup target add {TARGET}"));
        process::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}

/// Copies `from` to `to` unless it holds the same bytes already, through a temporary file and a
/// rename so a host loading the folder never reads half a component. Returns the size.
pub fn publish(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if fs::read(to).ok().as_deref() != Some(&bytes[..]) {
        let mut temporary = to.as_os_str().to_owned();
        temporary.push(".tmp");
        fs::write(&temporary, &bytes).with_context(|| format!("writing {}", to.display()))?;
        fs::rename(&temporary, to).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(bytes.len() as u64)
}
