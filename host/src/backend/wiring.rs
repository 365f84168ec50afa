//! Builds the backend for each role from the configuration. The only place that knows which
//! implementations exist; everything else receives trait objects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::announcements::PluginAnnouncements;
use super::cassandra::CassandraStore;
use super::cassandra::registry::CassandraRegistry;
use super::embedded::{
    EmbeddedCache, EmbeddedEventLog, EmbeddedRegistry, EmbeddedStore, InProcessAnnouncements,
    InProcessFeed,
};
use super::feed::ChangeFeed;
use super::kafka::{self, KafkaEventLog, KafkaEventStream};
use super::redis::RedisCache;
use super::redis::announcements::RedisAnnouncements;
use super::redis::feed::RedisChangeFeed;
use super::redis::near_cache::NearCache;
use super::registry::PluginRegistry;
use super::{EventLog, EventStream, OrderStore, PluginCache, PluginStore, StatusCache};
use crate::config::{Config, EventLogKind, OrderStoreKind, StatusCacheKind};

/// One implementation per role, as configured.
pub struct Backends {
    /// The event log of the first pipeline's topic (what health checks ping).
    pub events: Arc<dyn EventLog>,
    pub store: Arc<dyn OrderStore>,
    pub plugin_store: Arc<dyn PluginStore>,
    pub registry: Arc<dyn PluginRegistry>,
    pub cache: Arc<dyn StatusCache>,
    pub plugin_cache: Arc<dyn PluginCache>,
    /// Tells the hosts of this registry scope that a plugin changed: over Redis pub/sub when
    /// Redis is the status cache, else inside this process only (other hosts then poll).
    pub announcements: Arc<dyn PluginAnnouncements>,
    /// Tells every host which order changed once the worker recorded it: over Redis pub/sub
    /// when Redis is the status cache, else inside this process (its worker and its streams).
    pub feed: Arc<dyn ChangeFeed>,
    /// The views kept in this process in front of Redis (`redis.near_cache_max_bytes`), when
    /// Redis is the status cache.
    pub near_cache: Option<Arc<NearCache>>,
    /// Each pipeline topic's producing side and how to consume it.
    topics: HashMap<String, (Arc<dyn EventLog>, Subscribe)>,
}

enum Subscribe {
    Kafka(crate::config::KafkaConfig),
    Embedded(EmbeddedEventLog, String),
}

impl Backends {
    /// Opens or connects every role (creating topics and applying the schema where needed).
    pub async fn connect(config: &Config) -> anyhow::Result<Backends> {
        let choice = &config.backends;
        if choice.event_log == EventLogKind::Embedded && config.mode != crate::config::Mode::All {
            anyhow::bail!(
                "mode {:?} needs a shared event log: the embedded one belongs to a single process \
                 (set backends.event_log = \"kafka\", or run with mode = \"all\")",
                config.mode
            );
        }
        let topic_names: Vec<String> = config.pipelines().into_iter().map(|p| p.topic).collect();
        let mut topics: HashMap<String, (Arc<dyn EventLog>, Subscribe)> = HashMap::new();
        match choice.event_log {
            EventLogKind::Kafka => {
                kafka::ensure_topics(&config.kafka, &topic_names)
                    .await
                    .context("preparing Kafka topics")?;
                let producer = KafkaEventLog::new(&config.kafka, &config.kafka.topic)?;
                for topic in &topic_names {
                    topics.insert(
                        topic.clone(),
                        (
                            Arc::new(producer.for_topic(topic)),
                            Subscribe::Kafka(config.kafka.clone()),
                        ),
                    );
                }
            }
            EventLogKind::Embedded => {
                for topic in &topic_names {
                    let log =
                        EmbeddedEventLog::open_topic(&choice.data_dir, topic, choice.partitions)?;
                    topics.insert(
                        topic.clone(),
                        (
                            Arc::new(log.clone()),
                            Subscribe::Embedded(log, choice.consumer_group.clone()),
                        ),
                    );
                }
            }
        }
        let events = topic_names
            .first()
            .and_then(|topic| topics.get(topic))
            .map(|(log, _)| log.clone())
            .context("no pipeline is configured")?;
        let (store, plugin_store, registry): (
            Arc<dyn OrderStore>,
            Arc<dyn PluginStore>,
            Arc<dyn PluginRegistry>,
        ) = match choice.order_store {
            OrderStoreKind::Cassandra => {
                let store = Arc::new(CassandraStore::connect(&config.cassandra).await?);
                let registry = CassandraRegistry::new(
                    store.session(),
                    &config.cassandra.keyspace,
                    &config.plugins.registry_scope,
                )
                .await?;
                (store.clone(), store, Arc::new(registry))
            }
            OrderStoreKind::Embedded => {
                let store = Arc::new(EmbeddedStore::open(&choice.data_dir)?);
                let registry = Arc::new(EmbeddedRegistry::open(
                    &store,
                    &config.plugins.registry_scope,
                )?);
                (store.clone(), store, registry)
            }
        };
        type CacheRoles = (
            Arc<dyn StatusCache>,
            Arc<dyn PluginCache>,
            Arc<dyn PluginAnnouncements>,
            Arc<dyn ChangeFeed>,
        );
        let pipeline_names: Vec<String> = config.pipelines().into_iter().map(|p| p.name).collect();
        let mut near_cache = None;
        let (cache, plugin_cache, announcements, feed): CacheRoles = match choice.status_cache {
            StatusCacheKind::Redis => {
                let cache = Arc::new(RedisCache::connect(&config.redis).await?);
                near_cache = cache.near_cache_handle();
                let announcements =
                    RedisAnnouncements::connect(&config.redis, &config.plugins.registry_scope)?;
                let feed =
                    RedisChangeFeed::connect(&config.redis, &pipeline_names, config.stream.buffer)?;
                (
                    cache.clone(),
                    cache,
                    Arc::new(announcements),
                    Arc::new(feed),
                )
            }
            StatusCacheKind::Embedded => {
                let cache = Arc::new(EmbeddedCache::new(
                    choice.cache_max_bytes,
                    Duration::from_secs(choice.cache_ttl_seconds.max(1)),
                ));
                (
                    cache.clone(),
                    cache,
                    Arc::new(InProcessAnnouncements::new()),
                    Arc::new(InProcessFeed::new(config.stream.buffer)),
                )
            }
        };
        tracing::info!(
            event_log = ?choice.event_log,
            order_store = ?choice.order_store,
            status_cache = ?choice.status_cache,
            data_dir = %choice.data_dir.display(),
            "backends ready"
        );
        Ok(Backends {
            events,
            store,
            plugin_store,
            registry,
            cache,
            plugin_cache,
            announcements,
            feed,
            near_cache,
            topics,
        })
    }

    /// The producing side of a configured pipeline `topic`.
    pub fn events_for(&self, topic: &str) -> anyhow::Result<Arc<dyn EventLog>> {
        self.topics
            .get(topic)
            .map(|(log, _)| log.clone())
            .with_context(|| format!("topic {topic:?} belongs to no configured pipeline"))
    }

    /// A consumer-group member of a configured pipeline `topic`, for that pipeline's worker.
    pub fn subscribe(&self, topic: &str) -> anyhow::Result<Arc<dyn EventStream>> {
        let (_, subscribe) = self
            .topics
            .get(topic)
            .with_context(|| format!("topic {topic:?} belongs to no configured pipeline"))?;
        Ok(match subscribe {
            Subscribe::Kafka(config) => Arc::new(KafkaEventStream::subscribe(config, topic)?),
            Subscribe::Embedded(log, group) => Arc::new(log.subscribe(group)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_backends_take_their_settings_from_backends_not_the_servers_sections() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.backends.data_dir = dir.path().to_owned();
        config.backends.consumer_group = "embedded-workers".into();
        config.kafka.group_id = "kafka-workers".into();
        let backends = Backends::connect(&config)
            .await
            .expect("embedded backends open");
        let topic = config.kafka.topic.clone();

        let _member = backends
            .subscribe(&topic)
            .expect("the group's first member");
        let second = backends
            .subscribe(&topic)
            .err()
            .expect("one open stream per group");
        assert!(
            second.to_string().contains("group embedded-workers"),
            "{second}"
        );
    }

    #[tokio::test]
    async fn the_embedded_cache_keeps_views_for_its_own_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.backends.data_dir = dir.path().to_owned();
        config.backends.cache_ttl_seconds = 1;
        config.redis.ttl_seconds = 3600;
        let backends = Backends::connect(&config)
            .await
            .expect("embedded backends open");
        let order = crate::order::Order::new(uuid::Uuid::new_v4(), Default::default(), 0);

        backends.cache.put(&order.view()).await.unwrap();
        assert!(backends.cache.get(order.id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            backends.cache.get(order.id).await.unwrap().is_none(),
            "the view outlived backends.cache_ttl_seconds"
        );
    }
}
