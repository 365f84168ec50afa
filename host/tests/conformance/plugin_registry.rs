//! The plugin registry role: [`PluginRegistry`] (component versions, written once, the
//! active version of each plugin and its limit overrides, all confined to a scope), against
//! the embedded store and Cassandra.

use std::sync::Arc;

use orderpipe::backend::cassandra::CassandraStore;
use orderpipe::backend::cassandra::registry::CassandraRegistry;
use orderpipe::backend::embedded::{EmbeddedRegistry, EmbeddedStore};
use orderpipe::backend::registry::{
    ActiveVersion, LimitOverrides, PluginRegistry, PluginVersion, Stored,
};
use uuid::Uuid;

use crate::order_store::CONNECT;
use crate::{bounded, support};

/// One backend's registry, with a scope of its own, and a registry of another scope in the
/// same store.
pub struct Registries {
    pub registry: Arc<dyn PluginRegistry>,
    pub other_scope: Arc<dyn PluginRegistry>,
    /// Kept for as long as the embedded store uses it.
    _dir: Option<tempfile::TempDir>,
}

impl Registries {
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EmbeddedStore::open(dir.path()).expect("open the embedded store");
        let scope = format!("test-{}", Uuid::new_v4().simple());
        Registries {
            registry: Arc::new(EmbeddedRegistry::open(&store, &scope).expect("open the registry")),
            other_scope: Arc::new(
                EmbeddedRegistry::open(&store, &format!("{scope}-other"))
                    .expect("open the other registry"),
            ),
            _dir: Some(dir),
        }
    }

    pub async fn cassandra() -> Self {
        let config = support::config("order");
        let store = {
            let _one_at_a_time = CONNECT.lock().await;
            bounded(
                "connecting to Cassandra",
                CassandraStore::connect(&config.cassandra),
            )
            .await
            .expect("Cassandra answers (cargo xtask servers up)")
        };
        let scope = &config.plugins.registry_scope;
        let registry = |scope: String| {
            let session = store.session();
            let keyspace = config.cassandra.keyspace.clone();
            async move {
                bounded(
                    "preparing the registry",
                    CassandraRegistry::new(session, &keyspace, &scope),
                )
                .await
                .expect("registry statements")
            }
        };
        Registries {
            registry: Arc::new(registry(scope.clone()).await),
            other_scope: Arc::new(registry(format!("{scope}-other")).await),
            _dir: None,
        }
    }
}

fn plugin_name() -> String {
    format!("plugin_{}", Uuid::new_v4().simple())
}

fn version(name: &str, number: &str, sha256: &str, uploaded_at_ms: i64) -> PluginVersion {
    PluginVersion {
        name: name.to_owned(),
        version: number.to_owned(),
        sha256: sha256.to_owned(),
        size: 4,
        uploaded_at_ms,
    }
}

/// `version` as the deployer describes `bytes`: its size is theirs.
fn sized(version: &PluginVersion, bytes: &[u8]) -> PluginVersion {
    PluginVersion {
        size: bytes.len() as u64,
        ..version.clone()
    }
}

async fn store(registry: &dyn PluginRegistry, version: &PluginVersion, bytes: &[u8]) -> Stored {
    let version = sized(version, bytes);
    bounded("storing a version", registry.store_version(&version, bytes))
        .await
        .expect("store_version")
}

conformance!(Registries { embedded, cassandra }:
    a_version_is_stored_once_and_never_replaced,
    a_component_larger_than_one_cassandra_value_is_stored_whole,
    versions_are_listed_oldest_upload_first,
    the_active_version_is_set_and_listed,
    limit_overrides_are_stored_replaced_and_removed,
    a_scope_never_sees_another_scopes_plugins,
);

async fn a_version_is_stored_once_and_never_replaced(registries: &Registries) {
    let registry = registries.registry.as_ref();
    let name = plugin_name();
    let original = version(&name, "0.1.0", "sha-a", 1_000);
    assert_eq!(store(registry, &original, b"\0asm").await, Stored::Created);
    assert_eq!(
        store(registry, &original, b"\0asm").await,
        Stored::AlreadyPresent
    );
    let other_bytes = version(&name, "0.1.0", "sha-b", 2_000);
    assert_eq!(
        store(registry, &other_bytes, b"evil").await,
        Stored::Conflict("sha-a".into())
    );
    let component = bounded("reading a component", registry.component(&name, "0.1.0"))
        .await
        .expect("component");
    assert_eq!(component.as_deref(), Some(&b"\0asm"[..]));
    let missing = bounded("reading a component", registry.component(&name, "9.9.9"))
        .await
        .expect("component");
    assert_eq!(missing, None);
}

/// Cassandra refuses one value over 16 MiB; a Python component is about 18 MiB.
async fn a_component_larger_than_one_cassandra_value_is_stored_whole(registries: &Registries) {
    let registry = registries.registry.as_ref();
    let name = plugin_name();
    let bytes: Vec<u8> = (0..20 * 1024 * 1024 + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    let big = version(&name, "0.1.0", "sha-big", 1_000);
    assert_eq!(store(registry, &big, &bytes).await, Stored::Created);
    let read = bounded("reading a component", registry.component(&name, "0.1.0"))
        .await
        .expect("component")
        .expect("stored");
    assert_eq!(read.len(), bytes.len());
    assert!(
        read == bytes,
        "the bytes read back differ from those stored"
    );
    let listed = bounded("listing versions", registry.versions(&name))
        .await
        .expect("versions");
    assert_eq!(listed[0].size, bytes.len() as u64);
}

async fn versions_are_listed_oldest_upload_first(registries: &Registries) {
    let registry = registries.registry.as_ref();
    let (name, other) = (plugin_name(), plugin_name());
    let newer = version(&name, "0.2.0", "sha-2", 2_000);
    let older = version(&name, "0.1.0", "sha-1", 1_000);
    store(registry, &newer, b"two").await;
    store(registry, &older, b"one").await;
    store(registry, &version(&other, "0.1.0", "sha-x", 500), b"x").await;
    let listed = bounded("listing versions", registry.versions(&name))
        .await
        .expect("versions");
    assert_eq!(listed, vec![sized(&older, b"one"), sized(&newer, b"two")]);
}

async fn the_active_version_is_set_and_listed(registries: &Registries) {
    let registry = registries.registry.as_ref();
    let (name, idle) = (plugin_name(), plugin_name());
    store(registry, &version(&name, "0.1.0", "sha-1", 1_000), b"one").await;
    store(registry, &version(&idle, "0.1.0", "sha-i", 1_000), b"idle").await;
    let active = |number: &str, sha256: &str, at: i64| ActiveVersion {
        name: name.clone(),
        version: number.to_owned(),
        sha256: sha256.to_owned(),
        activated_at_ms: at,
    };
    assert_eq!(
        bounded("reading the active version", registry.active(&name))
            .await
            .expect("active"),
        None
    );
    for (number, sha256, at) in [("0.1.0", "sha-1", 3_000), ("0.2.0", "sha-2", 4_000)] {
        bounded(
            "activating",
            registry.set_active(&active(number, sha256, at)),
        )
        .await
        .expect("set_active");
        assert_eq!(
            bounded("reading the active version", registry.active(&name))
                .await
                .expect("active"),
            Some(active(number, sha256, at))
        );
    }
    let mut plugins = bounded("listing plugins", registry.plugins())
        .await
        .expect("plugins");
    plugins.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (name.clone(), Some(active("0.2.0", "sha-2", 4_000))),
        (idle.clone(), None),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(plugins, expected);
}

async fn read_overrides(registry: &dyn PluginRegistry, name: &str) -> LimitOverrides {
    bounded("reading limit overrides", registry.limit_overrides(name))
        .await
        .expect("limit_overrides")
}

async fn write_overrides(registry: &dyn PluginRegistry, name: &str, overrides: &LimitOverrides) {
    bounded(
        "writing limit overrides",
        registry.set_limit_overrides(name, overrides),
    )
    .await
    .expect("set_limit_overrides")
}

async fn limit_overrides_are_stored_replaced_and_removed(registries: &Registries) {
    let registry = registries.registry.as_ref();
    let name = plugin_name();
    assert_eq!(
        read_overrides(registry, &name).await,
        LimitOverrides::default()
    );
    let some = LimitOverrides {
        fuel: Some(10_000_000_000),
        memory_mib: Some(128),
        timeout_ms: None,
        host_calls: Some(0),
        decision_bytes: Some(1 << 20),
        log_lines: Some(7),
        instance_reuse: Some(1_000),
        ..LimitOverrides::default()
    };
    write_overrides(registry, &name, &some).await;
    assert_eq!(read_overrides(registry, &name).await, some);
    let replaced = LimitOverrides {
        timeout_ms: Some(250),
        ..LimitOverrides::default()
    };
    write_overrides(registry, &name, &replaced).await;
    assert_eq!(
        read_overrides(registry, &name).await,
        replaced,
        "a write replaces every field"
    );
    write_overrides(registry, &name, &LimitOverrides::default()).await;
    assert_eq!(
        read_overrides(registry, &name).await,
        LimitOverrides::default()
    );
}

async fn a_scope_never_sees_another_scopes_plugins(registries: &Registries) {
    let (mine, theirs) = (
        registries.registry.as_ref(),
        registries.other_scope.as_ref(),
    );
    let name = plugin_name();
    store(mine, &version(&name, "0.1.0", "sha-mine", 1_000), b"mine").await;
    // The same name and version in the other scope is another plugin: no conflict.
    assert_eq!(
        store(
            theirs,
            &version(&name, "0.1.0", "sha-theirs", 2_000),
            b"theirs"
        )
        .await,
        Stored::Created
    );
    let activation = ActiveVersion {
        name: name.clone(),
        version: "0.1.0".into(),
        sha256: "sha-mine".into(),
        activated_at_ms: 3_000,
    };
    bounded("activating", mine.set_active(&activation))
        .await
        .expect("set_active");
    let overrides = LimitOverrides {
        fuel: Some(1_000),
        ..LimitOverrides::default()
    };
    write_overrides(mine, &name, &overrides).await;

    let component = bounded("reading a component", theirs.component(&name, "0.1.0"))
        .await
        .expect("component");
    assert_eq!(component.as_deref(), Some(&b"theirs"[..]));
    let versions = bounded("listing versions", theirs.versions(&name))
        .await
        .expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].sha256, "sha-theirs");
    assert_eq!(
        bounded("reading the active version", theirs.active(&name))
            .await
            .expect("active"),
        None
    );
    assert_eq!(
        read_overrides(theirs, &name).await,
        LimitOverrides::default()
    );
    let listed = bounded("listing plugins", theirs.plugins())
        .await
        .expect("plugins");
    assert_eq!(listed, vec![(name.clone(), None)]);
    let listed = bounded("listing plugins", mine.plugins())
        .await
        .expect("plugins");
    assert_eq!(listed, vec![(name.clone(), Some(activation))]);
}
