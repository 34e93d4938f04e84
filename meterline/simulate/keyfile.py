"""The keys a simulation created, kept between runs (`meterline simulate --keys-file`), so
`meterline up --demo` restarted reuses its keys and budgets instead of adding copies.

A secret is shown once by the admin API and never stored by Meterline, so the simulator
keeps what it was shown in a file only its user can read (like the admin token file).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["SavedKey", "load_keys", "save_keys"]


@dataclass(frozen=True)
class SavedKey:
    key_id: str
    secret: str
    attribution: tuple[str, str, str, str]  # org, team, project, user: reused only if equal


def load_keys(path: Path) -> dict[str, SavedKey]:
    """Plan key name -> saved key; nothing when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return {
            name: SavedKey(item["key_id"], item["secret"], tuple(item["attribution"]))
            for name, item in data.items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_keys(path: Path, keys: dict[str, SavedKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Created readable by its owner only: the file holds key secrets.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({name: asdict(key) for name, key in keys.items()}, handle, indent=1)
    temporary.replace(path)
