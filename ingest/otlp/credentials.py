"""`CredentialReader`: the control topic -> a CredentialBook (virtual keys, ingest tokens).

It reads through the same compacted-topic reader as every gateway (`meterline.views`):
all partitions from the beginning, no consumer group, so no group join may delay a
revocation. `loaded` says whether every partition was read to its end at least once, so
an unknown credential before that is "not known yet" (503, the exporter retries), not
"wrong" (401). Once loaded it stays loaded: a record just read (a revocation) must not
turn "unknown" back into "retry" until the next end-of-partition.
"""

from __future__ import annotations

from meterline.settings import Settings
from meterline.views import ViewReader
from schemas.credentials import CredentialBook
from schemas.topics import CONTROL

__all__ = ["CredentialReader"]


class CredentialReader:
    def __init__(self, settings: Settings, book: CredentialBook | None = None) -> None:
        self.book = book if book is not None else CredentialBook()
        self._reader = ViewReader(settings, {settings.topic(CONTROL): self.book.apply})

    @property
    def loaded(self) -> bool:
        return self._reader.ready

    def start(self) -> None:
        self._reader.start()

    def close(self) -> None:
        self._reader.close()
