//! Compiling, instantiating and calling plugins under limits.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{OrderPlugin, OrderPluginPre, wit};
use super::host_functions::{HostCall, HostContext};
use super::state_machine::StateMachine;
use crate::backend::memory::MemoryPluginData;
use crate::backend::{PluginCache, PluginStore};
use crate::order::{Decision, Event, Order};

/// How much of a plugin's stderr is kept (its panic message usually lands there).
const CAPTURED_OUTPUT_BYTES: usize = 16 * 1024;
/// The longest reason a plugin may give; longer reasons are cut.
const MAX_REASON_BYTES: usize = 1024;
/// The most attributes one transition may set.
const MAX_ATTRIBUTES_PER_TRANSITION: usize = 64;
/// How often (in fuel units) a running plugin yields to the async runtime, so a busy plugin
/// cannot starve other tasks and the wall-clock deadline can fire.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;
/// Instances the pooling allocator keeps slots for; bounds concurrent invocations per host.
const POOLED_INSTANCES: u32 = 128;
/// Warm instances one plugin version keeps for reuse at most (about one per partition task
/// working concurrently); the rest of the pool's slots stay free for other versions.
const MAX_WARM_INSTANCES: usize = 8;

/// Limits for one plugin invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// CPU budget in wasmtime fuel units (roughly one per wasm instruction).
    pub fuel: u64,
    /// Linear memory cap per instance, in MiB.
    pub memory_mib: u32,
    /// Wall-clock deadline per invocation, host calls included, in milliseconds.
    pub timeout_ms: u64,
    /// Host calls (store, cache) allowed per invocation.
    pub host_calls: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            memory_mib: 64,
            timeout_ms: 2_000,
            host_calls: 100,
        }
    }
}

impl PluginLimits {
    fn memory_bytes(&self) -> usize {
        self.memory_mib as usize * 1024 * 1024
    }
}

/// Why a plugin could not decide an event. The reason goes into the order's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PluginFailure {
    pub reason: String,
    /// Set when a host call met a backend outage (backend, detail): the event should be
    /// retried later, not recorded as the plugin's failure.
    pub backend_unavailable: Option<(&'static str, String)>,
}

impl PluginFailure {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            backend_unavailable: None,
        }
    }
}

/// A plugin's decision and what it cost.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub decision: Decision,
    pub fuel_used: u64,
    pub host_calls: u32,
    pub duration: Duration,
    /// The host calls it made, in order, logging included; bounded, so a plugin that made
    /// very many calls has only its first few dozen here.
    pub host_call_log: Vec<HostCall>,
}

/// Everything one decision attempt did, whether or not the plugin decided: the decision or
/// the failure, what it cost and the host calls it made. [`LoadedPlugin::decide`] keeps only
/// the decision's side; `orderpipe plugin test` shows all of it.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The decision (already checked against the state machine), or why there is none.
    pub outcome: Result<Decision, PluginFailure>,
    pub fuel_used: u64,
    /// Store and cache calls (the ones the quota counts).
    pub host_calls: u32,
    pub duration: Duration,
    /// The host calls made, in order, logging included; the first few dozen only.
    pub host_call_log: Vec<HostCall>,
    /// Host calls made after `host_call_log` was full.
    pub host_calls_not_logged: u32,
}

impl Trace {
    /// The decision and its cost, or the failure.
    pub fn into_invocation(self) -> Result<Invocation, PluginFailure> {
        let decision = self.outcome?;
        Ok(Invocation {
            decision,
            fuel_used: self.fuel_used,
            host_calls: self.host_calls,
            duration: self.duration,
            host_call_log: self.host_call_log,
        })
    }
}

/// The plugin's view of the world: its own rows and its own cache keys.
#[derive(Clone)]
pub struct PluginHost {
    pub store: Arc<dyn PluginStore>,
    pub cache: Arc<dyn PluginCache>,
}

impl PluginHost {
    /// Host functions backed by process memory: for tests and for trying a plugin out.
    pub fn in_memory() -> Self {
        let data = Arc::new(MemoryPluginData::new());
        Self {
            store: data.clone(),
            cache: data,
        }
    }
}

/// The wasmtime engine and linker shared by every plugin of a host.
#[derive(Clone)]
pub struct PluginRuntime {
    engine: Engine,
    linker: Arc<Linker<InstanceState>>,
    limits: PluginLimits,
    instance_reuse: u32,
}

impl PluginRuntime {
    /// Builds the engine (fuel metering, pooling allocator) and a linker that grants WASI
    /// nothing and serves the orderpipe host functions. No plugin may get more memory than
    /// `limits.memory_mib`.
    pub fn new(limits: PluginLimits) -> anyhow::Result<Self> {
        let ceiling = limits.memory_mib;
        Self::with_memory_ceiling(limits, ceiling)
    }

    /// [`PluginRuntime::new`] with room for plugins whose own limits allow up to
    /// `max_memory_mib` (the pooling allocator's per-instance maximum); `limits` are what
    /// [`PluginRuntime::load_bytes`] gives a plugin until [`LoadedPlugin::with_limits`].
    pub fn with_memory_ceiling(limits: PluginLimits, max_memory_mib: u32) -> anyhow::Result<Self> {
        let max_memory_bytes = max_memory_mib.max(limits.memory_mib) as usize * 1024 * 1024;
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 8)
            .total_stacks(POOLED_INSTANCES)
            .max_memory_size(max_memory_bytes);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:?}"))?;

        let mut linker = Linker::<InstanceState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        OrderPlugin::add_to_linker::<_, wasmtime::component::HasSelf<HostContext>>(
            &mut linker,
            |state: &mut InstanceState| &mut state.host,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
            instance_reuse: 1,
        })
    }

    /// Lets one instance decide up to `events` events before it is discarded (1: a fresh
    /// instance for every event). An instance is discarded at once when a call fails in any
    /// way (trap, fuel, memory, deadline, host-call quota) or writes to stderr, so a reused
    /// instance has only ever returned normally. Applies to plugins loaded afterwards.
    pub fn with_instance_reuse(mut self, events: u32) -> Self {
        self.instance_reuse = events.max(1);
        self
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Events one instance decides at most (see [`PluginRuntime::with_instance_reuse`]).
    pub fn instance_reuse(&self) -> u32 {
        self.instance_reuse
    }

    /// Compiles a component from a file, links it and asks it to describe itself.
    pub async fn load(&self, path: &Path) -> anyhow::Result<LoadedPlugin> {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("reading plugin {}", path.display()))?;
        self.load_bytes(&bytes)
            .await
            .with_context(|| format!("loading plugin {}", path.display()))
    }

    /// Compiles a component, links it, asks it to describe itself and validates the answer:
    /// it implements the world, its state machine is valid, its name and version are sane.
    pub async fn load_bytes(&self, bytes: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        // Compilation is CPU-heavy; keep it off the async workers.
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await?
            .map_err(|e| anyhow::anyhow!("not a valid WebAssembly component: {e:?}"))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("the component does not fit the orderpipe world: {e}"))?;
        let pre = OrderPluginPre::new(instance_pre).map_err(|e| {
            anyhow::anyhow!("the component does not export the orderpipe world: {e}")
        })?;

        let mut plugin = LoadedPlugin {
            name: String::new(),
            version: String::new(),
            state_machine: StateMachine::new(vec!["created".into()], "created".into(), vec![])
                .map_err(anyhow::Error::msg)?,
            pre,
            engine: self.engine.clone(),
            limits: self.limits.clone(),
            instance_reuse: self.instance_reuse,
            warm: Arc::new(std::sync::Mutex::new(Vec::new())),
        };
        let info = plugin
            .describe()
            .await
            .map_err(|failure| anyhow::anyhow!("describe() failed: {failure}"))?;
        check_identifier("name", &info.name)?;
        check_identifier("version", &info.version)?;
        let sm = info.state_machine;
        plugin.state_machine = StateMachine::new(
            sm.states,
            sm.initial,
            sm.transitions.into_iter().map(|e| (e.from, e.to)).collect(),
        )
        .map_err(|e| anyhow::anyhow!("invalid state machine: {e}"))?;
        plugin.name = info.name;
        plugin.version = info.version;
        Ok(plugin)
    }
}

fn check_identifier(what: &str, value: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    anyhow::ensure!(
        ok,
        "plugin {what} {value:?} must be 1 to 64 letters, digits, '.', '_', '-' or '+'"
    );
    Ok(())
}

/// A compiled, linked, validated plugin. Cheap to share. Each call runs on an instance of
/// its own: a fresh one, or a warm one that has only ever returned normally (up to the
/// runtime's `instance_reuse` events per instance).
#[derive(Clone)]
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub state_machine: StateMachine,
    pre: OrderPluginPre<InstanceState>,
    engine: Engine,
    limits: PluginLimits,
    instance_reuse: u32,
    /// Idle instances ready for their next call (shared by clones of this version).
    warm: Arc<std::sync::Mutex<Vec<WarmInstance>>>,
}

/// An instantiated plugin between calls.
struct WarmInstance {
    store: Store<InstanceState>,
    plugin: OrderPlugin,
    stderr: MemoryOutputPipe,
    /// Calls it has served.
    calls: u32,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The data of one instance's store.
struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    host: HostContext,
    limiter: MemoryLimiter,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers whether the cap was hit, so the failure can say so.
struct MemoryLimiter {
    max_bytes: usize,
    exceeded: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl LoadedPlugin {
    /// Drops the idle instances (their pool slots and memory go back to the engine); used
    /// when this version stops deciding events.
    pub fn discard_warm_instances(&self) {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many idle instances this version keeps now.
    pub fn warm_instances(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_warm(&self) -> Option<WarmInstance> {
        if self.instance_reuse <= 1 {
            return None;
        }
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn keep_warm(&self, instance: WarmInstance) {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if warm.len() < MAX_WARM_INSTANCES {
            warm.push(instance);
        }
    }

    /// A store with an empty WASI context (stdout and stderr captured), the memory limiter
    /// and the fuel settings.
    fn new_store(
        &self,
        host: HostContext,
    ) -> wasmtime::Result<(Store<InstanceState>, MemoryOutputPipe)> {
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let state = InstanceState {
            wasi,
            table: ResourceTable::new(),
            host,
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes(),
                exceeded: None,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))?;
        Ok((store, stderr))
    }

    /// The same compiled plugin under other limits (the runtime's memory ceiling still caps
    /// `memory_mib`).
    pub fn with_limits(&self, limits: PluginLimits) -> LoadedPlugin {
        LoadedPlugin {
            limits,
            // Idle instances carry the old memory limit in their stores: start a new pool.
            warm: Arc::new(std::sync::Mutex::new(Vec::new())),
            ..self.clone()
        }
    }

    /// The limits every invocation of this plugin runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    async fn describe(&self) -> Result<wit::PluginInfo, PluginFailure> {
        let host = PluginHost::in_memory();
        let (result, _) = self
            .invoke(host, None, |plugin, store| {
                Box::pin(async move { plugin.call_describe(store).await })
            })
            .await;
        result
    }

    /// Asks the plugin what `event` means for `order`, on an instance of its own (warm or
    /// fresh), under the limits.
    /// A transition the state machine does not allow is a failure, like a trap.
    pub async fn decide(
        &self,
        order: &Order,
        event: &Event,
        host: PluginHost,
    ) -> Result<Invocation, PluginFailure> {
        self.decide_traced(order, event, host)
            .await
            .into_invocation()
    }

    /// [`LoadedPlugin::decide`], also reporting what a failed attempt cost and which host
    /// calls it made.
    pub async fn decide_traced(&self, order: &Order, event: &Event, host: PluginHost) -> Trace {
        let started = Instant::now();
        let wit_order = to_wit_order(order);
        let wit_event = to_wit_event(event);
        let (result, usage) = self
            .invoke(host, Some(order.id), move |plugin, store| {
                Box::pin(async move { plugin.call_decide(store, &wit_order, &wit_event).await })
            })
            .await;
        let outcome = result.and_then(from_wit_decision).and_then(|decision| {
            if let Decision::Transition { to, .. } = &decision
                && let Some(refusal) = self.state_machine.refusal(&order.status, to)
            {
                return Err(PluginFailure::new(refusal));
            }
            Ok(decision)
        });
        Trace {
            outcome,
            fuel_used: usage.fuel_used,
            host_calls: usage.host_calls,
            duration: started.elapsed(),
            host_call_log: usage.call_log,
            host_calls_not_logged: usage.calls_not_logged,
        }
    }

    /// Runs `call` on a warm or fresh instance with fuel, memory, deadline and host-call limits, and
    /// turns every way it can go wrong into a [`PluginFailure`] with a readable reason.
    async fn invoke<R, F>(
        &self,
        host: PluginHost,
        order_id: Option<uuid::Uuid>,
        call: F,
    ) -> (Result<R, PluginFailure>, Usage)
    where
        R: Send,
        F: for<'a> FnOnce(
                &'a OrderPlugin,
                &'a mut Store<InstanceState>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
            > + Send,
    {
        let context = HostContext {
            plugin: self.name.clone(),
            order_id,
            store: host.store,
            cache: host.cache,
            calls_left: self.limits.host_calls,
            calls_made: 0,
            call_quota: self.limits.host_calls,
            unavailable: None,
            call_log: Vec::new(),
            calls_not_logged: 0,
        };
        let mut usage = Usage::default();
        let warm = self.take_warm();
        let (mut store, stderr, instance, calls) = match warm {
            Some(mut warm) => {
                warm.store.data_mut().host = context;
                warm.store.data_mut().limiter.max_bytes = self.limits.memory_bytes();
                (warm.store, warm.stderr, Some(warm.plugin), warm.calls)
            }
            None => match self.new_store(context) {
                Ok((store, stderr)) => (store, stderr, None, 0),
                Err(e) => {
                    return (
                        Err(PluginFailure::new(format!(
                            "host could not prepare an instance: {e}"
                        ))),
                        usage,
                    );
                }
            },
        };
        if let Err(e) = store.set_fuel(self.limits.fuel) {
            return (
                Err(PluginFailure::new(format!(
                    "host could not set the CPU budget: {e}"
                ))),
                usage,
            );
        }

        let deadline = Duration::from_millis(self.limits.timeout_ms);
        let outcome = tokio::time::timeout(deadline, async {
            let plugin = match instance {
                Some(plugin) => plugin,
                None => self.pre.instantiate_async(&mut store).await?,
            };
            let result = call(&plugin, &mut store).await;
            result.map(|value| (value, plugin))
        })
        .await;

        usage.fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        usage.host_calls = store.data().host.calls_made;
        usage.call_log = std::mem::take(&mut store.data_mut().host.call_log);
        usage.calls_not_logged = store.data().host.calls_not_logged;
        if let Some((backend, detail)) = store.data().host.unavailable.clone() {
            let failure = PluginFailure {
                reason: format!("a host call found {backend} unavailable: {detail}"),
                backend_unavailable: Some((backend, detail)),
            };
            return (Err(failure), usage);
        }
        let result = match outcome {
            Err(_elapsed) => Err(PluginFailure::new(format!(
                "the plugin exceeded its time limit of {} ms",
                self.limits.timeout_ms
            ))),
            Ok(Ok((value, plugin))) => {
                // Only an instance that returned normally and said nothing on stderr is
                // used again; anything else may have left it half-way through something.
                let calls = calls + 1;
                if calls < self.instance_reuse
                    && store.data().limiter.exceeded.is_none()
                    && stderr.contents().is_empty()
                {
                    self.keep_warm(WarmInstance {
                        store,
                        plugin,
                        stderr,
                        calls,
                    });
                }
                Ok(value)
            }
            Ok(Err(error)) => Err(self.explain(&error, &store, &stderr)),
        };
        (result, usage)
    }

    fn explain(
        &self,
        error: &wasmtime::Error,
        store: &Store<InstanceState>,
        stderr: &MemoryOutputPipe,
    ) -> PluginFailure {
        let mut reason = if let Some(desired) = store.data().limiter.exceeded {
            format!(
                "the plugin exceeded its memory limit of {} MiB (asked for {} MiB)",
                self.limits.memory_mib,
                desired.div_ceil(1024 * 1024)
            )
        } else {
            match error.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => {
                    format!(
                        "the plugin exceeded its CPU budget of {} fuel",
                        self.limits.fuel
                    )
                }
                Some(trap) => format!("the plugin trapped: {trap}"),
                None => format!("the plugin failed: {error}"),
            }
        };
        let output = stderr.contents();
        let text = String::from_utf8_lossy(&output);
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !tail.is_empty() {
            let last = tail[tail.len().saturating_sub(3)..].join(" | ");
            reason.push_str(&format!(" (stderr: {})", clamp(&last, MAX_REASON_BYTES)));
        }
        PluginFailure::new(reason)
    }
}

#[derive(Debug, Default)]
struct Usage {
    fuel_used: u64,
    host_calls: u32,
    call_log: Vec<HostCall>,
    calls_not_logged: u32,
}

fn clamp(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

fn to_wit_attributes(map: &Map<String, Value>) -> Vec<wit::Attribute> {
    map.iter()
        .map(|(key, value)| wit::Attribute {
            key: key.clone(),
            value: value.to_string(),
        })
        .collect()
}

fn to_wit_order(order: &Order) -> wit::Order {
    wit::Order {
        id: order.id.to_string(),
        status: order.status.clone(),
        version: order.version,
        customer: order.request.customer.clone(),
        items: order
            .request
            .items
            .iter()
            .map(|item| wit::LineItem {
                sku: item.sku.clone(),
                qty: item.qty,
                unit_price: item.unit_price,
            })
            .collect(),
        currency: order.request.currency.clone(),
        attributes: to_wit_attributes(&order.attributes),
        body: serde_json::to_string(&order.request).unwrap_or_else(|_| "{}".into()),
    }
}

fn to_wit_event(event: &Event) -> wit::Event {
    let data = if event.data.is_null() {
        "{}".to_owned()
    } else {
        event.data.to_string()
    };
    wit::Event {
        id: event.id.to_string(),
        kind: event.kind.clone(),
        data,
        at_ms: event.at_ms.max(0) as u64,
    }
}

fn from_wit_decision(decision: wit::Decision) -> Result<Decision, PluginFailure> {
    Ok(match decision {
        wit::Decision::Transition(t) => {
            if t.attributes.len() > MAX_ATTRIBUTES_PER_TRANSITION {
                return Err(PluginFailure::new(format!(
                    "the plugin set {} attributes in one transition (at most {MAX_ATTRIBUTES_PER_TRANSITION})",
                    t.attributes.len()
                )));
            }
            let mut attributes = Map::new();
            for attribute in t.attributes {
                let value: Value = serde_json::from_str(&attribute.value).map_err(|e| {
                    PluginFailure::new(format!(
                        "attribute {:?} is not JSON text: {e}",
                        clamp(&attribute.key, 64)
                    ))
                })?;
                attributes.insert(attribute.key, value);
            }
            Decision::Transition {
                to: t.to,
                reason: clamp(&t.reason, MAX_REASON_BYTES),
                attributes,
            }
        }
        wit::Decision::NoChange(reason) => Decision::NoChange {
            reason: clamp(&reason, MAX_REASON_BYTES),
        },
        wit::Decision::Reject(reason) => Decision::Reject {
            reason: clamp(&reason, MAX_REASON_BYTES),
        },
    })
}
