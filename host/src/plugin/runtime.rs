//! The wasmtime engine and linker every plugin of a host shares, the instance slots, and
//! loading: compile a component, link it, ask it to describe itself, check the answer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

use super::bindings::{OrderPlugin, OrderPluginPre};
use super::host_functions::HostContext;
use super::instance::{FreshInstances, InstanceState, WarmInstances};
use super::loaded::LoadedPlugin;
use super::slots::{CORE_INSTANCES_PER_SLOT, InstanceSlots, MEMORIES_PER_SLOT, SlotShare};
use super::state_machine::StateMachine;
use crate::config::PluginsConfig;
use crate::plugin_limits::{
    DEFAULT_INSTANCE_SLOTS, DEFAULT_RESIDENT_MEMORY_BYTES, DEFAULT_SLOT_WAIT_MS, PluginLimits,
};

/// Table memory kept resident per instance slot between uses (tables are small).
const RESIDENT_TABLE_BYTES: usize = 64 * 1024;

/// Whether a host names its plugins' compiled functions for a profiler
/// (`plugins.perf_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestProfiler {
    /// Compiled plugin code shows as bare addresses in a profile.
    Off,
    /// wasmtime writes `/tmp/perf-<pid>.map` as it compiles each component, which `perf
    /// report` reads: guest functions show by name (`wasm[8]::function[4035]::_PyEval_…`).
    PerfMap,
}

impl GuestProfiler {
    /// [`GuestProfiler::PerfMap`] when `enabled` (`plugins.perf_map`), else off.
    pub fn perf_map_if(enabled: bool) -> Self {
        if enabled { Self::PerfMap } else { Self::Off }
    }
}

/// The wasmtime engine and linker shared by every plugin of a host.
#[derive(Clone)]
pub struct PluginRuntime {
    engine: Engine,
    linker: Arc<Linker<InstanceState>>,
    limits: PluginLimits,
    slots: Arc<InstanceSlots>,
    /// How each event gets a fresh instance.
    fresh_instances: FreshInstances,
}

/// How a host's runtime is sized and set up, beside the limits each plugin gets
/// (`[plugins]` in the config; [`RuntimeSettings::default`] is what a fresh config says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// The most memory any plugin may be given, in MiB: the pooling allocator's per-instance
    /// maximum, and the ceiling of every plugin's `memory_mib`. Never less than the default
    /// limits' `memory_mib` (0, the default, means just that).
    pub max_memory_mib: u32,
    /// Instances that may exist at once; an invocation waits up to `slot_wait` for a free one.
    pub instance_slots: u32,
    pub slot_wait: Duration,
    /// Linear memory kept resident per slot between instances.
    ///
    /// Why: a fresh instance per event is the default, and most of what a fresh instance
    /// costs is its memory. Given back to the kernel after every event (`madvise`), every page
    /// the next instance touches faults in again; kept resident, wasmtime finds the pages the
    /// last instance dirtied (the kernel's `PAGEMAP_SCAN`, where it has one) and resets only
    /// those to the plugin's initial image. 0: give everything back.
    pub resident_memory_bytes: usize,
    /// Whether an event's fresh instance is the last event's, returned to its state right
    /// after instantiation, rather than a new one (`plugins.reset_instances`).
    pub reset_instances: bool,
    /// Whether the guests' compiled functions are named for a profiler.
    pub profiler: GuestProfiler,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_memory_mib: 0,
            instance_slots: DEFAULT_INSTANCE_SLOTS,
            slot_wait: Duration::from_millis(DEFAULT_SLOT_WAIT_MS),
            resident_memory_bytes: DEFAULT_RESIDENT_MEMORY_BYTES,
            reset_instances: true,
            profiler: GuestProfiler::Off,
        }
    }
}

impl RuntimeSettings {
    /// What the `[plugins]` section asks for.
    pub fn from_config(plugins: &PluginsConfig) -> Self {
        Self {
            max_memory_mib: plugins.max_memory_mib,
            instance_slots: plugins.instance_slots,
            slot_wait: Duration::from_millis(plugins.slot_wait_ms),
            resident_memory_bytes: plugins.resident_memory_bytes,
            reset_instances: plugins.reset_instances,
            profiler: GuestProfiler::perf_map_if(plugins.perf_map),
        }
    }
}

impl PluginRuntime {
    /// Builds the engine (fuel metering, pooling allocator) and a linker that grants WASI
    /// nothing and serves the orderpipe host functions, with the default
    /// [`RuntimeSettings`]: no plugin may get more memory than `limits.memory_mib`.
    pub fn new(limits: PluginLimits) -> anyhow::Result<Self> {
        Self::with_settings(limits, RuntimeSettings::default())
    }

    /// [`PluginRuntime::new`] sized and set up by `settings`; `limits` are what
    /// [`PluginRuntime::load_bytes`] gives a plugin until [`LoadedPlugin::with_limits`].
    pub fn with_settings(limits: PluginLimits, settings: RuntimeSettings) -> anyhow::Result<Self> {
        let RuntimeSettings {
            max_memory_mib,
            instance_slots: slots,
            slot_wait,
            resident_memory_bytes,
            reset_instances,
            profiler,
        } = settings;
        anyhow::ensure!(slots >= 1, "plugins.instance_slots must be at least 1");
        let max_memory_bytes = max_memory_mib.max(limits.memory_mib) as usize * 1024 * 1024;
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(slots)
            .total_core_instances(slots * CORE_INSTANCES_PER_SLOT)
            .total_memories(slots * MEMORIES_PER_SLOT)
            .total_tables(slots * CORE_INSTANCES_PER_SLOT)
            .total_stacks(slots)
            .max_memory_size(max_memory_bytes)
            .linear_memory_keep_resident(resident_memory_bytes)
            .table_keep_resident(resident_memory_bytes.min(RESIDENT_TABLE_BYTES))
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        if profiler == GuestProfiler::PerfMap {
            config.profiler(ProfilingStrategy::PerfMap);
        }
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
            slots: Arc::new(InstanceSlots::new(slots, slot_wait)),
            fresh_instances: if reset_instances {
                FreshInstances::Reset {
                    resident_bytes: resident_memory_bytes,
                }
            } else {
                FreshInstances::Instantiated
            },
        })
    }

    /// The limits [`PluginRuntime::load_bytes`] gives a plugin.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Instances that may exist at once.
    pub fn instance_slots(&self) -> u32 {
        self.slots.capacity()
    }

    /// How many invocations have waited for a free instance slot so far.
    pub fn slot_waits(&self) -> u64 {
        self.slots.waits()
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
        let share = slot_share(bytes, &component)?;
        anyhow::ensure!(
            self.slots.fits(share),
            "one instance of the component needs {} instance slots, more than the host's {} \
             (plugins.instance_slots)",
            share.slots(),
            self.slots.capacity()
        );
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
            slots: self.slots.clone(),
            share,
            warm: WarmInstances::registered_in(&self.slots),
            fresh_instances: self.fresh_instances,
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

/// What one instance of `component` takes from the pool: its core instances (counted in the
/// binary: one per core module instantiation, nested components included, which is what
/// wasmtime allocates), its memories and its tables.
fn slot_share(bytes: &[u8], component: &Component) -> anyhow::Result<SlotShare> {
    let mut core_instances = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::InstanceSection(instances) =
            payload.map_err(|e| anyhow::anyhow!("not a valid WebAssembly component: {e}"))?
        {
            for instance in instances {
                let instance = instance
                    .map_err(|e| anyhow::anyhow!("not a valid WebAssembly component: {e}"))?;
                if let wasmparser::Instance::Instantiate { .. } = instance {
                    core_instances = core_instances.saturating_add(1);
                }
            }
        }
    }
    let (memories, tables) = component
        .resources_required()
        .map_or((1, 1), |needs| (needs.num_memories, needs.num_tables));
    Ok(SlotShare::of(core_instances, memories, tables))
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
