//! The fixture files of `orderpipe plugin test`: orders, the events to deliver to each, and
//! what should come of them. JSON, documented for authors in the template's README:
//!
//! ```json
//! {
//!   "fixtures": [
//!     {
//!       "name": "a small order is approved",
//!       "order": {"customer": "ada", "items": [{"sku": "A-1", "qty": 2, "unit_price": 9.99}]},
//!       "events": [
//!         {"type": "created", "expect": "approved"},
//!         {"type": "reviewed", "data": {"approve": true}, "expect": {"outcome": "rejected"}}
//!       ],
//!       "expect": {"status": "approved", "attributes": {"total": 19.98}}
//!     }
//!   ]
//! }
//! ```
//!
//! This module only reads and checks; running the events is [`super::plugin_test`]'s job.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::order::{INITIAL_STATUS, OrderRequest, Outcome};

/// The most fixtures one file may hold, and events one fixture may deliver: fixtures are
/// written by hand, so more is almost certainly a generator gone wrong.
const MAX_FIXTURES: usize = 1_000;
const MAX_EVENTS: usize = 1_000;

/// One order and the events delivered to it, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixture {
    /// What the fixture shows; printed with its results. Default: `fixture <n>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The order as `POST /api/orders` takes it. Default: an empty order.
    #[serde(default)]
    pub order: OrderRequest,
    /// The order's id. Default: a fixed id per fixture, so runs print the same host calls.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// The status the order starts in. Default: `created`, as the API stores it.
    #[serde(default)]
    pub status: Option<String>,
    /// Rows the plugin's store holds before the first event: `{"table": {"key": "value"}}`.
    #[serde(default)]
    pub store: BTreeMap<String, BTreeMap<String, String>>,
    /// Keys the plugin's cache holds before the first event: `{"key": "value"}`.
    #[serde(default)]
    pub cache: BTreeMap<String, String>,
    /// Delivered one after the other; the `created` event is not implicit.
    pub events: Vec<FixtureEvent>,
    /// What must hold after the last event.
    #[serde(default)]
    pub expect: Option<Expectation>,
}

/// One event, as `POST /api/orders/<id>/events` takes it, plus an optional expectation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FixtureEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
    /// When the event happened (ms since the epoch). Default: now.
    #[serde(default)]
    pub at_ms: Option<i64>,
    /// What must hold right after this event.
    #[serde(default)]
    pub expect: Option<Expectation>,
}

/// What must hold after an event: a status (`"paid"`) or any of these fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expectation {
    /// The order's status.
    pub status: Option<String>,
    /// How the event ended.
    pub outcome: Option<Outcome>,
    /// Text the decision's reason (or the failure's) contains.
    pub reason: Option<String>,
    /// Attributes the order has, with these values (numbers compare as numbers).
    pub attributes: Map<String, Value>,
}

/// What happened to the order at one event: what an [`Expectation`] is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Step<'a> {
    pub status: &'a str,
    pub outcome: Outcome,
    pub reason: &'a str,
    pub attributes: &'a Map<String, Value>,
}

impl Expectation {
    /// Every way `step` differs from the expectation; empty when it holds.
    pub fn mismatches(&self, step: &Step<'_>) -> Vec<String> {
        let mut mismatches = Vec::new();
        if let Some(status) = &self.status
            && status != step.status
        {
            mismatches.push(format!("expected status {status}, got {}", step.status));
        }
        if let Some(outcome) = self.outcome
            && outcome != step.outcome
        {
            mismatches.push(format!(
                "expected outcome {}, got {}",
                outcome.as_str(),
                step.outcome.as_str()
            ));
        }
        if let Some(reason) = &self.reason
            && !step.reason.contains(reason.as_str())
        {
            mismatches.push(format!(
                "expected a reason containing {reason:?}, got {:?}",
                step.reason
            ));
        }
        for (key, expected) in &self.attributes {
            match step.attributes.get(key) {
                Some(actual) if json_eq(expected, actual) => {}
                Some(actual) => mismatches.push(format!(
                    "expected attribute {key} = {expected}, got {actual}"
                )),
                None => mismatches.push(format!(
                    "expected attribute {key} = {expected}, the order has none"
                )),
            }
        }
        mismatches
    }

    /// The statuses this expectation names, to check them against the state machine.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
}

/// `status paid, outcome rejected, reason contains "late", attribute total = 3`.
impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(status) = &self.status {
            parts.push(format!("status {status}"));
        }
        if let Some(outcome) = self.outcome {
            parts.push(format!("outcome {}", outcome.as_str()));
        }
        if let Some(reason) = &self.reason {
            parts.push(format!("reason contains {reason:?}"));
        }
        for (key, value) in &self.attributes {
            parts.push(format!("attribute {key} = {value}"));
        }
        if parts.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&parts.join(", "))
    }
}

/// JSON equality where numbers compare by value: `150` equals `150.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| json_eq(a, b)))
        }
        (a, b) => a == b,
    }
}

/// The two spellings of an expectation in JSON.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a status such as \"paid\", or an object with any of \"status\", \"outcome\", \"reason\", \"attributes\""
)]
enum ExpectationSpec {
    Status(String),
    Fields(ExpectationFields),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationFields {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    outcome: Option<OutcomeSpec>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// An outcome as the history names it, or as the plugin's decision does.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeSpec {
    #[serde(alias = "transition")]
    Transitioned,
    #[serde(alias = "no_change", alias = "no-change")]
    Unchanged,
    #[serde(alias = "reject")]
    Rejected,
    #[serde(alias = "failure")]
    Failed,
}

impl From<OutcomeSpec> for Outcome {
    fn from(spec: OutcomeSpec) -> Self {
        match spec {
            OutcomeSpec::Transitioned => Outcome::Transitioned,
            OutcomeSpec::Unchanged => Outcome::Unchanged,
            OutcomeSpec::Rejected => Outcome::Rejected,
            OutcomeSpec::Failed => Outcome::Failed,
        }
    }
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match ExpectationSpec::deserialize(deserializer)? {
            ExpectationSpec::Status(status) => Expectation {
                status: Some(status),
                ..Expectation::default()
            },
            ExpectationSpec::Fields(fields) => Expectation {
                status: fields.status,
                outcome: fields.outcome.map(Outcome::from),
                reason: fields.reason,
                attributes: fields.attributes,
            },
        })
    }
}

impl Fixture {
    /// The name it is printed with; `number` counts from 1 within its file.
    pub fn title(&self, number: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("fixture {number}"))
    }

    /// The status the order starts in.
    pub fn initial_status(&self) -> &str {
        self.status.as_deref().unwrap_or(INITIAL_STATUS)
    }

    /// The fixture's order id, or a fixed one derived from its place in the file.
    pub fn order_id(&self, number: usize) -> Uuid {
        self.id.unwrap_or_else(|| fixed_id(number as u128))
    }

    /// A fixed id for the `event`th event (from 1) of the `number`th fixture.
    pub fn event_id(number: usize, event: usize) -> Uuid {
        fixed_id(((number as u128) << 24) | event as u128)
    }
}

/// `00000000-0000-4000-8000-xxxxxxxxxxxx`: a well-formed v4 id that reads as a number.
fn fixed_id(n: u128) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | (n & 0xffff_ffff_ffff))
}

/// Reads a fixture file: `{"fixtures": [...]}`, or just the array. Errors name the file and
/// the JSON path of the problem.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<Fixture>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading fixtures {}", path.display()))?;
    parse(&text).with_context(|| format!("fixtures {}", path.display()))
}

pub(crate) fn parse(text: &str) -> anyhow::Result<Vec<Fixture>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        fixtures: Vec<Fixture>,
    }
    let value: Value = serde_json::from_str(text).context("not valid JSON")?;
    let fixtures = if value.is_array() {
        serde_path_to_error::deserialize::<_, Vec<Fixture>>(value)
            .map_err(|e| anyhow::anyhow!("at {}: {}", e.path(), e.inner()))?
    } else {
        serde_path_to_error::deserialize::<_, File>(value)
            .map_err(|e| anyhow::anyhow!("at {}: {}", e.path(), e.inner()))?
            .fixtures
    };
    anyhow::ensure!(!fixtures.is_empty(), "the file holds no fixtures");
    anyhow::ensure!(
        fixtures.len() <= MAX_FIXTURES,
        "{} fixtures in one file (at most {MAX_FIXTURES})",
        fixtures.len()
    );
    for (index, fixture) in fixtures.iter().enumerate() {
        let title = fixture.title(index + 1);
        anyhow::ensure!(!fixture.events.is_empty(), "{title:?} has no events");
        anyhow::ensure!(
            fixture.events.len() <= MAX_EVENTS,
            "{title:?} has {} events (at most {MAX_EVENTS})",
            fixture.events.len()
        );
    }
    Ok(fixtures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fixtures_read_with_both_spellings_of_an_expectation() {
        let fixtures = parse(
            r#"{"fixtures": [{
                "name": "paid",
                "order": {"items": [{"sku": "A", "qty": 1, "unit_price": 2.5}]},
                "store": {"t": {"k": "v"}},
                "cache": {"payment:p-0": "another-event"},
                "events": [
                    {"type": "created", "expect": "awaiting_payment"},
                    {"type": "payment_received", "data": {"amount": 2.5},
                     "expect": {"outcome": "transition", "reason": "received", "attributes": {"paid_amount": 2.5}}}
                ],
                "expect": {"status": "paid"}
            }]}"#,
        )
        .unwrap();
        let fixture = &fixtures[0];
        assert_eq!(fixture.initial_status(), "created");
        assert_eq!(fixture.store["t"]["k"], "v");
        assert_eq!(fixture.cache["payment:p-0"], "another-event");
        assert_eq!(
            fixture.events[0].expect.as_ref().unwrap().status(),
            Some("awaiting_payment")
        );
        let second = fixture.events[1].expect.clone().unwrap();
        assert_eq!(second.outcome, Some(Outcome::Transitioned));
        assert_eq!(second.attributes.get("paid_amount"), Some(&json!(2.5)));
        assert_eq!(fixture.expect.as_ref().unwrap().status(), Some("paid"));
    }

    #[test]
    fn a_bare_array_is_a_fixture_file_too() {
        let fixtures = parse(r#"[{"events": [{"type": "created"}]}]"#).unwrap();
        assert_eq!(fixtures[0].title(1), "fixture 1");
        assert!(fixtures[0].events[0].data.is_null());
    }

    #[test]
    fn mistakes_name_their_place() {
        let error = parse(r#"{"fixtures": [{"events": [{"type": "created", "expct": "paid"}]}]}"#)
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("fixtures[0].events[0]"), "{message}");
        assert!(message.contains("expct"), "{message}");

        let error = parse(r#"[{"events": [{"type": "x", "expect": 3}]}]"#).unwrap_err();
        assert!(
            format!("{error:#}").contains("a status such as"),
            "{error:#}"
        );

        let error = parse(r#"[{"name": "empty", "events": []}]"#).unwrap_err();
        assert!(
            format!("{error:#}").contains("\"empty\" has no events"),
            "{error:#}"
        );
    }

    #[test]
    fn expectations_report_every_mismatch() {
        let attributes = json!({"total": 150.0, "currency": "EUR"});
        let step = Step {
            status: "in_review",
            outcome: Outcome::Transitioned,
            reason: "total 150.00 is above 100.00",
            attributes: attributes.as_object().unwrap(),
        };
        let holds = Expectation {
            status: Some("in_review".into()),
            outcome: Some(Outcome::Transitioned),
            reason: Some("above".into()),
            attributes: json!({"total": 150}).as_object().unwrap().clone(),
        };
        assert!(holds.mismatches(&step).is_empty());
        let fails = Expectation {
            status: Some("approved".into()),
            outcome: Some(Outcome::Rejected),
            reason: Some("below".into()),
            attributes: json!({"total": 15, "missing": 1})
                .as_object()
                .unwrap()
                .clone(),
        };
        assert_eq!(
            fails.mismatches(&step).len(),
            5,
            "{:?}",
            fails.mismatches(&step)
        );
        assert_eq!(
            fails.to_string(),
            "status approved, outcome rejected, reason contains \"below\", attribute missing = 1, attribute total = 15"
        );
    }

    #[test]
    fn fixed_ids_differ_per_fixture_and_event() {
        let fixture = parse(r#"[{"events": [{"type": "created"}]}]"#)
            .unwrap()
            .remove(0);
        assert_eq!(
            fixture.order_id(1).to_string(),
            "00000000-0000-4000-8000-000000000001"
        );
        assert_ne!(Fixture::event_id(1, 1), Fixture::event_id(2, 1));
        assert_ne!(Fixture::event_id(1, 1), fixture.order_id(1));
    }
}
