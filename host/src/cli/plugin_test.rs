//! `orderpipe plugin test`: runs a component against fixture orders and events in the host's
//! real plugin runtime, with in-memory host functions, and prints what it did.
//!
//! The component is loaded as a host loads it (same runtime, same limits, same validation of
//! `describe()`), so "it passes here" means "the host will accept it". Each fixture gets a
//! fresh in-memory store and cache, shared by its events; the order's status, version and
//! attributes carry from one event to the next as the pipeline applies them. Nothing here
//! touches Kafka, Cassandra or Redis.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use super::fixtures::{self, Expectation, Fixture, Step};
use super::project;
use crate::order::{Decision, Event, Order, Outcome, now_ms};
use crate::plugin::{
    InstanceOrigin, LoadedPlugin, PluginHost, PluginLimits, PluginRuntime, Trace, sha256_hex,
};

/// What to test, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The plugin project (for the default component and fixtures).
    pub dir: PathBuf,
    /// The component to load instead of the project's build.
    pub component: Option<PathBuf>,
    /// Fixture files instead of the project's `fixtures/*.json`.
    pub fixtures: Vec<PathBuf>,
}

/// How a run went, counted as it goes.
#[derive(Debug, Default)]
struct Tally {
    fixtures: usize,
    events: usize,
    expectations: usize,
    /// Expectations that did not hold, and failures no expectation allowed.
    problems: Vec<String>,
}

/// Loads the component, runs every fixture, prints each decision; fails when an expectation
/// did not hold or the plugin failed unexpectedly.
pub(crate) async fn run(options: &Options, limits: &PluginLimits) -> anyhow::Result<()> {
    let component = match &options.component {
        Some(path) => path.clone(),
        None => project::component(&options.dir)?,
    };
    let files = if options.fixtures.is_empty() {
        project::fixture_files(&options.dir)?
    } else {
        options.fixtures.clone()
    };
    // Every file is read before anything runs: a typo fails fast, before compilation.
    let suites = files
        .iter()
        .map(|file| Ok((file.as_path(), fixtures::read(file)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let bytes = tokio::fs::read(&component)
        .await
        .with_context(|| format!("reading the component {}", component.display()))?;
    let runtime = PluginRuntime::new(limits.clone())?;
    let compiling = Instant::now();
    let plugin = runtime
        .load_bytes(&bytes)
        .await
        .with_context(|| format!("{} is not a plugin the host accepts", component.display()))?;
    print_plugin(&plugin, &component, &bytes, compiling.elapsed(), limits);
    warn_about_statuses(&plugin, &suites);

    let mut tally = Tally::default();
    for (file, fixtures) in &suites {
        println!();
        println!("{}", file.display());
        for (index, fixture) in fixtures.iter().enumerate() {
            run_fixture(&plugin, fixture, index + 1, &mut tally).await;
        }
    }

    println!();
    let summary = format!(
        "{} fixture(s), {} event(s), {} expectation(s)",
        tally.fixtures, tally.events, tally.expectations
    );
    if tally.problems.is_empty() {
        println!("{summary}: all held");
        return Ok(());
    }
    println!("{summary}: {} problem(s)", tally.problems.len());
    for problem in &tally.problems {
        println!("  FAILED {problem}");
    }
    bail!(
        "plugin test failed: {} problem(s), listed above",
        tally.problems.len()
    )
}

fn print_plugin(
    plugin: &LoadedPlugin,
    path: &Path,
    bytes: &[u8],
    compiled_in: std::time::Duration,
    limits: &PluginLimits,
) {
    let machine = &plugin.state_machine;
    let states: Vec<&str> = machine.states().collect();
    let mut edges = Vec::new();
    for from in &states {
        for to in &states {
            if machine.allows(from, to) {
                edges.push(format!("{from} -> {to}"));
            }
        }
    }
    let sha256 = sha256_hex(bytes);
    println!("plugin {} {}", plugin.name, plugin.version);
    println!(
        "  component    {} ({:.1} KiB, sha256 {}…, compiled in {:.2} s)",
        path.display(),
        bytes.len() as f64 / 1024.0,
        &sha256[..12],
        compiled_in.as_secs_f64()
    );
    println!("  initial      {}", machine.initial());
    println!("  states       {}", states.join(", "));
    println!("  transitions  {}", edges.join(", "));
    println!(
        "  limits       fuel {} | memory {} MiB | {} ms | {} host calls per event",
        thousands(limits.fuel),
        limits.memory_mib,
        thousands(limits.timeout_ms),
        limits.host_calls
    );
    println!(
        "               decisions ≤ {} bytes, ≤ {} attributes (keys ≤ {}, values ≤ {} bytes) | writes ≤ {} bytes | log ≤ {} lines, {} bytes | {}",
        thousands(u64::from(limits.decision_bytes)),
        limits.attributes,
        limits.attribute_key_bytes,
        thousands(u64::from(limits.attribute_value_bytes)),
        thousands(u64::from(limits.write_bytes)),
        limits.log_lines,
        thousands(u64::from(limits.log_bytes)),
        if limits.instance_reuse <= 1 {
            "a fresh instance per event".to_owned()
        } else {
            format!("instances reused for {} events", limits.instance_reuse)
        }
    );
    for state in unreachable_states(plugin) {
        println!(
            "  warning: state {state} cannot be reached from {}",
            machine.initial()
        );
    }
}

/// States no chain of transitions leads to from the initial state: usually a missing edge.
fn unreachable_states(plugin: &LoadedPlugin) -> Vec<String> {
    let machine = &plugin.state_machine;
    let states: Vec<&str> = machine.states().collect();
    let mut reached = vec![machine.initial()];
    let mut frontier = vec![machine.initial()];
    while let Some(from) = frontier.pop() {
        for to in &states {
            if !reached.contains(to) && machine.allows(from, to) {
                reached.push(to);
                frontier.push(to);
            }
        }
    }
    states
        .into_iter()
        .filter(|state| !reached.contains(state))
        .map(str::to_owned)
        .collect()
}

/// Statuses the fixtures start in or expect that the plugin does not declare: such a fixture
/// cannot go as written.
fn warn_about_statuses(plugin: &LoadedPlugin, suites: &[(&Path, Vec<Fixture>)]) {
    let declared: Vec<&str> = plugin.state_machine.states().collect();
    let mut unknown: Vec<&str> = Vec::new();
    for (_, fixtures) in suites {
        for fixture in fixtures {
            let expected = fixture
                .events
                .iter()
                .filter_map(|event| event.expect.as_ref())
                .chain(fixture.expect.as_ref())
                .filter_map(Expectation::status);
            for status in std::iter::once(fixture.initial_status()).chain(expected) {
                if !declared.contains(&status) && !unknown.contains(&status) {
                    unknown.push(status);
                }
            }
        }
    }
    for status in unknown {
        println!(
            "  warning: the fixtures name the status {status:?}, which the plugin does not declare"
        );
    }
}

/// Delivers one fixture's events in order, printing each decision and checking expectations.
async fn run_fixture(plugin: &LoadedPlugin, fixture: &Fixture, number: usize, tally: &mut Tally) {
    let title = fixture.title(number);
    let mut order = Order::new(fixture.order_id(number), fixture.order.clone(), now_ms());
    order.status = fixture.initial_status().to_owned();
    println!(
        "  fixture {title:?} (order {}, status {})",
        order.id, order.status
    );
    tally.fixtures += 1;
    let host = PluginHost::in_memory().recording_host_calls();
    if let Err(error) = seed(&host, &plugin.name, fixture).await {
        let problem = format!("{title:?}: could not seed the store and cache: {error}");
        println!("    FAILED: {problem}");
        tally.problems.push(problem);
        return;
    }
    let mut last: Option<(Outcome, String)> = None;

    for (index, spec) in fixture.events.iter().enumerate() {
        tally.events += 1;
        let event = Event {
            id: Fixture::event_id(number, index + 1),
            order_id: order.id,
            kind: spec.kind.clone(),
            data: spec.data.clone(),
            at_ms: spec.at_ms.unwrap_or_else(now_ms),
        };
        let trace = plugin.decide_traced(&order, &event, host.clone()).await;
        let from = order.status.clone();
        let (outcome, reason) = apply(&mut order, &trace);
        println!(
            "    {}. {}: {}",
            index + 1,
            event.kind,
            describe(&trace, &from)
        );
        println!("       {}", cost(&trace));
        for call in &trace.host_call_log {
            println!("       {call}");
        }
        if trace.host_calls_not_logged > 0 {
            println!(
                "       … and {} more host call(s), not recorded",
                trace.host_calls_not_logged
            );
        }
        if trace.log_lines_dropped > 0 {
            println!(
                "       {} log line(s) ({} bytes) dropped past the log budget ({} lines, {} bytes per event)",
                trace.log_lines_dropped,
                trace.log_bytes_dropped,
                plugin.limits().log_lines,
                plugin.limits().log_bytes
            );
        }

        let step = Step {
            status: &order.status,
            outcome,
            reason: &reason,
            attributes: &order.attributes,
        };
        let place = format!("{title:?}, event {} ({})", index + 1, event.kind);
        match &spec.expect {
            Some(expectation) => check(expectation, &step, &place, "       ", tally),
            None if outcome == Outcome::Failed => {
                let problem =
                    "the plugin failed on this event (expect \"outcome\": \"failed\" if it should)";
                println!("       FAILED: {problem}");
                tally.problems.push(format!("{place}: {problem}"));
            }
            None => {}
        }
        last = Some((outcome, reason));
    }

    let Some((outcome, reason)) = last else {
        return;
    };
    println!(
        "    final: {} (version {}){}",
        order.status,
        order.version,
        attributes_suffix(&order.attributes)
    );
    if let Some(expectation) = &fixture.expect {
        let step = Step {
            status: &order.status,
            outcome,
            reason: &reason,
            attributes: &order.attributes,
        };
        check(
            expectation,
            &step,
            &format!("{title:?}, final"),
            "    ",
            tally,
        );
    }
}

/// Puts the fixture's rows and keys where the plugin will find them.
async fn seed(
    host: &PluginHost,
    plugin: &str,
    fixture: &Fixture,
) -> Result<(), crate::backend::BackendError> {
    for (table, rows) in &fixture.store {
        for (key, value) in rows {
            host.store.put(plugin, table, key, value).await?;
        }
    }
    for (key, value) in &fixture.cache {
        host.cache.set(plugin, key, value, None).await?;
    }
    Ok(())
}

/// Applies a decision to the order as the pipeline records it: every event counts as a
/// version; only a transition moves the status and merges its attributes. Returns the
/// event's outcome and reason.
fn apply(order: &mut Order, trace: &Trace) -> (Outcome, String) {
    order.version += 1;
    order.updated_at_ms = now_ms().max(order.updated_at_ms);
    match &trace.outcome {
        Ok(Decision::Transition {
            to,
            reason,
            attributes,
        }) => {
            order.status = to.clone();
            order.attributes.extend(attributes.clone());
            (Outcome::Transitioned, reason.clone())
        }
        Ok(Decision::NoChange { reason }) => (Outcome::Unchanged, reason.clone()),
        Ok(Decision::Reject { reason }) => (Outcome::Rejected, reason.clone()),
        Err(failure) => (Outcome::Failed, failure.reason.clone()),
    }
}

/// The decision as one line: `transition created -> approved: why (sets total=19.98)`.
fn describe(trace: &Trace, from: &str) -> String {
    match &trace.outcome {
        Ok(Decision::Transition {
            to,
            reason,
            attributes,
        }) => format!(
            "transition {from} -> {to}: {reason}{}",
            sets_suffix(attributes)
        ),
        Ok(Decision::NoChange { reason }) => format!("no-change (stays {from}): {reason}"),
        Ok(Decision::Reject { reason }) => format!("reject (stays {from}): {reason}"),
        Err(failure) => format!("failure (stays {from}): {}", failure.reason),
    }
}

/// What the event cost and which instance decided it: `fuel 98,311 | 0.21 ms (new instance
/// 0.03 ms) | 1 host call`, the instance's part being a new instance's start-up; `(instance
/// returned to its start)` when the last event's instance was (the host's default for a
/// fresh instance), `(instance reused)` when the plugin is opted into reuse.
fn cost(trace: &Trace) -> String {
    let instance = match trace.instance {
        InstanceOrigin::New => format!(
            " (new instance {:.2} ms)",
            trace.instantiation.as_secs_f64() * 1000.0
        ),
        InstanceOrigin::Returned => " (instance returned to its start)".to_owned(),
        InstanceOrigin::Reused => " (instance reused)".to_owned(),
    };
    format!(
        "fuel {} | {:.2} ms{instance} | {} host call{}",
        thousands(trace.fuel_used),
        trace.duration.as_secs_f64() * 1000.0,
        trace.host_calls,
        if trace.host_calls == 1 { "" } else { "s" }
    )
}

fn check(expectation: &Expectation, step: &Step<'_>, place: &str, indent: &str, tally: &mut Tally) {
    tally.expectations += 1;
    let mismatches = expectation.mismatches(step);
    if mismatches.is_empty() {
        println!("{indent}ok: {expectation}");
        return;
    }
    for mismatch in mismatches {
        println!("{indent}FAILED: {mismatch}");
        tally.problems.push(format!("{place}: {mismatch}"));
    }
}

fn sets_suffix(attributes: &Map<String, Value>) -> String {
    if attributes.is_empty() {
        return String::new();
    }
    format!(" (sets {})", key_values(attributes))
}

fn attributes_suffix(attributes: &Map<String, Value>) -> String {
    if attributes.is_empty() {
        return String::new();
    }
    format!(", attributes {}", key_values(attributes))
}

fn key_values(attributes: &Map<String, Value>) -> String {
    let mut text = String::new();
    for (index, (key, value)) in attributes.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{key}={value}");
    }
    text
}

/// `50000000` → `50,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(50_000_000), "50,000,000");
    }
}
