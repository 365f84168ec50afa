//! Deploying plugin versions: validate an upload, keep it in the shared registry, and keep
//! every host on the active version.
//!
//! A host compiles a version *before* switching to it, so no event waits on compilation;
//! compiled versions are kept by sha256, so a rollback is instant. The switch itself is an
//! atomic pointer swap between events: an event in flight finishes on the version that
//! started it. The same swap applies a plugin's new limits. Hosts hear of a change through
//! an announcement at once, and poll the registry as the fallback.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt as _;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::limits::{EffectiveLimits, LimitPolicy, LimitsChange};
use super::loaded::LoadedPlugin;
use super::runtime::PluginRuntime;
use crate::backend::BackendError;
use crate::backend::announcements::{Announcement, PluginAnnouncements};
use crate::backend::registry::{
    ActiveVersion, LimitOverrides, PluginRegistry, PluginVersion, Stored,
};
use crate::order::now_ms;
use crate::plugin_limits::LIMIT_NAMES;
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
    /// Limits out of the host's bounds, or a change that names no limit.
    #[error("{0}")]
    InvalidLimits(String),
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

/// What made a host look at the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Announcement,
    Polling,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Announcement => "announcement",
            Trigger::Polling => "polling",
        }
    }
}

/// Validates, stores, activates and loads plugin versions, and keeps their limits.
pub struct PluginDeployer {
    runtime: PluginRuntime,
    registry: Arc<dyn PluginRegistry>,
    announcements: Arc<dyn PluginAnnouncements>,
    limits: LimitPolicy,
    max_component_bytes: usize,
    /// Compiled versions by sha256.
    compiled: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// Stored versions that failed to compile here (not retried in the background).
    failed: Mutex<std::collections::HashSet<String>>,
}

impl PluginDeployer {
    /// `limits` decides every plugin's limits; `runtime` must leave room for its ceilings.
    pub fn new(
        runtime: PluginRuntime,
        registry: Arc<dyn PluginRegistry>,
        announcements: Arc<dyn PluginAnnouncements>,
        limits: LimitPolicy,
        max_component_bytes: usize,
    ) -> Self {
        Self {
            runtime,
            registry,
            announcements,
            limits,
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

    /// The host's limit policy (defaults and ceilings).
    pub fn limit_policy(&self) -> &LimitPolicy {
        &self.limits
    }

    /// The limits plugin `name` runs under on every host, and where each came from. Stored
    /// overrides that no longer fit this host's ceilings (the configuration changed since)
    /// are ignored with a warning, rather than failing every event.
    pub async fn effective_limits(&self, name: &str) -> Result<EffectiveLimits, DeployError> {
        let overrides = self.registry.limit_overrides(name).await?;
        let effective = self.limits.effective(name, &overrides);
        if let Err(reason) = self.limits.check(&effective.limits) {
            tracing::warn!(plugin = name, %reason, "ignoring the stored limit overrides");
            return Ok(self.limits.effective(name, &LimitOverrides::default()));
        }
        Ok(effective)
    }

    /// Changes the limit overrides of `name` in the registry and tells every host. Nothing
    /// is stored unless the resulting limits are within the host's bounds. Two concurrent
    /// changes of one plugin: the last write wins.
    pub async fn set_limits(
        &self,
        name: &str,
        change: &LimitsChange,
    ) -> Result<EffectiveLimits, DeployError> {
        if change.is_empty() {
            return Err(DeployError::InvalidLimits(format!(
                "name at least one of {} (null restores the default)",
                LIMIT_NAMES.join(", ")
            )));
        }
        if self.registry.versions(name).await?.is_empty() {
            return Err(DeployError::NotFound(format!(
                "plugin {name} has no versions"
            )));
        }
        let overrides = change
            .apply(&self.registry.limit_overrides(name).await?)
            .map_err(DeployError::InvalidLimits)?;
        let effective = self.limits.effective(name, &overrides);
        self.limits
            .check(&effective.limits)
            .map_err(DeployError::InvalidLimits)?;
        self.registry.set_limit_overrides(name, &overrides).await?;
        tracing::info!(plugin = name, limits = ?effective.limits, "changed plugin limits");
        self.announce(name).await;
        Ok(effective)
    }

    /// Tells every host that `name` changed; a failure only means they notice at their next poll.
    async fn announce(&self, name: &str) {
        if let Err(error) = self.announcements.announce(name).await {
            tracing::warn!(%error, plugin = name, "could not announce the change; hosts will notice at their next poll");
        }
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
        let stored =
            self.registry
                .store_version(&version, bytes)
                .await
                .map_err(|error| match error {
                    // A request the store refuses as such (the Cassandra registry writes components in
                    // 1 MiB chunks, so size alone is not one).
                    BackendError::Invalid(refusal) => DeployError::Invalid(format!(
                        "the registry refused to store it ({} bytes): {refusal}",
                        bytes.len()
                    )),
                    outage => DeployError::Backend(outage),
                })?;
        match stored {
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
        self.announce(name).await;
        Ok(active)
    }

    /// The compiled active version of `name`. When the registry has none yet, the component
    /// `<dir>/<name>.wasm` is uploaded and activated (the first host seeds the registry).
    pub async fn bootstrap(&self, name: &str, dir: &Path) -> anyhow::Result<Arc<ActivePlugin>> {
        let limits = self.effective_limits(name).await?.limits;
        if let Some(active) = self.registry.active(name).await? {
            let plugin = self.load_active(&active).await?;
            tracing::info!(plugin = name, version = %plugin.version, ?limits, "running the registry's active version");
            return Ok(Arc::new(ActivePlugin::new(Arc::new(
                plugin.with_limits(limits),
            ))));
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
        Ok(Arc::new(ActivePlugin::new(Arc::new(
            plugin.with_limits(limits),
        ))))
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

    /// Keeps `slot` on the active version of `name` under its current limits: looks at the
    /// registry whenever a change of `name` is announced, and every `interval` regardless (the
    /// fallback for lost announcements). A new version is compiled first, then swapped in.
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
        let mut announcements = self.announcements.subscribe();
        let mut next_poll = tokio::time::Instant::now() + interval;
        loop {
            let trigger = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next_poll) => Trigger::Polling,
                announcement = announcements.next() => match announcement {
                    Some(Announcement::Changed(plugin)) if plugin == name => {
                        metrics.plugin_announcements.with_label_values(&[&name]).inc();
                        Trigger::Announcement
                    }
                    Some(Announcement::Changed(_)) => continue,
                    Some(Announcement::MayHaveMissed) => Trigger::Announcement,
                    None => {
                        tracing::warn!(plugin = %name, "plugin announcements ended; polling only");
                        announcements = futures::stream::pending().boxed();
                        continue;
                    }
                },
            };
            if trigger == Trigger::Polling {
                next_poll = tokio::time::Instant::now() + interval;
            }
            self.sync(&name, &slot, trigger, &metrics).await;
        }
    }

    /// Switches `slot` to the registry's active version of `name` and its limits, if either
    /// changed.
    async fn sync(&self, name: &str, slot: &ActivePlugin, trigger: Trigger, metrics: &Metrics) {
        let active = match self.registry.active(name).await {
            Ok(Some(active)) => active,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, plugin = %name, "could not read the active plugin version");
                return;
            }
        };
        let limits = match self.effective_limits(name).await {
            Ok(effective) => effective.limits,
            Err(error) => {
                tracing::debug!(%error, plugin = %name, "could not read the plugin's limits");
                return;
            }
        };
        let current = slot.current();
        let same_version = current.version == active.version && current.name == active.name;
        if same_version && *current.limits() == limits {
            if trigger == Trigger::Polling {
                // Nothing to switch: use the quiet moment to compile uploaded versions, so
                // a later activation switches without waiting for a compiler.
                self.precompile_one(name).await;
            }
            return;
        }
        let compiled = if same_version {
            current.clone()
        } else {
            match self.load_active(&active).await {
                Ok(plugin) => plugin,
                Err(error) => {
                    tracing::error!(%error, plugin = %name, version = %active.version, "cannot switch to the active version");
                    return;
                }
            }
        };
        let plugin = Arc::new(compiled.with_limits(limits.clone()));
        if same_version {
            tracing::info!(
                plugin = %name,
                version = %plugin.version,
                ?limits,
                trigger = trigger.as_str(),
                "switched plugin limits"
            );
        } else {
            tracing::info!(
                plugin = %name,
                from = %current.version,
                to = %plugin.version,
                ?limits,
                trigger = trigger.as_str(),
                "switched plugin version"
            );
        }
        let version = plugin.version.clone();
        slot.switch_to(plugin);
        metrics
            .plugin_switches
            .with_label_values(&[name, trigger.as_str()])
            .inc();
        if !same_version {
            metrics
                .plugin_active
                .with_label_values(&[name, &current.version])
                .set(0);
            metrics
                .plugin_active
                .with_label_values(&[name, &version])
                .set(1);
        }
    }
}
