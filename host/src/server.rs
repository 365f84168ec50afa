//! Wiring: build the backends from the configuration, load each pipeline's plugin, then run
//! the HTTP API and one worker per pipeline until asked to stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Admin, AppState, PipelineRoute, SharedState};
use crate::auth::Authenticator;
use crate::backend::wiring::Backends;
use crate::config::Config;
use crate::pipeline::changes::ChangePublisher;
use crate::pipeline::health::WorkerHealth;
use crate::pipeline::owned_orders::OwnedOrders;
use crate::pipeline::processor::EventProcessor;
use crate::pipeline::worker;
use crate::plugin::{
    ActivePlugin, LimitPolicy, PluginDeployer, PluginHost, PluginRuntime, RuntimeSettings,
};
use crate::telemetry::Metrics;

/// A running host: the API on [`Host::addr`] and, depending on the mode, the worker.
pub struct Host {
    addr: SocketAddr,
    shutdown: CancellationToken,
    api: JoinHandle<anyhow::Result<()>>,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Host {
    /// Connects to every backend (creating topics and applying the schema), loads each
    /// pipeline's plugin, binds the HTTP port and starts serving. Fails fast with a clear
    /// error when the configuration is invalid or a backend cannot be reached at start-up.
    pub async fn start(config: Config) -> anyhow::Result<Host> {
        config.validate()?;
        tracing::info!(config = %config.redacted(), "starting orderpipe");
        let pipelines = config.pipelines();
        let metrics = Arc::new(Metrics::new());
        // Refuse limits out of bounds before touching any backend.
        let limit_policy = LimitPolicy::new(
            config.plugins.limits.clone(),
            config.plugins.limits_for.clone(),
            config.plugins.max_memory_mib,
        )
        .map_err(|reason| anyhow::anyhow!("invalid plugin limits: {reason}"))?;

        let backends = Backends::connect(&config).await?;
        if let Some(near_cache) = &backends.near_cache {
            metrics.register_all(near_cache.collectors());
        }
        let shutdown = CancellationToken::new();
        let runtime = PluginRuntime::with_settings(
            config.plugins.limits.clone(),
            RuntimeSettings::from_config(&config.plugins),
        )?;
        tracing::info!(
            limits = ?runtime.limits(),
            max_memory_mib = config.plugins.max_memory_mib,
            instance_slots = runtime.instance_slots(),
            "plugin runtime ready"
        );
        let deployer = Arc::new(PluginDeployer::new(
            runtime,
            backends.registry.clone(),
            backends.announcements.clone(),
            limit_policy,
            config.plugins.max_component_bytes,
        ));

        let worker_health = config
            .mode
            .runs_worker()
            .then(|| Arc::new(WorkerHealth::new()));
        let worker = if let Some(health) = &worker_health {
            // A plugin deciding for several pipelines is loaded and watched once.
            let mut plugins: HashMap<String, Arc<ActivePlugin>> = HashMap::new();
            let mut workers = Vec::new();
            for pipeline in &pipelines {
                let plugin = match plugins.get(&pipeline.plugin) {
                    Some(plugin) => plugin.clone(),
                    None => {
                        let plugin = deployer
                            .bootstrap(&pipeline.plugin, &config.plugins.dir)
                            .await?;
                        tokio::spawn(deployer.clone().watch(
                            pipeline.plugin.clone(),
                            plugin.clone(),
                            Duration::from_millis(config.plugins.watch_interval_ms.max(50)),
                            metrics.clone(),
                            shutdown.clone(),
                        ));
                        plugins.insert(pipeline.plugin.clone(), plugin.clone());
                        plugin
                    }
                };
                let current = plugin.current();
                tracing::info!(
                    pipeline = %pipeline.name,
                    topic = %pipeline.topic,
                    plugin = %current.name,
                    version = %current.version,
                    "pipeline plugin loaded"
                );
                let processor = Arc::new(EventProcessor {
                    pipeline: pipeline.name.clone(),
                    store: backends.store.clone(),
                    cache: backends.cache.clone(),
                    events: backends.events_for(&pipeline.topic)?,
                    plugin,
                    plugin_host: PluginHost {
                        store: backends.plugin_store.clone(),
                        cache: backends.plugin_cache.clone(),
                        hold_store_writes: true,
                        record_host_calls: false,
                    },
                    metrics: metrics.clone(),
                    config: config.worker.clone(),
                    health: health.clone(),
                    changes: ChangePublisher::new(backends.feed.clone(), metrics.clone()),
                    owned: OwnedOrders::new(config.worker.kept_orders_per_partition),
                });
                let stream = backends.subscribe(&pipeline.topic)?;
                workers.push(tokio::spawn(worker::run(
                    stream,
                    processor,
                    worker::QueueBounds::of(&config.worker),
                    config.worker.events_in_flight_per_partition,
                    shutdown.clone(),
                )));
            }
            Some(tokio::spawn(async move {
                for worker in workers {
                    worker.await.context("pipeline worker task")??;
                }
                Ok(())
            }))
        } else {
            None
        };

        let admin = config.admin.token.clone().map(|token| Admin {
            token,
            deployer: deployer.clone(),
        });
        let web = match pipelines.first() {
            Some(pipeline) if config.web.enabled && config.mode.runs_api() => Some(Arc::new(
                api::WebPage::new(&config.web, &config.auth, &pipeline.name)?,
            )),
            _ => None,
        };
        let state = AppState::new(SharedState {
            store: backends.store.clone(),
            cache: backends.cache.clone(),
            events: backends.events.clone(),
            metrics: metrics.clone(),
            pipelines: if config.mode.runs_api() {
                pipelines
                    .iter()
                    .map(|pipeline| {
                        Ok(PipelineRoute {
                            name: pipeline.name.clone(),
                            entity: pipeline.entity(),
                            events: backends.events_for(&pipeline.topic)?,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            } else {
                Vec::new()
            },
            worker_health,
            admin,
            backend_names: config.backends.names(),
            http: config.http.clone(),
            rate_limit: api::RateLimit::from_config(&config.http),
            auth: Authenticator::from_config(&config.auth, config.admin.token.clone())?,
            stream_hub: Arc::new(api::StreamHub::new(
                backends.feed.clone(),
                config.stream.buffer,
            )),
            streams: Arc::new(api::StreamBounds::new(
                config.stream.clone(),
                metrics.clone(),
                shutdown.clone(),
            )),
            web,
        });
        if state.auth.is_open() && config.mode.runs_api() && !config.http.addr.ip().is_loopback() {
            tracing::warn!(
                addr = %config.http.addr,
                "auth mode \"none\" on a non-loopback address: anyone who reaches it may read and \
                 change every record; set [auth] mode = \"jwt\" and/or \"api_keys\""
            );
        }
        if let Some(limit) = &state.rate_limit {
            limit.spawn_pruning(shutdown.clone());
        }
        let app = api::router(state);
        let listener = tokio::net::TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding {}", config.http.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, mode = ?config.mode, "listening");
        let api_shutdown = shutdown.clone();
        let http = config.http.clone();
        let api = tokio::spawn(async move {
            api::serve::serve(listener, app, &http, api_shutdown)
                .await
                .context("serving HTTP")
        });
        Ok(Host {
            addr,
            shutdown,
            api,
            worker,
        })
    }

    /// Where the HTTP API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancelling this token stops the host gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the host stops: stop taking requests, finish in-flight events, commit.
    pub async fn wait(self) -> anyhow::Result<()> {
        let api = self.api.await.context("API task")?;
        if let Some(worker) = self.worker {
            worker.await.context("worker task")??;
        }
        api
    }

    /// Asks the host to stop and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}
