//! One plugin instance's store: its WASI sandbox, its host functions, its memory limiter and
//! its instance slot; and the warm instances a plugin version keeps when the operator opted
//! it into reuse.

use std::sync::Mutex;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::OrderPlugin;
use super::host_functions::HostContext;
use super::sandbox::{self, Determinism, Inputs};
use super::slots::{IdleInstances, InstanceSlots, Slot};

/// How often (in fuel units) a running plugin yields to the async runtime, so a busy plugin
/// cannot starve other tasks and the wall-clock deadline can fire.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;
/// The part of the runtime's instance slots the idle warm instances of one plugin version
/// opted into reuse may hold (one in this many), so that the rest stay free for other
/// versions and pipelines. (Instances returned to their start may fill the version's share:
/// they hold no state and give their room to any invocation that waits for it.)
/// Reuse needs about as many idle instances as decisions in flight at once: a Python drain
/// kept 20 or so in flight, and with 8 kept idle (the earlier fixed bound) more than half of
/// its decisions still started a fresh instance (BENCHMARKS.md, 2026-12-06).
pub(crate) const WARM_SLOTS_DIVISOR: u32 = 4;
/// The largest table a plugin may grow, in elements.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// How an event of a plugin not opted into `instance_reuse` gets its fresh instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreshInstances {
    /// Instantiated for every event.
    Instantiated,
    /// The last event's instance returned to its state right after instantiation (wasmtime
    /// patch 4, `vendor/README.md`), with the slot's written pages up to `resident_bytes`
    /// copied back from the image; instantiated when none is idle or one cannot be returned.
    Reset { resident_bytes: usize },
}

/// The data of one instance's store.
pub(crate) struct InstanceState {
    /// Built on the guest's first WASI call (of each event, on a reused instance), from
    /// `determinism` and `stderr`: the costliest part of a new store (about 1.5 µs), which a
    /// guest importing no WASI never pays.
    wasi: Option<WasiCtx>,
    stderr: MemoryOutputPipe,
    table: ResourceTable,
    pub(crate) host: HostContext,
    pub(crate) limiter: MemoryLimiter,
    /// The event's time and seed, which the sandbox's clocks and generators read.
    determinism: Determinism,
}

impl InstanceState {
    /// Readies a reused instance's store for its next event, as a fresh store would be for
    /// it: the event's host functions and memory cap, clocks and generators of `inputs`, and
    /// the WASI context (which holds them, and the insecure seed) built again on the guest's
    /// next WASI call. The guest's WASI resources (its open streams) live in the resource
    /// table and stay.
    pub(crate) fn renew(&mut self, host: HostContext, memory_bytes: usize, inputs: Inputs) {
        self.host = host;
        self.limiter.max_bytes = memory_bytes;
        self.determinism = Determinism::new(inputs);
        self.wasi = None;
    }

    /// Empties the resource table, as a new store has it: for an instance returned to its
    /// state right after instantiation, which holds no handle to any of them (wasmtime's
    /// restore refuses an instance with a live handle).
    pub(crate) fn forget_resources(&mut self) {
        self.table = ResourceTable::new();
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self
            .wasi
            .get_or_insert_with(|| sandbox::wasi_context(&self.determinism, &self.stderr));
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers whether the cap was hit, so the failure can say so.
pub(crate) struct MemoryLimiter {
    pub(crate) max_bytes: usize,
    pub(crate) exceeded: Option<usize>,
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
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A store ready for an instance: the sandbox built from `inputs`, the host functions, the
/// memory cap and the fuel settings. Also gives the stderr pipe.
///
/// The caller holds the instance's [`Slot`] beside the store and must drop it only after the
/// store: wasmtime frees the pool's instance slot while dropping the store, after the store's
/// data, so a slot kept inside the data would be handed on a moment too early.
pub(crate) fn new_store(
    engine: &Engine,
    host: HostContext,
    memory_bytes: usize,
    inputs: Inputs,
) -> wasmtime::Result<(Store<InstanceState>, MemoryOutputPipe)> {
    let stderr = MemoryOutputPipe::new(sandbox::CAPTURED_OUTPUT_BYTES);
    let state = InstanceState {
        wasi: None,
        stderr: stderr.clone(),
        table: ResourceTable::new(),
        host,
        limiter: MemoryLimiter {
            max_bytes: memory_bytes,
            exceeded: None,
        },
        determinism: Determinism::new(inputs),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))?;
    Ok((store, stderr))
}

/// An instantiated plugin between calls (only with `instance_reuse` above 1).
pub(crate) struct WarmInstance {
    // Fields drop in this order: the store (freeing wasmtime's pool slot) before `slot`.
    pub(crate) store: Store<InstanceState>,
    pub(crate) plugin: OrderPlugin,
    pub(crate) stderr: MemoryOutputPipe,
    /// Calls it has served.
    pub(crate) calls: u32,
    /// The instance slot it occupies.
    pub(crate) slot: Slot,
}

/// The idle instances of one plugin version, shared by its clones.
#[derive(Default)]
pub(crate) struct WarmInstances {
    idle: Mutex<Vec<WarmInstance>>,
}

impl WarmInstances {
    /// A new, empty place for idle instances, whose room `slots` may take back.
    pub(crate) fn registered_in(slots: &InstanceSlots) -> std::sync::Arc<Self> {
        let warm = std::sync::Arc::new(Self::default());
        let place: std::sync::Arc<dyn IdleInstances> = warm.clone();
        slots.register_idle(std::sync::Arc::downgrade(&place));
        warm
    }

    pub(crate) fn take(&self) -> Option<WarmInstance> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps `instance` for a later call unless `most` are idle already or an invocation
    /// is waiting for room in `slots` (dropping it gives its room back).
    pub(crate) fn keep(&self, instance: WarmInstance, most: usize, slots: &InstanceSlots) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < most && slots.may_keep_idle() {
            idle.push(instance);
        }
    }

    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl IdleInstances for WarmInstances {
    fn drop_one(&self) -> bool {
        // Taken out under the lock, dropped outside it (dropping a store resets its memory).
        self.take().is_some()
    }
}
