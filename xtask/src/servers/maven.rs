//! Fetches a set of Maven artifacts and their dependencies into a folder of jars, once per
//! version: a tiny pom and `mvn dependency:copy-dependencies`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::process;

/// The jars folder for `name-version`, fetched if it is not complete yet.
pub fn jars(
    name: &str,
    version: &str,
    artifacts: &[(&str, &str, &str)],
) -> anyhow::Result<PathBuf> {
    let root = super::home()
        .join(".cache/orderpipe/jars")
        .join(format!("{name}-{version}"));
    let libs = root.join("libs");
    let complete = root.join(".complete");
    if complete.exists() {
        return Ok(libs);
    }
    fs::create_dir_all(&root)?;
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
    process::run(Command::new("mvn").current_dir(&root).args([
        "-q",
        "-B",
        "dependency:copy-dependencies",
        "-DoutputDirectory=libs",
    ]))?;
    fs::write(complete, "")?;
    Ok(libs)
}
