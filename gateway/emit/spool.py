"""Append-only disk spool for events the broker could not take, replayed in order.

One record per line: `topic \\t key \\t value \\n`. Values are orjson output, which never
contains a raw newline or tab, and topics and key ids are ours. The read position lives
in a side file, so a restart resumes replay where it stopped; the spool is deleted once
fully replayed. Single writer and reader: the emitter's background thread.

A record the broker refuses for good on replay, or a line that is not a record, is moved
to `<name>.quarantine` beside the spool (same line format, so an operator can inspect it
and append it back once the cause is fixed), with an ERROR log line saying why. It is never
retried forever, which would stop every later event, and never skipped silently.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["Spool", "SpoolRecord"]

log = logging.getLogger(__name__)

SpoolRecord = tuple[str, bytes, bytes]  # topic, key, value


class Spool:
    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.spool"
        self._offset_path = directory / f"{name}.offset"
        self.quarantine_path = directory / f"{name}.quarantine"
        self.quarantined = 0  # records moved to quarantine by this process
        self._seal_torn_write()
        self._offset = self._read_offset()
        self.pending = self._count_pending()

    def _seal_torn_write(self) -> None:
        # A crash mid-append leaves a last line without its newline: cut it off (it was
        # never a whole record), so the next append starts on a fresh line.
        try:
            handle = self.path.open("rb+")
        except FileNotFoundError:
            return
        with handle:
            end = handle.seek(0, os.SEEK_END)
            position = end
            while position > 0:
                step = min(65536, position)
                handle.seek(position - step)
                chunk = handle.read(step)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    position = position - step + newline + 1
                    break
                position -= step
            if position < end:
                log.error(
                    "spool %s: dropping an incomplete last record (%d bytes) left by a crash",
                    self.path,
                    end - position,
                )
                handle.truncate(position)

    def _read_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _count_pending(self) -> int:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                return sum(1 for line in handle if line.endswith(b"\n"))
        except FileNotFoundError:
            return 0

    def append(self, records: list[SpoolRecord]) -> None:
        if not records:
            return
        _write(self.path, b"".join(_line(record) for record in records))
        self.pending += len(records)

    def quarantine(self, record: SpoolRecord, reason: str) -> None:
        """Keep a record the broker will never take beside the spool, and say so."""
        self._quarantine_line(_line(record), reason)

    def _quarantine_line(self, line: bytes, reason: str) -> None:
        _write(self.quarantine_path, line if line.endswith(b"\n") else line + b"\n")
        self.quarantined += 1
        log.error(
            "spool %s: quarantined a record (%d bytes) to %s: %s",
            self.path,
            len(line),
            self.quarantine_path,
            reason,
        )

    def read(self, limit: int) -> tuple[list[SpoolRecord], list[int]]:
        """Up to `limit` records from the read position, with each record's end offset."""
        records: list[SpoolRecord] = []
        ends: list[int] = []
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return records, ends
        with handle:
            handle.seek(self._offset)
            position = self._offset
            for line in handle:
                if not line.endswith(b"\n"):
                    # A torn write from a crash: skip it loudly rather than stall forever.
                    log.error("spool %s: skipping an incomplete last record", self.path)
                    position += len(line)
                    self._offset = position
                    break
                parts = line[:-1].split(b"\t", 2)
                if len(parts) != 3:
                    if records:  # end this batch; the next read starts at the bad line
                        break
                    self._quarantine_line(line, f"not a spool record (at offset {position})")
                    position += len(line)
                    self._skip_to(position)
                    self.pending = max(0, self.pending - 1)
                    continue
                position += len(line)
                records.append((parts[0].decode(), parts[1], parts[2]))
                ends.append(position)
                if len(records) >= limit:
                    break
        return records, ends

    def _skip_to(self, position: int) -> None:
        self._offset = position
        self._write_offset()

    def advance(self, end_offset: int, count: int) -> None:
        """Mark records up to `end_offset` as delivered; remove the files when all are."""
        self._offset = end_offset
        self.pending = max(0, self.pending - count)
        size = self.path.stat().st_size if self.path.exists() else 0
        if self._offset >= size:
            self.clear()
        else:
            self._write_offset()

    def _write_offset(self) -> None:
        temp = self._offset_path.with_suffix(".tmp")
        temp.write_text(str(self._offset))
        os.replace(temp, self._offset_path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._offset_path.unlink(missing_ok=True)
        self._offset = 0
        self.pending = 0

    @property
    def empty(self) -> bool:
        return self.pending == 0


def _line(record: SpoolRecord) -> bytes:
    topic, key, value = record
    return b"%s\t%s\t%s\n" % (topic.encode(), key, value)


def _write(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
