"""ConsumptionHealth: healthy only when the broker answered, every topic is right and this
worker has partitions; otherwise the reasons, and for how long it has been unavailable."""

from __future__ import annotations

from processors.health import ConsumptionHealth, Probe


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GOOD = Probe(reachable=True)


def health() -> tuple[ConsumptionHealth, FakeClock]:
    clock = FakeClock()
    return ConsumptionHealth(clock=clock), clock


def test_not_probed_yet_is_unavailable() -> None:
    state, _ = health()
    assert state.report() == (False, {"status": "unavailable", "reasons": ["not probed yet"]})
    state.update(assigned_partitions=4)  # an assignment alone is not enough
    healthy, body = state.report()
    assert not healthy and body["reasons"] == ["not probed yet"]
    assert body["unavailable_for_s"] == 0.0


def test_an_unreachable_broker_is_the_only_reason_given() -> None:
    state, clock = health()
    state.update(Probe(reachable=False, error="KafkaError{code=_TRANSPORT}"), assigned_partitions=0)
    clock.now += 12.34
    assert state.report() == (
        False,
        {
            "status": "unavailable",
            "reasons": ["broker unreachable: KafkaError{code=_TRANSPORT}"],
            "unavailable_for_s": 12.3,
        },
    )


def test_missing_or_wrong_topics_are_listed() -> None:
    state, _ = health()
    problems = ("t.meterline.costs missing", "t.meterline.requests has 1 partitions, not 2")
    state.update(Probe(reachable=True, problems=problems), assigned_partitions=2)
    healthy, body = state.report()
    assert not healthy and body["status"] == "unavailable"
    assert body["reasons"] == list(problems)


def test_no_assignment_is_unavailable() -> None:
    state, _ = health()
    state.update(GOOD)
    healthy, body = state.report()
    assert not healthy and body["reasons"] == ["no partitions assigned yet"]
    state.update(Probe(reachable=True, problems=("t.x missing",)))
    assert state.reasons() == ["t.x missing", "no partitions assigned yet"]


def test_all_good_is_ok_and_clears_unhealthy_since() -> None:
    state, clock = health()
    state.update(GOOD)
    assert state.unhealthy_since == 1000.0
    clock.now = 1005.0
    state.update(assigned_partitions=3)  # the probe is kept when only the assignment changes
    assert state.report() == (True, {"status": "ok"})
    assert state.unhealthy_since is None

    clock.now = 1010.0
    state.update(Probe(reachable=False, error="down"))
    clock.now = 1017.0
    state.update(Probe(reachable=False, error="still down"))  # keeps the first time
    assert state.unhealthy_since == 1010.0
    assert state.report()[1]["unavailable_for_s"] == 7.0
    state.update(GOOD)  # the assignment was kept too
    assert state.report() == (True, {"status": "ok"})
    assert state.unhealthy_since is None

    state.update(assigned_partitions=0)  # a revocation
    assert state.report()[1]["reasons"] == ["no partitions assigned yet"]
    assert state.unhealthy_since == 1017.0
