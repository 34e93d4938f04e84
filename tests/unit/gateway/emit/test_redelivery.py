"""RecentDeliveries: acknowledged events kept for a while, all handed back when a
partition's offsets go back (the embedded broker restarted without its data)."""

from __future__ import annotations

from gateway.emit.redelivery import RecentDeliveries
from gateway.emit.spool import SpoolRecord

REQUESTS = "meterline.requests"
SPANS = "meterline.spans"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(n: int, topic: str = REQUESTS) -> SpoolRecord:
    return (topic, f"key-{n % 3}".encode(), f'{{"n":{n}}}'.encode())


def recent(window_s: float = 30.0, max_records: int = 1000) -> tuple[RecentDeliveries, FakeClock]:
    clock = FakeClock()
    return RecentDeliveries(window_s, max_records, clock=clock), clock


def test_increasing_offsets_hand_nothing_back() -> None:
    deliveries, clock = recent()
    for n in range(10):
        clock.now += 0.1
        assert deliveries.delivered(n % 2, 100 + n, record(n)) == []
    # A partition or topic seen for the first time starts anywhere, even at 0.
    assert deliveries.delivered(2, 0, record(10)) == []
    assert deliveries.delivered(0, 0, record(11, SPANS)) == []
    assert len(deliveries) == 12


def test_an_offset_going_back_hands_back_everything_kept_in_order() -> None:
    deliveries, _ = recent()
    sent = [record(n, REQUESTS if n % 3 else SPANS) for n in range(7)]
    offsets = {(REQUESTS, 0): 40, (REQUESTS, 1): 70, (SPANS, 0): 10}
    for n, rec in enumerate(sent):
        slot = (rec[0], n % 2 if rec[0] == REQUESTS else 0)
        offsets[slot] += 1
        assert deliveries.delivered(slot[1], offsets[slot], rec) == []

    # One partition of one topic restarting at 0 means the whole broker did.
    after = record(100)
    assert deliveries.delivered(1, 0, after) == sent
    assert len(deliveries) == 1  # only the new one is kept

    # From here on the new offsets are the reference: going on is fine...
    assert deliveries.delivered(1, 1, record(101)) == []
    assert deliveries.delivered(0, 0, record(102)) == []
    # ...and a second restart hands back what was acknowledged since the first.
    assert deliveries.delivered(0, 0, record(103)) == [after, record(101), record(102)]


def test_the_same_offset_again_counts_as_going_back() -> None:
    deliveries, _ = recent()
    assert deliveries.delivered(0, 5, record(1)) == []
    assert deliveries.delivered(0, 5, record(2)) == [record(1)]


def test_records_older_than_the_window_are_not_kept() -> None:
    deliveries, clock = recent(window_s=30.0)
    deliveries.delivered(0, 1, record(1))  # at 100
    clock.now = 110.0
    deliveries.delivered(0, 2, record(2))
    clock.now = 130.0
    deliveries.delivered(0, 3, record(3))  # record 1 is exactly 30 s old: still kept
    assert len(deliveries) == 3
    clock.now = 135.0
    deliveries.delivered(0, 4, record(4))  # record 1 is now 35 s old
    assert len(deliveries) == 3
    clock.now = 136.0
    assert deliveries.delivered(0, 0, record(5)) == [record(2), record(3), record(4)]


def test_a_restart_after_a_quiet_spell_hands_back_only_what_is_recent() -> None:
    deliveries, clock = recent(window_s=30.0)
    deliveries.delivered(0, 1, record(1))
    deliveries.delivered(1, 1, record(2))
    clock.now = 500.0  # nothing delivered for minutes: all that is long read
    deliveries.delivered(1, 2, record(3))
    clock.now = 510.0
    assert deliveries.delivered(0, 0, record(4)) == [record(3)]

    clock.now = 1000.0  # no delivery at all in between: nothing is recent any more
    assert deliveries.delivered(0, 0, record(5)) == []
    assert len(deliveries) == 1


def test_an_outage_longer_than_the_window_keeps_what_it_put_at_risk() -> None:
    deliveries, clock = recent(window_s=30.0)
    clock.now = 100.0
    deliveries.delivered(0, 7, record(1))  # acknowledged just before the broker died
    clock.now = 101.0
    deliveries.failed()  # the outage starts: deliveries fail
    clock.now = 190.0
    deliveries.failed()
    clock.now = 200.0  # the broker is back, empty, after far longer than the window
    assert deliveries.delivered(0, 0, record(2)) == [record(1)]
    # The outage is over: the window runs on from now.
    clock.now = 300.0
    assert deliveries.delivered(0, 0, record(3)) == []


def test_at_most_max_records_are_kept_the_newest() -> None:
    deliveries, _ = recent(max_records=3)
    for n in range(5):
        deliveries.delivered(0, n, record(n))
    assert len(deliveries) == 3
    assert deliveries.delivered(0, 0, record(5)) == [record(2), record(3), record(4)]


def test_a_zero_window_or_size_disables_it() -> None:
    for window_s, max_records in ((0.0, 1000), (30.0, 0)):
        deliveries, _ = recent(window_s=window_s, max_records=max_records)
        assert not deliveries.enabled
        for n in range(3):
            assert deliveries.delivered(0, n, record(n)) == []
        assert deliveries.delivered(0, 0, record(3)) == []
        assert len(deliveries) == 0
    assert recent()[0].enabled


def test_a_delivery_without_an_offset_is_ignored() -> None:
    deliveries, _ = recent()
    deliveries.delivered(0, 5, record(1))
    assert deliveries.delivered(0, -1001, record(2)) == []  # librdkafka's OFFSET_INVALID
    assert len(deliveries) == 1
    assert deliveries.delivered(0, 6, record(3)) == []
