//! A TypeScript plugin project (`package.json`): its toolchain, installed from npm into its own
//! `node_modules/` on first use, and its build, `npm run build`, whose component is the one
//! `*.wasm` file in `dist/`.
//!
//! The SDK, `@orderpipe/plugin-sdk`, is a `file:` dependency on an orderpipe checkout's
//! `plugins/sdk-ts` (as `plugin new` writes it, and as `plugins/order-ts` has it): such an SDK
//! is installed and built in its own folder first, because npm links it rather than copying it.
//! Only `node` and `npm` must be installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::project;

/// The SDK's package name.
pub(crate) const SDK_PACKAGE: &str = "@orderpipe/plugin-sdk";

/// Written into `node_modules/` after an install: an install older than `package.json` or
/// `package-lock.json` is done again.
const INSTALLED_MARKER: &str = "node_modules/.orderpipe-installed";

/// Installs what the project needs (first use only) and runs `npm run build`; returns the
/// component it made.
pub(crate) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(sdk) = linked_sdk(dir)? {
        install(&sdk, "the TypeScript SDK's build tools (jco, typescript)")?;
        build_sdk(&sdk)?;
    }
    install(dir, "jco (QuickJS backend), esbuild and typescript")?;
    eprintln!(
        "building {}: npm run build (type check, esbuild bundle, jco componentize --backend qjs)",
        dir.display()
    );
    project::run(npm(dir).args(["run", "--silent", "build"]), "npm run build")?;
    component(dir)
}

/// The component in `dir/dist/`: the one `*.wasm` file there.
pub(crate) fn component(dir: &Path) -> anyhow::Result<PathBuf> {
    let dist = dir.join("dist");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dist)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
                .collect()
        })
        .unwrap_or_default();
    match found.len() {
        0 => bail!(
            "{} has no component yet (no *.wasm in {}): run `orderpipe plugin build --dir {}` first, or pass --component",
            dir.display(),
            dist.display(),
            dir.display()
        ),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "{} holds several components; pass --component with one of them",
            dist.display()
        ),
    }
}

/// The SDK folder `package.json` depends on with `file:`, if it does.
fn linked_sdk(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let package: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", manifest.display()))?;
    let Some(spec) = package
        .pointer(&format!("/dependencies/{}", SDK_PACKAGE.replace('/', "~1")))
        .and_then(serde_json::Value::as_str)
    else {
        return Ok(None);
    };
    Ok(spec.strip_prefix("file:").map(|path| dir.join(path)))
}

/// `npm ci` (with a lockfile) or `npm install` in `dir` unless an install newer than its
/// manifests is there.
fn install(dir: &Path, what: &str) -> anyhow::Result<()> {
    let marker = dir.join(INSTALLED_MARKER);
    let lock = dir.join("package-lock.json");
    let installed = project::modified(&marker);
    let current = installed.is_some_and(|installed| {
        [dir.join("package.json"), lock.clone()]
            .iter()
            .all(|file| project::modified(file).is_none_or(|changed| changed <= installed))
    });
    if current {
        return Ok(());
    }
    let verb = if lock.is_file() { "ci" } else { "install" };
    eprintln!(
        "installing {what} into {}/node_modules from npm (npm {verb}; first use only)",
        dir.display()
    );
    project::run(
        npm(dir).args([verb, "--no-audit", "--no-fund", "--loglevel=error"]),
        &format!("npm {verb} in {}", dir.display()),
    )?;
    std::fs::write(&marker, "").with_context(|| format!("writing {}", marker.display()))
}

/// `npm run build` in the SDK's folder when its `dist/` is missing or older than a source.
fn build_sdk(sdk: &Path) -> anyhow::Result<()> {
    let built = project::modified(&sdk.join("dist/index.js"));
    let stale = built.is_none_or(|built| {
        project::newest_file(&sdk.join("src")).is_some_and(|(changed, _)| changed > built)
    });
    if !stale {
        return Ok(());
    }
    eprintln!(
        "building the TypeScript SDK in {}: npm run build",
        sdk.display()
    );
    project::run(
        npm(sdk).args(["run", "--silent", "build"]),
        "building the TypeScript SDK",
    )
}

fn npm(dir: &Path) -> Command {
    let mut command = Command::new("npm");
    command.current_dir(dir);
    command
}
