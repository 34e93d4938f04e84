"""iso_ms reuses the text of the current second: the same text as datetime's own."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from gateway.record import iso_ms


def _reference(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_iso_ms_is_datetimes_text_on_many_timestamps() -> None:
    rng = random.Random(3)
    stamps = [0.0, 1e-7, 0.9999995, 0.0004995, 1_700_000_000.9999995, 1_700_000_000.0005]
    stamps += [1_700_000_000 + rng.random() * 1e6 for _ in range(20_000)]
    stamps += [rng.uniform(0, 253402300798) for _ in range(5_000)]
    stamps += [1_700_000_000 + rng.randrange(10**6) / 1000 + rng.choice([-5e-7, 0, 5e-7])]
    stamps += [1_700_000_123 + n / 10**7 for n in range(0, 10**7, 3_331)]  # one second, densely
    for stamp in stamps:
        assert iso_ms(stamp) == _reference(stamp), stamp
