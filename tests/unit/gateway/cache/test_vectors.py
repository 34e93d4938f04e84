"""Cosine search per partition: exact (the same as brute force) and, in large partitions,
through the ANN index."""

from __future__ import annotations

import numpy as np

from gateway.cache.vectors import ANN_MIN_ENTRIES, VectorIndex, unit


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


def test_a_large_partition_is_searched_through_the_ann_index_and_finds_what_is_close() -> None:
    rng = np.random.default_rng(11)
    index = VectorIndex()
    count = ANN_MIN_ENTRIES + 500
    matrix = rng.normal(size=(count, 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    for i, vector in enumerate(matrix):
        index.add(b"p", i.to_bytes(4, "big"), vector)
    part = index._parts[b"p"]
    assert part.ann is not None and part.ann.get_current_count() == count
    # A paraphrase: a stored prompt's vector nudged a little. HNSW finds it (recall ~1 at
    # this size), and the similarity reported is the exact cosine.
    hits = 0
    for i in rng.choice(count, size=50, replace=False):
        query = unit(list(matrix[i] + rng.normal(scale=0.05, size=32)))
        assert query is not None
        found = index.nearest(b"p", query)
        assert found is not None
        key, similarity = found
        assert abs(similarity - float(matrix[int.from_bytes(key, "big")] @ query)) < 1e-5
        hits += key == int(i).to_bytes(4, "big")
    assert hits >= 48
    # Evicting below half the threshold drops the index: exact search again, exactly.
    for i in range(count - ANN_MIN_ENTRIES // 2 + 1):
        index.remove(i.to_bytes(4, "big"))
    assert part.ann is None and part.size == ANN_MIN_ENTRIES // 2 - 1
    query = unit(list(rng.normal(size=32)))
    assert query is not None
    left = matrix[count - part.size :]
    found = index.nearest(b"p", query)
    best = int(np.argmax(left @ query)) + count - part.size
    assert found is not None and found[0] == best.to_bytes(4, "big")


def test_the_ann_index_reuses_the_slots_of_evicted_entries() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex()
    vectors = rng.normal(size=(3 * ANN_MIN_ENTRIES, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    live: list[bytes] = []
    for i, vector in enumerate(vectors):  # an LRU of ANN_MIN_ENTRIES + 100 entries
        key = i.to_bytes(4, "big")
        index.add(b"p", key, vector)
        live.append(key)
        if len(live) > ANN_MIN_ENTRIES + 100:
            index.remove(live.pop(0))
    part = index._parts[b"p"]
    assert part.ann is not None and part.ann.max_elements == 2 * ANN_MIN_ENTRIES  # no growth
    found = index.nearest(b"p", vectors[-1])
    assert found is not None and found[0] == live[-1] and abs(found[1] - 1.0) < 1e-5
