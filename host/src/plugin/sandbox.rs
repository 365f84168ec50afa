//! The WASI world a plugin instance sees: nothing granted, nothing ambient.
//!
//! No files, no environment, no arguments, no sockets; stdout and stderr go to small
//! in-memory pipes. Time and randomness are functions of the event being decided, never of
//! the host: the wall clock reads the event's time (what `clock.now-ms` answers too), the
//! monotonic clock starts at zero and advances one microsecond per read, and both random
//! interfaces are generators seeded from the event id. Deciding an event again (after a
//! redelivery, or in a replay) therefore sees exactly the same inputs.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_for_wasi::rngs::StdRng;
use rand_for_wasi::{Rng as _, SeedableRng as _, TryRng};
use sha2::{Digest, Sha256};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// How much of a plugin's stdout and stderr is kept (its panic message usually lands there).
pub(crate) const CAPTURED_OUTPUT_BYTES: usize = 16 * 1024;
/// How far the monotonic clock advances on every read, in nanoseconds: time seems to pass
/// (so a guest measuring a duration sees a positive one) but only as the guest reads it.
const MONOTONIC_TICK_NS: u64 = 1_000;

/// What an instance's time and randomness derive from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs {
    /// The wall clock's only reading, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The seed of both random generators (the event id's bytes).
    pub seed: [u8; 16],
}

/// The state behind one event's clocks and generators; a reused instance gets a new one,
/// with a new WASI context, for each event (`instance::InstanceState::renew`).
#[derive(Clone)]
pub(crate) struct Determinism {
    state: Arc<Mutex<State>>,
}

struct State {
    inputs: Inputs,
    now: Duration,
    monotonic_ticks: u64,
}

impl State {
    fn from(inputs: Inputs) -> Self {
        Self {
            inputs,
            now: Duration::from_millis(inputs.now_ms),
            monotonic_ticks: 0,
        }
    }
}

impl Determinism {
    /// Clocks and generators for a fresh instance deciding `inputs`' event.
    pub(crate) fn new(inputs: Inputs) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::from(inputs))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One of an event's two random generators (`secure` or insecure), seeded from its id.
fn event_generator(inputs: &Inputs, secure: bool) -> StdRng {
    let mut seed: [u8; 32] = Sha256::digest(inputs.seed).into();
    if !secure {
        seed[0] ^= 0xff;
    }
    StdRng::from_seed(seed)
}

/// A WASI context that grants nothing, with its time and randomness from `determinism`'s
/// current inputs and its stderr going to `stderr` (kept for a failure's reason).
///
/// The instance builds it on the guest's first WASI call (see `instance::InstanceState`): a
/// guest that imports no WASI, as the Rust plugins built for `wasm32-unknown-unknown`, never
/// pays for it (`WasiCtxBuilder::new` alone seeds thread generators from the OS, which the
/// generators below then replace).
pub(crate) fn wasi_context(determinism: &Determinism, stderr: &MemoryOutputPipe) -> WasiCtx {
    let seed = determinism.lock().inputs.seed;
    WasiCtxBuilder::new()
        .stdout(MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES))
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .wall_clock(EventClock(determinism.clone()))
        .monotonic_clock(EventClock(determinism.clone()))
        .secure_random(EventRandom::new(determinism, true))
        .insecure_random(EventRandom::new(determinism, false))
        .insecure_random_seed(u128::from_le_bytes(seed))
        .build()
}

/// Both WASI clocks: the wall clock always reads the event's time; the monotonic clock starts
/// at zero and advances [`MONOTONIC_TICK_NS`] per read.
struct EventClock(Determinism);

impl HostWallClock for EventClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.0.lock().now
    }
}

impl HostMonotonicClock for EventClock {
    fn resolution(&self) -> u64 {
        MONOTONIC_TICK_NS
    }

    fn now(&self) -> u64 {
        let mut state = self.0.lock();
        state.monotonic_ticks += 1;
        state.monotonic_ticks * MONOTONIC_TICK_NS
    }
}

/// One of the two WASI random generators, seeded from the event.
///
/// The generator lives here, not behind the shared state's lock: wasmtime-wasi draws
/// `get-random-bytes` one byte at a time (a `u32` each), and CPython asks for about 2,500
/// bytes as it starts, so a lock per draw was a measurable part of a fresh Python decision.
/// It is seeded on the first draw, so a guest that never draws pays no hashing.
struct EventRandom {
    determinism: Determinism,
    secure: bool,
    rng: Option<StdRng>,
}

impl EventRandom {
    fn new(determinism: &Determinism, secure: bool) -> Self {
        Self {
            determinism: determinism.clone(),
            secure,
            rng: None,
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let rng = self
            .rng
            .get_or_insert_with(|| event_generator(&self.determinism.lock().inputs, self.secure));
        f(rng)
    }
}

impl TryRng for EventRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.with(|rng| rng.next_u32()))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.with(|rng| rng.next_u64()))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.with(|rng| rng.fill_bytes(dst));
        Ok(())
    }
}
