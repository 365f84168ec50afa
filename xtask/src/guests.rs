//! `cargo xtask guests`: builds the plugins written in other languages than Rust — the
//! TypeScript `order` (`plugins/order-ts`) and the Python `order` (`plugins/order-py`) — with
//! `orderpipe plugin build`, as a plugin author would, and publishes them to
//! `plugins/dist/order-ts.wasm` and `plugins/dist/order-py.wasm`.
//!
//! `plugin build` owns the toolchains: it installs them from npm and PyPI into each project's
//! folder on first use (`node_modules/` from the committed lockfiles, a virtualenv `.venv`),
//! never into the system, and prints each component's size and sha256; only `node`/`npm` and
//! `python3` must be installed. This file only adds what the repository needs around it: the
//! SDKs' own unit tests, the shared fixtures, and `plugins/dist/`. It never edits the plugins'
//! sources.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::{plugins, process};

/// The fixtures the Rust `order` plugin passes; its ports must pass them too.
const ORDER_FIXTURES: &str = "plugins/order/fixtures/orders.json";

#[derive(Clone, Copy, PartialEq)]
enum Language {
    TypeScript,
    Python,
}

impl Language {
    /// The SDK's folder and the plugin's, under the repository root.
    fn projects(self) -> (&'static str, &'static str) {
        match self {
            Language::TypeScript => ("plugins/sdk-ts", "plugins/order-ts"),
            Language::Python => ("plugins/sdk-python", "plugins/order-py"),
        }
    }

    /// Where the component is published in `plugins/dist/`.
    fn published_name(self) -> &'static str {
        match self {
            Language::TypeScript => "order-ts.wasm",
            Language::Python => "order-py.wasm",
        }
    }
}

struct Options {
    languages: Vec<Language>,
    test: bool,
}

/// `guests [ts] [python] [--test]`.
pub fn command(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let root = crate::repo_root();
    let orderpipe = crate::build_dev_host("its `plugin build` builds the guests")?;
    for language in &options.languages {
        guest(&root, &orderpipe, *language, options.test)?;
    }
    Ok(())
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        languages: Vec::new(),
        test: false,
    };
    for arg in args {
        match arg.as_str() {
            "ts" | "typescript" => options.languages.push(Language::TypeScript),
            "python" | "py" => options.languages.push(Language::Python),
            "--test" => options.test = true,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask guests [ts] [python] [--test]"
            ),
        }
    }
    if options.languages.is_empty() {
        options.languages = vec![Language::TypeScript, Language::Python];
    }
    Ok(options)
}

/// Builds one language's `order` plugin with `orderpipe plugin build`; with `test`, runs the
/// SDK's and the plugin's unit tests and `plugin test` with the Rust plugin's fixtures; then
/// publishes the component.
fn guest(root: &Path, orderpipe: &Path, language: Language, test: bool) -> anyhow::Result<()> {
    let (sdk, plugin) = language.projects();
    crate::step(&format!("{plugin}: orderpipe plugin build"));
    let started = Instant::now();
    process::run(
        Command::new(orderpipe)
            .current_dir(root)
            .args(["plugin", "build", "--dir", plugin]),
    )?;
    println!(
        "    built in {:.1} s (toolchain installs included)",
        started.elapsed().as_secs_f64()
    );
    if test {
        for project in [sdk, plugin] {
            unit_tests(root, language, project)?;
        }
        crate::step(&format!(
            "{plugin}: orderpipe plugin test with {ORDER_FIXTURES}"
        ));
        process::run(Command::new(orderpipe).current_dir(root).args([
            "plugin",
            "test",
            "--dir",
            plugin,
            "--fixtures",
            ORDER_FIXTURES,
        ]))?;
    }
    publish(&root.join(plugin).join("dist/order.wasm"), language)
}

/// `npm test`, or pytest from the plugin's virtualenv (where `plugin build` installed the SDK).
fn unit_tests(root: &Path, language: Language, project: &str) -> anyhow::Result<()> {
    let folder = root.join(project);
    match language {
        Language::TypeScript => {
            crate::step(&format!("{project}: npm test"));
            process::run(
                Command::new("npm")
                    .current_dir(&folder)
                    .args(["test", "--silent"]),
            )
        }
        Language::Python => {
            crate::step(&format!("{project}: pytest"));
            let pytest = root.join(language.projects().1).join(".venv/bin/pytest");
            process::run(Command::new(pytest).current_dir(&folder).arg("-q"))
        }
    }
}

/// Copies a built component to `plugins/dist/`.
fn publish(built: &Path, language: Language) -> anyhow::Result<()> {
    let dist = plugins::dist_dir();
    fs::create_dir_all(&dist)?;
    let to = dist.join(language.published_name());
    plugins::publish(built, &to).with_context(|| format!("publishing {}", built.display()))?;
    println!("    published {}", to.display());
    Ok(())
}
