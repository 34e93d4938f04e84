"""Nearest cached prompt by cosine similarity, per semantic partition (numpy, exact).

Vectors are stored unit-length in one float32 matrix per partition, so a search is one
matrix-vector product. Exact search stays well under a millisecond at the store's entry
bound (bench/cache.py measures it); no approximate index is needed below that.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["VectorIndex", "unit"]

Vector = NDArray[np.float32]


def unit(values: list[float]) -> Vector | None:
    """`values` as a unit float32 vector; None if empty, not finite or zero."""
    vector = np.asarray(values, dtype=np.float32)
    if vector.ndim != 1 or not vector.size or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


class _Partition:
    __slots__ = ("keys", "matrix", "rows", "size")

    def __init__(self, dim: int) -> None:
        self.keys: list[bytes] = []
        self.rows: dict[bytes, int] = {}  # key -> its row: a removal never scans the keys
        self.matrix = np.empty((8, dim), dtype=np.float32)
        self.size = 0


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
        if part.size == part.matrix.shape[0]:
            part.matrix = np.concatenate([part.matrix, np.empty_like(part.matrix)])
        part.matrix[part.size] = vector
        part.rows[key] = part.size
        part.keys.append(key)
        part.size += 1
        self._where[key] = partition

    def remove(self, key: bytes) -> None:
        partition = self._where.pop(key, None)
        if partition is None:
            return
        part = self._parts[partition]
        row = part.rows.pop(key)
        last = part.size - 1
        if row != last:  # swap the last row in
            moved = part.keys[last]
            part.matrix[row] = part.matrix[last]
            part.keys[row] = moved
            part.rows[moved] = row
        part.keys.pop()
        part.size -= 1
        if not part.size:
            del self._parts[partition]

    def nearest(self, partition: bytes, vector: Vector) -> tuple[bytes, float] | None:
        """The closest key in the partition and its cosine similarity, or None."""
        part = self._parts.get(partition)
        if part is None or part.matrix.shape[1] != vector.size:
            return None
        scores = part.matrix[: part.size] @ vector
        best = int(np.argmax(scores))
        return part.keys[best], float(scores[best])
