//! A Python plugin project (`pyproject.toml`): its toolchain, a virtualenv `.venv/` in the
//! project created and filled from PyPI on first use (componentize-py, pytest, the SDK in
//! editable mode), and its build, `componentize-py componentize`.
//!
//! What the build needs is in the manifest's `[tool.orderpipe]` table, paths relative to the
//! project: `sdk` (an orderpipe checkout's `plugins/sdk-python`), `wit` (the contract's folder
//! or file), `world`, `app` (the module componentize-py builds) and `component` (where the
//! component goes). Only `python3` must be installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Format as _, Toml};
use serde::Deserialize;

use super::{immortal_objects, project};

/// The componentize-py release plugins are built and tested with (`shared/WASM.md`).
pub(crate) const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Where the virtualenv keeps what it was filled with: a different list installs again.
const INSTALLED_MARKER: &str = ".venv/.orderpipe-requirements";

/// `[tool.orderpipe]` of `pyproject.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildSettings {
    sdk: PathBuf,
    #[serde(default = "default_wit")]
    wit: PathBuf,
    #[serde(default = "default_world")]
    world: String,
    #[serde(default = "default_app")]
    app: String,
    component: PathBuf,
}

fn default_wit() -> PathBuf {
    PathBuf::from("wit")
}

fn default_world() -> String {
    "order-plugin".to_owned()
}

fn default_app() -> String {
    "app".to_owned()
}

/// Fills the virtualenv (first use only) and runs componentize-py; returns the component.
pub(crate) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    // Absolute: the venv's programs run with the project as their working directory.
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let settings = settings(dir)?;
    let sdk = dir.join(&settings.sdk);
    if !sdk.join("src/orderpipe_plugin").is_dir() {
        bail!(
            "[tool.orderpipe] sdk of {}: no orderpipe Python SDK at {} (expected the plugins/sdk-python folder of an orderpipe checkout)",
            dir.join("pyproject.toml").display(),
            sdk.display()
        );
    }
    install(dir, &sdk)?;
    let component = dir.join(&settings.component);
    if let Some(parent) = component.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    eprintln!(
        "building {}: componentize-py componentize {}",
        dir.display(),
        settings.app
    );
    let mut command = Command::new(dir.join(".venv/bin/componentize-py"));
    command
        .current_dir(dir)
        .arg("-d")
        .arg(&settings.wit)
        .args(["-w", &settings.world, "componentize", &settings.app])
        .args(["-p", "src", "-p"])
        .arg(sdk.join("src"))
        .arg("-o")
        .arg(&component);
    project::run(&mut command, "componentize-py")?;
    mark_snapshot_objects_immortal(&component)?;
    Ok(component)
}

/// Rewrites the component with its snapshot's objects immortal ([`immortal_objects`]).
fn mark_snapshot_objects_immortal(component: &Path) -> anyhow::Result<()> {
    let mut bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    match immortal_objects::mark(&mut bytes)
        .with_context(|| format!("marking the snapshot objects of {}", component.display()))?
    {
        Some(marked) => {
            std::fs::write(component, &bytes)
                .with_context(|| format!("writing {}", component.display()))?;
            eprintln!(
                "snapshot objects marked immortal: {} of {} listed ({} immortal already, {} left)",
                marked.marked, marked.listed, marked.immortal_already, marked.skipped
            );
        }
        None => eprintln!(
            "snapshot objects left as they are: the component lists none (an SDK older than 2026-12-06, or a CPython the SDK's snapshot.py does not know)"
        ),
    }
    Ok(())
}

/// The component the build makes, from `[tool.orderpipe] component`.
pub(crate) fn component(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(dir.join(settings(dir)?.component))
}

fn settings(dir: &Path) -> anyhow::Result<BuildSettings> {
    let manifest = dir.join("pyproject.toml");
    Figment::from(Toml::file_exact(&manifest))
        .extract_inner("tool.orderpipe")
        .with_context(|| {
            format!(
                "{}: [tool.orderpipe] must name the SDK and the component, e.g. sdk = \"../orderpipe/plugins/sdk-python\", component = \"dist/my_plugin.wasm\" (`orderpipe plugin new --lang python` writes it)",
                manifest.display()
            )
        })
}

/// Creates `.venv` and installs componentize-py, pytest and the SDK into it, unless it holds
/// exactly those already.
fn install(dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("resolving {}", sdk.display()))?;
    let requirements = [
        COMPONENTIZE_PY.to_owned(),
        "pytest>=8".to_owned(),
        "-e".to_owned(),
        sdk.to_string_lossy().into_owned(),
    ];
    let wanted = requirements.join(" ");
    let marker = dir.join(INSTALLED_MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    let venv = dir.join(".venv");
    eprintln!(
        "installing {COMPONENTIZE_PY}, pytest and the SDK into {} from PyPI (first use only)",
        venv.display()
    );
    project::run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    project::run(
        Command::new(venv.join("bin/pip"))
            .current_dir(dir)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(&requirements),
        "pip install",
    )?;
    std::fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))
}
