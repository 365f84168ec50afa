//! `cargo xtask plugins`: builds the plugin workspace (`plugins/Cargo.toml`) to WebAssembly
//! components and publishes them to `plugins/dist/<name>.wasm`, the folder the host loads
//! (`ORDERPIPE_PLUGINS__DIR`). It never edits the plugins' sources.
//!
//! Plugins written with the SDK are built for `wasm32-unknown-unknown` and linked into a
//! component by the toolchain's own `wasm-component-ld` (the linker `wasm32-wasip2` uses): the
//! component then imports only the orderpipe interfaces, none of the WASI ones Rust's std
//! links on `wasm32-wasip2` and a plugin never needs, which makes every fresh instance
//! cheaper to create. Only plugins that call WASI on purpose are built for `wasm32-wasip2`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::process;

/// The target of plugins that use no WASI (every SDK plugin).
const TARGET: &str = "wasm32-unknown-unknown";
/// The target of [`WASI_PLUGINS`].
const WASI_TARGET: &str = "wasm32-wasip2";
/// Plugins that call WASI themselves: the hostile test plugin, whose attacks (files, sockets,
/// the environment) must reach the host's WASI sandbox to be refused there.
const WASI_PLUGINS: &[&str] = &["hostile-plugin"];
/// Cargo settings for [`TARGET`]. The toolchain's `wasm-component-ld` (rustc finds it beside
/// its own linkers) makes the cdylib a component from the core module and the WIT that
/// wit-bindgen embeds; no WASI adapter is needed, the module imports none. `--initial-heap`
/// gives the initial memory room for a decision's allocations, which the SDK's allocator
/// uses before it grows the memory (see `plugins/sdk/src/heap.rs`).
const TARGET_CONFIG: &[&str] = &[
    "target.wasm32-unknown-unknown.linker=\"wasm-component-ld\"",
    "target.wasm32-unknown-unknown.rustflags=[\"-C\", \"link-arg=--initial-heap=262144\"]",
];

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
    // An explicit target dir: a CARGO_TARGET_DIR in the environment must not move the output.
    let target_dir = root.join("plugins/target");
    let cargo_build = |target: &str| {
        let mut command = Command::new(env!("CARGO"));
        command.current_dir(&root).args([
            "build",
            "--release",
            "--target",
            target,
            "--manifest-path",
            &manifest.to_string_lossy(),
            "--target-dir",
            &target_dir.to_string_lossy(),
        ]);
        command
    };

    ensure_target_installed(TARGET)?;
    crate::step(&format!("plugins: cargo build --release --target {TARGET}"));
    let mut build = cargo_build(TARGET);
    for setting in TARGET_CONFIG {
        build.args(["--config", setting]);
    }
    build.arg("--workspace");
    for plugin in WASI_PLUGINS {
        build.args(["--exclude", plugin]);
    }
    process::run(&mut build)?;

    ensure_target_installed(WASI_TARGET)?;
    crate::step(&format!(
        "plugins: cargo build --release --target {WASI_TARGET} ({})",
        WASI_PLUGINS.join(", ")
    ));
    let mut build = cargo_build(WASI_TARGET);
    for plugin in WASI_PLUGINS {
        build.args(["-p", plugin]);
    }
    process::run(&mut build)?;

    let dist = dist_dir();
    fs::create_dir_all(&dist)?;
    let wasi_file = |stem: &str| {
        WASI_PLUGINS
            .iter()
            .any(|plugin| plugin.replace('-', "_") == stem)
    };
    let mut published = Vec::new();
    for (target, wanted_wasi) in [(TARGET, false), (WASI_TARGET, true)] {
        let built = target_dir.join(target).join("release");
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
            // Each plugin from the build that made it now, not an older one from the other.
            if wasi_file(stem) != wanted_wasi {
                continue;
            }
            let plugin = stem.strip_suffix("_plugin").unwrap_or(stem);
            let size = publish(&path, &dist.join(format!("{plugin}.wasm")))?;
            published.push(format!("{plugin}.wasm ({} KiB)", size / 1024));
        }
    }
    anyhow::ensure!(
        !published.is_empty(),
        "no .wasm in {}: does a plugin crate have crate-type = [\"cdylib\"]?",
        target_dir.display()
    );
    println!("    {}: {}", dist.display(), published.join(", "));
    Ok(dist)
}

/// `rustup target add <target>` unless it is installed. Without rustup (a distribution's
/// Rust) there is nothing to check: cargo says so if the target is missing.
fn ensure_target_installed(target: &str) -> anyhow::Result<()> {
    if !process::on_path("rustup") {
        return Ok(());
    }
    let installed =
        process::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == target) {
        crate::step(&format!("rustup target add {target}"));
        process::run(Command::new("rustup").args(["target", "add", target]))?;
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
