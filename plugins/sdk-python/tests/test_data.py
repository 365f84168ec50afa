import json

import pytest

from orderpipe_plugin import Attribute, event_data, order_attribute, order_attribute_raw
from orderpipe_plugin.testing import event, order


def test_empty_event_data_reads_as_an_empty_object():
    assert event_data(event("payment_received", "")) == {}
    assert event_data(event("payment_received", "  ")) == {}
    assert event_data(event("payment_received", '{"amount": 3}')) == {"amount": 3}
    with pytest.raises(json.JSONDecodeError):
        event_data(event("payment_received", "{"))


def test_order_attributes_parse_as_json_the_last_one_winning():
    o = order("awaiting_payment")
    o.attributes += [Attribute("total", "1"), Attribute("total", "12.5"), Attribute("broken", "{")]
    assert order_attribute(o, "total") == 12.5
    assert order_attribute(o, "missing") is None
    with pytest.raises(ValueError):
        order_attribute(o, "broken")
    assert order_attribute_raw(o, "broken") == "{"


def test_non_standard_json_constants_are_refused():
    for text in ['{"amount": NaN}', '{"amount": Infinity}', "-Infinity"]:
        with pytest.raises(ValueError, match="is not JSON"):
            event_data(event("payment_received", text))
