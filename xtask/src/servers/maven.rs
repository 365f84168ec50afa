//! Fetches a set of Maven artifacts and their dependencies into a folder of jars, once per
//! version: a tiny pom and `mvn dependency:copy-dependencies`. It owns the jar cache
//! (`~/.cache/orderpipe/jars/<name>-<version>/libs`, complete once `.complete` exists) and
//! never touches a server's state.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::process;

/// The jars folder for `name-version`, fetched if it is not complete yet.
pub fn jars(
    name: &str,
    version: &str,
    artifacts: &[(&str, &str, &str)],
) -> anyhow::Result<PathBuf> {
    let cache = super::home()?.join(".cache/orderpipe/jars");
    let root = cache.join(format!("{name}-{version}"));
    let libs = root.join("libs");
    let complete = root.join(".complete");
    if complete.exists() {
        return Ok(libs);
    }
    // One fetch at a time, across threads and xtasks: Maven 3.8's local repository is not
    // safe for concurrent writers, and Kafka and Cassandra share many dependencies.
    let _lock = process::lock(&cache.join(".lock"), "another jar fetch")?;
    if complete.exists() {
        return Ok(libs);
    }
    process::require(
        "mvn",
        "install Maven 3 (e.g. `apt-get install -y maven`) to fetch the server jars",
    )?;
    fs::create_dir_all(&root)?;
    // A half-finished earlier fetch may have left a partial folder.
    let _ = fs::remove_dir_all(&libs);
    let dependencies: String = artifacts
        .iter()
        .map(|(group, artifact, version)| {
            format!(
                "    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>\n"
            )
        })
        .collect();
    let pom = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.orderpipe.servers</groupId>
  <artifactId>{name}-jars</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}  </dependencies>
</project>
"#
    );
    fs::write(root.join("pom.xml"), pom)?;
    crate::step(&format!(
        "fetching {name} {version} jars from Maven Central"
    ));
    let started = std::time::Instant::now();
    // Quiet unless it fails: then its whole output is in the error.
    process::output(Command::new("mvn").current_dir(&root).args([
        "-q",
        "-B",
        "-Dstyle.color=never",
        "dependency:copy-dependencies",
        "-DoutputDirectory=libs",
    ]))
    .with_context(|| format!("fetching {name} {version} with Maven"))?;
    let count = fs::read_dir(&libs)?.count();
    println!(
        "    {name:<10} {count} jars in {} ({:.1} s)",
        libs.display(),
        started.elapsed().as_secs_f64()
    );
    fs::write(complete, "")?;
    Ok(libs)
}

/// One artifact file (e.g. a server distribution's zip), fetched without its dependencies
/// into the local Maven repository once and answered from there afterwards.
pub fn artifact(
    group: &str,
    artifact: &str,
    version: &str,
    packaging: &str,
) -> anyhow::Result<PathBuf> {
    let file = super::home()?
        .join(".m2/repository")
        .join(group.replace('.', "/"))
        .join(artifact)
        .join(version)
        .join(format!("{artifact}-{version}.{packaging}"));
    if file.exists() {
        return Ok(file);
    }
    let cache = super::home()?.join(".cache/orderpipe/jars");
    fs::create_dir_all(&cache)?;
    let _lock = process::lock(&cache.join(".lock"), "another jar fetch")?;
    if file.exists() {
        return Ok(file);
    }
    process::require(
        "mvn",
        "install Maven 3 (e.g. `apt-get install -y maven`) to fetch the server distributions",
    )?;
    crate::step(&format!(
        "fetching {group}:{artifact}:{version}:{packaging} from Maven Central"
    ));
    process::output(Command::new("mvn").args([
        "-q",
        "-B",
        "-Dstyle.color=never",
        "dependency:get",
        "-Dtransitive=false",
        &format!("-Dartifact={group}:{artifact}:{version}:{packaging}"),
    ]))
    .with_context(|| format!("fetching {artifact} {version} with Maven"))?;
    anyhow::ensure!(
        file.exists(),
        "Maven fetched {artifact} {version} but {} is not there (a custom local repository?)",
        file.display()
    );
    Ok(file)
}
