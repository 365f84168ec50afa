//! Helpers on the contract's types: building decisions and state machines, and reading the
//! JSON that orders and events carry. The types themselves come from `wit/plugin.wit`; this
//! module only adds methods and never changes what crosses the boundary.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    Attribute, Decision, Edge, Event, HostError, Order, PluginInfo, StateMachine, Transition,
};

impl Decision {
    /// Move the order to `to`, recording `reason` in its history.
    pub fn transition(to: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision::Transition(Transition {
            to: to.into(),
            reason: reason.into(),
            attributes: Vec::new(),
        })
    }

    /// Accept the event but keep the order's status.
    pub fn no_change(reason: impl Into<String>) -> Self {
        Decision::NoChange(reason.into())
    }

    /// Refuse the event; the order is unchanged and `reason` is recorded.
    pub fn reject(reason: impl Into<String>) -> Self {
        Decision::Reject(reason.into())
    }

    /// Sets an attribute on the order as part of a transition; `value` is stored as JSON.
    ///
    /// Only a transition carries attributes: on `no_change` or `reject` this does nothing.
    /// A value serde_json cannot represent (a map with non-string keys, a failing `Serialize`)
    /// turns the decision into a reject that names the attribute, rather than a trap.
    pub fn with_attribute<T: Serialize + ?Sized>(self, key: impl Into<String>, value: &T) -> Self {
        let Decision::Transition(mut transition) = self else {
            return self;
        };
        let key = key.into();
        match serde_json::to_string(value) {
            Ok(value) => {
                transition
                    .attributes
                    .retain(|attribute| attribute.key != key);
                transition.attributes.push(Attribute { key, value });
                Decision::Transition(transition)
            }
            Err(error) => Decision::reject(format!("attribute {key} is not valid JSON: {error}")),
        }
    }

    /// The status a transition moves to; `None` for `no_change` and `reject`.
    pub fn transition_to(&self) -> Option<&str> {
        match self {
            Decision::Transition(transition) => Some(&transition.to),
            Decision::NoChange(_) | Decision::Reject(_) => None,
        }
    }

    /// Whether the event was refused.
    pub fn is_reject(&self) -> bool {
        matches!(self, Decision::Reject(_))
    }

    /// The reason recorded with the decision, whatever its kind.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Transition(transition) => &transition.reason,
            Decision::NoChange(reason) | Decision::Reject(reason) => reason,
        }
    }

    /// An attribute a transition sets, parsed from its JSON; `Ok(None)` when it sets no such
    /// attribute (or the decision is not a transition).
    pub fn attribute<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, serde_json::Error> {
        match self {
            Decision::Transition(transition) => parse_attribute(&transition.attributes, key),
            Decision::NoChange(_) | Decision::Reject(_) => Ok(None),
        }
    }
}

impl Order {
    /// An attribute's JSON text as stored; the last one wins if the key repeats.
    pub fn attribute_raw(&self, key: &str) -> Option<&str> {
        find_attribute(&self.attributes, key)
    }

    /// An attribute parsed from its JSON; `Ok(None)` when the order has no such attribute.
    pub fn attribute<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, serde_json::Error> {
        parse_attribute(&self.attributes, key)
    }
}

impl Event {
    /// The event's data parsed from its JSON; empty data reads as `{}`.
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let data = if self.data.trim().is_empty() {
            "{}"
        } else {
            &self.data
        };
        serde_json::from_str(data)
    }
}

impl StateMachine {
    /// A state machine with only its initial state (`created` for order pipelines). Add
    /// edges with [`StateMachine::edge`]; their states are added as they appear.
    pub fn new(initial: impl Into<String>) -> Self {
        let initial = initial.into();
        StateMachine {
            states: vec![initial.clone()],
            initial,
            transitions: Vec::new(),
        }
    }

    /// Adds a state that no edge mentions (yet).
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.add_state(state.into());
        self
    }

    /// Allows moving from `from` to `to`, adding either state if it is new.
    pub fn edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        let (from, to) = (from.into(), to.into());
        self.add_state(from.clone());
        self.add_state(to.clone());
        if !self.allows(&from, &to) {
            self.transitions.push(Edge { from, to });
        }
        self
    }

    /// Whether `from` → `to` is an edge.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.transitions
            .iter()
            .any(|edge| edge.from == from && edge.to == to)
    }

    fn add_state(&mut self, state: String) {
        if !self.states.contains(&state) {
            self.states.push(state);
        }
    }
}

impl PluginInfo {
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        state_machine: StateMachine,
    ) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            state_machine,
        }
    }
}

impl HostError {
    /// `invalid`, `quota-exceeded` or `unavailable`, as in the WIT.
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Invalid(_) => "invalid",
            HostError::QuotaExceeded(_) => "quota-exceeded",
            HostError::Unavailable(_) => "unavailable",
        }
    }

    /// The host's explanation.
    pub fn message(&self) -> &str {
        match self {
            HostError::Invalid(message)
            | HostError::QuotaExceeded(message)
            | HostError::Unavailable(message) => message,
        }
    }

    /// `kind: message`, ready for a decision's reason or a log line.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.kind(), self.message())
    }
}

impl Attribute {
    /// An attribute whose value is `value` as JSON text.
    pub fn json<T: Serialize + ?Sized>(
        key: impl Into<String>,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Attribute {
            key: key.into(),
            value: serde_json::to_string(value)?,
        })
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .rev()
        .find(|attribute| attribute.key == key)
        .map(|attribute| attribute.value.as_str())
}

fn parse_attribute<T: DeserializeOwned>(
    attributes: &[Attribute],
    key: &str,
) -> Result<Option<T>, serde_json::Error> {
    find_attribute(attributes, key)
        .map(serde_json::from_str)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn transition_carries_attributes_as_json() {
        let decision = Decision::transition("paid", "payment received")
            .with_attribute("total", &12.5)
            .with_attribute("currency", "EUR");
        let Decision::Transition(transition) = &decision else {
            panic!("expected a transition, got {decision:?}");
        };
        assert_eq!(transition.to, "paid");
        assert_eq!(transition.attributes[0].value, "12.5");
        assert_eq!(transition.attributes[1].value, "\"EUR\"");
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(12.5));
    }

    #[test]
    fn setting_an_attribute_twice_keeps_the_last_value() {
        let decision = Decision::transition("paid", "")
            .with_attribute("n", &1)
            .with_attribute("n", &2);
        assert_eq!(decision.attribute::<i64>("n").unwrap(), Some(2));
        let Decision::Transition(transition) = decision else {
            unreachable!()
        };
        assert_eq!(transition.attributes.len(), 1);
    }

    #[test]
    fn attributes_on_a_reject_are_ignored() {
        let decision = Decision::reject("no").with_attribute("total", &1);
        assert_eq!(decision, Decision::Reject("no".into()));
    }

    #[test]
    fn unserializable_attribute_becomes_a_reject() {
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), "pair keys are not JSON object keys");
        let decision = Decision::transition("paid", "").with_attribute("map", &map);
        assert!(decision.is_reject());
        assert!(
            decision.reason().contains("attribute map"),
            "{}",
            decision.reason()
        );
    }

    #[test]
    fn state_machine_builder_collects_states_in_order() {
        let machine = StateMachine::new("created")
            .edge("created", "processed")
            .edge("processed", "done")
            .edge("created", "processed")
            .state("orphan");
        assert_eq!(machine.initial, "created");
        assert_eq!(machine.states, ["created", "processed", "done", "orphan"]);
        assert_eq!(machine.transitions.len(), 2);
        assert!(machine.allows("created", "processed"));
        assert!(!machine.allows("created", "done"));
    }

    #[test]
    fn order_attribute_reads_json() {
        let mut order = testing::order("awaiting_payment");
        order
            .attributes
            .push(Attribute::json("total", &12.5).unwrap());
        order.attributes.push(Attribute {
            key: "broken".into(),
            value: "{".into(),
        });
        assert_eq!(order.attribute::<f64>("total").unwrap(), Some(12.5));
        assert_eq!(order.attribute::<f64>("missing").unwrap(), None);
        assert!(order.attribute::<f64>("broken").is_err());
        assert_eq!(order.attribute_raw("broken"), Some("{"));
    }

    #[test]
    fn empty_event_data_reads_as_an_empty_object() {
        #[derive(serde::Deserialize)]
        struct Data {
            amount: Option<f64>,
        }
        let data: Data = testing::event("payment_received", "").data_json().unwrap();
        assert_eq!(data.amount, None);
        let data: Data = testing::event("payment_received", r#"{"amount": 3}"#)
            .data_json()
            .unwrap();
        assert_eq!(data.amount, Some(3.0));
    }

    #[test]
    fn host_error_reason_names_its_kind() {
        let error = HostError::QuotaExceeded("100 calls".into());
        assert_eq!(error.reason(), "quota-exceeded: 100 calls");
    }
}
