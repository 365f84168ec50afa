import pytest

from orderpipe_plugin import HostError, Level, cache, clock, log, store
from orderpipe_plugin.host import clear_host
from orderpipe_plugin.testing import DEFAULT_NOW_MS, FakeHost
from orderpipe_plugin.types import HostError_Unavailable


def test_fake_store_and_cache_round_trip_and_count_calls():
    host = FakeHost()
    store.put("t", "k", "v")
    assert store.get("t", "k") == "v"
    assert host.store_get("t", "k") == "v"
    store.delete("t", "k")
    assert store.get("t", "k") is None

    cache.set("c", "1", 60)
    assert host.cache_ttl("c") == 60
    assert cache.incr("c", 2) == 3
    assert cache.incr("fresh", 5) == 5
    cache.delete("c")
    assert cache.get("c") is None
    assert host.calls() == 9


def test_store_rows_are_listed_sorted():
    host = FakeHost()
    store.put("b", "k", "2")
    store.put("a", "z", "1")
    assert host.store_rows() == [("a", "z", "1"), ("b", "k", "2")]


def test_incr_on_a_non_integer_is_invalid():
    host = FakeHost()
    host.cache_set("word", "hello")
    with pytest.raises(HostError) as raised:
        cache.incr("word", 1)
    assert raised.value.kind == "invalid"


def test_a_quota_turns_later_calls_into_quota_exceeded_errors():
    host = FakeHost()
    host.set_quota(2)
    cache.get("a")
    cache.get("a")
    with pytest.raises(HostError) as raised:
        cache.get("a")
    assert raised.value.reason == "quota-exceeded: host call quota of 2 per event exceeded"


def test_a_failure_applies_until_recovered():
    host = FakeHost()
    host.fail_with(HostError_Unavailable("down"))
    with pytest.raises(HostError) as raised:
        store.get("t", "k")
    assert (raised.value.kind, raised.value.detail, str(raised.value)) == ("unavailable", "down", "unavailable: down")
    host.recover()
    assert store.get("t", "k") is None


def test_logs_and_the_clock_are_recorded():
    host = FakeHost()
    assert clock.now_ms() == DEFAULT_NOW_MS
    host.now_ms = 5
    assert clock.now_ms() == 5
    log.warn("careful")
    assert host.logged(Level.WARN, "care")
    assert not host.logged(Level.INFO, "care")
    assert host.logs() == [(Level.WARN, "careful")]


def test_without_a_host_a_call_says_how_to_get_one():
    clear_host()
    with pytest.raises(RuntimeError, match="FakeHost"):
        cache.get("a")
