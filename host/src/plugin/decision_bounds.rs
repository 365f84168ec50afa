//! The plugin's decision bounds, checked by the host before anything is written: the whole
//! decision's bytes, how many attributes it sets, each key's and value's length. A decision
//! over a bound fails its event with a reason naming the bound; it never reaches the store,
//! the cache or a reader.

use super::bindings::wit;
use super::failure::PluginFailure;
use crate::plugin_limits::PluginLimits;

/// Checks a decision against the plugin's limits; the error names the bound.
pub(crate) fn check(limits: &PluginLimits, decision: &wit::Decision) -> Result<(), PluginFailure> {
    let over = |what: &str, size: usize, limit: &str, bound: u32| {
        PluginFailure::new(format!(
            "the decision's {what} is {size} bytes, over the plugin's {limit} limit of {bound}"
        ))
    };
    let (reason, attributes) = match decision {
        wit::Decision::Transition(t) => (&t.reason, t.attributes.as_slice()),
        wit::Decision::NoChange(reason) | wit::Decision::Reject(reason) => (reason, &[][..]),
    };
    if attributes.len() > limits.attributes as usize {
        return Err(PluginFailure::new(format!(
            "the decision sets {} attributes, over the plugin's attributes limit of {}",
            attributes.len(),
            limits.attributes
        )));
    }
    let mut total = reason.len();
    for attribute in attributes {
        if attribute.key.len() > limits.attribute_key_bytes as usize {
            return Err(over(
                "attribute key",
                attribute.key.len(),
                "attribute_key_bytes",
                limits.attribute_key_bytes,
            ));
        }
        if attribute.value.len() > limits.attribute_value_bytes as usize {
            return Err(over(
                &format!("attribute {:?}", short_key(&attribute.key)),
                attribute.value.len(),
                "attribute_value_bytes",
                limits.attribute_value_bytes,
            ));
        }
        total = total
            .saturating_add(attribute.key.len())
            .saturating_add(attribute.value.len());
    }
    if total > limits.decision_bytes as usize {
        return Err(over(
            "total",
            total,
            "decision_bytes",
            limits.decision_bytes,
        ));
    }
    Ok(())
}

fn short_key(key: &str) -> &str {
    let mut cut = key.len().min(64);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    &key[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(attributes: Vec<(&str, String)>) -> wit::Decision {
        wit::Decision::Transition(wit::Transition {
            to: "paid".into(),
            reason: "ok".into(),
            attributes: attributes
                .into_iter()
                .map(|(key, value)| wit::Attribute {
                    key: key.into(),
                    value,
                })
                .collect(),
        })
    }

    #[test]
    fn a_decision_within_every_bound_passes() {
        let limits = PluginLimits::default();
        assert!(check(&limits, &transition(vec![("total", "12.5".into())])).is_ok());
    }

    #[test]
    fn each_bound_is_named_when_it_is_exceeded() {
        let limits = PluginLimits {
            attributes: 2,
            attribute_key_bytes: 8,
            attribute_value_bytes: 100,
            decision_bytes: 150,
            ..PluginLimits::default()
        };
        let reason = |decision: wit::Decision| check(&limits, &decision).unwrap_err().reason;
        let many = transition(vec![
            ("a", "1".into()),
            ("b", "1".into()),
            ("c", "1".into()),
        ]);
        assert!(reason(many).contains("attributes limit of 2"));
        let long_key = transition(vec![("a-very-long-key", "1".into())]);
        assert!(reason(long_key).contains("attribute_key_bytes limit of 8"));
        let big_value = transition(vec![("blob", format!("\"{}\"", "x".repeat(200)))]);
        assert!(reason(big_value).contains("attribute_value_bytes limit of 100"));
        let big_total = transition(vec![("a", "x".repeat(90)), ("b", "x".repeat(90))]);
        assert!(reason(big_total).contains("decision_bytes limit of 150"));
        let long_reason = wit::Decision::Reject("r".repeat(151));
        assert!(reason(long_reason).contains("decision_bytes"));
    }
}
