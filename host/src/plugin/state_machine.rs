//! A plugin's declared state machine, checked once at load and on every decision.

use std::collections::{BTreeSet, HashSet};

use crate::order::INITIAL_STATUS;

/// The most states a plugin may declare; a bound on what hostile input can make us store.
const MAX_STATES: usize = 256;
/// The most transitions a plugin may declare.
const MAX_TRANSITIONS: usize = 4096;
/// The longest state name.
const MAX_STATE_NAME_BYTES: usize = 64;

/// States, the initial state and the allowed edges a plugin declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachine {
    states: BTreeSet<String>,
    initial: String,
    edges: HashSet<(String, String)>,
    /// The states some edge leaves.
    with_exits: BTreeSet<String>,
}

impl StateMachine {
    /// Validates a declared state machine: a bounded number of well-formed states, the
    /// initial state is `created`, and every edge joins two declared states.
    pub fn new(
        states: Vec<String>,
        initial: String,
        edges: Vec<(String, String)>,
    ) -> Result<Self, String> {
        if states.is_empty() {
            return Err("the state machine declares no states".into());
        }
        if states.len() > MAX_STATES {
            return Err(format!(
                "the state machine declares {} states (at most {MAX_STATES})",
                states.len()
            ));
        }
        if edges.len() > MAX_TRANSITIONS {
            return Err(format!(
                "the state machine declares {} transitions (at most {MAX_TRANSITIONS})",
                edges.len()
            ));
        }
        let mut declared = BTreeSet::new();
        for state in states {
            let well_formed = !state.is_empty()
                && state.len() <= MAX_STATE_NAME_BYTES
                && state
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !well_formed {
                return Err(format!(
                    "state {state:?} is not a name of 1 to {MAX_STATE_NAME_BYTES} letters, digits, '_' or '-'"
                ));
            }
            if !declared.insert(state.clone()) {
                return Err(format!("state {state:?} is declared twice"));
            }
        }
        if initial != INITIAL_STATUS {
            return Err(format!(
                "the initial state is {initial:?}; order pipelines start at {INITIAL_STATUS:?}"
            ));
        }
        if !declared.contains(&initial) {
            return Err(format!(
                "the initial state {initial:?} is not among the declared states"
            ));
        }
        for (from, to) in &edges {
            for end in [from, to] {
                if !declared.contains(end) {
                    return Err(format!(
                        "transition {from} -> {to} names the undeclared state {end:?}"
                    ));
                }
            }
        }
        let with_exits = edges.iter().map(|(from, _)| from.clone()).collect();
        Ok(Self {
            states: declared,
            initial,
            edges: edges.into_iter().collect(),
            with_exits,
        })
    }

    pub fn initial(&self) -> &str {
        &self.initial
    }

    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.states.iter().map(String::as_str)
    }

    /// Whether `from -> to` is a declared edge.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.edges.contains(&(from.to_owned(), to.to_owned()))
    }

    /// Whether no declared edge leaves `state`: an order there is done, as far as this
    /// state machine goes (a later version may add edges; nothing relies on this for more
    /// than not keeping the order's state around).
    pub fn is_final(&self, state: &str) -> bool {
        !self.with_exits.contains(state)
    }

    /// Why `from -> to` is refused, or `None` when it is allowed.
    pub fn refusal(&self, from: &str, to: &str) -> Option<String> {
        if !self.states.contains(to) {
            return Some(format!(
                "illegal transition {from} -> {to}: {to:?} is not a state of the plugin's state machine"
            ));
        }
        if !self.allows(from, to) {
            return Some(format!(
                "illegal transition {from} -> {to}: not an allowed transition of the plugin's state machine"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn e(from: &str, to: &str) -> (String, String) {
        (from.into(), to.into())
    }

    #[test]
    fn accepts_a_valid_machine_and_checks_edges() {
        let sm = StateMachine::new(
            s(&["created", "paid"]),
            "created".into(),
            vec![e("created", "paid")],
        )
        .unwrap();
        assert!(sm.allows("created", "paid"));
        assert!(!sm.allows("paid", "created"));
        assert!(!sm.is_final("created"));
        assert!(sm.is_final("paid"));
        assert!(sm.refusal("created", "paid").is_none());
        assert!(
            sm.refusal("paid", "created")
                .unwrap()
                .contains("not an allowed transition")
        );
        assert!(
            sm.refusal("created", "shipped")
                .unwrap()
                .contains("not a state")
        );
    }

    #[test]
    fn rejects_edges_to_undeclared_states() {
        let err = StateMachine::new(
            s(&["created"]),
            "created".into(),
            vec![e("created", "gone")],
        )
        .unwrap_err();
        assert!(err.contains("undeclared state \"gone\""), "{err}");
    }

    #[test]
    fn rejects_an_initial_state_other_than_created() {
        let err = StateMachine::new(s(&["new"]), "new".into(), vec![]).unwrap_err();
        assert!(err.contains("start at \"created\""), "{err}");
    }

    #[test]
    fn rejects_duplicate_and_malformed_states() {
        assert!(StateMachine::new(s(&["created", "created"]), "created".into(), vec![]).is_err());
        assert!(StateMachine::new(s(&["created", "no spaces"]), "created".into(), vec![]).is_err());
        assert!(StateMachine::new(vec![], "created".into(), vec![]).is_err());
    }
}
