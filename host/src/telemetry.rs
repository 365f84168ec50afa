//! Structured logs (tracing) and Prometheus metrics. Metrics live in one [`Metrics`] value
//! created at start-up and shared by the API and the worker; `/metrics` renders it.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::fmt;

use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::config::LogConfig;

/// Installs the global tracing subscriber (text or JSON). Safe to call more than once.
/// Text logs escape every control character in field values (JSON escapes them itself).
pub fn init_logging(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let _ = if config.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.fmt_fields(escaped_fields()).try_init()
    };
}

/// The text format's fields: `name=value`, space-separated, the message bare, and every
/// control character escaped (`\n`, `\u{1b}`), so a client-chosen value (an event type, a
/// plugin's log line) can neither start a forged log line nor drive the terminal.
fn escaped_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            if field.name() != "message" {
                write!(writer, "{field}=")?;
            }
            for ch in format!("{value:?}").chars() {
                if ch.is_control() {
                    write!(writer, "{}", ch.escape_default())?;
                } else {
                    writer.write_char(ch)?;
                }
            }
            Ok(())
        },
    )
    .delimited(" ")
}

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub orders_accepted: IntCounter,
    pub events_accepted: IntCounter,
    pub events_processed: IntCounterVec,
    pub events_redelivered: IntCounter,
    /// Where the worker took an order's state from before deciding an event: `kept` from
    /// the order's previous event on the partition, `read` from the store, or `new`: the
    /// order described by its `created` event, handed to a worker for the first time.
    pub worker_order_states: IntCounterVec,
    /// Where an event's time goes, by step (`read`, `decide`, `record`, `cache`).
    pub worker_event_step: HistogramVec,
    /// How old an event is when the worker takes it, by pipeline.
    pub worker_event_age: HistogramVec,
    pub dead_letters: IntCounterVec,
    pub plugin_invocations: IntCounterVec,
    pub plugin_duration: HistogramVec,
    /// The part of `plugin_duration` spent making new instances (returned or reused ones
    /// count none).
    pub plugin_instantiation: HistogramVec,
    /// Invocations by the instance they ran on: `new`, `returned` to its start, `reused`.
    pub plugin_instances: IntCounterVec,
    pub plugin_fuel: HistogramVec,
    /// Plugin log lines dropped past the plugin's log budget.
    pub plugin_log_dropped: IntCounterVec,
    /// How long invocations waited for a free instance slot (only those that waited).
    pub plugin_slot_wait: HistogramVec,
    pub backend_errors: IntCounterVec,
    pub cache_writes_skipped: IntCounter,
    pub worker_retries: IntCounter,
    pub worker_in_flight: IntGauge,
    pub worker_paused: IntGauge,
    pub plugin_active: prometheus::IntGaugeVec,
    /// Announcements heard for a plugin this host runs (`plugin`).
    pub plugin_announcements: IntCounterVec,
    /// Plugin switches (version or limits), by what made the host look (`announcement`,
    /// `polling`).
    pub plugin_switches: IntCounterVec,
    /// Live order streams open now.
    pub streams_open: IntGauge,
    /// Events sent on live order streams (`event`: `status`, `entry`, `lagged`).
    pub stream_events_sent: IntCounterVec,
    /// Times a live stream read missed entries from the store (`cause`: `missed`, `gap`, `tick`).
    pub stream_catch_ups: IntCounterVec,
    /// Recorded changes the worker could not put on the change feed (`cause`: `unavailable`,
    /// `overloaded`); streams find them in the order store instead.
    pub feed_publish_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("orderpipe".into()), None).expect("a valid metric prefix");
        let latency_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by route and status"),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
            http_duration: HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                    .buckets(latency_buckets.clone()),
                &["route"],
            )
            .expect("valid metric"),
            orders_accepted: IntCounter::new(
                "orders_accepted_total",
                "Orders acknowledged with 201",
            )
            .expect("valid metric"),
            events_accepted: IntCounter::new(
                "events_accepted_total",
                "Events acknowledged with 202",
            )
            .expect("valid metric"),
            events_processed: IntCounterVec::new(
                Opts::new(
                    "events_processed_total",
                    "Events recorded by the worker, by pipeline and outcome",
                ),
                &["pipeline", "outcome"],
            )
            .expect("valid metric"),
            events_redelivered: IntCounter::new(
                "events_redelivered_total",
                "Redelivered events recognised as already recorded (not applied again)",
            )
            .expect("valid metric"),
            worker_order_states: IntCounterVec::new(
                Opts::new(
                    "worker_order_states_total",
                    "Order states an event was decided on, by source: kept from the order's \
                     previous event on the partition, read from the store, or new (a created \
                     event no worker was handed before)",
                ),
                &["source"],
            )
            .expect("valid metric"),
            worker_event_step: HistogramVec::new(
                HistogramOpts::new(
                    "worker_event_step_seconds",
                    "Time an event spent in each step of the worker, waits included: `read` \
                     (the order's state from the store, when not kept), `decide` (the plugin, \
                     its host calls included), `record` (the store write), `cache` (the status \
                     cache write)",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
                &["step"],
            )
            .expect("valid metric"),
            worker_event_age: HistogramVec::new(
                HistogramOpts::new(
                    "worker_event_age_seconds",
                    "How old an event is when the worker takes it: from its acceptance (its \
                     `at_ms`, the accepting host's clock) to the start of its processing; the \
                     consumer's lag in time (Kafka, the partition's queue, the order's earlier \
                     events)",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                    300.0,
                ]),
                &["pipeline"],
            )
            .expect("valid metric"),
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "dead_letters_total",
                    "Messages sent to the dead-letter topic, by pipeline and cause",
                ),
                &["pipeline", "cause"],
            )
            .expect("valid metric"),
            plugin_invocations: IntCounterVec::new(
                Opts::new(
                    "plugin_invocations_total",
                    "Plugin invocations by plugin, version and result",
                ),
                &["plugin", "version", "result"],
            )
            .expect("valid metric"),
            plugin_duration: HistogramVec::new(
                HistogramOpts::new(
                    "plugin_duration_seconds",
                    "Plugin invocation time, instantiation included",
                )
                .buckets(vec![
                    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1,
                    1.0,
                ]),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            plugin_instantiation: HistogramVec::new(
                HistogramOpts::new(
                    "plugin_instantiation_seconds",
                    "Time making a new plugin instance (linking, function references, start \
                     functions), per invocation that made one rather than taking one returned \
                     to its start or reused",
                )
                .buckets(vec![
                    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1,
                    1.0,
                ]),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            plugin_instances: IntCounterVec::new(
                Opts::new(
                    "plugin_instances_total",
                    "Successful plugin invocations by the instance they ran on: new \
                     (instantiated), returned (the last event's, returned to its start: as \
                     fresh as a new one) or reused (kept with its state: opted into reuse)",
                ),
                &["plugin", "version", "origin"],
            )
            .expect("valid metric"),
            plugin_fuel: HistogramVec::new(
                HistogramOpts::new("plugin_fuel_used", "CPU budget (fuel) used per invocation")
                    .buckets(
                        prometheus::exponential_buckets(1000.0, 4.0, 10).expect("valid buckets"),
                    ),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            plugin_log_dropped: IntCounterVec::new(
                Opts::new(
                    "plugin_log_dropped_total",
                    "Plugin log lines dropped past the plugin's log budget per event",
                ),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            plugin_slot_wait: HistogramVec::new(
                HistogramOpts::new(
                    "plugin_slot_wait_seconds",
                    "Time invocations waited for a free plugin instance slot (those that waited)",
                )
                .buckets(vec![0.001, 0.01, 0.1, 1.0, 10.0, 60.0]),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            backend_errors: IntCounterVec::new(
                Opts::new("backend_errors_total", "Failed backend calls, by backend"),
                &["backend"],
            )
            .expect("valid metric"),
            cache_writes_skipped: IntCounter::new(
                "cache_writes_skipped_total",
                "API cache writes skipped because the status cache did not answer",
            )
            .expect("valid metric"),
            worker_retries: IntCounter::new(
                "worker_retries_total",
                "Times the worker backed off and retried an event after a backend error",
            )
            .expect("valid metric"),
            worker_in_flight: IntGauge::new(
                "worker_in_flight_events",
                "Events being processed right now",
            )
            .expect("valid metric"),
            worker_paused: IntGauge::new(
                "worker_paused",
                "1 while the worker has paused consumption because a backend is down",
            )
            .expect("valid metric"),
            plugin_active: prometheus::IntGaugeVec::new(
                Opts::new(
                    "plugin_active",
                    "1 for the plugin version this host runs now, 0 for versions it ran before",
                ),
                &["plugin", "version"],
            )
            .expect("valid metric"),
            plugin_announcements: IntCounterVec::new(
                Opts::new(
                    "plugin_announcements_received_total",
                    "Announcements of a registry change heard for a plugin this host runs",
                ),
                &["plugin"],
            )
            .expect("valid metric"),
            plugin_switches: IntCounterVec::new(
                Opts::new(
                    "plugin_switches_total",
                    "Switches to another plugin version or other limits, by what triggered them",
                ),
                &["plugin", "trigger"],
            )
            .expect("valid metric"),
            streams_open: IntGauge::new("streams_open", "Live order streams open now")
                .expect("valid metric"),
            stream_events_sent: IntCounterVec::new(
                Opts::new(
                    "stream_events_sent_total",
                    "Events sent on live order streams, by event name",
                ),
                &["event"],
            )
            .expect("valid metric"),
            stream_catch_ups: IntCounterVec::new(
                Opts::new(
                    "stream_catch_ups_total",
                    "Times a live stream read entries from the store, by cause (missed, gap, tick)",
                ),
                &["cause"],
            )
            .expect("valid metric"),
            feed_publish_failures: IntCounterVec::new(
                Opts::new(
                    "feed_publish_failures_total",
                    "Recorded changes not put on the change feed (streams read them from the store)",
                ),
                &["cause"],
            )
            .expect("valid metric"),
            registry,
        };
        for collector in [
            Box::new(metrics.http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.orders_accepted.clone()),
            Box::new(metrics.events_accepted.clone()),
            Box::new(metrics.events_processed.clone()),
            Box::new(metrics.events_redelivered.clone()),
            Box::new(metrics.worker_order_states.clone()),
            Box::new(metrics.worker_event_step.clone()),
            Box::new(metrics.worker_event_age.clone()),
            Box::new(metrics.dead_letters.clone()),
            Box::new(metrics.plugin_invocations.clone()),
            Box::new(metrics.plugin_duration.clone()),
            Box::new(metrics.plugin_instantiation.clone()),
            Box::new(metrics.plugin_instances.clone()),
            Box::new(metrics.plugin_fuel.clone()),
            Box::new(metrics.plugin_log_dropped.clone()),
            Box::new(metrics.plugin_slot_wait.clone()),
            Box::new(metrics.backend_errors.clone()),
            Box::new(metrics.cache_writes_skipped.clone()),
            Box::new(metrics.worker_retries.clone()),
            Box::new(metrics.worker_in_flight.clone()),
            Box::new(metrics.worker_paused.clone()),
            Box::new(metrics.plugin_active.clone()),
            Box::new(metrics.plugin_announcements.clone()),
            Box::new(metrics.plugin_switches.clone()),
            Box::new(metrics.streams_open.clone()),
            Box::new(metrics.stream_events_sent.clone()),
            Box::new(metrics.stream_catch_ups.clone()),
            Box::new(metrics.feed_publish_failures.clone()),
        ] {
            metrics
                .registry
                .register(collector)
                .expect("metric registered once");
        }
        metrics
    }

    /// Adds metrics kept elsewhere (the near cache's) to this registry.
    pub fn register_all(&self, collectors: Vec<Box<dyn prometheus::core::Collector>>) {
        for collector in collectors {
            if let Err(error) = self.registry.register(collector) {
                tracing::warn!("metric not registered: {error}");
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn backend_error(&self, error: &crate::backend::BackendError) {
        if let Some(backend) = error.backend() {
            self.backend_errors.with_label_values(&[backend]).inc();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn text_logs_escape_control_characters() {
        let written = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(escaped_fields())
            .with_writer(move || WriteTo(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let kind = "paid\n2026-12-03T10:00:00Z  INFO forged line\u{1b}[31m\r";
            tracing::info!(kind = %kind, debugged = ?kind, "event\taccepted");
        });
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(
            text.contains(r"kind=paid\n2026-12-03T10:00:00Z"),
            "{text:?}"
        );
        assert!(text.contains(r"forged line\u{1b}[31m\r"), "{text:?}");
        assert!(text.contains(r"event\taccepted"), "{text:?}");
    }

    struct WriteTo(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
