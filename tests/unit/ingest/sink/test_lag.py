from __future__ import annotations

from confluent_kafka import TopicPartition

from ingest.sink.consumer import partition_lag


def test_partition_lag_skips_unknown_positions_and_watermarks() -> None:
    positions = [
        TopicPartition("t", 0, 5),  # 4 behind a high watermark of 9
        TopicPartition("t", 1, -1001),  # no position yet
        TopicPartition("t", 2, 4),  # no watermark known yet
        TopicPartition("t", 3, 12),  # ahead of a stale watermark: never negative
    ]
    assert partition_lag(positions, [9, 30, -1, 10]) == 4
