//! Redis: the order status cache and the plugins' cache keys.
//!
//! Invariant: a cached order view carries the order's version, and a Lua script replaces it
//! only with a strictly newer version, so a slow writer can never make the cache go stale.
//! Views read are also kept in this process ([`NearCache`], `redis.near_cache_max_bytes`),
//! forgotten as soon as Redis pushes that their key changed.
//!
//! Beside the cache, Redis carries what hosts tell each other: the change feed behind the
//! order streams ([`feed`]) and plugin announcements ([`announcements`]).

pub mod announcements;
pub mod feed;
pub mod near_cache;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo};
use uuid::Uuid;

use super::{BackendError, BackendResult, PluginCache, StatusCache};
use crate::config::RedisConfig;
use crate::order::OrderView;
use near_cache::NearCache;

const BACKEND: &str = "redis";

/// A client for `redis.url` and a connection manager over it, made lazily: the host starts
/// (and serves from its store) even while Redis is down; the manager connects on first use,
/// waits `redis.timeout_ms` to connect and for each answer, retries once, and reconnects by
/// itself after an outage. The cache, the change feed and the announcements each hold one.
fn lazy_connection(config: &RedisConfig) -> anyhow::Result<(redis::Client, ConnectionManager)> {
    let client = redis::Client::open(config.url.as_str())?;
    let timeout = Duration::from_millis(config.timeout_ms);
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
        .map_err(|e| anyhow::anyhow!("configuring Redis: {e}"))?;
    Ok((client, connection))
}

/// Sets `view` and `version` on the hash at `KEYS[1]` unless it already holds the same or a
/// newer version. ARGV: version, view JSON, TTL seconds. Returns 1 when written.
const PUT_IF_NEWER: &str = r#"
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'view', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"#;

fn unavailable(err: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, err)
}

/// A reconnecting Redis connection and the key layout.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    ttl_seconds: u64,
    put_if_newer: redis::Script,
    near: Option<Arc<NearCache>>,
}

impl RedisCache {
    pub async fn connect(config: &RedisConfig) -> anyhow::Result<Self> {
        let (_, connection) = lazy_connection(config)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let near = match config.near_cache_max_bytes {
            0 => None,
            max_bytes => {
                // The pushes that keep the near cache true need RESP3.
                let info = config
                    .url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| anyhow::anyhow!("configuring Redis: {e}"))?;
                let redis_settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                let tracking = redis::Client::open(info.set_redis_settings(redis_settings))?;
                Some(NearCache::start(
                    tracking,
                    format!("{}:order:", config.key_prefix),
                    max_bytes,
                    timeout,
                ))
            }
        };
        Ok(Self {
            connection,
            prefix: config.key_prefix.clone(),
            ttl_seconds: config.ttl_seconds.max(1),
            put_if_newer: redis::Script::new(PUT_IF_NEWER),
            near,
        })
    }

    /// The near cache in front of Redis, unless `redis.near_cache_max_bytes` is 0.
    pub fn near_cache(&self) -> Option<&NearCache> {
        self.near.as_deref()
    }

    /// [`RedisCache::near_cache`], shared (for the host's metrics).
    pub fn near_cache_handle(&self) -> Option<Arc<NearCache>> {
        self.near.clone()
    }

    fn order_key(&self, id: Uuid) -> String {
        format!("{}:order:{id}", self.prefix)
    }

    /// The view, unless Redis holds the same or a newer version ([`PUT_IF_NEWER`]).
    async fn put_if_newer_version(&self, view: &OrderView) -> BackendResult<bool> {
        let mut connection = self.connection.clone();
        let text = serde_json::to_string(view).map_err(|e| BackendError::Invalid(e.to_string()))?;
        let written: i64 = self
            .put_if_newer
            .key(self.order_key(view.order_id))
            .arg(view.version)
            .arg(text)
            .arg(self.ttl_seconds)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(written == 1)
    }

    /// Plugin names are identifiers without ':', so one plugin's prefix is never a prefix of
    /// another's keys.
    fn plugin_key(&self, plugin: &str, key: &str) -> String {
        format!("{}:plugin:{plugin}:{key}", self.prefix)
    }
}

#[async_trait]
impl StatusCache for RedisCache {
    async fn get(&self, id: Uuid) -> BackendResult<Option<OrderView>> {
        if let Some(view) = self.near.as_ref().and_then(|near| near.get(id)) {
            return Ok(Some(view));
        }
        let ticket = self.near.as_ref().and_then(|near| near.ticket(id));
        let mut connection = self.connection.clone();
        let text: Option<String> = connection
            .hget(self.order_key(id), "view")
            .await
            .map_err(unavailable)?;
        let Some(text) = text else {
            return Ok(None);
        };
        // A corrupt entry is a miss: the store is the source of truth.
        let Ok(view) = serde_json::from_str::<OrderView>(&text) else {
            return Ok(None);
        };
        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
            near.keep(ticket, view.clone(), text.len());
        }
        Ok(Some(view))
    }

    async fn put(&self, view: &OrderView) -> BackendResult<bool> {
        // Forgotten before (no read in flight keeps the old view) and after (none kept
        // meanwhile survives): this process reads its own writes.
        if let Some(near) = &self.near {
            near.forget(view.order_id);
        }
        let written = self.put_if_newer_version(view).await;
        if let Some(near) = &self.near {
            near.forget(view.order_id);
        }
        written
    }

    async fn ping(&self) -> BackendResult<()> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl PluginCache for RedisCache {
    async fn get(&self, plugin: &str, key: &str) -> BackendResult<Option<String>> {
        let mut connection = self.connection.clone();
        connection
            .get(self.plugin_key(plugin, key))
            .await
            .map_err(unavailable)
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl_seconds: Option<u32>,
    ) -> BackendResult<()> {
        let mut connection = self.connection.clone();
        let key = self.plugin_key(plugin, key);
        match ttl_seconds {
            Some(ttl) => {
                connection
                    .set_ex::<_, _, ()>(key, value, u64::from(ttl))
                    .await
            }
            None => connection.set::<_, _, ()>(key, value).await,
        }
        .map_err(unavailable)
    }

    async fn incr(&self, plugin: &str, key: &str, delta: i64) -> BackendResult<i64> {
        let mut connection = self.connection.clone();
        connection
            .incr(self.plugin_key(plugin, key), delta)
            .await
            .map_err(|e| {
                if e.to_string().contains("not an integer") {
                    BackendError::Invalid(format!("value of {key} is not an integer"))
                } else {
                    unavailable(e)
                }
            })
    }

    async fn delete(&self, plugin: &str, key: &str) -> BackendResult<()> {
        let mut connection = self.connection.clone();
        connection
            .del::<_, ()>(self.plugin_key(plugin, key))
            .await
            .map_err(unavailable)
    }
}
