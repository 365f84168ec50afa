//! Deploying plugin versions: validate an upload, keep it in the shared registry, and keep
//! every host on the active version.
//!
//! A host compiles a version *before* switching to it, so no event waits on compilation;
//! compiled versions are kept by sha256, so a rollback is instant. The switch itself is an
//! atomic pointer swap between events: an event in flight finishes on the version that
//! started it. Hosts notice a new active version by polling the registry.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::runtime::{LoadedPlugin, PluginRuntime};
use crate::backend::BackendError;
use crate::backend::registry::{ActiveVersion, PluginRegistry, PluginVersion, Stored};
use crate::order::now_ms;
use crate::telemetry::Metrics;

/// The version of one plugin that decides events now.
pub struct ActivePlugin {
    current: ArcSwap<LoadedPlugin>,
}

impl ActivePlugin {
    pub fn new(plugin: Arc<LoadedPlugin>) -> Self {
        Self {
            current: ArcSwap::new(plugin),
        }
    }

    /// The version to use for one event (hold on to it for the whole event).
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.load_full()
    }

    fn switch_to(&self, plugin: Arc<LoadedPlugin>) {
        let previous = self.current.swap(plugin);
        // The version kept for a rollback keeps its compiled code, not idle instances.
        previous.discard_warm_instances();
    }
}

/// Why an upload or activation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The component is unusable: not a component, wrong world, bad state machine, too big.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The version exists with other bytes.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What an upload produced.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub version: PluginVersion,
    /// False when the very same bytes were already stored under this version.
    pub created: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Validates, stores, activates and loads plugin versions.
pub struct PluginDeployer {
    runtime: PluginRuntime,
    registry: Arc<dyn PluginRegistry>,
    max_component_bytes: usize,
    /// Compiled versions by sha256.
    compiled: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// Stored versions that failed to compile here (not retried in the background).
    failed: Mutex<std::collections::HashSet<String>>,
}

impl PluginDeployer {
    pub fn new(
        runtime: PluginRuntime,
        registry: Arc<dyn PluginRegistry>,
        max_component_bytes: usize,
    ) -> Self {
        Self {
            runtime,
            registry,
            max_component_bytes,
            compiled: Mutex::new(HashMap::new()),
            failed: Mutex::new(Default::default()),
        }
    }

    pub fn registry(&self) -> &Arc<dyn PluginRegistry> {
        &self.registry
    }

    pub fn max_component_bytes(&self) -> usize {
        self.max_component_bytes
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Compiles and validates a component (cached by sha256).
    async fn compile(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, DeployError> {
        if bytes.len() > self.max_component_bytes {
            return Err(DeployError::Invalid(format!(
                "the component is {} bytes, over the limit of {} bytes",
                bytes.len(),
                self.max_component_bytes
            )));
        }
        let sha = sha256_hex(bytes);
        if let Some(plugin) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sha)
        {
            return Ok(plugin.clone());
        }
        let plugin = self
            .runtime
            .load_bytes(bytes)
            .await
            .map_err(|e| DeployError::Invalid(format!("{e:#}")))?;
        let plugin = Arc::new(plugin);
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha, plugin.clone());
        Ok(plugin)
    }

    /// Validates an upload for plugin `name` and stores it; its version is the one the
    /// component declares. Nothing is stored unless the component is valid.
    pub async fn upload(&self, name: &str, bytes: &[u8]) -> Result<Uploaded, DeployError> {
        let plugin = self.compile(bytes).await?;
        if plugin.name != name {
            return Err(DeployError::Invalid(format!(
                "the component says it is plugin {:?}, not {name:?}",
                plugin.name
            )));
        }
        let version = PluginVersion {
            name: name.to_owned(),
            version: plugin.version.clone(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            uploaded_at_ms: now_ms(),
        };
        match self.registry.store_version(&version, bytes).await? {
            Stored::Created => Ok(Uploaded {
                version,
                created: true,
            }),
            Stored::AlreadyPresent => Ok(Uploaded {
                version,
                created: false,
            }),
            Stored::Conflict(existing) => Err(DeployError::Conflict(format!(
                "{name} {} already exists with other bytes (sha256 {existing}); bump the version",
                version.version
            ))),
        }
    }

    /// Makes `version` the active version of `name` on every host. It must be stored and
    /// must compile here first.
    pub async fn activate(&self, name: &str, version: &str) -> Result<ActiveVersion, DeployError> {
        let bytes = self
            .registry
            .component(name, version)
            .await?
            .ok_or_else(|| {
                DeployError::NotFound(format!("plugin {name} has no version {version:?}"))
            })?;
        self.compile(&bytes).await?;
        let active = ActiveVersion {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: sha256_hex(&bytes),
            activated_at_ms: now_ms(),
        };
        self.registry.set_active(&active).await?;
        tracing::info!(plugin = name, version, "activated plugin version");
        Ok(active)
    }

    /// The compiled active version of `name`. When the registry has none yet, the component
    /// `<dir>/<name>.wasm` is uploaded and activated (the first host seeds the registry).
    pub async fn bootstrap(&self, name: &str, dir: &Path) -> anyhow::Result<Arc<ActivePlugin>> {
        if let Some(active) = self.registry.active(name).await? {
            let plugin = self.load_active(&active).await?;
            tracing::info!(plugin = name, version = %plugin.version, "running the registry's active version");
            return Ok(Arc::new(ActivePlugin::new(plugin)));
        }
        // `<name>.wasm` as `cargo xtask plugins` names it, or `<name>_plugin.wasm` as cargo
        // builds it in a plugin project (so a project's target folder can serve as the dir).
        let candidates = [
            dir.join(format!("{name}.wasm")),
            dir.join(format!("{}_plugin.wasm", name.replace('-', "_"))),
        ];
        let path = candidates
            .iter()
            .find(|p| p.exists())
            .unwrap_or(&candidates[0])
            .clone();
        let bytes = tokio::fs::read(&path).await.map_err(|e| {
            anyhow::anyhow!(
                "the registry has no active version of plugin {name:?} and {} cannot be read ({e}); \
                 build the plugin or point plugins.dir at its component",
                path.display()
            )
        })?;
        let uploaded = self
            .upload(name, &bytes)
            .await
            .map_err(|e| anyhow::anyhow!("loading plugin {}: {e}", path.display()))?;
        // Another host may have seeded the registry at the same moment; the last activation
        // wins and every host converges on it through `watch`.
        self.activate(name, &uploaded.version.version)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(plugin = name, version = %uploaded.version.version, path = %path.display(), "seeded the plugin registry");
        let plugin = self
            .compile(&bytes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Arc::new(ActivePlugin::new(plugin)))
    }

    async fn load_active(&self, active: &ActiveVersion) -> Result<Arc<LoadedPlugin>, DeployError> {
        let bytes = self
            .registry
            .component(&active.name, &active.version)
            .await?
            .ok_or_else(|| {
                DeployError::NotFound(format!(
                    "active version {} of {} is missing",
                    active.version, active.name
                ))
            })?;
        self.compile(&bytes).await
    }

    /// Compiles one stored version of `name` that this host has not compiled yet.
    async fn precompile_one(&self, name: &str) {
        let Ok(versions) = self.registry.versions(name).await else {
            return;
        };
        let missing = {
            let compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            versions
                .into_iter()
                .find(|v| !compiled.contains_key(&v.sha256) && !failed.contains(&v.sha256))
        };
        let Some(version) = missing else { return };
        let Ok(Some(bytes)) = self.registry.component(name, &version.version).await else {
            return;
        };
        match self.compile(&bytes).await {
            Ok(_) => {
                tracing::info!(plugin = name, version = %version.version, "precompiled uploaded version")
            }
            Err(error) => {
                tracing::warn!(%error, plugin = name, version = %version.version, "stored version does not compile here");
                // Remember the failure so it is not retried on every tick.
                self.failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(version.sha256);
            }
        }
    }

    /// Polls the registry every `interval` and switches `slot` to the active version of
    /// `name` whenever it changes (compiled first, then swapped).
    pub async fn watch(
        self: Arc<Self>,
        name: String,
        slot: Arc<ActivePlugin>,
        interval: Duration,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        metrics
            .plugin_active
            .with_label_values(&[&name, &slot.current().version])
            .set(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let active = match self.registry.active(&name).await {
                Ok(Some(active)) => active,
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(%error, plugin = %name, "could not read the active plugin version");
                    continue;
                }
            };
            let current = slot.current();
            if current.version == active.version && current.name == active.name {
                // Nothing to switch: use the quiet moment to compile uploaded versions, so
                // a later activation switches without waiting for a compiler.
                self.precompile_one(&name).await;
                continue;
            }
            match self.load_active(&active).await {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %name,
                        from = %current.version,
                        to = %plugin.version,
                        "switched plugin version"
                    );
                    let version = plugin.version.clone();
                    slot.switch_to(plugin);
                    metrics
                        .plugin_active
                        .with_label_values(&[&name, &current.version])
                        .set(0);
                    metrics
                        .plugin_active
                        .with_label_values(&[&name, &version])
                        .set(1);
                }
                Err(error) => {
                    tracing::error!(%error, plugin = %name, version = %active.version, "cannot switch to the active version")
                }
            }
        }
    }
}
