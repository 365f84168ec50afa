//! A plugin project on disk, as `plugin build`, `plugin test` and `plugin deploy` find it: the
//! component its build makes (whatever its language), its fixtures, and for Rust its manifest
//! and crate. Cargo is asked (`cargo metadata`) rather than guessed at, so a
//! `CARGO_TARGET_DIR`, a workspace or a renamed crate all work. The TypeScript and Python
//! toolchains are in [`super::npm_project`] and [`super::python_project`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::language::Language;
use super::{npm_project, python_project};

/// The target every plugin is built for: its `cdylib` is a component.
pub(crate) const TARGET: &str = "wasm32-wasip2";

/// A `cargo` command run in `dir`. The `cargo` on `PATH` (rustup's proxy) is used, as if the
/// author typed it, so a `rust-toolchain.toml` in the project is honoured.
pub(crate) fn cargo(dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(dir);
    command
}

/// Runs `command` to completion, its output shown, and fails with `what` when it does.
pub(crate) fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .map_err(|e| spawn_error(command, e))
        .with_context(|| what.to_owned())?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// An error for a program that could not be started, naming what to install.
pub(crate) fn spawn_error(command: &Command, error: std::io::Error) -> anyhow::Error {
    let program = command.get_program().to_string_lossy().into_owned();
    if error.kind() == std::io::ErrorKind::NotFound {
        let install = match program.as_str() {
            "npm" | "node" => "install Node.js 20 or later (it brings npm)",
            "python3" => "install Python 3.11 or later",
            "cargo" | "rustup" => "install Rust with rustup (https://rustup.rs)",
            _ => "it should have been installed with the project's toolchain",
        };
        anyhow::anyhow!("`{program}` was not found: {install}")
    } else {
        anyhow::anyhow!("could not run `{program}`: {error}")
    }
}

/// The component `plugin build` makes for the project in `dir`, in any language; for Rust,
/// a warning when a source changed after it was built.
pub(crate) fn component(dir: &Path) -> anyhow::Result<PathBuf> {
    let component = match Language::detect(dir)? {
        Language::Rust => {
            let plugin = plugin_crate(dir)?;
            if plugin.component.is_file()
                && let Some(source) = newer_source(&plugin)
            {
                eprintln!(
                    "warning: {} changed after the component was built; run `orderpipe plugin build` to use the change",
                    source.display()
                );
            }
            plugin.component
        }
        Language::TypeScript => npm_project::component(dir)?,
        Language::Python => python_project::component(dir)?,
    };
    if !component.is_file() {
        bail!(
            "{} has no component yet ({} is missing): run `orderpipe plugin build --dir {}` first, or pass --component",
            dir.display(),
            component.display(),
            dir.display()
        );
    }
    Ok(component)
}

/// The project's `Cargo.toml`, absolute (cargo runs in the project's folder, so a relative
/// path would be resolved twice), or an error saying `dir` is no plugin project.
pub(crate) fn manifest(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is not a plugin project (no Cargo.toml); create one with `orderpipe plugin new <name>` or pass --dir",
            dir.display()
        );
    }
    manifest
        .canonicalize()
        .with_context(|| format!("resolving {}", manifest.display()))
}

/// Adds the wasm32-wasip2 target with rustup when the project's toolchain lacks it. Without
/// rustup there is nothing to add: cargo will say what is missing.
pub(crate) fn ensure_target(dir: &Path) -> anyhow::Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output();
    let Ok(listed) = listed else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if listed.status.success() && installed.lines().any(|line| line.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target: rustup target add {TARGET}");
    run(
        Command::new("rustup")
            .args(["target", "add", TARGET])
            .current_dir(dir),
        &format!("rustup target add {TARGET}"),
    )
}

/// The parts of `cargo metadata` we read.
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
    src_path: PathBuf,
}

/// The plugin a project builds: its package and where cargo puts its component.
pub(crate) struct PluginCrate {
    pub component: PathBuf,
    /// The package's folder, whose sources a fresh component must be newer than.
    pub root: PathBuf,
}

/// The plugin crate of the project in `dir`: the package whose manifest is `dir/Cargo.toml`,
/// or else the one package of its workspace that builds a `cdylib`.
pub(crate) fn plugin_crate(dir: &Path) -> anyhow::Result<PluginCrate> {
    let manifest = manifest(dir)?;
    let mut command = cargo(dir);
    command
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(Stdio::inherit());
    let output = command.output().map_err(|e| spawn_error(&command, e))?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed for {} ({})",
        manifest.display(),
        output.status
    );
    let metadata: Metadata =
        serde_json::from_slice(&output.stdout).context("reading cargo metadata's answer")?;
    let own_manifest = manifest;
    let candidates: Vec<(&Package, &Target)> = metadata
        .packages
        .iter()
        .filter_map(|package| {
            let lib = package
                .targets
                .iter()
                .find(|target| target.kind.iter().any(|kind| kind == "cdylib"))?;
            Some((package, lib))
        })
        .collect();
    let (package, lib) = match candidates
        .iter()
        .find(|(package, _)| package.manifest_path == own_manifest)
    {
        Some(own) => *own,
        None => match candidates.as_slice() {
            [only] => *only,
            [] => bail!(
                "{} builds no cdylib: a plugin needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`",
                dir.display()
            ),
            several => bail!(
                "{} holds several plugins ({}): pass --dir with one of them, or --component",
                dir.display(),
                several
                    .iter()
                    .map(|(package, _)| package.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let file = format!("{}.wasm", lib.name.replace('-', "_"));
    let root = package
        .manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| lib.src_path.clone());
    Ok(PluginCrate {
        component: metadata
            .target_directory
            .join(TARGET)
            .join("release")
            .join(file),
        root,
    })
}

/// A source file of the plugin changed after its component was built, if one did: testing
/// the old component would test code that is no longer there.
pub(crate) fn newer_source(plugin: &PluginCrate) -> Option<PathBuf> {
    let built = modified(&plugin.component)?;
    [
        newest_file(&plugin.root.join("src")),
        modified(&plugin.root.join("Cargo.toml")).map(|at| (at, plugin.root.join("Cargo.toml"))),
    ]
    .into_iter()
    .flatten()
    .filter(|(at, _)| *at > built)
    .max_by_key(|(at, _)| *at)
    .map(|(_, path)| path)
}

/// The most recently modified file under `folder` (recursively), with its time.
pub(crate) fn newest_file(folder: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut pending = vec![folder.to_path_buf()];
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(at) = modified(&path)
                && newest.as_ref().is_none_or(|(seen, _)| at > *seen)
            {
                newest = Some((at, path));
            }
        }
    }
    newest
}

/// When `path` was last modified, if it exists.
pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every `*.json` file in the project's `fixtures/` folder, sorted by name.
pub(crate) fn fixture_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let folder = dir.join("fixtures");
    let entries = std::fs::read_dir(&folder).with_context(|| {
        format!(
            "no fixtures: {} cannot be read; pass --fixtures FILE",
            folder.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no fixtures: {} holds no *.json file; pass --fixtures FILE",
        folder.display()
    );
    Ok(files)
}
