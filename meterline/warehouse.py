"""ClickHouse access shared by every process: connect, migrate, rebuild aggregates.

Migrations are the ordered `schemas/clickhouse/migrations/NNNN_<name>.sql` files. Each
holds `;`-terminated statements written with the `{{database}}` placeholder, which is
replaced by the configured database name (validated as an identifier: it comes from our
settings, but it is spliced into DDL, where parameters cannot go).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from meterline.settings import Settings
from schemas.clickhouse import MIGRATIONS_DIR

__all__ = [
    "DATABASE_PLACEHOLDER",
    "Migration",
    "SharedClient",
    "WarehouseError",
    "connect",
    "load_migrations",
    "migrate",
    "rebuild_aggregates",
    "refill_sqls",
    "repair_recent_rollups",
    "rollup_selects",
    "spend_daily_refill_sql",
    "validate_identifier",
]

log = logging.getLogger(__name__)

DATABASE_PLACEHOLDER = "{{database}}"
MIGRATIONS_TABLE = "schema_migrations"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_STATEMENT_END = re.compile(r";\s*(?:\n|$)")


class WarehouseError(RuntimeError):
    """ClickHouse cannot be used as configured; the message says what to do."""


def validate_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise WarehouseError(
            f"invalid ClickHouse database name {name!r}: use letters, digits and '_' "
            "(METERLINE_CLICKHOUSE_DATABASE)"
        )
    return name


def connect(settings: Settings) -> Client:
    """A clickhouse-connect client for `settings.resolved_clickhouse_url`.

    `chdb:///abs/path` opens the in-process engine (one per OS process, and the data
    directory is locked by whichever process opened it first); `http(s)://...` a server.
    """
    url = settings.resolved_clickhouse_url
    if url.startswith("chdb://"):
        path = Path(url.removeprefix("chdb://"))
        path.mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(dsn=f"chdb://{path}")
        except Exception as exc:
            raise WarehouseError(
                f"cannot open the embedded ClickHouse engine at {path}: {exc}. "
                "Another process probably holds it (only one process may open it): "
                "stop `meterline up` / `meterline ingest` first, or point "
                "METERLINE_CLICKHOUSE_URL at a ClickHouse server."
            ) from exc
    if url.startswith(("http://", "https://")):
        try:
            return clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            raise WarehouseError(
                f"cannot reach ClickHouse at {url}: {exc}. Start it, or unset "
                "METERLINE_CLICKHOUSE_URL to use the embedded engine."
            ) from exc
    raise WarehouseError(
        f"unsupported METERLINE_CLICKHOUSE_URL {url!r}: use chdb:///abs/path or http(s)://..."
    )


@dataclass(frozen=True)
class Migration:
    name: str  # file name without `.sql`, e.g. 0001_raw_events
    sql: str

    def statements(self, database: str) -> list[str]:
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        ).replace(DATABASE_PLACEHOLDER, validate_identifier(database))
        return [part.strip() for part in _STATEMENT_END.split(text) if part.strip()]


def load_migrations() -> list[Migration]:
    files = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [Migration(path.stem, path.read_text()) for path in files]


def migrate(client: Client, database: str) -> list[str]:
    """Apply the migrations not applied yet, in order; return their names.

    Statements are `IF NOT EXISTS`, so a migration interrupted half-way is safe to re-run.
    """
    db = validate_identifier(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} "
        "(name String, applied_at DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY name"
    )
    done = {row[0] for row in client.query(f"SELECT name FROM {db}.{MIGRATIONS_TABLE}").result_rows}
    applied: list[str] = []
    for migration in load_migrations():
        if migration.name in done:
            continue
        for statement in migration.statements(db):
            client.command(statement)
        client.insert(
            f"{db}.{MIGRATIONS_TABLE}",
            [[migration.name, datetime.now(UTC)]],
            column_names=["name", "applied_at"],
        )
        log.info("applied ClickHouse migration %s to %s", migration.name, db)
        applied.append(migration.name)
    return applied


# A materialized view's target and SELECT, up to its FROM table (which the refill reads FINAL).
_MV_SELECT = re.compile(
    r"CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>\S+)\.\w+\s+TO\s+(?P=db)\.(?P<target>\w+)"
    r"\s+AS\s+(?P<select>SELECT\b.*?\bFROM\s+(?P=db)\.\w+)\b(?P<rest>.*)",
    re.DOTALL,
)


def rollup_selects(database: str) -> dict[str, str]:
    """Per rollup table, its view's own SELECT over the raw table FINAL (spend_daily from
    costs, requests_daily from requests).

    Read from the latest migration that creates each view (spend_daily_mv: 0004, recreated
    by 0008, 0009 and 0013) rather than copied, so a rebuild cannot drift from the view
    that fills the table in normal operation.
    """
    db = validate_identifier(database)
    selects: dict[str, str] = {}
    for migration in load_migrations():  # a later definition replaces an earlier one
        for statement in migration.statements(db):
            match = _MV_SELECT.fullmatch(statement)
            if match is not None:
                selects[match["target"]] = f"{match['select']} FINAL{match['rest']}"
    return selects


def refill_sqls(database: str) -> dict[str, str]:
    """Per rollup table, the INSERT that refills it from its raw rows (`rollup_selects`)."""
    db = validate_identifier(database)
    return {
        target: f"INSERT INTO {db}.{target}\n{select}"
        for target, select in rollup_selects(db).items()
    }


def spend_daily_refill_sql(database: str) -> str:
    """The INSERT that refills spend_daily (see `refill_sqls`)."""
    try:
        return refill_sqls(database)["spend_daily"]
    except KeyError:
        raise WarehouseError("no migration creates spend_daily_mv") from None


def rebuild_aggregates(client: Client, database: str) -> int:
    """Refill every rollup from its raw rows; return the number of spend_daily rows.

    Run it with the sink stopped (in embedded mode it must be, as the engine is locked).
    """
    db = validate_identifier(database)
    for table, sql in refill_sqls(db).items():
        client.command(f"TRUNCATE TABLE IF EXISTS {db}.{table}")
        client.command(sql)
        client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
    return int(client.query(f"SELECT count() FROM {db}.spend_daily").result_rows[0][0])


def repair_recent_rollups(client: Client, database: str, days: int = 2) -> list[str]:
    """Refill the last `days` days of every rollup whose requests differ from its raw rows';
    return the rollups repaired. Run it before the sink starts.

    A materialized view is filled by the insert into its raw table, but not atomically
    with it: an embedded engine killed between the two (SIGKILL of ingest) keeps the raw
    rows and loses the view's. The sink's stored-event-id check then skips those events
    on redelivery, so without this the rollup stays short (the chaos test saw showback
    27 requests under the exact costs). The crash can only hit recent inserts, so only
    recent days are compared: cheap at any size (the day is the tables' first key)."""
    db = validate_identifier(database)
    repaired = []
    for table, select in rollup_selects(db).items():
        recent = f"day >= today() - {int(days) - 1}"
        raw = f"SELECT sum(requests) FROM ({select}) WHERE {recent}"
        rolled = f"SELECT sum(requests) FROM {db}.{table} WHERE {recent}"
        if client.query(raw).result_rows[0][0] == client.query(rolled).result_rows[0][0]:
            continue
        client.command(f"DELETE FROM {db}.{table} WHERE {recent}")
        client.command(f"INSERT INTO {db}.{table} SELECT * FROM ({select}) WHERE {recent}")
        repaired.append(table)
    return repaired


class SharedClient:
    """One client used by several threads (sink and read API), one call at a time.

    chdb's client is not known to be thread-safe, and in embedded mode there is exactly
    one engine per process, so every call goes through one lock.
    """

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = validate_identifier(database)
        self.lock = threading.Lock()

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        with self.lock:
            return self.client.query(sql, parameters=parameters).result_rows

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self.lock:
            return self.client.command(sql, parameters=parameters)

    def insert_arrow(self, table: str, arrow_table: Any) -> None:
        with self.lock:
            self.client.insert_arrow(table, arrow_table, database=self.database)

    def ping(self) -> bool:
        try:
            with self.lock:
                self.client.query("SELECT 1")
            return True
        except Exception:
            return False

    def close(self) -> None:
        with self.lock:
            self.client.close()
