"""`CredentialReader`: the control topic -> a CredentialBook (virtual keys, ingest tokens).

It reads through the same compacted-topic reader as every gateway (`meterline.views`):
all partitions from the beginning, no consumer group, so no group join may delay a
revocation. `caught_up` says whether every partition was read to its end, so an unknown
credential before that is "not known yet" (503, the exporter retries), not "wrong" (401).
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
    def caught_up(self) -> bool:
        return self._reader.caught_up

    def start(self) -> None:
        self._reader.start()

    def close(self) -> None:
        self._reader.close()
