//! A compiled plugin version, and one decision: an instance of its own (fresh unless the
//! operator opted the plugin into reuse), the limits, the bounds on what it returns, and
//! everything it cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, PoolConcurrencyLimitError, Store};

use super::bindings::{OrderPlugin, OrderPluginPre, wit};
use super::convert::{from_wit_decision, to_wit_event, to_wit_order};
use super::decision_bounds;
use super::failure::{self, PluginFailure};
use super::host_functions::{HostCall, HostContext};
use super::instance::{self, FreshInstances, InstanceState, WarmInstance, WarmInstances};
use super::sandbox::Inputs;
use super::slots::{InstanceSlots, SlotShare};
use super::state_machine::StateMachine;
use crate::backend::memory::MemoryPluginData;
use crate::backend::{PluginCache, PluginStore, PluginWrite};
use crate::order::{Decision, Event, Order};
use crate::plugin_limits::PluginLimits;

/// Which instance an invocation ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceOrigin {
    /// Instantiated for it.
    #[default]
    New,
    /// The last event's instance, returned to its state right after instantiation: as fresh
    /// as a new one (`plugins.reset_instances`).
    Returned,
    /// An instance kept with its state from earlier events (the plugin is opted into
    /// `instance_reuse`).
    Reused,
}

impl InstanceOrigin {
    /// Its label in metrics: `new`, `returned` or `reused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Returned => "returned",
            Self::Reused => "reused",
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
    /// The part of `duration` spent making a new instance (linking, function references,
    /// start functions); zero on a returned or reused one.
    pub instantiation: Duration,
    /// Which instance it ran on.
    pub instance: InstanceOrigin,
    /// Its store writes, when the host held them back ([`PluginHost::hold_store_writes`]).
    pub store_writes: Vec<PluginWrite>,
}

/// Everything one decision attempt did, whether or not the plugin decided: the decision or
/// the failure, what it cost and the host calls it made. [`LoadedPlugin::decide`] keeps only
/// the decision's side; the worker and `orderpipe plugin test` use all of it.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The decision (already checked against the bounds and the state machine), or why
    /// there is none.
    pub outcome: Result<Decision, PluginFailure>,
    pub fuel_used: u64,
    /// Store and cache calls (the ones the quota counts).
    pub host_calls: u32,
    pub duration: Duration,
    /// The part of `duration` spent making a new instance; zero on a returned or reused one.
    pub instantiation: Duration,
    /// Which instance it ran on.
    pub instance: InstanceOrigin,
    /// The host calls made, in order, logging included, when the host recorded them
    /// ([`PluginHost::record_host_calls`]); the first few dozen only.
    pub host_call_log: Vec<HostCall>,
    /// Host calls made after `host_call_log` was full.
    pub host_calls_not_logged: u32,
    /// Log lines (and their bytes) dropped past the plugin's log budget.
    pub log_lines_dropped: u32,
    pub log_bytes_dropped: u64,
    /// How long the invocation waited for a free instance slot (zero when one was free).
    pub slot_wait: Duration,
    /// Its store writes, when the host held them back ([`PluginHost::hold_store_writes`]).
    pub store_writes: Vec<PluginWrite>,
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
            instantiation: self.instantiation,
            instance: self.instance,
            store_writes: self.store_writes,
        })
    }
}

/// The plugin's view of the world: its own rows and its own cache keys.
#[derive(Clone)]
pub struct PluginHost {
    pub store: Arc<dyn PluginStore>,
    pub cache: Arc<dyn PluginCache>,
    /// Store writes are held back and handed over with the decision
    /// ([`Invocation::store_writes`]) instead of applied at once: the worker records them
    /// with the event. The plugin's own reads see them either way.
    pub hold_store_writes: bool,
    /// Every host call is noted in [`Trace::host_call_log`] (for a person trying a plugin
    /// out); off, nothing is recorded or formatted, as on the worker's path.
    pub record_host_calls: bool,
}

impl PluginHost {
    /// Host functions backed by process memory, writes applied at once: for tests and for
    /// trying a plugin out.
    pub fn in_memory() -> Self {
        let data = Arc::new(MemoryPluginData::new());
        Self {
            store: data.clone(),
            cache: data,
            hold_store_writes: false,
            record_host_calls: false,
        }
    }

    /// The same host, noting every host call in the decision's trace.
    pub fn recording_host_calls(self) -> Self {
        Self {
            record_host_calls: true,
            ..self
        }
    }
}

/// A compiled, linked, validated plugin. Cheap to share. Each call runs on an instance of
/// its own: a fresh one for every event unless the plugin's `instance_reuse` opts it into
/// warm instances (which have only ever returned normally).
#[derive(Clone)]
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub state_machine: StateMachine,
    pub(super) pre: OrderPluginPre<InstanceState>,
    pub(super) engine: Engine,
    pub(super) limits: PluginLimits,
    pub(super) slots: Arc<InstanceSlots>,
    /// What one instance of this component takes from the slots.
    pub(super) share: SlotShare,
    /// Idle instances ready for their next call (shared by clones of this version).
    pub(super) warm: Arc<WarmInstances>,
    /// How an event gets a fresh instance when the plugin is not opted into reuse.
    pub(super) fresh_instances: FreshInstances,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What an invocation cost, whatever its outcome.
#[derive(Debug, Default)]
struct Usage {
    fuel_used: u64,
    host_calls: u32,
    call_log: Vec<HostCall>,
    calls_not_logged: u32,
    log_lines_dropped: u32,
    log_bytes_dropped: u64,
    slot_wait: Duration,
    instantiation: Duration,
    instance: InstanceOrigin,
    store_writes: Vec<PluginWrite>,
}

/// The event an invocation decides, when it decides one (`describe` decides none).
struct Deciding {
    order_id: uuid::Uuid,
    inputs: Inputs,
}

impl LoadedPlugin {
    /// Drops the idle instances (their slots and memory go back to the engine); used when
    /// this version stops deciding events.
    pub fn discard_warm_instances(&self) {
        self.warm.clear();
    }

    /// How many idle instances this version keeps now.
    pub fn warm_instances(&self) -> usize {
        self.warm.len()
    }

    /// How many idle instances this version may keep, in this component's share of the
    /// runtime's slots (at least one): as many as the slots hold when they are instances
    /// returned to their start (each as fresh as a new one, and dropped the moment an
    /// invocation needs its room), a [`instance::WARM_SLOTS_DIVISOR`]th of them when the
    /// operator opted the plugin into reuse.
    pub fn most_warm_instances(&self) -> usize {
        let slots = if self.resets_instances() {
            self.slots.capacity()
        } else {
            self.slots.capacity() / instance::WARM_SLOTS_DIVISOR
        };
        (slots / self.share.slots()).max(1) as usize
    }

    /// The slot's written pages to keep resident when this version's fresh instances are
    /// made by returning the last one to its start; `None` when they are instantiated, or
    /// when the plugin is opted into reuse (its instances keep their state).
    fn reset_resident_bytes(&self) -> Option<usize> {
        match self.fresh_instances {
            FreshInstances::Reset { resident_bytes } if self.limits.instance_reuse <= 1 => {
                Some(resident_bytes)
            }
            _ => None,
        }
    }

    fn resets_instances(&self) -> bool {
        self.reset_resident_bytes().is_some()
    }

    /// The same compiled plugin under other limits (the runtime's memory ceiling still caps
    /// `memory_mib`).
    pub fn with_limits(&self, limits: PluginLimits) -> LoadedPlugin {
        LoadedPlugin {
            limits,
            // Idle instances carry the old limits in their stores: start a new pool.
            warm: WarmInstances::registered_in(&self.slots),
            ..self.clone()
        }
    }

    /// The limits every invocation of this plugin runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    pub(super) async fn describe(&self) -> Result<wit::PluginInfo, PluginFailure> {
        let host = PluginHost::in_memory();
        let (result, _) = self
            .invoke(host, None, |plugin, store| {
                Box::pin(async move { plugin.call_describe(store).await })
            })
            .await;
        result
    }

    /// Asks the plugin what `event` means for `order`, on an instance of its own, under the
    /// limits. A decision over the plugin's bounds, or a transition the state machine does
    /// not allow, is a failure, like a trap.
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

    /// [`LoadedPlugin::decide`], also reporting what a failed attempt cost, which host calls
    /// it made, what its log dropped and how long it waited for an instance slot.
    pub async fn decide_traced(&self, order: &Order, event: &Event, host: PluginHost) -> Trace {
        let started = Instant::now();
        let wit_order = to_wit_order(order);
        let wit_event = to_wit_event(event);
        let deciding = Deciding {
            order_id: order.id,
            inputs: Inputs {
                now_ms: wit_event.at_ms,
                seed: *event.id.as_bytes(),
            },
        };
        let (result, usage) = self
            .invoke(host, Some(deciding), move |plugin, store| {
                Box::pin(async move { plugin.call_decide(store, &wit_order, &wit_event).await })
            })
            .await;
        let outcome = result
            .and_then(|decision| {
                decision_bounds::check(&self.limits, &decision)?;
                from_wit_decision(decision)
            })
            .and_then(|decision| {
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
            instantiation: usage.instantiation,
            instance: usage.instance,
            host_call_log: usage.call_log,
            host_calls_not_logged: usage.calls_not_logged,
            log_lines_dropped: usage.log_lines_dropped,
            log_bytes_dropped: usage.log_bytes_dropped,
            slot_wait: usage.slot_wait,
            store_writes: usage.store_writes,
        }
    }

    /// Runs `call` on a warm or fresh instance with fuel, memory, deadline, host-call, write
    /// and log limits, and turns every way it can go wrong into a [`PluginFailure`] with a
    /// readable reason.
    async fn invoke<R, F>(
        &self,
        host: PluginHost,
        deciding: Option<Deciding>,
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
        let inputs = deciding
            .as_ref()
            .map(|d| d.inputs)
            .unwrap_or_else(|| Inputs {
                now_ms: crate::order::now_ms().max(0) as u64,
                seed: [0; 16],
            });
        let mut context = HostContext::new(
            (&self.name, &self.version),
            deciding.as_ref().map(|d| d.order_id),
            host.store,
            host.cache,
            &self.limits,
            inputs.now_ms,
        );
        if host.hold_store_writes {
            context.held_writes = Some(Vec::new());
        }
        context.record_calls = host.record_host_calls;
        let mut usage = Usage::default();
        // Without opted-in reuse, an idle instance is one returned to its state right after
        // instantiation: as fresh as a new one.
        let reset_resident_bytes = self.reset_resident_bytes();
        let warm = if self.limits.instance_reuse > 1 || reset_resident_bytes.is_some() {
            self.warm.take()
        } else {
            None
        };
        // Declared before the store, so it is dropped after it (see `instance::new_store`).
        let slot;
        let (mut store, stderr, instance, calls) = match warm {
            Some(mut warm) => {
                let state = warm.store.data_mut();
                state.renew(context, self.limits.memory_bytes(), inputs);
                usage.instance = if reset_resident_bytes.is_some() {
                    state.forget_resources();
                    InstanceOrigin::Returned
                } else {
                    InstanceOrigin::Reused
                };
                slot = warm.slot;
                (warm.store, warm.stderr, Some(warm.plugin), warm.calls)
            }
            None => {
                slot = match self.slots.acquire(self.share).await {
                    Ok((slot, waited)) => {
                        usage.slot_wait = waited;
                        slot
                    }
                    Err(refused) => {
                        usage.slot_wait = refused.waited;
                        let failure = PluginFailure::transient(
                            "plugin instance pool",
                            format!(
                                "all {} instance slots stayed busy for {} ms",
                                refused.capacity,
                                refused.waited.as_millis()
                            ),
                        );
                        return (Err(failure), usage);
                    }
                };
                match instance::new_store(&self.engine, context, self.limits.memory_bytes(), inputs)
                {
                    Ok((store, stderr)) => (store, stderr, None, 0),
                    Err(e) => {
                        return (
                            Err(PluginFailure::new(format!(
                                "host could not prepare an instance: {e}"
                            ))),
                            usage,
                        );
                    }
                }
            }
        };
        if let Err(e) = store.set_fuel(self.limits.fuel) {
            return (
                Err(PluginFailure::new(format!(
                    "host could not set the CPU budget: {e}"
                ))),
                usage,
            );
        }

        // Whether the store remembers its instances' state right after instantiation (an idle
        // instance taken in reset mode always does).
        let mut checkpointed = reset_resident_bytes.is_some() && instance.is_some();
        let deadline = Duration::from_millis(self.limits.timeout_ms);
        let outcome = tokio::time::timeout(deadline, async {
            let plugin = match instance {
                Some(plugin) => plugin,
                None => {
                    let started = Instant::now();
                    let plugin = self.pre.instantiate_async(&mut store).await?;
                    if reset_resident_bytes.is_some() {
                        checkpointed = store.checkpoint_instances();
                    }
                    usage.instantiation = started.elapsed();
                    plugin
                }
            };
            let result = call(&plugin, &mut store).await;
            result.map(|value| (value, plugin))
        })
        .await;

        usage.fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let host = &mut store.data_mut().host;
        usage.host_calls = host.calls_made;
        usage.call_log = std::mem::take(&mut host.call_log);
        usage.store_writes = host.held_writes.take().unwrap_or_default();
        usage.calls_not_logged = host.calls_not_logged;
        usage.log_lines_dropped = host.log.dropped_lines;
        usage.log_bytes_dropped = host.log.dropped_bytes;
        if host.log.dropped_lines > 0 {
            tracing::warn!(
                target: "orderpipe::plugin_log",
                plugin = %self.name,
                version = %self.version,
                order_id = %host.order_id.map(|id| id.to_string()).unwrap_or_default(),
                dropped_lines = host.log.dropped_lines,
                dropped_bytes = host.log.dropped_bytes,
                "dropped {} plugin log lines past the log budget ({} lines, {} bytes per event)",
                host.log.dropped_lines,
                self.limits.log_lines,
                self.limits.log_bytes,
            );
        }
        if let Some((backend, detail)) = host.unavailable.clone() {
            return (Err(PluginFailure::transient(backend, detail)), usage);
        }
        if let Some(refused) = host.refused_write.clone() {
            return (
                Err(PluginFailure::new(format!(
                    "the plugin's write was refused: {refused}"
                ))),
                usage,
            );
        }
        let result = match outcome {
            Err(_elapsed) => Err(PluginFailure::new(format!(
                "the plugin exceeded its time limit of {} ms",
                self.limits.timeout_ms
            ))),
            Ok(Ok((value, plugin))) => {
                // Only an instance that returned normally and said nothing on stderr is
                // used again: returned to its state right after instantiation, or as it is
                // when the operator opted this plugin into reuse.
                let calls = calls + 1;
                let clean = store.data().limiter.exceeded.is_none() && stderr.contents().is_empty();
                let again = match reset_resident_bytes {
                    Some(resident_bytes) => {
                        clean && checkpointed && store.restore_instances(resident_bytes)
                    }
                    None => clean && calls < self.limits.instance_reuse,
                };
                if again {
                    self.warm.keep(
                        WarmInstance {
                            store,
                            plugin,
                            stderr,
                            calls,
                            slot,
                        },
                        self.most_warm_instances(),
                        &self.slots,
                    );
                }
                Ok(value)
            }
            // Cannot happen while every instance holds its share; should wasmtime ever need
            // more than counted, a full pool is still a reason to retry, not a failure.
            Ok(Err(error)) if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                Err(PluginFailure::transient(
                    "plugin instance pool",
                    format!("the instance pool is full: {error}"),
                ))
            }
            Ok(Err(error)) => Err(failure::explain(
                &self.limits,
                &error,
                store.data().limiter.exceeded,
                &stderr,
            )),
        };
        (result, usage)
    }
}
