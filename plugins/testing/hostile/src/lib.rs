//! A deliberately misbehaving plugin, for the host's sandbox tests. Never deploy it.
//!
//! Its state machine is `created → processed → done`, and a `created` event moves an order to
//! `processed`, so orders flow through it like any plugin. Every other event kind is an
//! attack, and the host's tests post them to check each is contained:
//!
//! | event kind | what the plugin does | a safe host answers with |
//! |---|---|---|
//! | `trap` | panics: "hostile plugin trapped on purpose" | a trap |
//! | `write_then_trap` | writes store row `dropped`/<order id>, then panics | a trap, and the row never written (`read_foreign` of it: store=none) |
//! | `loop` | spins forever | a timeout (epoch or fuel) |
//! | `grow_memory` | allocates 1 MiB chunks without bound | a memory limit trap |
//! | `illegal_transition` | transitions to `shipped`, not a state | refusing the transition |
//! | `skip_state` | transitions to a state with no edge from the current one: `created → done`, otherwise `→ created` | refusing the transition |
//! | `read_file` | reads `/etc/passwd` and lists `/` | reject "read_file denied: ..." |
//! | `read_env` | reads environment variables and arguments | reject "read_env denied: environment is empty" |
//! | `open_socket` | connects to 127.0.0.1:`port` (data `{"port": n}`, default 19042) through wasi:sockets and `std::net` | reject "open_socket denied: ..." |
//! | `read_foreign` | reads store `table`/`key` and cache `cache_key` from data | reject "read_foreign: store=none, cache=none" for another plugin's keys |
//! | `host_call_flood` | calls `cache.get` up to 100,000 times | reject "host_call_flood: quota-exceeded: ... after N calls" |
//! | `huge_attribute` | moves `processed → done` setting an attribute of `bytes` bytes (data, default 20,000,000) | a failure naming the decision bound (or the store's refusal) |
//! | `huge_write` | writes a `bytes`-byte value (data, default 20,000,000) with `store.put`, then moves `processed → done` | a failure naming `write_bytes` |
//! | `log_flood` | logs `lines` lines (data, default 1,000,000) of `bytes` bytes each (default 4,096) | at most the log budget in the host's log; unchanged "log_flood: done" |
//! | `remember` | reports the order id a previous call left in a global, then leaves its own | unchanged "remember: previous=none" (a fresh instance per order) |
//! | `ambient` | reads the WASI wall clock, monotonic clock, both random sources and the insecure seed | unchanged "ambient: wall_is_event_time=true …" with values that depend only on the event |
//! | `spin` | spins `iterations` loop turns (data, default 20,000,000), then stays unchanged | unchanged "spin: done" (for instance-slot exhaustion) |
//!
//! Whenever an attack gets through, the decision's reason starts with `ESCAPED:`.

use std::hint::black_box;

use orderpipe_plugin_sdk::serde_json::Value;
use orderpipe_plugin_sdk::{
    Decision, Event, HostError, Order, OrderPlugin, PluginInfo, StateMachine, cache, export_plugin,
    log, store,
};

/// The port `open_socket` tries when the event names none.
pub const DEFAULT_PORT: u16 = 19042;
/// How many host calls `host_call_flood` makes before giving up on meeting a quota.
pub const FLOOD_CALLS: u32 = 100_000;
const CHUNK_BYTES: usize = 1 << 20;

pub struct Hostile;

impl OrderPlugin for Hostile {
    fn describe() -> PluginInfo {
        let machine = StateMachine::new("created")
            .edge("created", "processed")
            .edge("processed", "done");
        PluginInfo::new("hostile", "0.1.0", machine)
    }

    fn decide(order: Order, event: Event) -> Decision {
        let data: Value = event.data_json().unwrap_or(Value::Null);
        match event.kind.as_str() {
            "created" => Decision::transition("processed", "hostile plugin lets orders through"),
            "trap" => panic!("hostile plugin trapped on purpose"),
            "write_then_trap" => {
                let _ = store::put("dropped", &order.id, "written before the trap");
                panic!("hostile plugin trapped after a write")
            }
            "loop" => spin_forever(),
            "grow_memory" => hoard_memory(),
            "illegal_transition" => {
                Decision::transition("shipped", "hostile: shipped is not a state")
            }
            "skip_state" => skip_state(&order.status),
            "read_file" => read_file(),
            "read_env" => read_env(),
            "open_socket" => {
                let port = data
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
                open_socket(port.unwrap_or(DEFAULT_PORT))
            }
            "read_foreign" => {
                let field = |name: &str| {
                    data.get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                read_foreign(&field("table"), &field("key"), &field("cache_key"))
            }
            "host_call_flood" => host_call_flood(),
            "huge_attribute" => huge_attribute(number(&data, "bytes", 20_000_000) as usize),
            "huge_write" => huge_write(number(&data, "bytes", 20_000_000) as usize),
            "log_flood" => log_flood(
                number(&data, "lines", 1_000_000),
                number(&data, "bytes", 4_096) as usize,
            ),
            "remember" => remember(&order.id),
            "ambient" => ambient(&event),
            "scatter" => scatter(number(&data, "pages", 400) as usize),
            "scatter_image" => scatter_image(),
            "spin" => {
                let mut counter: u64 = 0;
                for _ in 0..number(&data, "iterations", 20_000_000) {
                    counter = black_box(counter.wrapping_add(1));
                }
                Decision::no_change(format!("spin: done after {counter} turns"))
            }
            other => Decision::reject(format!("unknown event type {other}")),
        }
    }
}

export_plugin!(Hostile);

fn number(data: &Value, name: &str, default: u64) -> u64 {
    data.get(name).and_then(Value::as_u64).unwrap_or(default)
}

fn huge_attribute(bytes: usize) -> Decision {
    Decision::transition("done", "hostile: a huge attribute")
        .with_attribute("blob", &"x".repeat(bytes))
}

fn huge_write(bytes: usize) -> Decision {
    match store::put("hoard", "blob", &"x".repeat(bytes)) {
        Ok(()) => Decision::transition("done", format!("ESCAPED: stored {bytes} bytes")),
        Err(error) => Decision::transition(
            "done",
            format!("huge_write: ignoring the refusal ({})", error.reason()),
        ),
    }
}

fn log_flood(lines: u64, bytes: usize) -> Decision {
    let line = "L".repeat(bytes);
    for _ in 0..lines {
        log::info(&line);
    }
    Decision::no_change("log_flood: done")
}

/// The order id the previous `remember` call on this instance left behind, if any.
static REMEMBERED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn remember(order_id: &str) -> Decision {
    let mut remembered = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    let previous = remembered.replace(order_id.to_string());
    match previous {
        None => Decision::no_change("remember: previous=none"),
        Some(other) if other == order_id => Decision::no_change("remember: previous=this order"),
        Some(other) => Decision::no_change(format!("ESCAPED: remember: previous={other}")),
    }
}

/// How far apart `scatter` marks its pages: every other 4 KiB host page, so each marked page
/// is a dirty region of linear memory of its own.
const SCATTER_STRIDE: usize = 8 * 1024;
/// The most pages `scatter` marks (10 MB of zeroed linear memory, not in the image).
const SCATTER_MAX_PAGES: usize = 1_200;
static mut SCATTER: [u8; SCATTER_MAX_PAGES * SCATTER_STRIDE] =
    [0; SCATTER_MAX_PAGES * SCATTER_STRIDE];

/// Marks `pages` scattered pages of linear memory and says how many were already marked: an
/// instance whose memory was not reset page by page after an earlier order finds its marks.
fn scatter(pages: usize) -> Decision {
    let pages = pages.min(SCATTER_MAX_PAGES);
    mark_scattered("scatter", (&raw mut SCATTER).cast::<u8>(), pages, 0)
}

/// Pages of initialised data `scatter_image` marks: part of the component's memory image,
/// so each fresh instance maps them copy-on-write from the image.
const IMAGE_PAGES: usize = 100;
/// Every byte starts as this, so the buffer is a data segment of the image, not zeroed memory.
const IMAGE_BYTE: u8 = 1;
static mut SCATTER_IMAGE: [u8; IMAGE_PAGES * SCATTER_STRIDE] =
    [IMAGE_BYTE; IMAGE_PAGES * SCATTER_STRIDE];

/// As [`scatter`], in pages of the memory image: an instance whose image pages were not
/// copied back after an earlier order finds its marks.
fn scatter_image() -> Decision {
    let base = (&raw mut SCATTER_IMAGE).cast::<u8>();
    mark_scattered("scatter_image", base, IMAGE_PAGES, IMAGE_BYTE)
}

/// Marks the first byte of `pages` pages [`SCATTER_STRIDE`] apart from `base`, counting those
/// that no longer held `initial`; the reason names `attack`.
fn mark_scattered(attack: &str, base: *mut u8, pages: usize, initial: u8) -> Decision {
    let mut found = 0;
    for page in 0..pages {
        // SAFETY: callers pass a static buffer of at least `pages` strides; the guest runs
        // one call at a time.
        unsafe {
            let byte = base.add(page * SCATTER_STRIDE);
            if byte.read_volatile() != initial {
                found += 1;
            }
            byte.write_volatile(0xa5);
        }
    }
    if found == 0 {
        Decision::no_change(format!("{attack}: marked {pages} pages, found none marked"))
    } else {
        Decision::no_change(format!(
            "ESCAPED: {attack}: {found} of {pages} pages marked by an earlier order"
        ))
    }
}

/// What the guest's ambient time and randomness are, as a reason.
fn ambient(event: &Event) -> Decision {
    let (wall_ms, monotonic_ns, random, insecure, seed) = ambient_readings();
    Decision::no_change(format!(
        "ambient: wall_is_event_time={} wall_ms={wall_ms} monotonic_ns={monotonic_ns} random={random} insecure={insecure} insecure_seed={seed:032x}",
        wall_ms == event.at_ms
    ))
}

#[cfg(target_arch = "wasm32")]
fn ambient_readings() -> (u64, u64, u64, u64, u128) {
    use wasip2::clocks::{monotonic_clock, wall_clock};
    use wasip2::random::{insecure, insecure_seed, random};
    let wall = wall_clock::now();
    let wall_ms = wall.seconds * 1_000 + u64::from(wall.nanoseconds) / 1_000_000;
    let (seed_high, seed_low) = insecure_seed::insecure_seed();
    (
        wall_ms,
        monotonic_clock::now(),
        random::get_random_u64(),
        insecure::get_insecure_random_u64(),
        (u128::from(seed_high) << 64) | u128::from(seed_low),
    )
}

/// Off wasm there is no WASI to read.
#[cfg(not(target_arch = "wasm32"))]
fn ambient_readings() -> (u64, u64, u64, u64, u128) {
    (0, 0, 0, 0, 0)
}

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn hoard_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Filled, not zeroed, so every page is really written.
        hoard.push(black_box(vec![0xA5; CHUNK_BYTES]));
        black_box(&hoard);
    }
}

/// Jumps to a real state that no edge leads to from `status`: ahead from `created`, back to
/// `created` from anywhere else (`processed → done` would be a legal move).
fn skip_state(status: &str) -> Decision {
    let to = if status == "created" {
        "done"
    } else {
        "created"
    };
    Decision::transition(to, format!("hostile: {status} -> {to} is not an edge"))
}

fn read_file() -> Decision {
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(_) => return Decision::transition("processed", "ESCAPED: read a file"),
        Err(error) => error,
    };
    let dir = match std::fs::read_dir("/") {
        Ok(_) => return Decision::transition("processed", "ESCAPED: listed a directory"),
        Err(error) => error,
    };
    Decision::reject(format!(
        "read_file denied: /etc/passwd: {file}; read_dir /: {dir}"
    ))
}

fn read_env() -> Decision {
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let args = std::env::args_os().count();
    if names.is_empty() && args == 0 {
        return Decision::reject("read_env denied: environment is empty");
    }
    Decision::transition(
        "processed",
        format!(
            "ESCAPED: {} environment variables ({}) and {args} arguments",
            names.len(),
            names.join(", ")
        ),
    )
}

fn open_socket(port: u16) -> Decision {
    let wasi = match wasi_connect(port) {
        Ok(()) => {
            return Decision::transition(
                "processed",
                format!("ESCAPED: connected to 127.0.0.1:{port} via wasi:sockets"),
            );
        }
        Err(error) => error,
    };
    let std = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => {
            return Decision::transition(
                "processed",
                format!("ESCAPED: connected to 127.0.0.1:{port} via std::net"),
            );
        }
        Err(error) => error,
    };
    Decision::reject(format!(
        "open_socket denied: wasi:sockets: {wasi}; std::net: {std}"
    ))
}

/// Connects to 127.0.0.1:`port` with wasi:sockets directly, as a guest that skips std would.
#[cfg(target_arch = "wasm32")]
fn wasi_connect(port: u16) -> Result<(), String> {
    use wasip2::sockets::network::{
        ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    };
    use wasip2::sockets::{instance_network, tcp_create_socket};

    /// Bounds the wait for a connection that never settles.
    const MAX_POLLS: u32 = 1_000;

    let network = instance_network::instance_network();
    let socket = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create: {e}"))?;
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    socket
        .start_connect(&network, address)
        .map_err(|e| format!("start_connect: {e}"))?;
    for _ in 0..MAX_POLLS {
        socket.subscribe().block();
        match socket.finish_connect() {
            Ok(_streams) => return Ok(()),
            Err(ErrorCode::WouldBlock) => continue,
            Err(error) => return Err(format!("finish_connect: {error}")),
        }
    }
    Err(format!("finish_connect: no answer after {MAX_POLLS} polls"))
}

/// Off wasm there is no wasi:sockets to try.
#[cfg(not(target_arch = "wasm32"))]
fn wasi_connect(_port: u16) -> Result<(), String> {
    Err("not a wasm32 build".to_string())
}

fn read_foreign(table: &str, key: &str, cache_key: &str) -> Decision {
    fn show(result: Result<Option<String>, HostError>) -> String {
        match result {
            Ok(Some(value)) => format!("{value:?}"),
            Ok(None) => "none".to_string(),
            Err(error) => format!("error({})", error.reason()),
        }
    }
    let stored = show(store::get(table, key));
    let cached = show(cache::get(cache_key));
    Decision::reject(format!("read_foreign: store={stored}, cache={cached}"))
}

fn host_call_flood() -> Decision {
    for made in 0..FLOOD_CALLS {
        if let Err(error) = cache::get("flood") {
            return Decision::reject(format!(
                "host_call_flood: {} after {made} calls",
                error.reason()
            ));
        }
    }
    Decision::reject(format!(
        "host_call_flood: no quota after {FLOOD_CALLS} calls"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, order};

    fn decide(kind: &str, data: &str) -> Decision {
        Hostile::decide(order("created"), event(kind, data))
    }

    #[test]
    fn describes_a_three_state_machine() {
        let info = Hostile::describe();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("hostile", "0.1.0")
        );
        assert_eq!(info.state_machine.states, ["created", "processed", "done"]);
        assert!(info.state_machine.allows("created", "processed"));
        assert!(info.state_machine.allows("processed", "done"));
    }

    #[test]
    fn created_orders_flow_through() {
        assert_eq!(decide("created", "{}").transition_to(), Some("processed"));
    }

    #[test]
    #[should_panic(expected = "hostile plugin trapped on purpose")]
    fn trap_panics() {
        decide("trap", "{}");
    }

    #[test]
    fn bad_transitions_leave_the_state_machine() {
        let machine = Hostile::describe().state_machine;
        let illegal = decide("illegal_transition", "{}");
        assert!(
            !machine
                .states
                .iter()
                .any(|state| Some(state.as_str()) == illegal.transition_to())
        );
        for status in ["created", "processed", "done"] {
            let skip = Hostile::decide(order(status), event("skip_state", "{}"));
            let to = skip.transition_to().expect("a transition");
            assert!(
                machine.states.iter().any(|state| state == to),
                "{to} is a state"
            );
            assert!(
                !machine.allows(status, to),
                "{status} -> {to} must not be an edge"
            );
        }
    }

    #[test]
    fn read_foreign_reports_what_the_host_returned() {
        let host = FakeHost::new();
        host.store_put("orders-by-customer", "alice/1", "12.5");
        let decision = decide(
            "read_foreign",
            r#"{"table": "orders-by-customer", "key": "alice/1", "cache_key": "orders-created"}"#,
        );
        assert_eq!(
            decision,
            Decision::reject("read_foreign: store=\"12.5\", cache=none")
        );
        host.fail_with(HostError::Invalid("bad key".into()));
        let decision = decide("read_foreign", "{}");
        assert_eq!(
            decision,
            Decision::reject(
                "read_foreign: store=error(invalid: bad key), cache=error(invalid: bad key)"
            )
        );
    }

    #[test]
    fn host_call_flood_stops_at_the_quota() {
        let host = FakeHost::new();
        host.set_quota(100);
        let decision = decide("host_call_flood", "{}");
        assert_eq!(
            decision,
            Decision::reject(
                "host_call_flood: quota-exceeded: host call quota of 100 per event exceeded after 100 calls"
            )
        );
    }

    #[test]
    fn host_call_flood_without_a_quota_says_so() {
        let host = FakeHost::new();
        assert_eq!(
            decide("host_call_flood", "{}"),
            Decision::reject("host_call_flood: no quota after 100000 calls")
        );
        assert_eq!(host.calls(), u64::from(FLOOD_CALLS));
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        assert_eq!(
            decide("dance", "{}"),
            Decision::reject("unknown event type dance")
        );
    }
}
