"""The llmjacking agent: requests topic -> llmjacking Anomalies and key blocks.

Thin by design: key states, peer baselines and scoring live in `logic.LlmjackingDetector`,
in process memory and snapshotted to `<data_dir>/llmjacking/state.pickle` (store.py
says why not a Faust table). Policies come from the control topic through the budgets'
`ControlReader` (every record from the beginning, no consumer group); a block found
before it has loaded waits in the detector until the org's mode is known.

Requests are keyed by key_id, so one key's requests reach one worker in order and the
key states need no repartition; when a rebalance moves a key's partition, its learned
normal goes along over the internal `llmjacking-keys` topic (handoff.py). The peer
baselines (team, app, org, population) learn from the keys this worker sees and, through
the internal `llmjacking-peers` topic, from every other worker's (peers.py). Unreadable
requests are skipped (the cost agent dead-letters them); a policy of ours that cannot be
used, or an internal error, becomes an llmjacking dead letter.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.types import Message

from meterline.settings import Settings
from processors.dlq import DeadLetterPublisher
from processors.llmjacking.handoff import KeyHandoff
from processors.llmjacking.logic import (
    KIND,
    STAGE,
    LlmjackingDetector,
    request_from_payload,
)
from processors.llmjacking.peers import PeerSharing
from processors.llmjacking.policy import PolicyBook, Publication
from processors.llmjacking.store import load_state, save_state
from processors.llmjacking.tiers import ModelTiers
from processors.metrics import ProcessorMetrics
from processors.streams import (
    Guard,
    consume,
    on_rebalance,
    pipeline,
    policy_reader,
    raw_topic,
    send_all,
)
from schemas.topics import ANOMALIES, ENFORCEMENT, LLMJACKING_KEYS, LLMJACKING_PEERS, REQUESTS

__all__ = ["AGENT_NAME", "register_llmjacking_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "llmjacking"
_SHARE_EVERY_S = 1.0


def register_llmjacking_agent(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> LlmjackingDetector:
    outputs = {name: raw_topic(app, settings, name) for name in (ANOMALIES, ENFORCEMENT)}
    policies = PolicyBook(KIND, settings.processors.llmjacking.default_mode)
    detector = LlmjackingDetector(
        settings.processors.llmjacking,
        policies,
        ModelTiers(settings.price_overrides),
    )
    state_path = settings.data_dir / "llmjacking" / "state.pickle"
    saved = load_state(state_path)
    if saved is not None:
        detector.restore(saved)
        log.info("llmjacking: %d key states restored", len(detector.keys))

    guard = Guard(dead_letters, STAGE, log, "llmjacking")

    async def publish(items: list[Publication]) -> None:
        await send_all(outputs, items)

    control = policy_reader(settings, policies, dead_letters, STAGE)

    output = raw_topic(app, settings, LLMJACKING_KEYS)
    handoff = KeyHandoff(settings, output, detector, metrics.keys_taken_over)
    requests_topic = settings.topic(REQUESTS)

    def observe(message: Message) -> list[Publication]:
        event = request_from_payload(message.value)
        if event is None:
            return []
        if event.key_id is not None:
            handoff.note(event.key_id, message.partition)
        return detector.observe(event)

    async def handle(message: Message) -> None:
        await guard.run(message, observe, publish)

    def persist() -> None:
        try:
            save_state(state_path, detector.state())
        except OSError:
            log.exception("llmjacking: cannot write %s", state_path)

    async def llmjacking_control() -> None:
        await control.run()

    async def llmjacking_policies_loaded() -> None:
        await control.ready.wait()
        await publish(detector.policies_loaded())

    async def llmjacking_persist() -> None:
        persist()

    async def llmjacking_handoff() -> None:
        await handoff.publish()

    async def on_assigned(now: set[tuple[str, int]]) -> None:
        await handoff.assigned({p for topic, p in now if topic == requests_topic})

    async def on_revoked(gone: set[tuple[str, int]]) -> None:
        # Hand the partitions' keys over complete, and acknowledged before the new owner
        # (assigned once every member has revoked) reads them.
        if await handoff.publish({p for topic, p in gone if topic == requests_topic}):
            outputs = pipeline(app, settings).outputs
            await asyncio.get_running_loop().run_in_executor(None, outputs.flush, 10.0)

    # Peer baselines across workers: what this worker's keys taught them, once a second,
    # and what the other workers' keys did (peers.py).
    peers_output = raw_topic(app, settings, LLMJACKING_PEERS)
    sharing = PeerSharing(settings, peers_output, detector.learn_from_peers, metrics.peer_items)

    async def llmjacking_share_peers() -> None:
        await sharing.publish(detector.take_learned())

    async def llmjacking_peer_reader() -> None:
        await sharing.run()

    # No waiting for the policies in the agent: an agent that stalls while the worker joins
    # its group stops receiving (and the worker hangs on stop). Blocks found before the
    # policies loaded wait in the detector instead (`policies_loaded`). On exit, persist:
    # a clean stop keeps everything learned.
    consume(app, raw_topic(app, settings, REQUESTS), AGENT_NAME, metrics, handle, persist)
    app.task(llmjacking_control)
    app.task(llmjacking_policies_loaded)
    app.task(llmjacking_peer_reader)
    app.timer(_SHARE_EVERY_S, name="llmjacking_share_peers")(llmjacking_share_peers)
    app.timer(settings.processors.llmjacking.persist_interval_s, name="llmjacking_persist")(
        llmjacking_persist
    )
    app.timer(settings.processors.llmjacking.handoff_interval_s, name="llmjacking_handoff")(
        llmjacking_handoff
    )
    on_rebalance(app, on_assigned, on_revoked)
    return detector
