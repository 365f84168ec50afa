import math

from orderpipe_plugin import (
    Attribute,
    Decision_NoChange,
    Decision_Reject,
    Decision_Transition,
    Transition,
    decision_attribute,
    is_reject,
    no_change,
    reason_of,
    reject,
    transition,
    transition_to,
)


def test_transition_encodes_each_attribute_as_json_text():
    decision = transition("paid", "payment received", {"total": 12.5, "currency": "EUR", "n": 3.0})
    assert decision == Decision_Transition(
        Transition(
            to="paid",
            reason="payment received",
            attributes=[
                Attribute("total", "12.5"),
                Attribute("currency", '"EUR"'),
                Attribute("n", "3.0"),
            ],
        )
    )
    assert transition_to(decision) == "paid"
    assert decision_attribute(decision, "total") == 12.5
    assert decision_attribute(decision, "missing") is None


def test_an_attribute_json_cannot_represent_turns_the_decision_into_a_reject_naming_it():
    decision = transition("paid", "ok", {"tags": {"a", "b"}})
    assert is_reject(decision)
    assert reason_of(decision).startswith("attribute tags is not valid JSON: ")
    assert reason_of(transition("paid", "ok", {"x": math.nan})).startswith("attribute x is not valid JSON: ")


def test_no_change_and_reject_carry_their_reason_and_no_target():
    assert no_change("noted") == Decision_NoChange("noted")
    assert reject("no") == Decision_Reject("no")
    assert transition_to(reject("no")) is None
    assert reason_of(no_change("noted")) == "noted"
    assert not is_reject(no_change("noted"))
    assert decision_attribute(reject("no"), "total") is None
