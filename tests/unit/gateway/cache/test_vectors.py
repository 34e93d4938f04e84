"""Exact cosine search per partition, the same as brute force."""

from __future__ import annotations

import numpy as np

from gateway.cache.vectors import VectorIndex, unit


def test_nearest_is_the_brute_force_best_through_adds_and_removes() -> None:
    rng = np.random.default_rng(7)
    index = VectorIndex()
    vectors = {}
    for i in range(300):
        vector = unit(list(rng.normal(size=16)))
        assert vector is not None
        vectors[i.to_bytes(2, "big")] = vector
        index.add(b"p", i.to_bytes(2, "big"), vector)
    for i in range(0, 300, 3):
        index.remove(i.to_bytes(2, "big"))
        del vectors[i.to_bytes(2, "big")]
    assert len(index) == 200
    for _ in range(20):
        query = unit(list(rng.normal(size=16)))
        assert query is not None
        best = max(vectors, key=lambda k: float(vectors[k] @ query))
        found = index.nearest(b"p", query)
        assert found is not None and found[0] == best
        assert abs(found[1] - float(vectors[best] @ query)) < 1e-5


def test_partitions_never_mix_and_sizes_must_match() -> None:
    index = VectorIndex()
    v = unit([1.0, 0.0])
    assert v is not None
    index.add(b"acme", b"k1", v)
    assert index.nearest(b"globex", v) is None
    assert index.nearest(b"acme", unit([0.0, 0.0, 1.0])) is None  # type: ignore[arg-type]
    found = index.nearest(b"acme", v)
    assert found is not None and found[0] == b"k1" and abs(found[1] - 1.0) < 1e-6


def test_unit_refuses_what_is_not_a_direction() -> None:
    assert unit([]) is None
    assert unit([0.0, 0.0]) is None
    assert unit([float("nan"), 1.0]) is None
    v = unit([3.0, 4.0])
    assert v is not None and np.allclose(v, [0.6, 0.8])
