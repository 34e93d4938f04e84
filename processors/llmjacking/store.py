"""The detector's memory on disk: key states and peer baselines in one pickle file.

Not a Faust table: tansu's changelog recovery is unreliable (ARCHITECTURE §7), and a
changelog would cost a write per request. A restart loads the last snapshot (written
every `persist_interval_s` and on a clean stop), so keys and their peers keep their
learned normal; at worst the requests since the snapshot are learned again
(replayed from the last committed offset) or not at all. The file is written to a
temporary name and renamed, so a crash never leaves half a snapshot. It is a pickle:
it lives in the worker's own data dir and is never read from anywhere else.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "load_state", "save_state"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: key states and peer baselines (stream-time scoring)


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("wb") as out:
        pickle.dump({"version": FORMAT_VERSION, **state}, out, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None (no file, or one this version cannot read: start over)."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as saved:
            state = pickle.load(saved)
    except Exception:  # corrupt or from incompatible code: learning again beats not starting
        log.exception("llmjacking: cannot read %s; starting without learned baselines", path)
        return None
    if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
        log.warning("llmjacking: %s has another format; starting without it", path)
        return None
    return state
