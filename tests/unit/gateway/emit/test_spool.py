from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.emit.spool import Spool


def _records(n: int, start: int = 0) -> list[tuple[str, bytes, bytes]]:
    return [("t.requests", b"key_1", b'{"n":%d}' % i) for i in range(start, start + n)]


def test_spool_replays_in_order_and_resumes_after_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "gw")
    spool.append(_records(5))
    spool.append(_records(3, start=5))
    batch, ends = spool.read(4)
    assert [r[2] for r in batch] == [b'{"n":%d}' % i for i in range(4)]
    spool.advance(ends[-1], len(batch))

    reopened = Spool(tmp_path, "gw")  # a restart: the position survived
    assert reopened.pending == 4
    rest, ends = reopened.read(100)
    assert [r[2] for r in rest] == [b'{"n":%d}' % i for i in range(4, 8)]
    reopened.advance(ends[-1], len(rest))
    assert reopened.empty and not reopened.path.exists()


def test_a_torn_last_write_loses_only_that_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "gw")
    spool.append(_records(2))
    with spool.path.open("ab") as handle:
        handle.write(b't.requests\tkey_1\t{"torn')
    reopened = Spool(tmp_path, "gw")
    reopened.append(_records(1, start=9))
    assert reopened.pending == 3
    batch, _ = reopened.read(100)
    assert [r[2] for r in batch] == [b'{"n":0}', b'{"n":1}', b'{"n":9}']


def test_quarantine_keeps_the_record_beside_the_spool_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, "gw")
    spool.append(_records(3))
    batch, ends = spool.read(100)

    with caplog.at_level(logging.ERROR, logger="gateway.emit.spool"):
        spool.quarantine(batch[1], "MSG_SIZE_TOO_LARGE: 2000000 bytes")
    spool.advance(ends[-1], len(batch))

    assert spool.quarantine_path == tmp_path / "gw.quarantine"
    assert spool.quarantine_path.read_bytes() == b't.requests\tkey_1\t{"n":1}\n'
    assert spool.quarantined == 1 and spool.empty and not spool.path.exists()
    assert "MSG_SIZE_TOO_LARGE" in caplog.text and str(spool.quarantine_path) in caplog.text
    # The same line format as the spool: an operator can append it back once fixed.
    reopened = Spool(tmp_path, "gw")
    with spool.quarantine_path.open("rb") as handle, reopened.path.open("ab") as target:
        target.write(handle.read())
    assert [r[2] for r in Spool(tmp_path, "gw").read(10)[0]] == [b'{"n":1}']


def test_a_line_that_is_not_a_record_is_quarantined_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "gw")
    spool.append(_records(1))
    with spool.path.open("ab") as handle:
        handle.write(b"garbage without tabs\n")
    spool.append(_records(1, start=1))
    reopened = Spool(tmp_path, "gw")

    first, ends = reopened.read(100)  # the batch ends before the bad line
    reopened.advance(ends[-1], len(first))
    rest, ends = reopened.read(100)

    assert [r[2] for r in first + rest] == [b'{"n":0}', b'{"n":1}']
    assert reopened.quarantine_path.read_bytes() == b"garbage without tabs\n"
    reopened.advance(ends[-1], len(rest))
    assert reopened.empty
