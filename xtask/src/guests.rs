//! `cargo xtask guests`: builds the plugins written in other languages than Rust — the
//! TypeScript `order` (`plugins/order-ts`, componentize-js) and the Python `order`
//! (`plugins/order-py`, componentize-py) — and publishes them to `plugins/dist/order-ts.wasm`
//! and `plugins/dist/order-py.wasm`, printing each one's size, sha256 and build time.
//!
//! Each toolchain comes from its registry into the project's own folder on first use (npm's
//! `node_modules/` from the committed lockfiles; a virtualenv `plugins/order-py/.venv` from
//! PyPI), never into the system; only `node`/`npm` and `python3` must be installed. It never
//! edits the plugins' sources.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::{plugins, process};

/// What `pip` installs into the Python plugin's virtualenv. The SDK is installed editable, so a
/// change to `plugins/sdk-python` needs no reinstall.
const PYTHON_REQUIREMENTS: [&str; 4] = [
    "componentize-py==0.25.1",
    "pytest>=8",
    "-e",
    "../sdk-python",
];

/// The fixtures the Rust `order` plugin passes; its ports must pass them too.
const ORDER_FIXTURES: &str = "plugins/order/fixtures/orders.json";

#[derive(Clone, Copy, PartialEq)]
enum Language {
    TypeScript,
    Python,
}

struct Options {
    languages: Vec<Language>,
    test: bool,
    orderpipe: Option<PathBuf>,
}

/// `guests [ts] [python] [--test] [--orderpipe PATH]`.
pub fn command(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let root = crate::repo_root();
    let mut built = Vec::new();
    for language in &options.languages {
        let component = match language {
            Language::TypeScript => typescript(&root, options.test)?,
            Language::Python => python(&root, options.test)?,
        };
        built.push(component);
    }
    if let Some(orderpipe) = &options.orderpipe {
        for component in &built {
            crate::step(&format!(
                "{}: orderpipe plugin test with {ORDER_FIXTURES}",
                component.display()
            ));
            process::run(
                Command::new(orderpipe)
                    .current_dir(&root)
                    .args(["plugin", "test", "--component"])
                    .arg(component)
                    .args(["--fixtures", ORDER_FIXTURES]),
            )?;
        }
    }
    Ok(())
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        languages: Vec::new(),
        test: false,
        orderpipe: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "ts" | "typescript" => options.languages.push(Language::TypeScript),
            "python" | "py" => options.languages.push(Language::Python),
            "--test" => options.test = true,
            "--orderpipe" => {
                let path = args
                    .next()
                    .context("--orderpipe needs the path of an orderpipe binary")?;
                options.orderpipe = Some(PathBuf::from(path));
            }
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask guests [ts] [python] [--test] [--orderpipe PATH]"
            ),
        }
    }
    if options.languages.is_empty() {
        options.languages = vec![Language::TypeScript, Language::Python];
    }
    Ok(options)
}

/// Builds `plugins/order-ts` (after the SDK it depends on) into `plugins/dist/order-ts.wasm`.
fn typescript(root: &Path, test: bool) -> anyhow::Result<PathBuf> {
    process::require("npm", "install Node.js 20 or later (it brings npm)")?;
    let sdk = root.join("plugins/sdk-ts");
    let plugin = root.join("plugins/order-ts");
    npm_install(&sdk, "jco and typescript")?;
    npm_install(&plugin, "componentize-js 0.23.0, esbuild and typescript")?;
    crate::step("plugins/sdk-ts: npm run build");
    process::run(npm(&sdk).args(["run", "--silent", "build"]))?;
    if test {
        for project in [&sdk, &plugin] {
            crate::step(&format!("{}: npm test", relative(root, project)));
            process::run(npm(project).args(["test", "--silent"]))?;
        }
    }
    crate::step("plugins/order-ts: npm run build (tsc, esbuild, componentize-js)");
    let started = Instant::now();
    process::run(npm(&plugin).args(["run", "--silent", "build"]))?;
    publish(
        root,
        &plugin.join("dist/order.wasm"),
        "order-ts.wasm",
        started,
    )
}

/// Builds `plugins/order-py` into `plugins/dist/order-py.wasm`.
fn python(root: &Path, test: bool) -> anyhow::Result<PathBuf> {
    process::require("python3", "install Python 3.11 or later")?;
    let sdk = root.join("plugins/sdk-python");
    let plugin = root.join("plugins/order-py");
    let venv = plugin.join(".venv");
    python_venv(&plugin, &venv)?;
    let bin = venv.join("bin");
    if test {
        for project in [&sdk, &plugin] {
            crate::step(&format!("{}: pytest", relative(root, project)));
            process::run(
                Command::new(bin.join("pytest"))
                    .current_dir(project)
                    .arg("-q"),
            )?;
        }
    }
    crate::step("plugins/order-py: componentize-py componentize app");
    let started = Instant::now();
    let out = plugin.join("dist/order.wasm");
    fs::create_dir_all(plugin.join("dist"))?;
    process::run(
        Command::new(bin.join("componentize-py"))
            .current_dir(&plugin)
            .args([
                "-d",
                "../../wit",
                "-w",
                "order-plugin",
                "componentize",
                "app",
            ])
            .args(["-p", "src", "-p", "../sdk-python/src", "-o"])
            .arg(&out),
    )?;
    publish(root, &out, "order-py.wasm", started)
}

/// `npm ci` in `project` when its `node_modules` is missing or older than its lockfile.
fn npm_install(project: &Path, what: &str) -> anyhow::Result<()> {
    let lock = project.join("package-lock.json");
    let installed = project.join("node_modules/.package-lock.json");
    if modified(&installed).is_some_and(|installed| modified(&lock) <= Some(installed)) {
        return Ok(());
    }
    crate::step(&format!(
        "installing {what} into {}/node_modules from npm (npm ci; first run only)",
        project.display()
    ));
    process::run(npm(project).args(["ci", "--no-audit", "--no-fund"]))
}

/// Creates the plugin's virtualenv and installs [`PYTHON_REQUIREMENTS`] into it, unless it
/// holds exactly those already (a marker file in the venv records what was installed).
fn python_venv(plugin: &Path, venv: &Path) -> anyhow::Result<()> {
    let marker = venv.join(".orderpipe-requirements");
    let wanted = PYTHON_REQUIREMENTS.join(" ");
    if fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    crate::step(&format!(
        "installing componentize-py 0.25.1 and pytest into {} from PyPI (first run only)",
        venv.display()
    ));
    process::run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    process::run(
        Command::new(venv.join("bin/pip"))
            .current_dir(plugin)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_REQUIREMENTS),
    )?;
    fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))
}

fn npm(project: &Path) -> Command {
    let mut command = Command::new("npm");
    command.current_dir(project);
    command
}

/// Copies a built component to `plugins/dist/<name>` and prints its size, sha256 and the
/// seconds since `started`.
fn publish(root: &Path, built: &Path, name: &str, started: Instant) -> anyhow::Result<PathBuf> {
    let seconds = started.elapsed().as_secs_f64();
    let dist = plugins::dist_dir();
    fs::create_dir_all(&dist)?;
    let to = dist.join(name);
    let size = plugins::publish(built, &to)?;
    println!(
        "    {}: {:.1} MiB, sha256 {}, built in {seconds:.1} s",
        relative(root, &to),
        size as f64 / (1024.0 * 1024.0),
        sha256(&to)?
    );
    Ok(to)
}

/// The file's sha256 in hex, from coreutils' `sha256sum` (or `shasum` on macOS): xtask has no
/// hashing crate.
fn sha256(path: &Path) -> anyhow::Result<String> {
    let out = if process::on_path("sha256sum") {
        process::output(Command::new("sha256sum").arg(path))?
    } else {
        process::output(Command::new("shasum").args(["-a", "256"]).arg(path))?
    };
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .with_context(|| format!("no sha256 for {}", path.display()))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
