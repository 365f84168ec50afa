//! Keycloak 26 (a real OpenID Connect issuer) in development mode on 127.0.0.1:18080, with the
//! `orderpipe` realm imported from `xtask/keycloak/orderpipe-realm.json`: owns the server
//! distribution (a zip from Maven Central, unzipped once under the state directory), the realm
//! import and the command line; `super` owns starting and stopping.
//!
//! The realm holds fixed development passwords and secrets: this server listens on loopback
//! only and must never be made reachable. Dev mode keeps its data in an embedded H2 database
//! inside the unzipped folder; when the realm file changes, that database is dropped so the
//! next start imports the new realm (an existing realm is never re-imported).
//!
//! The pid file holds `kc.sh`'s, which forwards SIGTERM to its JVM (so `down` stops both);
//! `kill` (SIGKILL, for fault tests) reaches only the script and leaves the JVM answering.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::process;

pub const PORT: u16 = 18080;
const VERSION: &str = "26.5.6";
/// The realm the host and the tests use.
pub const REALM: &str = "orderpipe";
/// Keycloak's own heap (`kc.sh` reads it): enough for a development realm; about 600 MB
/// resident in all.
const HEAP: &str = "-Xms64m -Xmx512m";
/// The bootstrap administrator of Keycloak's own console (development only, loopback).
const BOOTSTRAP_ADMIN: (&str, &str) = ("admin", "admin");

/// The realm file in the repository.
fn realm_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("keycloak/orderpipe-realm.json")
}

/// The path `super` probes: the realm's discovery document answers only once it is imported.
pub fn ready_path() -> String {
    format!("/realms/{REALM}/.well-known/openid-configuration")
}

/// Where the distribution is unzipped.
fn home(dir: &Path) -> PathBuf {
    dir.join(format!("keycloak-{VERSION}"))
}

pub fn install() -> anyhow::Result<()> {
    process::require(
        "java",
        "install a Java 17 runtime (e.g. openjdk-17-jre-headless)",
    )?;
    if !process::on_path("unzip") {
        crate::step("installing unzip from Debian");
        process::require(
            "apt-get",
            "install unzip yourself so that it is on the PATH",
        )?;
        process::apt_install(&["unzip"])?;
    }
    let zip = super::maven::artifact("org.keycloak", "keycloak-quarkus-dist", VERSION, "zip")?;
    let dir = super::Server::Keycloak.dir()?;
    fs::create_dir_all(&dir)?;
    let complete = dir.join(format!(".unzipped-{VERSION}"));
    if complete.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(home(&dir));
    crate::step(&format!("unzipping Keycloak {VERSION}"));
    process::output(
        Command::new("unzip")
            .arg("-q")
            .arg("-o")
            .arg(&zip)
            .arg("-d")
            .arg(&dir),
    )
    .context("unzipping the Keycloak distribution")?;
    fs::write(complete, "")?;
    Ok(())
}

pub fn command(dir: &Path) -> anyhow::Result<Command> {
    let home = home(dir);
    let import = home.join("data/import");
    fs::create_dir_all(&import)?;
    let realm =
        fs::read(realm_file()).with_context(|| format!("reading {}", realm_file().display()))?;
    let imported = import.join("orderpipe-realm.json");
    if fs::read(&imported).ok().as_deref() != Some(realm.as_slice()) {
        // A changed realm is imported only into a fresh database.
        let _ = fs::remove_dir_all(home.join("data/h2"));
        fs::write(&imported, &realm)?;
    }
    let mut command = Command::new(home.join("bin/kc.sh"));
    command
        .args([
            "start-dev",
            &format!("--http-port={PORT}"),
            "--http-host=127.0.0.1",
            "--import-realm",
        ])
        .env("JAVA_OPTS_KC_HEAP", HEAP)
        .env("KC_BOOTSTRAP_ADMIN_USERNAME", BOOTSTRAP_ADMIN.0)
        .env("KC_BOOTSTRAP_ADMIN_PASSWORD", BOOTSTRAP_ADMIN.1);
    Ok(command)
}
