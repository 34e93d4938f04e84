from __future__ import annotations

from pathlib import Path

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
