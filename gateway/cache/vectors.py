"""Nearest cached prompt by cosine similarity, per semantic partition.

Vectors are stored unit-length in one float32 matrix per partition, so an exact search is
one matrix-vector product: tens of microseconds for a thousand entries, but linear in the
partition (~1 ms at 10,000 entries on a quiet core, bench/cache.py). A partition that
grows past `ANN_MIN_ENTRIES` gets an approximate index as well (hnswlib's HNSW, cosine
space, one thread: it runs on the event loop), searched in logarithmic time; it is
dropped again below half that, where exact search is cheap and exact. An approximate
miss only costs a cache miss, never a wrong answer: the similarity returned is the
entry's true cosine, checked against the threshold like an exact one. (usearch was tried
first: once imported, chDB queries in the same process hung.)
"""

from __future__ import annotations

import hnswlib
import numpy as np
from numpy.typing import NDArray

__all__ = ["ANN_MIN_ENTRIES", "VectorIndex", "unit"]

Vector = NDArray[np.float32]

ANN_MIN_ENTRIES = 4_096  # about where HNSW overtakes the product (bench/cache.py)
_ANN_M = 16  # graph degree and search breadth: hnswlib's usual values, recall ~0.99
_ANN_EF_CONSTRUCTION = 100
_ANN_EF = 64


def unit(values: list[float]) -> Vector | None:
    """`values` as a unit float32 vector; None if empty, not finite or zero."""
    vector = np.asarray(values, dtype=np.float32)
    if vector.ndim != 1 or not vector.size or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


class _Partition:
    __slots__ = ("ann", "by_label", "keys", "labels", "matrix", "next_label", "rows", "size")

    def __init__(self, dim: int) -> None:
        self.keys: list[bytes] = []
        self.rows: dict[bytes, int] = {}  # key -> its row in `matrix`
        self.matrix = np.empty((8, dim), dtype=np.float32)
        self.size = 0
        self.ann: hnswlib.Index | None = None
        self.labels: dict[bytes, int] = {}  # key -> its label in `ann`
        self.by_label: dict[int, bytes] = {}
        self.next_label = 0

    def add(self, key: bytes, vector: Vector) -> None:
        if self.size == self.matrix.shape[0]:
            self.matrix = np.concatenate([self.matrix, np.empty_like(self.matrix)])
        self.matrix[self.size] = vector
        self.rows[key] = self.size
        self.keys.append(key)
        self.size += 1
        if self.ann is not None:
            self._label(key, vector)
        elif self.size >= ANN_MIN_ENTRIES:
            self._build_ann()

    def remove(self, key: bytes) -> None:
        row = self.rows.pop(key)
        last = self.size - 1
        if row != last:  # swap the last row in
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()
        self.size -= 1
        if self.ann is not None:
            label = self.labels.pop(key)
            del self.by_label[label]
            self.ann.mark_deleted(label)  # its slot is reused by a later add
            if self.size < ANN_MIN_ENTRIES // 2:
                self.ann, self.labels, self.by_label = None, {}, {}

    def nearest(self, vector: Vector) -> tuple[bytes, float] | None:
        if not self.size:
            return None
        if self.ann is not None:
            try:
                labels, _distances = self.ann.knn_query(vector, k=1)
            except RuntimeError:  # hnswlib found no neighbour: search exactly
                labels = None
            key = self.by_label.get(int(labels[0][0])) if labels is not None else None
            if key is not None:
                return key, float(self.matrix[self.rows[key]] @ vector)
        scores = self.matrix[: self.size] @ vector
        best = int(np.argmax(scores))
        return self.keys[best], float(scores[best])

    def _build_ann(self) -> None:
        self.ann = hnswlib.Index(space="cosine", dim=self.matrix.shape[1])
        self.ann.init_index(
            max_elements=2 * ANN_MIN_ENTRIES,
            ef_construction=_ANN_EF_CONSTRUCTION,
            M=_ANN_M,
            allow_replace_deleted=True,
        )
        self.ann.set_ef(_ANN_EF)
        self.ann.set_num_threads(1)
        self.labels, self.by_label = {}, {}
        for key in self.keys:
            self._label(key, self.matrix[self.rows[key]])

    def _label(self, key: bytes, vector: Vector) -> None:
        assert self.ann is not None
        label = self.next_label
        self.next_label += 1
        self.labels[key] = label
        self.by_label[label] = key
        if self.ann.element_count >= self.ann.max_elements and not self._has_deleted():
            self.ann.resize_index(2 * self.ann.max_elements)
        self.ann.add_items(vector[None, :], [label], replace_deleted=True)

    def _has_deleted(self) -> bool:
        return self.ann is not None and self.ann.element_count > len(self.labels) - 1


class VectorIndex:
    def __init__(self) -> None:
        self._parts: dict[bytes, _Partition] = {}
        self._where: dict[bytes, bytes] = {}  # entry key -> its partition

    def __len__(self) -> int:
        return len(self._where)

    def add(self, partition: bytes, key: bytes, vector: Vector) -> None:
        self.remove(key)
        part = self._parts.get(partition)
        if part is None or part.matrix.shape[1] != vector.size:  # a new embedding size
            if part is not None:
                for old in part.keys:
                    self._where.pop(old, None)
            part = self._parts[partition] = _Partition(vector.size)
        part.add(key, vector)
        self._where[key] = partition

    def remove(self, key: bytes) -> None:
        partition = self._where.pop(key, None)
        if partition is None:
            return
        part = self._parts[partition]
        part.remove(key)
        if not part.size:
            del self._parts[partition]

    def nearest(self, partition: bytes, vector: Vector) -> tuple[bytes, float] | None:
        """The closest key in the partition and its cosine similarity, or None."""
        part = self._parts.get(partition)
        if part is None or part.matrix.shape[1] != vector.size:
            return None
        return part.nearest(vector)
