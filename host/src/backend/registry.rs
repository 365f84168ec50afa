//! The plugin registry role: uploaded component versions, the active version of each plugin
//! and its limit overrides, shared by every host so they all run the same logic under the
//! same limits. Each registry is confined to one scope (`plugins.registry_scope`).

use async_trait::async_trait;
use serde::Serialize;

use super::BackendResult;
pub use crate::plugin_limits::LimitOverrides;

/// One uploaded version of a plugin (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub uploaded_at_ms: i64,
}

/// Which version of a plugin runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveVersion {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub activated_at_ms: i64,
}

/// What happened to an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A new version was stored.
    Created,
    /// The same bytes were uploaded before under this version: nothing changed.
    AlreadyPresent,
    /// This version exists with other bytes (its sha256 is given): nothing changed.
    Conflict(String),
}

#[async_trait]
pub trait PluginRegistry: Send + Sync {
    /// Stores a version unless it exists (an upload never replaces a version's bytes).
    async fn store_version(
        &self,
        version: &PluginVersion,
        component: &[u8],
    ) -> BackendResult<Stored>;
    async fn versions(&self, name: &str) -> BackendResult<Vec<PluginVersion>>;
    async fn component(&self, name: &str, version: &str) -> BackendResult<Option<Vec<u8>>>;
    /// Every plugin name that has versions, with its active version if any.
    async fn plugins(&self) -> BackendResult<Vec<(String, Option<ActiveVersion>)>>;
    async fn active(&self, name: &str) -> BackendResult<Option<ActiveVersion>>;
    async fn set_active(&self, active: &ActiveVersion) -> BackendResult<()>;
    /// The limit overrides stored for `name` (all `None` when there are none).
    async fn limit_overrides(&self, name: &str) -> BackendResult<LimitOverrides>;
    /// Replaces the limit overrides of `name` (all `None` removes them).
    async fn set_limit_overrides(
        &self,
        name: &str,
        overrides: &LimitOverrides,
    ) -> BackendResult<()>;
}
