"""The ingest's per-batch metric updates say what per-value ones would."""

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from ingest.metrics import observe_many

BUCKETS = (0.05, 0.1, 0.5, 1, 5)


@given(st.lists(st.one_of(st.sampled_from([0.0, *BUCKETS, 7.5]), st.floats(0, 20)), max_size=30))
def test_observing_a_batch_at_once_equals_observing_each_value(values):
    registry = CollectorRegistry()
    each = Histogram("each", "", buckets=BUCKETS, registry=registry)
    at_once = Histogram("at_once", "", buckets=BUCKETS, registry=registry)
    for value in values:
        each.observe(value)
    observe_many(at_once, values)

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name.removeprefix(name), s.labels, round(s.value, 9))
                for metric in registry.collect() if metric.name == name for s in metric.samples
                if not s.name.endswith("_created")]

    assert samples("at_once") == samples("each")
    assert samples("each")  # the buckets, count and sum are there to compare
