"""The batch loop's pure parts: which offsets a batch commits, where a failed one restarts,
and the pipeline handing each topic's messages to its stages with one decode each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faust.types import Message

from processors.batches import first_offsets, next_offsets, oldest_ages
from processors.decoded import decode
from processors.streams import StagePipeline, _Stage
from schemas.events.v1 import Event, RequestEvent


def _message(
    topic: str, partition: int, offset: int, value: bytes = b"{}", timestamp: float = 0.0
) -> Message:
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        headers=[],
        key=None,
        value=value,
        checksum=None,
    )


def test_a_batch_commits_past_its_last_offset_per_partition() -> None:
    batch = [_message("a", 0, 5), _message("a", 1, 9), _message("a", 0, 7), _message("b", 0, 0)]
    assert next_offsets(batch) == {("a", 0): 8, ("a", 1): 10, ("b", 0): 1}


def test_a_batch_reports_its_oldest_record_age_per_topic() -> None:
    batch = [
        _message("a", 0, 5, timestamp=100.0),
        _message("a", 1, 9, timestamp=97.5),
        _message("b", 0, 0, timestamp=101.0),
    ]
    assert oldest_ages(batch, now_s=102.0) == {"a": 4.5, "b": 1.0}


def test_a_failed_batch_is_read_again_from_its_first_offsets() -> None:
    batch = [_message("a", 0, 5), _message("a", 1, 9), _message("a", 0, 7), _message("b", 0, 0)]
    assert first_offsets(batch) == {("a", 0): 5, ("a", 1): 9, ("b", 0): 0}


class _NoOutputs:
    failures = 0


def test_each_stage_gets_its_topics_messages_in_order_decoded_once(
    events: dict[str, Event],
) -> None:
    pipeline = StagePipeline(_NoOutputs())  # type: ignore[arg-type]
    seen: dict[str, list[object]] = {"cost": [], "drift": [], "spend": []}

    def stage(name: str):  # type: ignore[no-untyped-def]
        async def handle(messages: Sequence[Message]) -> None:
            for message in messages:
                event = decode(RequestEvent, message.value) if name != "spend" else message
                seen[name].append(event)

        return handle

    pipeline.stages["req"] = [
        _Stage("cost", stage("cost"), None),
        _Stage("drift", stage("drift"), None),
    ]
    pipeline.stages["spend"] = [_Stage("spend", stage("spend"), None)]
    request = events["request"]
    batch = [
        _message("req", 0, 1, request.to_json()),
        _message("spend", 2, 4),
        _message("req", 0, 2, request.to_json()),
    ]
    asyncio.run(pipeline.handle(batch))
    assert [e.request_id for e in seen["cost"]] == [request.request_id] * 2  # type: ignore[attr-defined]
    # The drift stage got the very objects the cost stage decoded: one validation each.
    assert all(a is b for a, b in zip(seen["cost"], seen["drift"], strict=True))
    assert seen["cost"][0] is not seen["cost"][1]  # equal bytes, two messages: two events
    assert [m.offset for m in seen["spend"]] == [4]  # type: ignore[attr-defined]
