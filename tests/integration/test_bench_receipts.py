"""`motus bench receipts` against the real broker: both ways get every receipt acknowledged, each
with the window it claims."""

import pytest

from bench.receipts import _receipts, run

pytestmark = pytest.mark.integration


def test_the_receipts_bench_measures_both_ways_to_the_last_puback(local_stack):
    figures = run(local_stack, devices=120, batches=3)  # raises if a receipt stays unacknowledged
    assert (figures["paho_window"], figures["bulk_window"]) == (20, 1000)  # paho's own; the broker's
    assert (figures["receipts_per_batch"], figures["batches"]) == (120, 3)
    assert figures["paho_cpu_us_per_receipt"] > 0 and figures["bulk_cpu_us_per_receipt"] > 0


def test_a_batch_holds_one_receipt_per_device_on_its_own_topic():
    receipts = _receipts(50, batch=4)
    assert len({topic for topic, _ in receipts}) == 50
    assert all(topic.endswith("/receipts") and b'"stored":[[5,5]]' in payload for topic, payload in receipts)
