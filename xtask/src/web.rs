//! `cargo xtask web`: the page under `web/` (React + TypeScript, npm). The host embeds its
//! built files from `web/dist`, which is committed so that building the host never needs Node.
//!
//! - `web`: `npm ci` (when `package-lock.json` changed since the last install), then the type
//!   check and `vite build` into `web/dist`.
//! - `web --check`: the same build into `target/web-check/`, compared file by file with
//!   `web/dist`; fails naming each difference (the committed files do not match their sources).
//! - `web test [--screenshot]`: the Playwright suite in Debian's chromium (installed with
//!   apt-get when `chromium` is not on the PATH; Playwright's own browser download is never
//!   used) against a real host (the dev build) on the real servers and Keycloak;
//!   `--screenshot` also writes `docs/page.png` (the page at phone width).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{plugins, process, servers};

/// The Debian package (and program) the suite drives.
const CHROMIUM: &str = "chromium";

pub fn command(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => build(),
        ["--check"] => check(),
        ["test"] => test(false),
        ["test", "--screenshot"] => test(true),
        _ => bail!("usage: cargo xtask web [--check | test [--screenshot]]"),
    }
}

fn web_dir() -> PathBuf {
    crate::repo_root().join("web")
}

fn npm(web: &Path) -> Command {
    let mut command = Command::new("npm");
    command
        .current_dir(web)
        // Playwright's browser download is not used (nor reachable): the suite drives Debian's.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    command
}

/// `npm ci`, unless `node_modules` was installed from this very `package-lock.json`.
fn install_dependencies(web: &Path) -> anyhow::Result<()> {
    process::require(
        "npm",
        "install Node.js 20 or later (Debian: nodejs and npm)",
    )?;
    let lock = fs::read(web.join("package-lock.json")).context("reading web/package-lock.json")?;
    let stamp = web.join("node_modules/.orderpipe-installed-from-lock");
    if fs::read(&stamp).ok().as_deref() == Some(lock.as_slice()) {
        return Ok(());
    }
    crate::step("web: npm ci");
    process::run(npm(web).args(["ci", "--no-audit", "--no-fund"]))?;
    fs::write(stamp, lock)?;
    Ok(())
}

/// The type checks (the page, then its tests and build files) and `vite build` into `out_dir`.
fn build_into(web: &Path, out_dir: &Path) -> anyhow::Result<()> {
    install_dependencies(web)?;
    crate::step(&format!(
        "web: tsc and vite build into {}",
        out_dir.display()
    ));
    process::run(npm(web).args(["exec", "--", "tsc", "--noEmit"]))?;
    process::run(npm(web).args(["exec", "--", "tsc", "--noEmit", "-p", "tsconfig.node.json"]))?;
    process::run(
        npm(web)
            .args([
                "exec",
                "--",
                "vite",
                "build",
                "--logLevel",
                "warn",
                "--emptyOutDir",
                "--outDir",
            ])
            .arg(out_dir),
    )
}

fn build() -> anyhow::Result<()> {
    let web = web_dir();
    build_into(&web, &web.join("dist"))
}

fn check() -> anyhow::Result<()> {
    let web = web_dir();
    let fresh = crate::repo_root().join("target/web-check");
    build_into(&web, &fresh)?;
    let committed = files_below(&web.join("dist"))?;
    let built = files_below(&fresh)?;
    let mut differences = Vec::new();
    for (path, bytes) in &built {
        match committed.get(path) {
            None => differences.push(format!("web/dist/{path} is missing")),
            Some(old) if old != bytes => differences.push(format!("web/dist/{path} differs")),
            Some(_) => {}
        }
    }
    for path in committed.keys().filter(|path| !built.contains_key(*path)) {
        differences.push(format!(
            "web/dist/{path} is not built from the sources any more"
        ));
    }
    if !differences.is_empty() {
        bail!(
            "web/dist does not match a fresh build of web/ (run `cargo xtask web` and commit \
             web/dist):\n  {}",
            differences.join("\n  ")
        );
    }
    crate::step(&format!(
        "web: web/dist matches its sources ({} files)",
        built.len()
    ));
    Ok(())
}

/// Every file below `root`, by its `/`-separated path relative to it.
fn files_below(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, files)?;
            } else {
                let relative = path
                    .strip_prefix(root)?
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(relative, fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut files = BTreeMap::new();
    if root.is_dir() {
        walk(root, root, &mut files)?;
    }
    Ok(files)
}

/// The chromium binary, installed from Debian when it is not on the PATH.
fn chromium() -> anyhow::Result<PathBuf> {
    if !process::on_path(CHROMIUM) {
        crate::step("web: installing chromium from Debian");
        process::apt_install(&[CHROMIUM])?;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(CHROMIUM))
        .find(|candidate| candidate.is_file())
        .context("chromium is not on the PATH after installing it")
}

fn test(screenshot: bool) -> anyhow::Result<()> {
    let root = crate::repo_root();
    let web = web_dir();
    let chromium = chromium()?;
    install_dependencies(&web)?;
    servers::up(&servers::ALL)?;
    let dist = plugins::build()?;
    let binary = crate::build_dev_host("the host the web suite serves")?;
    crate::step("web: playwright test (chromium, real host, Keycloak)");
    let mut suite = npm(&web);
    suite
        .args(["exec", "--", "playwright", "test"])
        .env("ORDERPIPE_CHROMIUM", &chromium)
        .env("ORDERPIPE_BIN", &binary)
        .env("ORDERPIPE_PLUGINS__DIR", &dist);
    for (key, value) in servers::ENV {
        suite.env(key, value);
    }
    if screenshot {
        fs::create_dir_all(root.join("docs"))?;
        suite.env("ORDERPIPE_WEB_SCREENSHOT", "1");
    }
    process::run(&mut suite)
}
