//! `plugin deploy|list|activate|rollback|limits`: the admin API (`/api/plugins`) from the command
//! line, for operators and for the last step of a plugin author's loop.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::project;
use crate::plugin::{PluginLimits, PluginRuntime};

/// Where the admin API is and the token it wants.
pub struct Target {
    pub url: String,
    pub token: String,
}

impl Target {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}

/// How long an upload may take, the host's compile included.
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?)
}

/// Sends a request and returns the JSON answer, or fails with the API's own error text.
async fn call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: could not reach the admin API"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = answer["error"].as_str().unwrap_or("no error text");
        bail!("{what}: {status}: {error}");
    }
    Ok(answer)
}

/// Uploads the component (from --component, or the one `plugin build` made in `dir`) and,
/// unless `activate` is false, makes it the active version on every host.
pub async fn deploy(
    target: &Target,
    dir: &Path,
    component: Option<PathBuf>,
    activate: bool,
) -> anyhow::Result<()> {
    let path = match component {
        Some(path) => path,
        None => project::component(dir)?,
    };
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `orderpipe plugin build`)", path.display()))?;
    // Validate here first: a clear local error beats a round trip, and we learn the name.
    let runtime = PluginRuntime::new(PluginLimits::default())?;
    let plugin = runtime
        .load_bytes(&bytes)
        .await
        .with_context(|| format!("{} is not a valid plugin", path.display()))?;
    let http = client()?;
    let uploaded = call(
        http.post(target.endpoint(&format!("/api/plugins/{}/versions", plugin.name)))
            .bearer_auth(&target.token)
            .header("content-type", "application/wasm")
            // The host compiles the component before it answers: a TypeScript or Python one
            // takes a minute or more on a busy machine with a dev build.
            .timeout(UPLOAD_TIMEOUT)
            .body(bytes),
        "upload",
    )
    .await?;
    println!(
        "uploaded {} {} (sha256 {})",
        plugin.name,
        uploaded["version"].as_str().unwrap_or("?"),
        uploaded["sha256"].as_str().unwrap_or("?")
    );
    if activate {
        activate_version(target, &plugin.name, &plugin.version).await?;
    }
    Ok(())
}

pub async fn activate_version(target: &Target, name: &str, version: &str) -> anyhow::Result<()> {
    call(
        client()?
            .put(target.endpoint(&format!("/api/plugins/{name}/active")))
            .bearer_auth(&target.token)
            .json(&json!({ "version": version })),
        "activate",
    )
    .await?;
    println!("activated {name} {version}: every host switches within a second or two");
    Ok(())
}

/// Activates the version uploaded just before the active one.
pub async fn rollback(target: &Target, name: &str) -> anyhow::Result<()> {
    let plugin = call(
        client()?
            .get(target.endpoint(&format!("/api/plugins/{name}")))
            .bearer_auth(&target.token),
        "list versions",
    )
    .await?;
    let active = plugin["active"]["version"]
        .as_str()
        .context("the plugin has no active version")?;
    let versions: Vec<&str> = plugin["versions"]
        .as_array()
        .map(|all| all.iter().filter_map(|v| v["version"].as_str()).collect())
        .unwrap_or_default();
    let position = versions
        .iter()
        .position(|v| *v == active)
        .context("the active version is not listed")?;
    let Some(previous) = position.checked_sub(1).map(|i| versions[i]) else {
        bail!("{name} {active} is the oldest version: there is nothing to roll back to");
    };
    println!("rolling {name} back from {active} to {previous}");
    activate_version(target, name, previous).await
}

pub async fn list(target: &Target) -> anyhow::Result<()> {
    let answer = call(
        client()?
            .get(target.endpoint("/api/plugins"))
            .bearer_auth(&target.token),
        "list",
    )
    .await?;
    for plugin in answer["plugins"].as_array().into_iter().flatten() {
        let name = plugin["name"].as_str().unwrap_or("?");
        let detail = call(
            client()?
                .get(target.endpoint(&format!("/api/plugins/{name}")))
                .bearer_auth(&target.token),
            "list versions",
        )
        .await?;
        let active = detail["active"]["version"].as_str().unwrap_or("-");
        println!("{name} (active {active})");
        println!("    limits: {}", describe_limits(&detail));
        for version in detail["versions"].as_array().into_iter().flatten() {
            let v = version["version"].as_str().unwrap_or("?");
            let marker = if v == active { "*" } else { " " };
            println!(
                "  {marker} {v:<12} {:>9} bytes  sha256 {}",
                version["size"].as_u64().unwrap_or(0),
                version["sha256"].as_str().unwrap_or("?")
            );
        }
    }
    println!(
        "default limits per invocation: {}",
        answer["default_limits"]
    );
    Ok(())
}

pub use crate::plugin_limits::LIMIT_NAMES;

/// `fuel 50000000 (default), memory_mib 32 (override), …` from a plugin's admin answer.
fn describe_limits(plugin: &Value) -> String {
    LIMIT_NAMES
        .iter()
        .map(|limit| {
            format!(
                "{limit} {} ({})",
                plugin["limits"][limit],
                plugin["limit_sources"][limit].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets limit overrides of `name` on every host (`change` is the partial JSON the admin
/// API takes; `null` restores a default), or only shows its limits when `change` is empty.
pub async fn limits(
    target: &Target,
    name: &str,
    change: serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let answer = if change.is_empty() {
        call(
            client()?
                .get(target.endpoint(&format!("/api/plugins/{name}")))
                .bearer_auth(&target.token),
            "show limits",
        )
        .await?
    } else {
        let answer = call(
            client()?
                .put(target.endpoint(&format!("/api/plugins/{name}/limits")))
                .bearer_auth(&target.token)
                .json(&Value::Object(change)),
            "set limits",
        )
        .await?;
        println!("changed the limits of {name}: every host applies them within a second or two");
        answer
    };
    println!("{name} limits: {}", describe_limits(&answer));
    Ok(())
}
